package ui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// DefaultMaxBody is the limit on a message body, in bytes, of a server
// that does not tell its own in LoginOK.max_message (docs/protocol.md:
// "Message body ≤ 16384 bytes by default"). A longer line is refused
// before it is sent.
const DefaultMaxBody = 16384

// maxBody is the limit on a message body: the one the server told at the
// last login (kept in the cache for an offline start), or the default.
func (m *Model) maxBody() int {
	if m.serverMax > 0 {
		return m.serverMax
	}
	return DefaultMaxBody
}

// retryDelay is how long the queue waits before sending again after the
// server was slow or the connection dropped.
const retryDelay = time.Second

// outgoing is a message typed here that the server has not stored: in the
// queue, or refused (Failed set) and waiting for /retry or /discard.
type outgoing struct {
	q       Queued
	sending bool // handed to the client; the answer has not come back
}

// pumpMsg asks the queue to send its head again.
type pumpMsg struct{}

// send queues a line for the conversation shown now, on disk first, and
// starts the queue.
func (m *Model) send(text string) tea.Cmd {
	c := m.conv(m.current)
	if c == nil || (c.kind != protocol.ConvGroup && c.kind != protocol.ConvDirect) {
		m.fail("no conversation open: /msg NAME, or /group new NAME")
		m.input.SetValue(text)
		return nil
	}
	return m.queue(c, text)
}

// queue puts a line for c in the outgoing queue and starts the queue.
func (m *Model) queue(c *conv, text string) tea.Cmd { return m.queueReply(c, text, 0) }

// queueReply is queue of a reply to the message at replyTo (0: none).
func (m *Model) queueReply(c *conv, text string, replyTo uint64) tea.Cmd {
	if n, limit := len(text), m.maxBody(); n > limit {
		m.fail(fmt.Sprintf("too long by %d bytes (limit %d): not sent", n-limit, limit))
		m.input.SetValue(text)
		return nil
	}
	q := Queued{Conv: c.id, ClientMsgID: m.b.NewClientMsgID(), Body: text, At: time.Now().UnixMilli()}
	if c.kind == protocol.ConvGroup {
		q.GroupID = c.group
	} else {
		q.To = c.peer
	}
	q.ReplyTo = replyTo
	q.Mentions, q.MentionAll = m.mentions(c, text)
	if err := m.outbox.Put(q); err != nil {
		m.fail("the message could not be queued on disk (" + err.Error() + "): it is not sent")
		m.input.SetValue(text)
		return nil
	}
	m.out = append(m.out, &outgoing{q: q})
	c.lastTime = q.At
	m.scroll = 0
	m.sortConvs()
	return m.pump()
}

// pump sends the oldest queued message if none is on its way: one at a
// time, so that they are stored in the order they were typed.
func (m *Model) pump() tea.Cmd {
	if m.closed || slices.ContainsFunc(m.out, func(o *outgoing) bool { return o.sending }) {
		return nil
	}
	i := slices.IndexFunc(m.out, func(o *outgoing) bool { return o.q.Failed == "" })
	if i < 0 {
		return nil
	}
	o := m.out[i]
	o.sending = true
	b, s, conv := m.b, o.q.send(), o.q.Conv
	return m.call(func(ctx context.Context) tea.Msg {
		ack, err := b.SendRaw(ctx, s)
		return sentMsg{conv: conv, id: s.ClientMsgID, ack: ack, err: err}
	})
}

// sent applies a Send's answer: stored, refused, or unknown (the server
// was slow, or the connection is down) and sent again with the same
// client_msg_id, which the server stores once.
func (m *Model) sent(r sentMsg) tea.Cmd {
	i := slices.IndexFunc(m.out, func(o *outgoing) bool { return o.q.ClientMsgID == r.id })
	if i < 0 {
		return m.pump()
	}
	o := m.out[i]
	o.sending = false
	var pe *protocol.Error
	switch {
	case r.err == nil:
		m.out = slices.Delete(m.out, i, i+1)
		if err := m.outbox.Remove(o.q.ClientMsgID); err != nil {
			m.fail("sent, but the queue file could not be updated: " + err.Error())
		}
		if c := m.conv(r.conv); c != nil {
			m.add(c, protocol.Message{
				MsgID: r.ack.MsgID, Conv: r.conv, Seq: r.ack.Seq, From: m.me, To: o.q.To, GroupID: o.q.GroupID,
				ClientMsgID: o.q.ClientMsgID, Body: []byte(o.q.Body), ServerTime: r.ack.ServerTime,
			})
		}
	case errors.As(r.err, &pe) && pe.Code != protocol.CodeBusy && pe.Code != protocol.CodeRateLimited &&
		pe.Code != protocol.CodeUnavailable && pe.Code != protocol.CodeTimeout && pe.Code != protocol.CodeShutdown:
		o.q.Failed = Plain(r.err)
		_ = m.outbox.Put(o.q)
		n := m.failedIndex(o)
		m.fail(fmt.Sprintf("/retry %d or /discard %d — not sent: %s", n, n, o.q.Failed))
	case errors.Is(r.err, client.ErrClosed):
		// Nothing goes out on this client any more; the queue stays on
		// disk for the next start.
		return nil
	default:
		return tea.Tick(retryDelay, func(time.Time) tea.Msg { return pumpMsg{} })
	}
	return m.pump()
}

