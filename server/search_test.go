package server_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// searchUntil repeats a Search until it returns want results: messages are
// indexed just after their commit, off the send path.
func (r *raw) searchUntil(q protocol.Search, want int) protocol.SearchResult {
	r.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		id := r.send(protocol.TypeSearch, &q)
		var res protocol.SearchResult
		r.expect(protocol.TypeSearchResult, id, &res)
		if len(res.Messages) == want || time.Now().After(deadline) {
			return res
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func bodies(ms []protocol.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.Body))
	}
	return out
}

// Search end to end: a user finds its own messages, in Chinese too, pages
// through them; another user finds none of them; bad queries are refused.
func TestSearch(t *testing.T) {
	srv := startServer(t, nil)
	alice, bob, carol := dial(t, srv.Addr()), dial(t, srv.Addr()), dial(t, srv.Addr())
	a := alice.register(uniqueName("alice")).UserID
	b := bob.register(uniqueName("bob")).UserID
	carol.register(uniqueName("carol"))
	alice.sendText(b, "s1", "meet at 東京 station")
	alice.sendText(b, "s2", "lunch at the station?")
	ack := alice.sendText(b, "s3", "no, the other station")
	for range 3 {
		bob.expectPush()
	}

	res := bob.searchUntil(protocol.Search{Query: "station"}, 3)
	if got, want := bodies(res.Messages), []string{"no, the other station", "lunch at the station?", "meet at 東京 station"}; !slices.Equal(got, want) {
		t.Fatalf("bob's search: %q, want %q", got, want)
	}
	if res.Messages[0].Seq != ack.Seq || res.Messages[0].From != a {
		t.Errorf("first result %+v, want seq %d from %d", res.Messages[0], ack.Seq, a)
	}
	res = bob.searchUntil(protocol.Search{Query: "東京"}, 1)
	if got := bodies(res.Messages); len(got) != 1 || got[0] != "meet at 東京 station" {
		t.Errorf("search 東京: %q", got)
	}
	// Pages of one.
	var paged []string
	q := protocol.Search{Query: "station", Limit: 1}
	for range 5 {
		id := alice.send(protocol.TypeSearch, &q)
		var res protocol.SearchResult
		alice.expect(protocol.TypeSearchResult, id, &res)
		paged = append(paged, bodies(res.Messages)...)
		if !res.HasMore {
			break
		}
		q.BeforeTime, q.BeforeConv, q.BeforeSeq = res.NextTime, res.NextConv, res.NextSeq
	}
	if len(paged) != 3 {
		t.Errorf("paged search: %q, want 3 results", paged)
	}
	// carol reads nothing of theirs, and may not name their conversation.
	id := carol.send(protocol.TypeSearch, &protocol.Search{Query: "station"})
	var none protocol.SearchResult
	carol.expect(protocol.TypeSearchResult, id, &none)
	if len(none.Messages) != 0 {
		t.Errorf("carol found %q", bodies(none.Messages))
	}
	id = carol.send(protocol.TypeSearch, &protocol.Search{Query: "station", Conv: protocol.DirectConv(a, b)})
	carol.expectError(id, protocol.CodeBadConv)
	for _, bad := range []protocol.Search{
		{Query: ""},
		{Query: " !?, "},
		{Query: strings.Repeat("x", 257)},
		{Query: "a b c d e f g h i"},
		{Query: "ok", BeforeConv: "nonsense"},
	} {
		id := bob.send(protocol.TypeSearch, &bad)
		bob.expectError(id, protocol.CodeBadBody)
	}
}

