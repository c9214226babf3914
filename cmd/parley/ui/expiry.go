package ui

import (
	"fmt"
	"slices"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// Expiring messages (protocol/expiry.go). /expire sets the timer of the
// conversation shown; its header shows the timer; a timer message is a line
// of the timeline. A message leaves the screen (and the cache) at its
// expires_at by this machine's clock, or when the server says it expired
// (an Expired notice), whichever comes first.

// expireMsg is the tick at which the earliest loaded message expires.
type expireMsg struct{}

// timerWords says what a timer message did.
func timerWords(x protocol.Message) string {
	secs, ok := protocol.ParseTimer(x.Body)
	switch {
	case !ok:
		return "changed disappearing messages"
	case secs == 0:
		return "turned disappearing messages off"
	}
	return "set disappearing messages to " + client.TimerText(secs)
}

// setTimer runs /expire in c.
func (m *Model) setTimer(c *conv, arg string) tea.Cmd {
	if c == nil || (c.kind != protocol.ConvGroup && c.kind != protocol.ConvDirect) {
		m.fail("open a conversation first (Tab)")
		return nil
	}
	d, err := client.ParseTimer(arg)
	if err != nil {
		m.fail(err.Error())
		return nil
	}
	secs := uint32(d / time.Second)
	s := protocol.Send{ClientMsgID: m.b.NewClientMsgID(), ContentType: protocol.ContentTimer, Body: protocol.TimerBody(secs)}
	return m.sendRawCmd(c, s, "disappearing messages: "+client.TimerText(secs))
}

// dropSeqs removes messages of c, and sets what the list shows of it again.
func (m *Model) dropSeqs(c *conv, gone func(x protocol.Message) bool) {
	n := len(c.msgs)
	c.msgs = slices.DeleteFunc(c.msgs, gone)
	if len(c.msgs) == n {
		return
	}
	m.lastAgain(c)
	m.clampScroll()
}

// lastAgain sets what the list shows of c from its newest message left.
func (m *Model) lastAgain(c *conv) {
	c.lastText, c.lastFrom, c.lastExpires = "", 0, 0
	if i := lastShown(c); i >= 0 {
		c.lastText, c.lastFrom, c.lastExpires = MessageText(c.msgs[i]), c.msgs[i].From, c.msgs[i].ExpiresAt
	}
}

// dropFound blanks the search matches that gone says are gone (their lines
// in the matches panel too).
func (m *Model) dropFound(gone func(x protocol.Message) bool) {
	for i := range m.found {
		x := &m.found[i]
		if x.Body == nil || !gone(*x) {
			continue
		}
		x.Body, x.ExpiresAt = nil, 0
		if k := 2 + i; k < len(m.srch.lines) { // below the title and a blank line
			m.srch.lines[k] = fmt.Sprintf("  %2d. (disappeared)", i+1)
		}
	}
}

// expired handles an Expired notice.
func (m *Model) expired(e *protocol.Expired) tea.Cmd {
	gone := func(x protocol.Message) bool { return x.Conv == e.Conv && slices.Contains(e.Seqs, x.Seq) }
	if c := m.conv(e.Conv); c != nil {
		m.dropSeqs(c, gone)
	}
	m.dropFound(gone)
	return nil
}

// expireDue drops what expired by now and schedules the next tick.
func (m *Model) expireDue(now time.Time) tea.Cmd {
	m.expireAt = 0
	gone := func(x protocol.Message) bool { return client.Expired(&x, now) }
	for _, c := range m.convs {
		m.dropSeqs(c, gone)
		if c.lastExpires != 0 && c.lastExpires <= now.UnixMilli() {
			m.lastAgain(c) // the list's text of a conversation not loaded goes too
		}
	}
	m.dropFound(gone)
	return m.expireSoon()
}

// expireSoon schedules an expireMsg at the earliest expires_at of the
// messages loaded, unless one is due by then already.
func (m *Model) expireSoon() tea.Cmd {
	var first int64
	at := func(e int64) {
		if e != 0 && (first == 0 || e < first) {
			first = e
		}
	}
	for _, c := range m.convs {
		for i := range c.msgs {
			at(c.msgs[i].ExpiresAt)
		}
		at(c.lastExpires)
	}
	for i := range m.found {
		at(m.found[i].ExpiresAt)
	}
	if first == 0 || (m.expireAt != 0 && m.expireAt <= first) {
		return nil
	}
	m.expireAt = first
	return tea.Tick(time.Until(time.UnixMilli(first)), func(time.Time) tea.Msg { return expireMsg{} })
}
