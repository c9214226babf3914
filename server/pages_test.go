package server_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// pageGroup makes a group of r's own holding n messages of 16 KiB and
// returns its conversation: a History of it fills a reply.
func pageGroup(t *testing.T, r *raw, n int) string {
	t.Helper()
	id := r.send(protocol.TypeGroupCreate, &protocol.GroupCreate{Name: "big"})
	var g protocol.GroupInfo
	r.expect(protocol.TypeGroupInfo, id, &g)
	for i := range n {
		id := r.send(protocol.TypeSend, &protocol.Send{ClientMsgID: fmt.Sprint(g.GroupID, "-", i), GroupID: g.GroupID, Body: make([]byte, 16<<10)})
		r.expect(protocol.TypeSendAck, id, nil)
	}
	return protocol.GroupConv(g.GroupID)
}

// expectBig reads the answer to reqID, which must be of type typ.
func expectBig(t *testing.T, r *raw, typ protocol.Type, reqID uint32) int {
	t.Helper()
	f, err := r.next(10 * time.Second)
	if err != nil {
		t.Fatalf("expecting %s %d: %v", typ, reqID, err)
	}
	if f.h.Type == protocol.TypeKick {
		var k protocol.Kick
		_ = protocol.DecodeBody(f.body, &k)
		t.Fatalf("expecting %s %d: kicked %s (%q)", typ, reqID, k.Reason, k.Message)
	}
	if f.h.Type != typ || f.h.RequestID != reqID {
		t.Fatalf("expecting %s %d, got %s %d", typ, reqID, f.h.Type, f.h.RequestID)
	}
	return f.size
}

// A client that sends several requests for large pages at once and reads
// its socket gets every page: the worker runs the next request only once
// the replies before it have drained enough for it to fit, instead of
// queueing them all at once past MaxOutbound and kicking the client
// SLOW_CONSUMER. (Before, two pipelined History pages kicked it.)
func TestPipelinedPagesReachAReader(t *testing.T) {
	srv := startServer(t, nil)
	r := dial(t, srv.Addr())
	r.register(uniqueName("reader"))
	conv := pageGroup(t, r, 70)
	h := &protocol.History{Conv: conv, Limit: 500}
	var batch []byte
	for i := range 6 {
		batch = append(batch, protocol.MustFrame(protocol.TypeHistory, uint32(100+i), h)...)
	}
	r.sendBytes(batch)
	for i := range 6 {
		if n := expectBig(t, r, protocol.TypeHistoryResult, uint32(100+i)); n > 1<<20 {
			t.Fatalf("page %d is %d bytes, above 1 MiB", i, n)
		}
	}
}

// A connection that pipelines 256 requests for large pages and does not
// read holds the server to its per-connection bound: the worker writes
// each reply as it makes it and parks the rest while the output waits,
// instead of building every reply in one buffer (hundreds of MiB before).
func TestAbusePipelinedPagesMemory(t *testing.T) {
	srv := startServer(t, nil)
	r := dial(t, srv.Addr())
	r.register(uniqueName("hog"))
	frame := protocol.MustFrame(protocol.TypeHistory, 1, &protocol.History{Conv: pageGroup(t, r, 70), Limit: 500})
	mem := watchMemory()
	r.sendBytes([]byte(strings.Repeat(string(frame), 256)))
	time.Sleep(2 * time.Second) // not reading
	mem.check(t, srv, 1)
	// It still gets its pages once it reads.
	for range 3 {
		expectBig(t, r, protocol.TypeHistoryResult, 1)
	}
}

// A ConversationList stays within a reply however long the conversations'
// newest messages are: past 512 KiB the last entries come without their
// newest message, and the client is not kicked SLOW_CONSUMER for asking
// (before, 70 conversations ending in a 16 KiB message did it).
func TestConversationListFits(t *testing.T) {
	srv := startServer(t, nil)
	r := dial(t, srv.Addr())
	r.register(uniqueName("busy"))
	for range 70 {
		pageGroup(t, r, 1)
	}
	id := r.send(protocol.TypeConversations, &protocol.Conversations{Limit: 100})
	f, err := r.next(10 * time.Second)
	n := f.size
	if err != nil || f.h.Type != protocol.TypeConversationList || f.h.RequestID != id {
		t.Fatalf("conversations: %v %v", f.h.Type, err)
	}
	var list protocol.ConversationList
	if err := protocol.DecodeBody(f.body, &list); err != nil {
		t.Fatal(err)
	}
	withLast := 0
	for _, c := range list.Conversations {
		if c.Last != nil {
			withLast++
		}
	}
	t.Logf("%d conversations in %d bytes, %d with their newest message", len(list.Conversations), n, withLast)
	switch {
	case len(list.Conversations) != 70:
		t.Fatalf("%d conversations, want 70", len(list.Conversations))
	case n > 512<<10+1<<10:
		t.Fatalf("the list is %d bytes", n)
	case withLast == 0 || withLast == 70:
		t.Fatalf("%d of 70 with their newest message; want the first ones only", withLast)
	case list.Conversations[0].Last == nil:
		t.Fatal("the most recent conversation lost its newest message")
	}
}

