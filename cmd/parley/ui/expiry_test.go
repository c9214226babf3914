package ui

import (
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// /expire sends a timer message; a timer message shows as a line and in
// the header; an expiring message leaves the screen at its expires_at by
// the local clock, and on an Expired notice.
func TestExpiryOnScreen(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	conv := protocol.DirectConv(1, 2)

	enter(m, "/expire 1h")
	if s := f.sent[len(f.sent)-1]; s.ContentType != protocol.ContentTimer || string(s.Body) != "3600" || s.To != 2 {
		t.Fatalf("/expire sent %+v", s)
	}
	enter(m, "/expire soon")
	if !m.bad || !strings.Contains(m.notice, "a timer is off") {
		t.Fatalf("/expire soon: notice %q", m.notice)
	}

	timer := msg(conv, 3, 2, "3600")
	timer.ContentType = protocol.ContentTimer
	now := time.Now().UnixMilli()
	soon := msg(conv, 4, 2, "burn after reading")
	soon.ExpiresAt = now + 100
	later := msg(conv, 5, 2, "an hour left")
	later.ExpiresAt = now + 3_600_000
	// step, not drive: the commands include the expiry ticks, which sleep.
	for _, x := range []protocol.Message{timer, soon, later} {
		step(m, IncomingMsg{M: x})
	}
	v := screenText(m)
	for _, want := range []string{"bob set disappearing messages to 1h", "⏱ 1h", "burn after reading", "an hour left"} {
		if !strings.Contains(v, want) {
			t.Errorf("no %q in\n%s", want, v)
		}
	}
	if m.expireAt != soon.ExpiresAt {
		t.Fatalf("next expiry tick at %d, want %d", m.expireAt, soon.ExpiresAt)
	}
	time.Sleep(time.Until(time.UnixMilli(soon.ExpiresAt)))
	step(m, expireMsg{})
	v = screenText(m)
	if strings.Contains(v, "burn after reading") || !strings.Contains(v, "an hour left") {
		t.Fatalf("after the local expiry:\n%s", v)
	}
	if m.expireAt != later.ExpiresAt {
		t.Fatalf("next expiry tick at %d, want %d", m.expireAt, later.ExpiresAt)
	}
	step(m, NoticeMsg{N: client.Notice{Expired: &protocol.Expired{Conv: conv, Seqs: []uint64{5}}}})
	if v := screenText(m); strings.Contains(v, "an hour left") {
		t.Fatalf("after Expired:\n%s", v)
	}
	// A message that arrives expired (a slow push) is never shown.
	old := msg(conv, 6, 2, "too late")
	old.ExpiresAt = now - 1
	step(m, IncomingMsg{M: old})
	if v := screenText(m); strings.Contains(v, "too late") {
		t.Fatalf("an expired message is shown:\n%s", v)
	}
	off := msg(conv, 7, 1, "0")
	off.ContentType = protocol.ContentTimer
	step(m, IncomingMsg{M: off})
	if v := screenText(m); !strings.Contains(v, "you turned disappearing messages off") || strings.Contains(v, "⏱ 1h") {
		t.Fatalf("timer off:\n%s", v)
	}
}

// A search match that expires leaves the matches panel.
func TestExpiryInSearchPanel(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	conv := protocol.DirectConv(1, 2)
	hit := msg(conv, 9, 2, "secret plan")
	hit.ExpiresAt = time.Now().UnixMilli() + 50
	m.srch.query, m.srch.gen = "plan", 1
	step(m, searchMsg{gen: 1, res: protocol.SearchResult{Messages: []protocol.Message{msg(conv, 1, 2, "old plan"), hit}}})
	if v := screenText(m); !strings.Contains(v, "secret plan") || m.expireAt != hit.ExpiresAt {
		t.Fatalf("matches (next tick %d):\n%s", m.expireAt, v)
	}
	time.Sleep(time.Until(time.UnixMilli(hit.ExpiresAt)))
	step(m, expireMsg{})
	if v := screenText(m); strings.Contains(v, "secret plan") || !strings.Contains(v, "2. (disappeared)") || !strings.Contains(v, "old plan") {
		t.Fatalf("after the expiry:\n%s", v)
	}
}
