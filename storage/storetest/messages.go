package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/parleyim/parley/protocol"
)

func testAppendDenseSeqs(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(3)
	a, b, c := ids[0], ids[1], ids[2]
	ab, ac := protocol.DirectConv(a, b), protocol.DirectConv(a, c)
	want := map[string][]protocol.Message{}
	for i, m := range []*protocol.Message{
		e.direct(a, b, "1", []byte("ab1")),
		e.direct(b, a, "2", []byte("ab2")),
		e.direct(a, c, "3", []byte("ac1")),
		e.direct(a, b, "4", []byte("ab3")),
		e.direct(c, a, "5", []byte("ac2")),
	} {
		in := *m
		got := e.add(m)
		wantSeq := uint64(len(want[m.Conv]) + 1)
		if got.Seq != wantSeq {
			t.Errorf("append %d to %s: seq %d, want %d", i, m.Conv, got.Seq, wantSeq)
		}
		in.Seq = wantSeq
		sameMessage(t, fmt.Sprintf("append %d result", i), got, in)
		want[m.Conv] = append(want[m.Conv], in)
	}
	for conv, msgs := range want {
		p := e.after(a, conv, 0, 100)
		if len(p.msgs) != len(msgs) || p.lastSeq != uint64(len(msgs)) {
			t.Fatalf("After(%s) = %d messages, lastSeq %d; want %d", conv, len(p.msgs), p.lastSeq, len(msgs))
		}
		for i := range msgs {
			sameMessage(t, "After "+conv, p.msgs[i], msgs[i])
		}
	}
	if len(want[ab]) != 3 || len(want[ac]) != 2 {
		t.Fatalf("test set up wrong")
	}
}

// testAppendConcurrent appends from many goroutines to one conversation:
// the seqs are exactly 1..N, each message keeps its own seq, and the hook
// gets every message once, seqs ascending.
func testAppendConcurrent(t *testing.T, open Open) {
	rec := &recorder{t: t}
	e := newEnv(t, open, rec.hook)
	ids := e.users(2)
	conv := protocol.DirectConv(ids[0], ids[1])
	const workers, each = 32, 20
	bySeq := make(map[uint64]string)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf("w%d-%d", w, i)
				m := e.direct(ids[w%2], ids[1-w%2], body, []byte(body))
				stored, dup, err := e.s.Append(e.ctx, m)
				if err != nil || dup {
					t.Errorf("Append: dup %v, %v", dup, err)
					return
				}
				if !rec.has(conv, stored.Seq) {
					t.Errorf("Append of seq %d returned before the hook had it", stored.Seq)
				}
				mu.Lock()
				if prev, ok := bySeq[stored.Seq]; ok {
					t.Errorf("seq %d given to %s and %s", stored.Seq, prev, body)
				}
				bySeq[stored.Seq] = body
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	const n = workers * each
	if got := e.visible(ids[0], conv); !equalSeqs(got, seqRange(1, n)) {
		t.Fatalf("visible seqs = %v, want 1..%d", got, n)
	}
	p := e.after(ids[1], conv, 0, n)
	for _, m := range p.msgs {
		if string(m.Body) != bySeq[m.Seq] {
			t.Errorf("seq %d holds %q, Append said %q", m.Seq, m.Body, bySeq[m.Seq])
		}
	}
	hooked := rec.got()
	if !equalSeqs(seqsOf(hooked), seqRange(1, n)) {
		t.Errorf("hook seqs = %v, want 1..%d in order", seqsOf(hooked), n)
	}
}

