package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// A device that was away reads the other user's cursor when it opens the
// conversation.
func TestReceiptsAskedOnOpen(t *testing.T) {
	f := newFake()
	f.peerRead = map[string]uint64{protocol.DirectConv(1, 2): 1}
	m := loggedIn(t, f)
	if v := screenText(m); !strings.Contains(v, "hi bob ✓✓ read") {
		t.Fatalf("read mark not shown:\n%s", v)
	}
}

// A device that was away reads how far the other user's devices got.
func TestDeliveredAskedOnOpen(t *testing.T) {
	f := newFake()
	f.delivered = map[string]uint64{protocol.DirectConv(1, 2): 1}
	m := loggedIn(t, f)
	if v := screenText(m); !strings.Contains(v, "hi bob ✓✓") || strings.Contains(v, "read") {
		t.Fatalf("delivered mark not shown:\n%s", v)
	}
}

// Own messages show ✓, then ✓✓ once delivered, then "✓✓ read"; "bob is
// typing…" shows until it ends; /mute and /pin mark the list and reach
// the server; a mute from another device shows too.
func TestReceiptsOnScreen(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	conv := protocol.DirectConv(1, 2)
	line := func() string {
		for _, l := range strings.Split(screenText(m), "\n") {
			if strings.Contains(l, "alice: hi bob") {
				return l
			}
		}
		t.Fatalf("no line of alice's message:\n%s", screenText(m))
		return ""
	}
	if l := line(); !strings.Contains(l, "hi bob ✓") || strings.Contains(l, "✓✓") {
		t.Fatalf("stored only: %q", l)
	}
	drive(m, NoticeMsg{N: client.Notice{Delivered: &protocol.DeliveredEvent{Conv: conv, User: 2, Seq: 1}}})
	if l := line(); !strings.Contains(l, "hi bob ✓✓") || strings.Contains(l, "read") {
		t.Fatalf("delivered: %q", l)
	}
	drive(m, NoticeMsg{N: client.Notice{Read: &protocol.ReadEvent{Conv: conv, User: 2, Seq: 1}}})
	if l := line(); !strings.Contains(l, "hi bob ✓✓ read") {
		t.Fatalf("read: %q", l)
	}

	until := time.Now().Add(300 * time.Millisecond).UnixMilli()
	cmd := step(m, NoticeMsg{N: client.Notice{Typing: &protocol.TypingEvent{Conv: conv, User: 2, Until: until}}})
	if v := screenText(m); !strings.Contains(v, "bob is typing…") {
		t.Fatalf("typing not shown:\n%s", v)
	}
	run(m, cmd) // waits for the indicator to end
	if v := screenText(m); strings.Contains(v, "typing") {
		t.Fatalf("typing shown after it ended:\n%s", v)
	}

	enter(m, "/mute")
	enter(m, "/pin")
	if len(f.prefs) != 2 || f.prefs[1] != (protocol.ConvPrefs{Conv: conv, Muted: true, Pinned: true}) {
		t.Fatalf("prefs sent %+v", f.prefs)
	}
	if v := screenText(m); !strings.Contains(v, "bob [pinned] [muted]") {
		t.Fatalf("marks not shown:\n%s", v)
	}
	drive(m, NoticeMsg{N: client.Notice{State: &protocol.ConvState{Conv: conv, Kind: protocol.StatePrefs, Pinned: true}}})
	if v := screenText(m); !strings.Contains(v, "bob [pinned]") || strings.Contains(v, "[muted]") {
		t.Fatalf("unmuted on another device:\n%s", v)
	}
	// Typing in the composer tells the server, not more than every 2 s.
	typeText(m, "hello")
	if len(f.typed) != 1 || f.typed[0] != conv {
		t.Fatalf("typing sent %v, want once for %s", f.typed, conv)
	}
}

// In a group, alice's messages show how many have read them.
func TestGroupReadByOnScreen(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	enter(m, "/group new crag bob carol")
	g := protocol.GroupConv(7)
	if m.current != g {
		t.Fatalf("current %s", m.current)
	}
	enter(m, "anyone climbing?")
	line := func() string {
		for _, l := range strings.Split(screenText(m), "\n") {
			if strings.Contains(l, "alice: anyone climbing?") {
				return l
			}
		}
		t.Fatalf("no line of the message:\n%s", screenText(m))
		return ""
	}
	if l := line(); !strings.Contains(l, "✓") || strings.Contains(l, "read by") {
		t.Fatalf("unread: %q", l)
	}
	var seq uint64
	for _, x := range m.conv(g).msgs {
		seq = x.Seq
	}
	drive(m, NoticeMsg{N: client.Notice{GroupRead: &protocol.GroupReadEvent{Conv: g, Reads: []protocol.ReadCount{{Seq: seq, Count: 2}}}}})
	if l := line(); !strings.Contains(l, "✓ read by 2") {
		t.Fatalf("read by 2: %q", l)
	}
}