// The lists of profiles come in pages that fit a reply, since strangers can
// make two of them as long as they like: anyone may send a friend request,
// and anyone may join an open group. 760 strangers with the longest
// profiles and notes ask the victim to be friends and join its open group;
// the victim reads both lists page by page, every entry once, and is never
// kicked SLOW_CONSUMER (before, one reply of each was above MaxOutbound).
func TestProfileListsInPages(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.DMPolicy = server.DMAnyone })
	victim := dial(t, srv.Addr())
	v := victim.register(uniqueName("victim"))
	id := victim.send(protocol.TypeGroupCreate, &protocol.GroupCreate{Name: "open", Open: true})
	var g protocol.GroupInfo
	victim.expect(protocol.TypeGroupInfo, id, &g)
	const strangers, conns = 760, 8
	avatar, note := "https://e.com/"+strings.Repeat("a", 498), strings.Repeat("n", 256)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Go(func() {
			c := dial(t, srv.Addr())
			for i := w; i < strangers; i += conns {
				if i != w {
					c = dial(t, srv.Addr())
				}
				c.register(fmt.Sprintf("stranger%04d", i))
				c.expect(protocol.TypeUserInfo, c.send(protocol.TypeProfileUpdate, &protocol.ProfileUpdate{DisplayName: strings.Repeat("d", 64), AvatarURL: avatar}), nil)
				c.expect(protocol.TypeOK, c.send(protocol.TypeFriendRequest, &protocol.FriendRequest{To: v.UserID, Note: note}), nil)
				c.must(protocol.TypeGroupJoin, &protocol.GroupJoin{GroupID: g.GroupID}, protocol.TypeGroupInfo)
				_ = c.c.Close()
			}
		})
	}
	wg.Wait()
	for { // the events pushed meanwhile
		if _, err := victim.next(500 * time.Millisecond); err != nil {
			break
		}
	}
	page := func(typ protocol.Type, body, into any) (int, bool) {
		t.Helper()
		id := victim.send(typ, body)
		f, err := victim.next(10 * time.Second)
		n := f.size
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if f.h.RequestID != id || f.h.Type == protocol.TypeKick || f.h.Type == protocol.TypeError {
			t.Fatalf("%s: answered %s", typ, f.h.Type)
		}
		if err := protocol.DecodeBody(f.body, into); err != nil {
			t.Fatal(err)
		}
		return n, n > maxPage
	}
	seen := map[int64]bool{}
	pages := 0
	for offset := uint32(0); ; pages++ {
		var l protocol.FriendRequestList
		if _, big := page(protocol.TypeFriendRequests, &protocol.FriendRequests{Offset: offset}, &l); big {
			t.Fatal("a FriendRequestList above 512 KiB")
		}
		for _, r := range l.Incoming {
			if seen[r.From.UserID] {
				t.Fatalf("request from %d twice", r.From.UserID)
			}
			seen[r.From.UserID] = true
		}
		if !l.HasMore {
			break
		}
		offset += uint32(len(l.Incoming))
	}
	if len(seen) != strangers || pages < 1 {
		t.Fatalf("%d requests in %d pages, want %d in more than one", len(seen), pages+1, strangers)
	}
	members := map[int64]bool{}
	pages = 0
	for ; ; pages++ {
		var l protocol.MemberList
		if _, big := page(protocol.TypeGroupMembers, &protocol.GroupMembers{GroupID: g.GroupID, Offset: uint32(len(members))}, &l); big {
			t.Fatal("a MemberList above 512 KiB")
		}
		for _, m := range l.Members {
			if members[m.UserID] {
				t.Fatalf("member %d twice", m.UserID)
			}
			members[m.UserID] = true
		}
		if !l.HasMore {
			break
		}
	}
	if len(members) != strangers+1 || pages < 1 {
		t.Fatalf("%d members in %d pages, want %d in more than one", len(members), pages+1, strangers+1)
	}
}

// maxPage is the most a page of a list may take on the wire.
const maxPage = 512<<10 + 1<<10

// Friends pages by offset: the friends past it, in the same order.
func TestFriendsOffset(t *testing.T) {
	srv := startServer(t, nil)
	me := dial(t, srv.Addr())
	m := me.register(uniqueName("me"))
	for range 3 {
		c := dial(t, srv.Addr())
		p := c.register(uniqueName("pal"))
		c.expect(protocol.TypeOK, c.send(protocol.TypeFriendRequest, &protocol.FriendRequest{To: m.UserID}), nil)
		me.must(protocol.TypeFriendAnswer, &protocol.FriendAnswer{From: p.UserID, Accept: true}, protocol.TypeOK)
	}
	var all, rest protocol.FriendList
	me.replyInto(me.send(protocol.TypeFriends, &protocol.Friends{}), protocol.TypeFriendList, &all)
	me.replyInto(me.send(protocol.TypeFriends, &protocol.Friends{Offset: 1}), protocol.TypeFriendList, &rest)
	if len(all.Friends) != 3 || all.HasMore || len(rest.Friends) != 2 || rest.Friends[0].UserID != all.Friends[1].UserID {
		t.Fatalf("friends %+v, from offset 1 %+v", all, rest)
	}
}
