package server_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

// A 500-member group: 400 members online, 100 offline. Four members post
// concurrently; every online connection gets every message exactly once
// and in sequence order (the senders get their own as SendAcks), and the
// offline members get the same messages by Sync.
func TestLargeGroupFanOut(t *testing.T) {
	const (
		members   = 500
		online    = 400
		senders   = 4
		perSender = 25
		total     = senders * perSender
	)
	srv := startServer(t, nil)
	conns := make([]*raw, members)
	ids := make([]int64, members)
	names := make([]string, members)
	for i := range conns {
		names[i] = uniqueName("member")
		conns[i] = dial(t, srv.Addr())
		ids[i] = conns[i].register(names[i]).UserID
	}
	for _, r := range conns[online:] {
		_ = r.c.Close()
	}

	owner := conns[0]
	id := owner.send(protocol.TypeGroupCreate, &protocol.GroupCreate{Name: "everyone", Members: ids[1:]})
	var g protocol.GroupInfo
	owner.expect(protocol.TypeGroupInfo, id, &g)
	if g.Members != members {
		t.Fatalf("group of %d members, want %d", g.Members, members)
	}

	type result struct {
		member int
		seqs   []uint64 // pushes, in arrival order
		acks   []uint64
		err    error
	}
	results := make(chan result, online)
	var wg sync.WaitGroup
	for i := range online {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := conns[i]
			res := result{member: i}
			defer func() { results <- res }()
			if i < senders {
				for k := range perSender {
					r.reqID++
					r.sendBytes(protocol.MustFrame(protocol.TypeSend, r.reqID, &protocol.Send{
						ClientMsgID: fmt.Sprintf("s%d-%d", i, k), GroupID: g.GroupID, Body: fmt.Appendf(nil, "%d/%d", i, k),
					}))
				}
			}
			for len(res.seqs)+len(res.acks) < total {
				f, err := r.next(20 * time.Second)
				if err != nil {
					res.err = err
					return
				}
				switch f.h.Type {
				case protocol.TypeGroupEvent:
				case protocol.TypePush:
					var m protocol.Message
					if res.err = protocol.DecodeBody(f.body, &m); res.err != nil {
						return
					}
					if m.GroupID != g.GroupID {
						res.err = fmt.Errorf("push of group %d", m.GroupID)
						return
					}
					res.seqs = append(res.seqs, m.Seq)
				case protocol.TypeSendAck:
					var a protocol.SendAck
					if res.err = protocol.DecodeBody(f.body, &a); res.err != nil {
						return
					}
					res.acks = append(res.acks, a.Seq)
				default:
					res.err = fmt.Errorf("unexpected %s", f.h.Type)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(results)
	for res := range results {
		if res.err != nil {
			t.Fatalf("member %d: %v after %d pushes", res.member, res.err, len(res.seqs))
		}
		if want := total - perSender; res.member < senders && (len(res.acks) != perSender || len(res.seqs) != want) {
			t.Fatalf("sender %d: %d acks, %d pushes", res.member, len(res.acks), len(res.seqs))
		}
		seen := make(map[uint64]bool, total)
		for k, s := range res.seqs {
			if k > 0 && s <= res.seqs[k-1] {
				t.Fatalf("member %d: push #%d after #%d", res.member, s, res.seqs[k-1])
			}
			seen[s] = true
		}
		for _, s := range res.acks {
			if seen[s] {
				t.Fatalf("member %d: #%d both pushed and acked", res.member, s)
			}
			seen[s] = true
		}
		for s := uint64(1); s <= total; s++ {
			if !seen[s] {
				t.Fatalf("member %d never got #%d", res.member, s)
			}
		}
	}
	for _, r := range conns[:online] {
		r.silent(10 * time.Millisecond) // no duplicate after the last
	}

	// The offline members sync the same messages, in order.
	conv := protocol.GroupConv(g.GroupID)
	for i := online; i < members; i++ {
		r := dial(t, srv.Addr())
		r.login(names[i])
		id := r.send(protocol.TypeSync, &protocol.Sync{Conv: conv, Limit: 500})
		var res protocol.SyncResult
		r.expect(protocol.TypeSyncResult, id, &res)
		if len(res.Messages) != total || res.HasMore || res.LastSeq != total {
			t.Fatalf("member %d synced %d messages (has_more %v, last %d)", i, len(res.Messages), res.HasMore, res.LastSeq)
		}
		for k, m := range res.Messages {
			if m.Seq != uint64(k+1) {
				t.Fatalf("member %d: sync message %d has seq %d", i, k, m.Seq)
			}
		}
		_ = r.c.Close()
	}
}

// Members of three groups at once, each member posting to every group with
// its sends pipelined: the commits mix the groups' messages, and delivery
// takes them grouped by conversation. Every connection still gets every
// other member's message of each group exactly once, each group's in
// sequence order, and its own as SendAcks only.
func TestFanOutAcrossGroups(t *testing.T) {
	const (
		members = 12
		groups  = 3
		each    = 10 // sends per member per group
	)
	srv := startServer(t, nil)
	conns := make([]*raw, members)
	ids := make([]int64, members)
	for i := range conns {
		conns[i] = dial(t, srv.Addr())
		ids[i] = conns[i].register(uniqueName("multi")).UserID
	}
	gids := make([]int64, groups)
	for k := range gids {
		id := conns[0].send(protocol.TypeGroupCreate, &protocol.GroupCreate{Name: fmt.Sprintf("g%d", k), Members: ids[1:]})
		var g protocol.GroupInfo
		conns[0].expect(protocol.TypeGroupInfo, id, &g)
		gids[k] = g.GroupID
	}
	results := make(chan error, members)
	for i, r := range conns {
		go func() {
			var frames []byte
			for n := range each {
				for k, gid := range gids {
					r.reqID++
					frames = append(frames, protocol.MustFrame(protocol.TypeSend, r.reqID, &protocol.Send{
						ClientMsgID: fmt.Sprintf("m%d-%d-%d", i, k, n), GroupID: gid, Body: []byte("x"),
					})...)
				}
			}
			r.sendBytes(frames)
			last := make(map[int64]uint64, groups) // group → last seq pushed or acked
			seen := make(map[int64]int, groups)
			pushes, acks := 0, 0
			for want := members * each * groups; pushes+acks < want; {
				f, err := r.next(20 * time.Second)
				if err != nil {
					results <- fmt.Errorf("member %d: %v after %d pushes", i, err, pushes)
					return
				}
				switch f.h.Type {
				case protocol.TypeGroupEvent:
				case protocol.TypeSendAck:
					acks++
				case protocol.TypePush:
					var m protocol.Message
					if err := protocol.DecodeBody(f.body, &m); err != nil {
						results <- err
						return
					}
					if m.Seq <= last[m.GroupID] && last[m.GroupID] != 0 {
						results <- fmt.Errorf("member %d: group %d push #%d after #%d", i, m.GroupID, m.Seq, last[m.GroupID])
						return
					}
					if m.From == ids[i] {
						results <- fmt.Errorf("member %d: pushed its own message #%d", i, m.Seq)
						return
					}
					last[m.GroupID] = m.Seq
					seen[m.GroupID]++
					pushes++
				default:
					results <- fmt.Errorf("member %d: unexpected %s", i, f.h.Type)
					return
				}
			}
			for _, gid := range gids {
				if seen[gid] != (members-1)*each {
					results <- fmt.Errorf("member %d: %d pushes of group %d, want %d", i, seen[gid], gid, (members-1)*each)
					return
				}
			}
			results <- nil
		}()
	}
	for range members {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range conns {
		r.silent(10 * time.Millisecond) // no duplicate after the last
	}
}