func testAppendDedupe(t *testing.T, open Open) {
	rec := &recorder{t: t}
	e := newEnv(t, open, rec.hook)
	ids := e.users(3)
	a, b, c := ids[0], ids[1], ids[2]
	first := e.add(e.direct(a, b, "cm-1", []byte("first")))

	again := e.direct(a, b, "cm-1", []byte("second try"))
	got, dup, err := e.s.Append(e.ctx, again)
	if err != nil || !dup {
		t.Fatalf("repeat Append = dup %v, %v; want dup", dup, err)
	}
	sameMessage(t, "repeat returns the first", got, first)

	// The same client id in another conversation is the same send.
	elsewhere := e.direct(a, c, "cm-1", []byte("third try"))
	got, dup, err = e.s.Append(e.ctx, elsewhere)
	if err != nil || !dup {
		t.Fatalf("repeat in another conv = dup %v, %v; want dup", dup, err)
	}
	sameMessage(t, "repeat elsewhere returns the first", got, first)
	if p := e.after(a, protocol.DirectConv(a, c), 0, 10); len(p.msgs) != 0 || p.lastSeq != 0 {
		t.Errorf("dup wrote to the other conv: %d messages, lastSeq %d", len(p.msgs), p.lastSeq)
	}
	if cs := e.convs(c, 10); len(cs) != 0 {
		t.Errorf("dup made a conversation for its recipient: %+v", cs)
	}

	// Another sender may use the same client id; dups used no seq.
	other := e.add(e.direct(b, a, "cm-1", []byte("from b")))
	if other.Seq != 2 {
		t.Errorf("next seq after dups = %d, want 2", other.Seq)
	}
	if p := e.after(b, first.Conv, 0, 10); !equalSeqs(seqsOf(p.msgs), []uint64{1, 2}) || p.lastSeq != 2 {
		t.Errorf("After = %v lastSeq %d, want [1 2] 2", seqsOf(p.msgs), p.lastSeq)
	}
	if n := len(rec.got()); n != 2 {
		t.Errorf("hook got %d messages, want 2 (no duplicates)", n)
	}
}

// testAppendDedupeConcurrent sends one client message id from many
// goroutines at once, so backends that batch see the copies together.
func testAppendDedupeConcurrent(t *testing.T, open Open) {
	rec := &recorder{t: t}
	e := newEnv(t, open, rec.hook)
	ids := e.users(2)
	const n = 16
	results := make([]protocol.Message, n)
	dups := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := e.direct(ids[0], ids[1], "same", fmt.Appendf(nil, "copy %d", i))
			var err error
			results[i], dups[i], err = e.s.Append(e.ctx, m)
			if err != nil {
				t.Errorf("Append: %v", err)
			}
		})
	}
	wg.Wait()
	fresh := 0
	for i := range n {
		if !dups[i] {
			fresh++
		}
		sameMessage(t, "concurrent copy", results[i], results[0])
	}
	if fresh != 1 || results[0].Seq != 1 {
		t.Errorf("%d copies stored, seq %d; want 1 stored at seq 1", fresh, results[0].Seq)
	}
	if p := e.after(ids[0], results[0].Conv, 0, 100); len(p.msgs) != 1 || p.lastSeq != 1 {
		t.Errorf("After = %d messages lastSeq %d, want 1 and 1", len(p.msgs), p.lastSeq)
	}
	if got := rec.got(); len(got) != 1 {
		t.Errorf("hook got %d messages, want 1", len(got))
	}
}

func testAppendEmptyClientMsgID(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	for i := range 3 {
		if got := e.add(e.direct(ids[0], ids[1], "", []byte("same body"))); got.Seq != uint64(i+1) {
			t.Errorf("append %d: seq %d", i, got.Seq)
		}
	}
}

