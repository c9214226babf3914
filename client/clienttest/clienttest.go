// Package clienttest drives Parley clients in tests: a Member records what
// its client receives, and Traffic keeps a steady stream of 1:1 and group
// sends going and checks that every acked message reached every recipient
// exactly once and in order.
package clienttest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// Member is a logged-in client that records its events and messages.
type Member struct {
	*client.Client
	Name string
	ID   int64

	mu     sync.Mutex
	events []client.Event
	msgs   map[string][]protocol.Message // by conv, in arrival order
}

// LastLogin is the address of the member's last login.
func (m *Member) LastLogin() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.events) - 1; i >= 0; i-- {
		if m.events[i].Type == client.EventLoggedIn {
			return m.events[i].Addr
		}
	}
	return ""
}

// Count is the number of events of typ so far.
func (m *Member) Count(typ client.EventType) int { return len(m.Events(typ)) }

// Events is the events of typ so far, in order.
func (m *Member) Events(typ client.EventType) []client.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []client.Event
	for _, e := range m.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// Received is the messages of conv received so far, in arrival order.
func (m *Member) Received(conv string) []protocol.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs[conv])
}

// Join registers name through seed (following redirects) with a client
// that reconnects and syncs on login.
func Join(t testing.TB, seed, name string) *Member {
	t.Helper()
	c, err := client.Dial(context.Background(), seed, client.Options{
		Reconnect: true, SyncOnLogin: true, MinBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond,
		RequestTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := &Member{Client: c, Name: name, msgs: map[string][]protocol.Message{}}
	go func() {
		for ev := range c.Events() {
			m.mu.Lock()
			m.events = append(m.events, ev)
			m.mu.Unlock()
		}
	}()
	go func() {
		for msg := range c.Messages() {
			m.mu.Lock()
			m.msgs[msg.Conv] = append(m.msgs[msg.Conv], msg)
			m.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ok, err := c.Register(ctx, name, name+"-password")
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	m.ID = ok.UserID
	return m
}

// Eventually polls cond every 10ms for up to limit.
func Eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Traffic is a steady stream of sends: each sender sends one message every
// Every, 1:1 to a peer or to a group, until Stop. With Events set, every
// Events-th send of a sender is instead an edit or (the next time) a recall
// of its last message, and Check also checks that each recipient, folding
// the events it received into the messages they name, holds what the
// sender did.
type Traffic struct {
	t      testing.TB
	Every  time.Duration
	Events int // set before the first sender starts; 0: messages only
	wg     sync.WaitGroup
	stop   chan struct{}

	mu     sync.Mutex
	acked  map[string][]uint64 // conv → acked seqs
	to     map[string][]*Member
	from   map[string][]*Member // the senders of each group conv, who get no pushes of their own
	failed int
	last   time.Time   // of the last ack
	began  []time.Time // of each sender's last acked send, by start order
	// want is, per conv and target seq, what the acked events made of it.
	want map[string]map[uint64]*wantState
}

// wantState is a message's state after the events its sender sent.
type wantState struct {
	recalled bool
	body     string
	unknown  bool // an event on it failed: it may or may not be stored
}

// NewTraffic returns traffic that has not started.
func NewTraffic(t testing.TB, every time.Duration) *Traffic {
	return &Traffic{t: t, Every: every, stop: make(chan struct{}), acked: map[string][]uint64{}, to: map[string][]*Member{},
		from: map[string][]*Member{}, want: map[string]map[uint64]*wantState{}}
}

// Direct starts from sending to to.
func (tr *Traffic) Direct(from, to *Member) {
	conv := protocol.DirectConv(from.ID, to.ID)
	tr.mu.Lock()
	tr.to[conv] = []*Member{to}
	tr.mu.Unlock()
	tr.run(from, conv, func(ctx context.Context, body []byte) (protocol.SendAck, error) {
		return from.Send(ctx, to.ID, 0, body)
	})
}

// Group starts from sending to group, whose other members are to.
func (tr *Traffic) Group(from *Member, group int64, to []*Member) {
	conv := protocol.GroupConv(group)
	tr.mu.Lock()
	tr.from[conv] = append(tr.from[conv], from)
	for _, m := range to {
		if !slices.Contains(tr.to[conv], m) {
			tr.to[conv] = append(tr.to[conv], m)
		}
	}
	tr.mu.Unlock()
	tr.run(from, conv, func(ctx context.Context, body []byte) (protocol.SendAck, error) {
		return from.SendGroup(ctx, group, 0, body)
	})
}

func (tr *Traffic) run(from *Member, conv string, send func(context.Context, []byte) (protocol.SendAck, error)) {
	tr.mu.Lock()
	sender := len(tr.began)
	tr.began = append(tr.began, time.Time{})
	tr.mu.Unlock()
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		tick := time.NewTicker(tr.Every)
		defer tick.Stop()
		var (
			target uint64 // the sender's last acked message, not recalled
			events int
		)
		for i := 0; ; i++ {
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
			began := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			body := fmt.Appendf(nil, "%s #%d", from.Name, i)
			var (
				ack    protocol.SendAck
				err    error
				recall bool
				on     = target
			)
			switch {
			case tr.Events > 0 && i%tr.Events == tr.Events-1 && target != 0:
				recall = events%2 == 1
				events++
				if recall {
					ack, err = from.Recall(ctx, conv, target)
					target = 0
				} else {
					body = fmt.Appendf(body, " edits #%d", target)
					ack, err = from.Edit(ctx, conv, target, body)
				}
			default:
				ack, err = send(ctx, body)
				on = 0
				if err == nil {
					target = ack.Seq
				}
			}
			cancel()
			tr.mu.Lock()
			if err == nil {
				tr.acked[ack.Conv] = append(tr.acked[ack.Conv], ack.Seq)
				tr.last = time.Now()
				tr.began[sender] = began
			} else {
				tr.failed++
			}
			if on != 0 {
				if tr.want[conv] == nil {
					tr.want[conv] = map[uint64]*wantState{}
				}
				w := tr.want[conv][on]
				if w == nil {
					w = &wantState{}
					tr.want[conv][on] = w
				}
				w.unknown = w.unknown || err != nil
				if recall {
					w.recalled = true
				} else {
					w.body = string(body)
				}
			}
			tr.mu.Unlock()
		}
	}()
}

// Stop stops the senders and waits for them.
func (tr *Traffic) Stop() {
	close(tr.stop)
	tr.wg.Wait()
}

// AckedSince waits up to limit until every sender has had a send that
// began after since acked. After a node died and every node took the new
// slot table, that is what lets Check expect every acked message: every
// sender is back on a live node, and a push the dead node took with it
// (committed and acked, not yet handed to the bus) has had a later push of
// the conversation to show its gap, besides the other nodes' catch-up
// (docs/cluster.md, Catch-up).
func (tr *Traffic) AckedSince(since time.Time, limit time.Duration) {
	tr.t.Helper()
	Eventually(tr.t, limit, "every sender acked again", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, at := range tr.began {
			if !at.After(since) {
				return false
			}
		}
		return true
	})
}

// Counts are the acked and failed sends so far.
func (tr *Traffic) Counts() (acked, failed int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, s := range tr.acked {
		acked += len(s)
	}
	return acked, tr.failed
}

// Delivered waits up to limit for every recipient to hold every message
// acked so far (the senders may go on sending), and returns how long that
// took from the call. It checks only arrival; Check checks the rest.
func (tr *Traffic) Delivered(limit time.Duration) time.Duration {
	t := tr.t
	t.Helper()
	start := time.Now()
	tr.mu.Lock()
	type wait struct {
		m    *Member
		conv string
		top  uint64
	}
	var waits []wait
	for conv, s := range tr.acked {
		if len(s) == 0 {
			continue
		}
		for _, m := range tr.to[conv] {
			if !slices.Contains(tr.from[conv], m) {
				waits = append(waits, wait{m, conv, slices.Max(s)})
			}
		}
	}
	tr.mu.Unlock()
	for _, w := range waits {
		Eventually(t, limit-time.Since(start), fmt.Sprintf("%s has %s up to #%d", w.m.Name, w.conv, w.top), func() bool {
			got := w.m.Received(w.conv)
			return len(got) > 0 && got[len(got)-1].Seq >= w.top
		})
	}
	return time.Since(start)
}

// Check waits up to limit for every recipient to hold every acked message
// of its conversations, then checks that each got each message once, in
// sequence order, with no gap. It returns how long the last recipient
// took, from the call.
func (tr *Traffic) Check(limit time.Duration) time.Duration {
	t := tr.t
	t.Helper()
	start := time.Now()
	tr.mu.Lock()
	acked := map[string][]uint64{}
	for conv, s := range tr.acked {
		acked[conv] = slices.Clone(s)
	}
	tr.mu.Unlock()
	var slowest time.Duration
	for conv, want := range acked {
		if len(want) == 0 {
			continue
		}
		for _, m := range tr.to[conv] {
			if slices.Contains(tr.from[conv], m) {
				continue // its own messages are acked to it, not pushed
			}
			got := WaitReceived(t, m, conv, want, limit-time.Since(start))
			slowest = max(slowest, time.Since(start))
			tr.checkEvents(m, conv, got)
		}
	}
	return slowest
}

// WaitReceived waits up to limit for m to hold conv up to the highest of
// the acked seqs want (not empty), then checks that m got each message
// once, in sequence order, with no gap, from no later than the lowest of
// want. It returns what m received of conv.
func WaitReceived(t testing.TB, m *Member, conv string, want []uint64, limit time.Duration) []protocol.Message {
	t.Helper()
	top := slices.Max(want)
	var got []protocol.Message
	Eventually(t, limit, fmt.Sprintf("%s has %s up to #%d", m.Name, conv, top), func() bool {
		got = m.Received(conv)
		return len(got) > 0 && got[len(got)-1].Seq >= top
	})
	seen := map[uint64]bool{}
	for i, msg := range got {
		if seen[msg.Seq] {
			t.Fatalf("%s got %s #%d twice", m.Name, conv, msg.Seq)
		}
		seen[msg.Seq] = true
		if i > 0 && msg.Seq <= got[i-1].Seq {
			t.Fatalf("%s got %s #%d after #%d", m.Name, conv, msg.Seq, got[i-1].Seq)
		}
	}
	first := got[0].Seq
	if first > slices.Min(want) {
		t.Fatalf("%s's %s starts at #%d, after acked #%d", m.Name, conv, first, slices.Min(want))
	}
	for s := first; s <= got[len(got)-1].Seq; s++ {
		if !seen[s] {
			t.Fatalf("%s has a gap in %s at #%d", m.Name, conv, s)
		}
	}
	return got
}

// checkEvents folds the events m received in conv (got, in seq order) into
// the messages they name, which m must have received before them, and
// compares the result with what the senders' acked events made of them.
func (tr *Traffic) checkEvents(m *Member, conv string, got []protocol.Message) {
	t := tr.t
	t.Helper()
	held := map[uint64]*protocol.Message{}
	for i := range got {
		msg := &got[i]
		if !protocol.IsEvent(msg.ContentType) {
			held[msg.Seq] = msg
			continue
		}
		target := held[msg.Ref]
		if target == nil {
			if msg.Ref >= got[0].Seq {
				t.Fatalf("%s got %s event #%d before its message #%d", m.Name, conv, msg.Seq, msg.Ref)
			}
			continue
		}
		client.ApplyEvent(target, msg)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for seq, w := range tr.want[conv] {
		target := held[seq]
		if w.unknown || target == nil {
			continue
		}
		switch {
		case w.recalled && (!target.Recalled || len(target.Body) != 0):
			t.Fatalf("%s: %s #%d not recalled: %q", m.Name, conv, seq, target.Body)
		case !w.recalled && w.body != "" && string(target.Body) != w.body:
			t.Fatalf("%s: %s #%d reads %q, edited to %q", m.Name, conv, seq, target.Body, w.body)
		}
	}
}

// WaitNotice waits up to limit for a notice of c that want accepts,
// skipping others.
func WaitNotice(t testing.TB, c *client.Client, limit time.Duration, what string, want func(client.Notice) bool) {
	t.Helper()
	timeout := time.After(limit)
	for {
		select {
		case n := <-c.Notices():
			if want(n) {
				return
			}
		case <-timeout:
			t.Fatalf("%s: no notice in %v", what, limit)
		}
	}
}

// ReceiptsAcross runs typing, a 1:1 read receipt and a group's read counts
// between a user of node1 and two of node2 (owner names each user's node)
// and fails t unless each reaches the sender within limit. The nodes must
// aggregate group reads quickly (a short ReceiptInterval).
func ReceiptsAcross(t testing.TB, owner func(user int64) string, node1, node2 string, limit time.Duration) {
	t.Helper()
	var a, b, m *Member
	for i := 0; a == nil || b == nil || m == nil; i++ {
		if i > 60 {
			t.Fatalf("60 users and not one on %s and two on %s", node1, node2)
		}
		u := Join(t, node1, fmt.Sprintf("user%d", i))
		switch o := owner(u.ID); {
		case a == nil && o == node1:
			a = u
		case b == nil && o == node2:
			b = u
		case m == nil && o == node2:
			m = u
		}
	}
	Eventually(t, limit, "b and m on "+node2, func() bool { return b.LastLogin() == node2 && m.LastLogin() == node2 })
	ctx := context.Background()
	conv := protocol.DirectConv(a.ID, b.ID)
	if _, err := a.Send(ctx, b.ID, 0, []byte("across")); err != nil {
		t.Fatal(err)
	}
	Eventually(t, limit, "the message across nodes", func() bool { return len(b.Received(conv)) == 1 })
	if err := b.Typing(ctx, conv, false); err != nil {
		t.Fatal(err)
	}
	WaitNotice(t, a.Client, limit, "typing across nodes", func(n client.Notice) bool { return n.Typing != nil && n.Typing.User == b.ID })
	if err := b.Ack(ctx, conv, 1); err != nil {
		t.Fatal(err)
	}
	WaitNotice(t, a.Client, limit, "read across nodes", func(n client.Notice) bool {
		return n.Read != nil && *n.Read == protocol.ReadEvent{Conv: conv, User: b.ID, Seq: 1}
	})
	// A group: a on node1 sends, b and m on node2 read; a gets the counts.
	g, err := a.CreateGroup(ctx, "across", false, b.ID, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := a.SendGroup(ctx, g.GroupID, 0, []byte("group across"))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*Member{b, m} {
		Eventually(t, limit, "the group message across nodes", func() bool { return len(u.Received(ack.Conv)) == 1 })
		if err := u.Ack(ctx, ack.Conv, ack.Seq); err != nil {
			t.Fatal(err)
		}
	}
	WaitNotice(t, a.Client, limit, "group reads across nodes", func(n client.Notice) bool {
		return n.GroupRead != nil && len(n.GroupRead.Reads) == 1 && n.GroupRead.Reads[0].Count == 2
	})
}