// failedOf is the refused messages of conv, oldest first: /retry N and
// /discard N count in it from 1.
func (m *Model) failedOf(conv string) []*outgoing {
	var out []*outgoing
	for _, o := range m.out {
		if o.q.Conv == conv && o.q.Failed != "" {
			out = append(out, o)
		}
	}
	slices.SortStableFunc(out, func(a, b *outgoing) int { return int(a.q.At - b.q.At) })
	return out
}

func (m *Model) failedIndex(o *outgoing) int {
	return slices.Index(m.failedOf(o.q.Conv), o) + 1
}

// queuedOf is the messages of conv still to be sent, in queue order.
func (m *Model) queuedOf(conv string) []*outgoing {
	var out []*outgoing
	for _, o := range m.out {
		if o.q.Conv == conv && o.q.Failed == "" {
			out = append(out, o)
		}
	}
	return out
}

// pickFailed is failed message n of the conversation shown (all of them
// when n is 0).
func (m *Model) pickFailed(n int64) ([]*outgoing, bool) {
	f := m.failedOf(m.current)
	switch {
	case len(f) == 0:
		m.fail("no failed message here")
		return nil, false
	case n == 0:
		return f, true
	case n > int64(len(f)):
		m.fail(fmt.Sprintf("there are %d failed message(s) here: /retry 1 to %d", len(f), len(f)))
		return nil, false
	}
	return f[n-1 : n], true
}

// retry puts failed messages at the tail of the queue again.
func (m *Model) retry(n int64) tea.Cmd {
	f, ok := m.pickFailed(n)
	if !ok {
		return nil
	}
	for _, o := range f {
		if len(o.q.Body) > m.maxBody() {
			m.fail("still too long: /discard it, or copy and shorten it")
			return nil
		}
	}
	for _, o := range f {
		o.q.Failed = ""
		i := slices.Index(m.out, o)
		m.out = append(slices.Delete(m.out, i, i+1), o)
		_ = m.outbox.Remove(o.q.ClientMsgID)
		_ = m.outbox.Put(o.q)
	}
	m.say(fmt.Sprintf("sending %d message(s) again", len(f)))
	return m.pump()
}

// discard drops a failed message.
func (m *Model) discard(n int64) {
	f, ok := m.pickFailed(n)
	if !ok {
		return
	}
	for _, o := range f {
		m.out = slices.DeleteFunc(m.out, func(x *outgoing) bool { return x == o })
		_ = m.outbox.Remove(o.q.ClientMsgID)
	}
	m.say(fmt.Sprintf("discarded %d message(s)", len(f)))
}

// editFailed puts the newest failed message of the conversation shown
// into the input to be edited: Enter sends the new text in its place,
// Esc leaves it as it was. It reports false if there is none.
func (m *Model) editFailed() bool {
	f := m.failedOf(m.current)
	if len(f) == 0 {
		return false
	}
	o := f[len(f)-1]
	m.editing = o.q.ClientMsgID
	m.input.SetValue(strings.ReplaceAll(o.q.Body, "\n", " "))
	m.input.CursorEnd()
	m.say(fmt.Sprintf("editing failed message %d: Enter sends it in its place, Esc leaves it", len(f)))
	return true
}

// Queued is how many messages wait in the outgoing queue, refused ones
// included.
func (m *Model) Queued() int { return len(m.out) }

// left is the counter of what the message being composed may still take
// against the server's limit (the lines entered with Alt+Enter and the
// input line), shown once it passes three quarters of the limit.
func (m *Model) left() string {
	n, limit := len(m.input.Value()), m.maxBody()
	for _, l := range m.multi {
		n += len(l) + 1
	}
	if n < limit*3/4 {
		return ""
	}
	if n > limit {
		return fmt.Sprintf("%d bytes over the limit", n-limit)
	}
	return fmt.Sprintf("%d bytes left", limit-n)
}