// testCommitHook appends to several conversations from several goroutines,
// with repeats, and checks what the hook saw.
func testCommitHook(t *testing.T, open Open) {
	rec := &recorder{t: t}
	e := newEnv(t, open, rec.hook)
	ids := e.users(4)
	var mu sync.Mutex
	var stored []protocol.Message
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				from, to := ids[w%4], ids[(w+1+i%2)%4]
				cmid := fmt.Sprintf("w%d-%d", w, i/2) // every id sent twice
				m := e.direct(from, to, cmid, []byte(cmid))
				got, dup, err := e.s.Append(e.ctx, m)
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				if !rec.has(got.Conv, got.Seq) {
					t.Errorf("Append %s/%d returned before the hook had it", got.Conv, got.Seq)
				}
				if !dup {
					mu.Lock()
					stored = append(stored, got)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	hooked := rec.got()
	if len(hooked) != len(stored) {
		t.Fatalf("hook got %d messages, Append stored %d", len(hooked), len(stored))
	}
	last := map[string]uint64{}
	for _, m := range hooked {
		if m.Seq != last[m.Conv]+1 {
			t.Errorf("hook: %s seq %d after %d", m.Conv, m.Seq, last[m.Conv])
		}
		last[m.Conv] = m.Seq
	}
	byKey := map[string]protocol.Message{}
	for _, m := range hooked {
		byKey[fmt.Sprint(m.Conv, m.Seq)] = m
	}
	for _, m := range stored {
		sameMessage(t, "hooked message", byKey[fmt.Sprint(m.Conv, m.Seq)], m)
	}
}

func testBodies(t *testing.T, open Open) {
	rec := &recorder{t: t}
	e := newEnv(t, open, rec.hook)
	ids := e.users(2)
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	bodies := [][]byte{
		[]byte("héllo wörld"),
		[]byte("你好，世界"),
		[]byte("👋🏽🇨🇳 family: 👨‍👩‍👧‍👦"),
		binary,
		{0xff, 0xfe, 0x00, 0x00, 0xc3},
		make([]byte, 64<<10),
		{},
	}
	var want []protocol.Message
	for i, body := range bodies {
		want = append(want, e.add(e.direct(ids[0], ids[1], fmt.Sprint("body", i), body)))
	}
	conv := want[0].Conv
	p := e.after(ids[1], conv, 0, 100)
	if len(p.msgs) != len(bodies) {
		t.Fatalf("After = %d messages, want %d", len(p.msgs), len(bodies))
	}
	for i := range bodies {
		want[i].Body = bodies[i]
		sameMessage(t, fmt.Sprint("After body ", i), p.msgs[i], want[i])
	}
	old, _, _, err := e.s.Before(e.ctx, ids[0], conv, 0, 100)
	if err != nil || len(old) != len(bodies) {
		t.Fatalf("Before = %d, %v", len(old), err)
	}
	for i := range bodies {
		sameMessage(t, fmt.Sprint("Before body ", i), old[len(old)-1-i], want[i])
	}
	for i, m := range rec.got() {
		sameMessage(t, fmt.Sprint("hooked body ", i), m, want[i])
	}
	dup, isDup, err := e.s.Append(e.ctx, e.direct(ids[0], ids[1], "body2", nil))
	if err != nil || !isDup {
		t.Fatalf("repeat = dup %v, %v", isDup, err)
	}
	sameMessage(t, "dup body", dup, want[2])
	c := e.conv(ids[1], conv)
	if c.Last == nil {
		t.Fatal("Conversations: no last message")
	}
	sameMessage(t, "Conversations last", *c.Last, want[len(want)-1])
}

func testGroupConversation(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(3)
	g1, g2 := e.group(ids[0], 7, "g1", []byte("hi group")), e.group(ids[1], 8, "g2", []byte("other"))
	s1, s2 := e.add(g1), e.add(g2)
	s3 := e.add(e.group(ids[2], 7, "g3", []byte("hi back")))
	if s1.Seq != 1 || s2.Seq != 1 || s3.Seq != 2 {
		t.Errorf("group seqs %d %d %d, want 1 1 2", s1.Seq, s2.Seq, s3.Seq)
	}
	p := e.after(ids[1], protocol.GroupConv(7), 0, 10)
	if len(p.msgs) != 2 || p.lastSeq != 2 {
		t.Fatalf("After(group) = %d messages lastSeq %d", len(p.msgs), p.lastSeq)
	}
	sameMessage(t, "group message", p.msgs[0], s1)
	if p.msgs[0].GroupID != 7 || p.msgs[0].To != 0 {
		t.Errorf("group message = %+v", p.msgs[0])
	}
}

func testAfterPaging(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	all := e.fill(ids[0], ids[1], 10)
	conv := all[0].Conv
	var got []protocol.Message
	var at uint64
	for page := 0; ; page++ {
		p := e.after(ids[1], conv, at, 3)
		if p.lastSeq != 10 {
			t.Errorf("page %d: lastSeq %d, want 10", page, p.lastSeq)
		}
		wantLen := min(3, 10-len(got))
		if len(p.msgs) != wantLen {
			t.Fatalf("page %d after %d: %d messages, want %d", page, at, len(p.msgs), wantLen)
		}
		got = append(got, p.msgs...)
		if p.next != got[len(got)-1].Seq {
			t.Errorf("page %d: next %d, want last returned %d", page, p.next, got[len(got)-1].Seq)
		}
		if p.more != (len(got) < 10) {
			t.Errorf("page %d: more %v with %d of 10 returned", page, p.more, len(got))
		}
		if !p.more {
			break
		}
		at = p.next
	}
	for i := range all {
		sameMessage(t, "paged message", got[i], all[i])
	}
	if p := e.after(ids[1], conv, 10, 3); len(p.msgs) != 0 || p.next != 10 || p.lastSeq != 10 || p.more {
		t.Errorf("After(10) = %d messages next %d lastSeq %d more %v", len(p.msgs), p.next, p.lastSeq, p.more)
	}
	if p := e.after(ids[0], conv, 4, 100); !equalSeqs(seqsOf(p.msgs), seqRange(5, 10)) || p.next != 10 || p.more {
		t.Errorf("After(4, 100) = %v next %d more %v", seqsOf(p.msgs), p.next, p.more)
	}
	if p := e.after(ids[0], conv, 0, 1); !equalSeqs(seqsOf(p.msgs), []uint64{1}) || p.next != 1 || !p.more {
		t.Errorf("After(0, 1) = %v next %d more %v", seqsOf(p.msgs), p.next, p.more)
	}
}

func testAfterEmpty(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	for _, conv := range []string{protocol.DirectConv(ids[0], ids[1]), protocol.GroupConv(99)} {
		p := e.after(ids[0], conv, 0, 10)
		if len(p.msgs) != 0 || p.lastSeq != 0 || p.more {
			t.Errorf("After(%s) = %d messages lastSeq %d more %v", conv, len(p.msgs), p.lastSeq, p.more)
		}
		msgs, _, more, err := e.s.Before(e.ctx, ids[0], conv, 0, 10)
		if err != nil || len(msgs) != 0 || more {
			t.Errorf("Before(%s) = %d messages more %v, %v", conv, len(msgs), more, err)
		}
	}
}

func testAfterHidden(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	conv := e.fill(ids[0], ids[1], 10)[0].Conv
	e.hide(ids[1], conv, []uint64{2, 3, 7, 10}, 0)
	want := []uint64{1, 4, 5, 6, 8, 9}
	if got := e.visible(ids[1], conv); !equalSeqs(got, want) {
		t.Errorf("visible = %v, want %v", got, want)
	}
	p := e.after(ids[1], conv, 0, 3)
	if !equalSeqs(seqsOf(p.msgs), []uint64{1, 4, 5}) || p.next != 5 || !p.more || p.lastSeq != 10 {
		t.Errorf("After(0, 3) = %v next %d more %v lastSeq %d", seqsOf(p.msgs), p.next, p.more, p.lastSeq)
	}
	p = e.after(ids[1], conv, 8, 5)
	if !equalSeqs(seqsOf(p.msgs), []uint64{9}) || p.next != 10 || p.more || p.lastSeq != 10 {
		t.Errorf("After(8, 5) = %v next %d more %v lastSeq %d; want [9] 10 false 10", seqsOf(p.msgs), p.next, p.more, p.lastSeq)
	}
	if got := e.visible(ids[0], conv); !equalSeqs(got, seqRange(1, 10)) {
		t.Errorf("other user sees %v, want 1..10", got)
	}
}

func testBeforePaging(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	all := e.fill(ids[1], ids[0], 10)
	conv := all[0].Conv
	var got []protocol.Message
	var before uint64
	for page := 0; ; page++ {
		msgs, next, more, err := e.s.Before(e.ctx, ids[0], conv, before, 4)
		if err != nil {
			t.Fatalf("Before(%d): %v", before, err)
		}
		wantLen := min(4, 10-len(got))
		if len(msgs) != wantLen {
			t.Fatalf("page %d before %d: %d messages, want %d", page, before, len(msgs), wantLen)
		}
		got = append(got, msgs...)
		if more != (len(got) < 10) {
			t.Errorf("page %d: more %v with %d of 10 returned", page, more, len(got))
		}
		if !more {
			if rest, _, _, err := e.s.Before(e.ctx, ids[0], conv, next, 4); err != nil || len(rest) != 0 {
				t.Errorf("Before(next %d) after the last page = %v, %v", next, seqsOf(rest), err)
			}
			break
		}
		if next != msgs[len(msgs)-1].Seq {
			t.Errorf("page %d: next %d, want oldest returned %d", page, next, msgs[len(msgs)-1].Seq)
		}
		before = next
	}
	slices.Reverse(got)
	for i := range all {
		sameMessage(t, "history message", got[i], all[i])
	}
	msgs, _, more, err := e.s.Before(e.ctx, ids[0], conv, 4, 10)
	if err != nil || !equalSeqs(seqsOf(msgs), []uint64{3, 2, 1}) || more {
		t.Errorf("Before(4) = %v more %v, %v", seqsOf(msgs), more, err)
	}
	e.hide(ids[0], conv, []uint64{9, 5}, 2)
	msgs, next, more, err := e.s.Before(e.ctx, ids[0], conv, 0, 3)
	if err != nil || !equalSeqs(seqsOf(msgs), []uint64{10, 8, 7}) || next != 7 || !more {
		t.Errorf("Before(0) with hidden = %v next %d more %v, %v", seqsOf(msgs), next, more, err)
	}
	msgs, _, more, err = e.s.Before(e.ctx, ids[0], conv, 7, 10)
	if err != nil || !equalSeqs(seqsOf(msgs), []uint64{6, 4, 3}) || more {
		t.Errorf("Before(7) with hidden = %v more %v, %v", seqsOf(msgs), more, err)
	}
}

func testAck(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	a, b := ids[0], ids[1]
	conv := e.fill(a, b, 5)[0].Conv
	check := func(step string, ack, unread, last uint64) {
		t.Helper()
		c := e.conv(b, conv)
		if c.AckSeq != ack || c.Unread != unread || c.LastSeq != last {
			t.Errorf("%s: ack %d unread %d last %d; want %d %d %d", step, c.AckSeq, c.Unread, c.LastSeq, ack, unread, last)
		}
	}
	check("start", 0, 5, 5)
	e.ack(b, conv, 3)
	check("ack 3", 3, 2, 5)
	e.ack(b, conv, 2)
	check("ack 2 (backwards)", 3, 2, 5)
	e.ack(b, conv, 100)
	check("ack 100 (clamped)", 5, 0, 5)
	e.fill(a, b, 1)
	check("new message after clamped ack", 5, 1, 6)
	e.ack(b, conv, 0)
	check("ack 0", 5, 1, 6)
	if c := e.conv(a, conv); c.AckSeq != 0 || c.Unread != 0 {
		t.Errorf("sender's view: ack %d unread %d, want 0 0", c.AckSeq, c.Unread)
	}
}

func testHidePerUser(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	a, b := ids[0], ids[1]
	conv := e.fill(a, b, 5)[0].Conv
	e.hide(a, conv, []uint64{2, 4}, 0)
	e.hide(a, conv, []uint64{2}, 0) // again: no error, no change
	if got := e.visible(a, conv); !equalSeqs(got, []uint64{1, 3, 5}) {
		t.Errorf("hider sees %v, want [1 3 5]", got)
	}
	if got := e.visible(b, conv); !equalSeqs(got, seqRange(1, 5)) {
		t.Errorf("other user sees %v, want 1..5", got)
	}
	msgs, _, _, err := e.s.Before(e.ctx, a, conv, 0, 10)
	if err != nil || !equalSeqs(seqsOf(msgs), []uint64{5, 3, 1}) {
		t.Errorf("hider's history = %v, %v", seqsOf(msgs), err)
	}
}

func testHideUpTo(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	a, b := ids[0], ids[1]
	conv := e.fill(a, b, 6)[0].Conv
	e.hide(b, conv, []uint64{5}, 3)
	if got := e.visible(b, conv); !equalSeqs(got, []uint64{4, 6}) {
		t.Errorf("after Hide(5, upTo 3) sees %v, want [4 6]", got)
	}
	e.hide(b, conv, nil, 2) // lower upTo changes nothing
	if got := e.visible(b, conv); !equalSeqs(got, []uint64{4, 6}) {
		t.Errorf("after Hide(upTo 2) sees %v, want [4 6]", got)
	}
	e.hide(b, conv, nil, 5)
	if got := e.visible(b, conv); !equalSeqs(got, []uint64{6}) {
		t.Errorf("after Hide(upTo 5) sees %v, want [6]", got)
	}
	if got := e.visible(a, conv); !equalSeqs(got, seqRange(1, 6)) {
		t.Errorf("other user sees %v, want 1..6", got)
	}
}

// testHideFuture hides seqs the conversation does not have yet: messages
// stored later under those seqs stay visible.
func testHideFuture(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	conv := e.fill(ids[0], ids[1], 2)[0].Conv
	e.hide(ids[1], conv, []uint64{3, 4}, 0)
	e.hide(ids[1], conv, nil, 100)
	if got := e.visible(ids[1], conv); len(got) != 0 {
		t.Errorf("after Hide(upTo 100) sees %v, want none", got)
	}
	e.fill(ids[0], ids[1], 3)
	if got := e.visible(ids[1], conv); !equalSeqs(got, []uint64{3, 4, 5}) {
		t.Errorf("later messages: sees %v, want [3 4 5]", got)
	}
}

func testConversationsOrder(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(5)
	u := ids[0]
	e.fill(u, ids[1], 1)
	e.fill(ids[2], u, 2)
	e.fill(u, ids[3], 1)
	e.fill(ids[1], u, 1) // u–1 is the most recent again
	e.fill(ids[2], ids[3], 1)
	want := []string{protocol.DirectConv(u, ids[1]), protocol.DirectConv(u, ids[3]), protocol.DirectConv(u, ids[2])}
	var got []string
	for _, c := range e.convs(u, 10) {
		got = append(got, c.Conv)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Conversations = %v, want %v", got, want)
	}
	limited := e.convs(u, 2)
	if len(limited) != 2 || limited[0].Conv != want[0] || limited[1].Conv != want[1] {
		t.Errorf("Conversations limit 2 = %+v", limited)
	}
	if cs := e.convs(ids[4], 10); len(cs) != 0 {
		t.Errorf("user without messages has %+v", cs)
	}
}

func testConversationsUnread(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	a, b := ids[0], ids[1]
	e.fill(a, b, 2)
	conv := e.fill(b, a, 3)[0].Conv
	if c := e.conv(a, conv); c.Unread != 3 || c.LastSeq != 5 {
		t.Errorf("a: unread %d last %d, want 3 5", c.Unread, c.LastSeq)
	}
	if c := e.conv(b, conv); c.Unread != 2 {
		t.Errorf("b: unread %d, want 2 (own messages not counted)", c.Unread)
	}
	e.hide(a, conv, []uint64{4}, 0)
	if c := e.conv(a, conv); c.Unread != 2 {
		t.Errorf("a after hiding one: unread %d, want 2", c.Unread)
	}
	e.ack(a, conv, 3)
	if c := e.conv(a, conv); c.Unread != 1 || c.AckSeq != 3 {
		t.Errorf("a after ack 3: unread %d ack %d, want 1 3", c.Unread, c.AckSeq)
	}
	e.hide(a, conv, nil, 5)
	if c := e.conv(a, conv); c.Unread != 0 {
		t.Errorf("a after hiding all: unread %d, want 0", c.Unread)
	}
	if c := e.conv(b, conv); c.Unread != 2 {
		t.Errorf("b after a's hides: unread %d, want 2", c.Unread)
	}
}

func testConversationsLast(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(2)
	a, b := ids[0], ids[1]
	msgs := e.fill(a, b, 4)
	conv := msgs[0].Conv
	last := func(user int64) *protocol.Message {
		t.Helper()
		return e.conv(user, conv).Last
	}
	if l := last(b); l == nil {
		t.Fatal("no last message")
	} else {
		sameMessage(t, "last", *l, msgs[3])
	}
	e.hide(b, conv, []uint64{4}, 0)
	if l := last(b); l == nil {
		t.Fatal("no last message after hiding the newest")
	} else {
		sameMessage(t, "last after hiding the newest", *l, msgs[2])
	}
	if l := last(a); l == nil || l.Seq != 4 {
		t.Errorf("other user's last = %+v, want seq 4", l)
	}
	e.hide(b, conv, nil, 3)
	c := e.conv(b, conv)
	if c.Last != nil || c.LastSeq != 4 {
		t.Errorf("all hidden: last %+v lastSeq %d; want nil 4, still listed", c.Last, c.LastSeq)
	}
}

func testConversationsBothUsers(t *testing.T, open Open) {
	e := newEnv(t, open, nil)
	ids := e.users(3)
	a, b := ids[0], ids[1]
	conv := protocol.DirectConv(a, b)
	if len(e.convs(a, 10)) != 0 || len(e.convs(b, 10)) != 0 {
		t.Fatal("conversations before any message")
	}
	e.ack(b, conv, 5) // before the first message: no conversation yet
	if cs := e.convs(b, 10); len(cs) != 0 {
		t.Errorf("Ack made a conversation without messages: %+v", cs)
	}
	first := e.add(e.direct(a, b, "hello", []byte("hello")))
	for _, u := range []int64{a, b} {
		cs := e.convs(u, 10)
		if len(cs) != 1 || cs[0].Conv != conv || cs[0].LastSeq != 1 || cs[0].Last == nil {
			t.Fatalf("Conversations(%d) = %+v", u, cs)
		}
		sameMessage(t, "first message", *cs[0].Last, first)
	}
	if c := e.conv(b, conv); c.AckSeq != 0 || c.Unread != 1 {
		t.Errorf("early Ack counted: ack %d unread %d, want 0 1", c.AckSeq, c.Unread)
	}
	if cs := e.convs(ids[2], 10); len(cs) != 0 {
		t.Errorf("third user sees %+v", cs)
	}
}
