package server_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Attack 5: logged-in clients ask for the largest pages there are, as fast
// as the rate limit lets them, and read them (so no bound kicks them): each
// History is a 512 KiB page of 16 KiB messages to read from the store and
// encode. The honest user's Sends keep going (finish: none above 1 s), and
// the server's memory stays within its bound per connection.
func TestAbuseReadFlood(t *testing.T) {
	srv := abuseServer(t, nil)
	owner := dialFrom(t, srv.Addr(), "127.0.6.1")
	owner.register(uniqueName("owner"))
	id := owner.send(protocol.TypeGroupCreate, &protocol.GroupCreate{Name: "big", Open: true})
	var g protocol.GroupInfo
	owner.expect(protocol.TypeGroupInfo, id, &g)
	for i := range 70 {
		id := owner.send(protocol.TypeSend, &protocol.Send{ClientMsgID: fmt.Sprint("m", i), GroupID: g.GroupID, Body: make([]byte, 16<<10)})
		owner.expect(protocol.TypeSendAck, id, nil)
	}
	const attackers = 8
	conns := make([]*raw, attackers)
	for i := range conns {
		c := dialFrom(t, srv.Addr(), fmt.Sprintf("127.0.6.%d", i+2))
		c.register(uniqueName("reader"))
		c.must(protocol.TypeGroupJoin, &protocol.GroupJoin{GroupID: g.GroupID}, protocol.TypeGroupInfo)
		conns[i] = c
	}
	h := startHonest(t, srv)
	mem := watchMemory()
	page := protocol.MustFrame(protocol.TypeHistory, 7, &protocol.History{Conv: protocol.GroupConv(g.GroupID), Limit: 500})
	var (
		wg    sync.WaitGroup
		pages [attackers]int
	)
	start := time.Now()
	for i, c := range conns {
		wg.Go(func() {
			for round := 0; time.Since(start) < attackFor; round++ {
				// At the rate limit (200 frames a second): ten at once
				// every 50 ms, 5 MiB asked for a round.
				if d := time.Until(start.Add(time.Duration(round) * 50 * time.Millisecond)); d > 0 {
					time.Sleep(d)
				}
				batch := make([]byte, 0, 10*len(page))
				for range 10 {
					batch = append(batch, page...)
				}
				c.sendBytes(batch)
				for got := 0; got < 10; {
					f, err := c.next(10 * time.Second)
					if err == nil && f.h.RequestID == 0 && f.h.Type != protocol.TypeKick {
						continue // a push (the others joining)
					}
					got++
					if err != nil || f.h.Type != protocol.TypeHistoryResult {
						var e protocol.Error
						_ = protocol.DecodeBody(f.body, &e)
						t.Logf("attacker %d stopped after %d pages: %v %s %+v", i, pages[i], err, f.h.Type, e)
						return // a refusal or a kick ends this attacker
					}
					pages[i]++
				}
			}
		})
	}
	wg.Wait()
	p99 := h.finish(t)
	total := 0
	for _, n := range pages {
		total += n
	}
	t.Logf("%d attackers read %d pages of 512 KiB in %v; honest p99 %v", attackers, total, time.Since(start), p99)
	if total < 50 {
		t.Fatalf("the attack read only %d pages", total)
	}
	mem.check(t, srv, attackers+2)
}
