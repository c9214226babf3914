package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// stateCases are the contract cases of storage.ConvState, which every
// backend implements.
func stateCases() []struct {
	name string
	fn   func(t *testing.T, open Open)
} {
	cases := []struct {
		name string
		fn   func(t *testing.T, e *env, st storage.ConvState)
	}{
		{"AckMoved", testAckMoved},
		{"ReadCursors", testReadCursors},
		{"ConvFlags", testConvFlags},
		{"UserSettings", testUserSettings},
		{"ConversationsPages", testConversationsPages},
	}
	out := make([]struct {
		name string
		fn   func(t *testing.T, open Open)
	}, len(cases))
	for i, c := range cases {
		out[i].name = "ConvState/" + c.name
		out[i].fn = func(t *testing.T, open Open) {
			e := newEnv(t, open, nil)
			st, ok := e.s.(storage.ConvState)
			if !ok {
				t.Fatalf("%T does not implement storage.ConvState", e.s)
			}
			c.fn(t, e, st)
		}
	}
	return out
}

func testAckMoved(t *testing.T, e *env, st storage.ConvState) {
	ids := e.users(3)
	a, b := ids[0], ids[1]
	conv := e.fill(a, b, 3)[0].Conv
	for _, step := range []struct {
		user      int64
		seq       uint64
		prev, cur uint64
		situation string
	}{
		{b, 2, 0, 2, "first move"},
		{b, 2, 2, 2, "same seq"},
		{b, 1, 2, 2, "backwards"},
		{b, 9, 2, 3, "past the end: clamped"},
		{b, 10, 3, 3, "past the end again"},
		{ids[2], 2, 0, 0, "not a member"},
	} {
		prev, cur, err := st.AckMoved(e.ctx, step.user, conv, step.seq)
		if err != nil || prev != step.prev || cur != step.cur {
			t.Errorf("%s: AckMoved(%d) = %d, %d, %v; want %d, %d", step.situation, step.seq, prev, cur, err, step.prev, step.cur)
		}
	}
	if c := e.conv(b, conv); c.AckSeq != 3 {
		t.Errorf("Conversations ack_seq %d after AckMoved, want 3", c.AckSeq)
	}
}

