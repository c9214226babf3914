package ui

import (
	"strings"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/protocol"
)

// Events arriving fold into the message they name; the commands send
// them; a reply quotes; @names become mentions, completed with Tab.
func TestEventsOnScreen(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	conv := protocol.DirectConv(1, 2)
	event := func(seq uint64, ct uint16, ref uint64, body string, edited uint32) protocol.Message {
		x := msg(conv, seq, 2, body)
		x.ContentType, x.Ref, x.Edited = ct, ref, edited
		return x
	}
	m3 := msg(conv, 3, 2, "lunch @alice?")
	m3.Mentions = []int64{1}
	drive(m, IncomingMsg{M: m3},
		IncomingMsg{M: event(4, protocol.ContentEdit, 3, "lunch at noon @alice?", 1)},
		IncomingMsg{M: event(5, protocol.ContentReact, 1, "👍", 0)})
	v := screenText(m)
	for _, want := range []string{"bob: @ lunch at noon @alice? (edited)", "hi bob", "👍 1"} {
		if !strings.Contains(v, want) {
			t.Errorf("no %q in\n%s", want, v)
		}
	}
	if strings.Contains(v, "lunch @alice?") {
		t.Errorf("the edited text stays:\n%s", v)
	}
	drive(m, IncomingMsg{M: event(6, protocol.ContentRecall, 3, "", 0)})
	if v := screenText(m); !strings.Contains(v, "bob: ⊘ message recalled") || strings.Contains(v, "lunch") {
		t.Fatalf("recall not shown:\n%s", v)
	}

	// /reply 1 quotes the newest message (bob's "hey alice" at 2; 3 is recalled but counts).
	enter(m, "/reply 2 yes, @bob")
	s := f.sent[len(f.sent)-1]
	if s.ReplyTo != 2 || string(s.Body) != "yes, @bob" || len(s.Mentions) != 1 || s.Mentions[0] != 2 {
		t.Fatalf("reply sent %+v", s)
	}
	drive(m, IncomingMsg{M: func() protocol.Message {
		x := msg(conv, 7, 1, "yes, @bob")
		x.ReplyTo = 2
		return x
	}()})
	if v := screenText(m); !strings.Contains(v, "↪ bob: hey alice") {
		t.Fatalf("no quote:\n%s", v)
	}
	enter(m, "/edit yes, @bob!")
	if s := f.sent[len(f.sent)-1]; s.ContentType != protocol.ContentEdit || s.Ref != 7 || string(s.Body) != "yes, @bob!" || s.To != 2 {
		t.Fatalf("edit sent %+v", s)
	}
	enter(m, "/react 2 🎉")
	if s := f.sent[len(f.sent)-1]; s.ContentType != protocol.ContentReact || s.Ref != 3 || string(s.Body) != "🎉" {
		t.Fatalf("react sent %+v", s)
	}
	enter(m, "/recall")
	if s := f.sent[len(f.sent)-1]; s.ContentType != protocol.ContentRecall || s.Ref != 7 || len(s.Body) != 0 {
		t.Fatalf("recall sent %+v", s)
	}

	// @ completion: Tab completes a known name instead of switching.
	typeText(m, "see you @b")
	press(m, tea.KeyTab)
	if got := m.input.Value(); got != "see you @bob " || m.current != conv {
		t.Fatalf("completed %q, current %s", got, m.current)
	}
}

// A muted conversation counts its messages without announcing them, but a
// message that mentions the user is announced, with the bell.
func TestMentionInMutedConversation(t *testing.T) {
	f := newFake()
	rings := 0
	m := New(f, Config{Addr: "127.0.0.1:7070", Token: f.token, Username: "alice", Bell: func() { rings++ }})
	drive(m, tea.WindowSizeMsg{Width: 100, Height: 24})
	run(m, m.Init())
	carolConv := protocol.DirectConv(1, 3)
	later := func(x protocol.Message) protocol.Message { x.ServerTime += 3_600_000; return x }
	drive(m, IncomingMsg{M: later(msg(carolConv, 1, 3, "first"))})
	c := m.conv(carolConv)
	if c == nil || m.current == carolConv {
		t.Fatalf("carol's conversation %+v, current %s", c, m.current)
	}
	c.muted = true
	m.say("")
	before := rings
	drive(m, IncomingMsg{M: later(msg(carolConv, 2, 3, "quiet please"))})
	if m.notice != "" || rings != before || c.unread() != 2 {
		t.Fatalf("muted: notice %q, rings %d→%d, unread %d", m.notice, before, rings, c.unread())
	}
	x := later(msg(carolConv, 3, 3, "@alice look"))
	x.Mentions = []int64{1}
	drive(m, IncomingMsg{M: x})
	if !strings.Contains(m.notice, "you were mentioned by carol") || rings != before+1 || c.unread() != 3 {
		t.Fatalf("mention: notice %q, rings %d, unread %d", m.notice, rings, c.unread())
	}
}
