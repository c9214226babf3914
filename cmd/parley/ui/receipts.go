package ui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// Receipts, typing and the user's flags of a conversation on the screen:
// own messages end in ✓ (stored), ✓✓ (on a device of the other user) or
// ✓✓ read; in a group "read by N"; "NAME is typing…" under the messages;
// the list marks muted and pinned conversations.

// maxReadCounts bounds the read counts kept per conversation.
const maxReadCounts = 500

// typingEvery is how often typing in the composer is told again.
const typingEvery = 2 * time.Second

// receipt takes a receipt, typing or state notice into its conversation.
func (m *Model) receipt(n client.Notice) tea.Cmd {
	switch {
	case n.Read != nil:
		c := m.conv(n.Read.Conv)
		if c == nil {
			return nil
		}
		if n.Read.User == m.me {
			// Read on another device: nothing is unread up to there.
			c.read = max(c.read, n.Read.Seq)
			if n.Read.Seq >= c.top() {
				c.srvUnread, c.extra = 0, map[uint64]bool{}
			}
			return nil
		}
		c.peerRead = max(c.peerRead, n.Read.Seq)
		delete(c.typing, n.Read.User)
	case n.Delivered != nil:
		if c := m.conv(n.Delivered.Conv); c != nil {
			c.delivered = max(c.delivered, n.Delivered.Seq)
		}
	case n.GroupRead != nil:
		c := m.conv(n.GroupRead.Conv)
		if c == nil {
			return nil
		}
		if c.readBy == nil {
			c.readBy = map[uint64]uint32{}
		}
		for _, r := range n.GroupRead.Reads {
			c.readBy[r.Seq] = max(c.readBy[r.Seq], r.Count)
		}
		if len(c.readBy) > maxReadCounts {
			seqs := make([]uint64, 0, len(c.readBy))
			for s := range c.readBy {
				seqs = append(seqs, s)
			}
			slices.Sort(seqs)
			for _, s := range seqs[:len(seqs)-maxReadCounts] {
				delete(c.readBy, s)
			}
		}
	case n.Typing != nil:
		c := m.conv(n.Typing.Conv)
		if c == nil || n.Typing.User == m.me {
			return nil
		}
		if c.typing == nil {
			c.typing = map[int64]int64{}
		}
		if n.Typing.Until == 0 {
			delete(c.typing, n.Typing.User)
			return nil
		}
		c.typing[n.Typing.User] = n.Typing.Until
		// Redraw when it ends by itself.
		wait := time.Until(time.UnixMilli(n.Typing.Until)) + 50*time.Millisecond
		return tea.Batch(m.learn(n.Typing.User), tea.Tick(wait, func(time.Time) tea.Msg { return redrawMsg{} }))
	case n.State != nil:
		c := m.conv(n.State.Conv)
		if c == nil {
			return nil
		}
		switch n.State.Kind {
		case protocol.StatePrefs:
			c.muted, c.pinned = n.State.Muted, n.State.Pinned
			m.sortConvs()
		case protocol.StateHidden:
			c.msgs = slices.DeleteFunc(c.msgs, func(x protocol.Message) bool {
				return x.Seq <= n.State.UpTo || slices.Contains(n.State.Seqs, x.Seq)
			})
			c.lastText = ""
			if k := len(c.msgs); k > 0 {
				c.lastText, c.lastFrom = string(c.msgs[k-1].Body), c.msgs[k-1].From
			}
		}
	}
	return nil
}

// redrawMsg only makes the screen draw again (a typing line that ended).
type redrawMsg struct{}

// receiptMark is the note after one of the user's own messages.
func (m *Model) receiptMark(c *conv, x *protocol.Message) string {
	if x.From != m.me {
		return ""
	}
	if c.kind == protocol.ConvGroup {
		if n := c.readBy[x.Seq]; n > 0 {
			return m.st.dim.Render(fmt.Sprintf(" ✓ read by %d", n))
		}
		return m.st.dim.Render(" ✓")
	}
	switch {
	case x.Seq <= c.peerRead:
		return m.st.dim.Render(" ✓✓ read")
	case x.Seq <= c.delivered:
		return m.st.dim.Render(" ✓✓")
	}
	return m.st.dim.Render(" ✓")
}

// typingLine says who types in c now, or "".
func (m *Model) typingLine(c *conv) string {
	now := time.Now().UnixMilli()
	var names []string
	for u, until := range c.typing {
		if until > now {
			names = append(names, m.nameOf(u))
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	if len(names) > 3 {
		return fmt.Sprintf("%d people are typing…", len(names))
	}
	verb := " is typing…"
	if len(names) > 1 {
		verb = " are typing…"
	}
	return strings.Join(names, ", ") + verb
}

// flags marks a conversation of the list: pinned, muted.
func flags(c *conv) string {
	s := ""
	if c.pinned {
		s += " [pinned]"
	}
	if c.muted {
		s += " [muted]"
	}
	return s
}

// setPrefs runs /mute, /unmute, /pin and /unpin on the conversation shown.
func (m *Model) setPrefs(c *conv, what string) tea.Cmd {
	if c == nil {
		m.fail("/" + what + " acts on a conversation: open one first (Tab)")
		return nil
	}
	muted, pinned := c.muted, c.pinned
	switch what {
	case "mute", "unmute":
		muted = what == "mute"
	default:
		pinned = what == "pin"
	}
	c.muted, c.pinned = muted, pinned
	m.sortConvs()
	b, id, title := m.b, c.id, m.title(c)
	return m.call(func(ctx context.Context) tea.Msg {
		if err := b.SetConvPrefs(ctx, id, muted, pinned); err != nil {
			return doneMsg{err: err}
		}
		return doneMsg{text: fmt.Sprintf("%s: %sd", title, what)}
	})
}

// typed tells the conversation shown that the user types, at most every
// typingEvery.
func (m *Model) typed() tea.Cmd {
	c := m.conv(m.current)
	now := time.Now()
	if c == nil || m.state != stateOnline || now.Sub(m.typingAt) < typingEvery {
		return nil
	}
	m.typingAt = now
	b, id := m.b, c.id
	return m.call(func(ctx context.Context) tea.Msg {
		_ = b.Typing(ctx, id, false) // a lost indicator is no error to show
		return nil
	})
}

// receiptsMsg is the other user's read and delivery cursors of a direct
// conversation.
type receiptsMsg struct {
	conv                string
	peerRead, delivered uint64
}

// askReceipts reads, once per login, how far the other user of a direct
// conversation has read and got: what a device that was away missed of
// ReadEvents and DeliveredEvents.
func (m *Model) askReceipts(c *conv) tea.Cmd {
	if c.kind != protocol.ConvDirect || c.asked || m.state != stateOnline {
		return nil
	}
	c.asked = true
	b, id := m.b, c.id
	return m.call(func(ctx context.Context) tea.Msg {
		r, err := b.Receipts(ctx, id)
		if err != nil {
			return nil // the marks wait for the next ReadEvent
		}
		return receiptsMsg{conv: id, peerRead: r.PeerRead, delivered: r.PeerDelivered}
	})
}