func testReadCursors(t *testing.T, e *env, st storage.ConvState) {
	ids := e.users(5)
	owner := ids[0]
	g, err := e.s.CreateGroup(e.ctx, owner, "readers", false, ids[1:4], 100, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	conv := protocol.GroupConv(g.ID)
	for i := range 4 {
		e.add(e.group(owner, g.ID, fmt.Sprintf("r%d", i), []byte("x")))
	}
	for i, seq := range []uint64{1, 4, 2} {
		if _, _, err := st.AckMoved(e.ctx, ids[1+i], conv, seq); err != nil {
			t.Fatal(err)
		}
	}
	// ids[4] is no member; ids[3] turns receipts off.
	want := []uint64{0, 1, 4, 2, 0}
	if got, err := st.ReadCursors(e.ctx, conv, ids); err != nil || !slices.Equal(got, want) {
		t.Fatalf("ReadCursors = %v, %v; want %v", got, err, want)
	}
	if err := st.SetUserSettings(e.ctx, ids[3], storage.UserSettings{ReceiptsOff: true}); err != nil {
		t.Fatal(err)
	}
	want[3] = 0
	if got, err := st.ReadCursors(e.ctx, conv, ids); err != nil || !slices.Equal(got, want) {
		t.Fatalf("ReadCursors with receipts off = %v, %v; want %v", got, err, want)
	}
	// The user's own view is not affected.
	if c := e.conv(ids[3], conv); c.AckSeq != 2 {
		t.Errorf("own ack_seq %d with receipts off, want 2", c.AckSeq)
	}
}

func testConvFlags(t *testing.T, e *env, st storage.ConvState) {
	ids := e.users(3)
	a, b := ids[0], ids[1]
	conv := e.fill(a, b, 2)[0].Conv
	if err := st.SetConvFlags(e.ctx, a, conv, storage.ConvFlags{Muted: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetConvFlags(e.ctx, b, conv, storage.ConvFlags{Pinned: true}); err != nil {
		t.Fatal(err)
	}
	// The flags survive cursor moves and belong to their user.
	if _, _, err := st.AckMoved(e.ctx, a, conv, 2); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Hide(e.ctx, a, conv, nil, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the embedded store writes acks a little later
	if c := e.conv(a, conv); !c.Muted || c.Pinned || c.AckSeq != 2 {
		t.Errorf("a's entry %+v, want muted, not pinned, ack 2", c)
	}
	if c := e.conv(b, conv); c.Muted || !c.Pinned {
		t.Errorf("b's entry %+v, want pinned only", c)
	}
	if err := st.SetConvFlags(e.ctx, a, conv, storage.ConvFlags{}); err != nil {
		t.Fatal(err)
	}
	if c := e.conv(a, conv); c.Muted || c.Pinned {
		t.Errorf("a's entry %+v after clearing its flags", c)
	}
	// Not a member of a group: refused, nothing written.
	g, err := e.s.CreateGroup(e.ctx, a, "flags", false, nil, 10, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.add(e.group(a, g.ID, "gf", []byte("x")))
	if err := st.SetConvFlags(e.ctx, ids[2], protocol.GroupConv(g.ID), storage.ConvFlags{Pinned: true}); !errors.Is(err, storage.ErrNotMember) {
		t.Errorf("flags of a group by a non-member: %v, want ErrNotMember", err)
	}
	if cs := e.convs(ids[2], 10); len(cs) != 0 {
		t.Errorf("the non-member has conversations %+v", cs)
	}
}

func testUserSettings(t *testing.T, e *env, st storage.ConvState) {
	ids := e.users(2)
	for i, want := range []storage.UserSettings{{}, {ReceiptsOff: true}, {ReceiptsOff: false}} {
		if i > 0 {
			if err := st.SetUserSettings(e.ctx, ids[0], want); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := st.UserSettings(e.ctx, ids[0]); err != nil || got != want {
			t.Errorf("UserSettings = %+v, %v; want %+v", got, err, want)
		}
	}
	if err := st.SetUserSettings(e.ctx, ids[0], storage.UserSettings{ReceiptsOff: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.UserSettings(e.ctx, ids[1]); err != nil || got.ReceiptsOff {
		t.Errorf("another user's settings = %+v, %v", got, err)
	}
}

func testConversationsPages(t *testing.T, e *env, st storage.ConvState) {
	const n = 23
	ids := e.users(n + 1)
	u := ids[0]
	base := e.clock.Load()
	for i := 1; i <= n; i++ {
		m := e.direct(ids[i], u, fmt.Sprintf("p%d", i), []byte("x"))
		m.ServerTime = base + int64(min(i, n-1)) // the last two tie
		e.add(m)
	}
	tied := []string{protocol.DirectConv(u, ids[n-1]), protocol.DirectConv(u, ids[n])}
	slices.Sort(tied) // a tie is ordered by id
	want := tied
	for i := n - 2; i >= 1; i-- {
		want = append(want, protocol.DirectConv(u, ids[i]))
	}
	for _, size := range []int{1, 5, n, n + 1} {
		var (
			got       []string
			afterTime int64
			afterConv string
			pages     int
		)
		for {
			page, more, err := st.ConversationsAfter(e.ctx, u, afterTime, afterConv, size)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, c := range page {
				if c.LastTime == 0 {
					t.Fatalf("entry %+v without last_time", c)
				}
				got = append(got, c.Conv)
			}
			if !more {
				break
			}
			if pages > n || len(page) == 0 {
				t.Fatalf("pages of %d do not end", size)
			}
			last := page[len(page)-1]
			afterTime, afterConv = last.LastTime, last.Conv
		}
		if !slices.Equal(got, want) || pages != (n+size-1)/size {
			t.Errorf("pages of %d: %d pages: %v\nwant %v", size, pages, got, want)
		}
	}
}