// An edited message is found by its latest text, shown with it, and not by
// the words the edit took out; once recalled, by none.
func TestSearchEdited(t *testing.T) {
	srv := startServer(t, nil)
	alice, bob := dial(t, srv.Addr()), dial(t, srv.Addr())
	alice.register(uniqueName("alice"))
	b := bob.register(uniqueName("bob")).UserID
	ack := alice.sendText(b, "e1", "see you at noon")
	event := func(cmid string, ct uint16, body string) {
		t.Helper()
		id := alice.send(protocol.TypeSend, &protocol.Send{ClientMsgID: cmid, To: b, ContentType: ct, Ref: ack.Seq, Body: []byte(body)})
		alice.expect(protocol.TypeSendAck, id, nil)
	}
	alice.searchUntil(protocol.Search{Query: "noon"}, 1)
	event("e2", protocol.ContentEdit, "see you at dusk")
	res := alice.searchUntil(protocol.Search{Query: "dusk"}, 1)
	if got := bodies(res.Messages); len(got) != 1 || got[0] != "see you at dusk" || res.Messages[0].Edited != 1 {
		t.Fatalf("search dusk: %q (%+v), want the edited message", got, res.Messages)
	}
	if res := alice.searchUntil(protocol.Search{Query: "noon"}, 0); len(res.Messages) != 0 {
		t.Errorf("search noon after the edit: %q", bodies(res.Messages))
	}
	event("e3", protocol.ContentRecall, "")
	if res := alice.searchUntil(protocol.Search{Query: "dusk"}, 0); len(res.Messages) != 0 {
		t.Errorf("search dusk after the recall: %q", bodies(res.Messages))
	}
}

// A flood of searches from many connections never stops an honest client's
// sends: searches past the gate are answered BUSY at once, and every send
// of the honest client is stored and acknowledged. The searches that enter
// the gate wait until the flood has been refused BUSY once and the honest
// client's sends are acknowledged, so the gate is held while the flood
// comes, however fast the machine runs a search.
func TestSearchFloodKeepsSends(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.SearchConcurrency = 1 })
	release, sent := make(chan struct{}), make(chan struct{})
	server.OnSearching(srv, func() { <-release })
	honest, peer := dial(t, srv.Addr()), dial(t, srv.Addr())
	honest.register(uniqueName("honest"))
	to := peer.register(uniqueName("peer")).UserID
	// A corpus for the flood to search.
	for i := range 200 {
		honest.sendText(to, fmt.Sprintf("c%d", i), fmt.Sprintf("common words number %d", i))
	}
	const flooders, perFlooder = 8, 60
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]int{}
	start := make(chan struct{})
	for range flooders {
		f := dial(t, srv.Addr())
		f.register(uniqueName("flood"))
		wg.Go(func() {
			<-start
			// Pipelined: every search sent before any answer is read.
			for range perFlooder {
				f.send(protocol.TypeSearch, &protocol.Search{Query: "o", Limit: 50})
			}
			for range perFlooder {
				fr, err := f.next(10 * time.Second)
				if err != nil {
					t.Errorf("flooder: %v", err)
					return
				}
				kind := fr.h.Type.String()
				if fr.h.Type == protocol.TypeError {
					var e protocol.Error
					_ = protocol.DecodeBody(fr.body, &e)
					kind = e.Code.String()
				}
				mu.Lock()
				answers[kind]++
				mu.Unlock()
			}
		})
	}
	close(start)
	go func() {
		defer close(release)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			busy := answers["BUSY"]
			mu.Unlock()
			select {
			case <-sent:
				if busy > 0 {
					return
				}
			default:
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// The honest client sends meanwhile, pipelined too.
	const sends = 100
	ids := make([]uint32, sends)
	for i := range ids {
		ids[i] = honest.send(protocol.TypeSend, &protocol.Send{ClientMsgID: fmt.Sprintf("h%d", i), To: to, Body: []byte("still here")})
	}
	for _, id := range ids {
		var ack protocol.SendAck
		honest.expect(protocol.TypeSendAck, id, &ack)
	}
	close(sent)
	wg.Wait()
	t.Logf("flood answers: %v", answers)
	if answers["BUSY"] == 0 {
		t.Errorf("no search of the flood was refused BUSY: %v", answers)
	}
	if answers["SearchResult"]+answers["SEARCH_TOO_BROAD"] == 0 {
		t.Errorf("no search of the flood ran: %v", answers)
	}
}
