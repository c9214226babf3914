package ui

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unicode"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// Conversation events on the screen: recalls, edits and reactions arrive
// as messages of the conversation and are folded into the message they
// name (client.ApplyEvent); they take no line of their own. /recall, /edit,
// /react and /unreact send them; /reply and @name mentions go with a
// message through the outgoing queue.

// applyEvent folds event x of c into the message it names, if loaded.
func applyEvent(c *conv, x *protocol.Message) {
	if i := indexOf(c, x.Ref); i >= 0 {
		client.ApplyEvent(&c.msgs[i], x)
	}
}

// indexOf is the index in c.msgs of the message at seq, or -1.
func indexOf(c *conv, seq uint64) int {
	i, found := slices.BinarySearchFunc(c.msgs, seq, func(y protocol.Message, seq uint64) int {
		switch {
		case y.Seq < seq:
			return -1
		case y.Seq > seq:
			return 1
		}
		return 0
	})
	if !found {
		return -1
	}
	return i
}

// nth returns the n-th newest message of c (1: the newest) that is not an
// event, and only of the user's own when mine.
func (m *Model) nth(c *conv, n int, mine bool) (*protocol.Message, bool) {
	for i := len(c.msgs) - 1; i >= 0; i-- {
		x := &c.msgs[i]
		if protocol.IsEvent(x.ContentType) || (mine && x.From != m.me) {
			continue
		}
		if n--; n == 0 {
			return x, true
		}
	}
	return nil, false
}

// eventCmd sends an event of content type ct on the message at seq of c.
func (m *Model) eventCmd(c *conv, ct uint16, seq uint64, body, done string) tea.Cmd {
	return m.sendRawCmd(c, protocol.Send{ClientMsgID: m.b.NewClientMsgID(), ContentType: ct, Ref: seq, Body: []byte(body)}, done)
}

// sendRawCmd sends s to c and says done once it is stored.
func (m *Model) sendRawCmd(c *conv, s protocol.Send, done string) tea.Cmd {
	if c.kind == protocol.ConvGroup {
		s.GroupID = c.group
	} else {
		s.To = c.peer
	}
	b := m.b
	return m.call(func(ctx context.Context) tea.Msg {
		if _, err := b.SendRaw(ctx, s); err != nil {
			return doneMsg{err: err}
		}
		return doneMsg{text: done}
	})
}

// runEvent runs /recall, /edit, /react, /unreact and /reply in c.
func (m *Model) runEvent(c *conv, cmd Command) tea.Cmd {
	if c == nil || (c.kind != protocol.ConvGroup && c.kind != protocol.ConvDirect) {
		m.fail("open a conversation first (Tab)")
		return nil
	}
	n := int(max(cmd.Num, 1))
	switch cmd.Name {
	case "recall":
		// Without N: the user's newest message; with N: the N-th newest
		// (a group's owner may recall others').
		x, ok := m.nth(c, n, cmd.Num == 0)
		if !ok {
			m.fail("no such message here to recall")
			return nil
		}
		return m.eventCmd(c, protocol.ContentRecall, x.Seq, "", "recalled: "+clip(string(x.Body), 30))
	case "edit":
		x, ok := m.nth(c, 1, true)
		if !ok {
			m.fail("you have no message here to edit")
			return nil
		}
		text := strings.Join(cmd.Args, " ")
		return m.eventCmd(c, protocol.ContentEdit, x.Seq, text, "edited")
	case "react", "unreact":
		x, ok := m.nth(c, n, false)
		if !ok {
			m.fail("no such message here")
			return nil
		}
		ct := protocol.ContentReact
		if cmd.Name == "unreact" {
			ct = protocol.ContentUnreact
		}
		return m.eventCmd(c, ct, x.Seq, cmd.Args[1], cmd.Name+"ed "+cmd.Args[1])
	case "reply":
		x, ok := m.nth(c, n, false)
		if !ok {
			m.fail("no such message here to reply to")
			return nil
		}
		return m.queueReply(c, cmd.Text, x.Seq)
	}
	return nil
}

// mentions finds the @names of text among the users this screen knows,
// and @all in a group.
func (m *Model) mentions(c *conv, text string) (ids []int64, all bool) {
	for _, w := range strings.Fields(text) {
		name, ok := strings.CutPrefix(w, "@")
		if !ok {
			continue
		}
		name = strings.TrimRightFunc(name, func(r rune) bool { return unicode.IsPunct(r) && r != '_' && r != '.' && r != '-' })
		if strings.EqualFold(name, "all") && c.kind == protocol.ConvGroup {
			all = true
			continue
		}
		id, ok := m.localUser(name)
		if !ok || slices.Contains(ids, id) {
			continue
		}
		if c.kind == protocol.ConvDirect && id != c.peer && id != m.me {
			continue
		}
		ids = append(ids, id)
	}
	return ids, all
}

// complete completes the @name being typed at the end of the input from
// the names this screen knows (and @all in a group); it reports whether
// there was one to complete.
func (m *Model) complete() bool {
	v := m.input.Value()
	i := strings.LastIndexAny(v, " \t") + 1
	word, ok := strings.CutPrefix(v[i:], "@")
	if !ok || m.input.Position() != len([]rune(v)) {
		return false
	}
	var names []string
	for _, f := range m.friends {
		names = append(names, f.Username)
	}
	for _, n := range m.names {
		names = append(names, n)
	}
	if c := m.conv(m.current); c != nil && c.kind == protocol.ConvGroup {
		names = append(names, "all")
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var fits []string
	for _, n := range names {
		if len(n) >= len(word) && strings.EqualFold(n[:len(word)], word) && n != m.names[m.me] {
			fits = append(fits, n)
		}
	}
	switch len(fits) {
	case 0:
		m.fail("no one known here is called @" + word + "…")
	case 1:
		m.input.SetValue(v[:i] + "@" + fits[0] + " ")
		m.input.CursorEnd()
		m.say("")
	default:
		m.input.SetValue(v[:i] + "@" + commonPrefix(fits))
		m.input.CursorEnd()
		m.say("@" + strings.Join(fits, "  @"))
	}
	return true
}

func commonPrefix(ss []string) string {
	p := ss[0]
	for _, s := range ss[1:] {
		for !strings.HasPrefix(strings.ToLower(s), strings.ToLower(p)) {
			p = p[:len(p)-1]
		}
	}
	return p
}

// decorate returns the text shown for message x of c, the line quoting the
// message it replies to (or ""), and the line of its reactions (or "").
func (m *Model) decorate(c *conv, x *protocol.Message) (body, quote, reactions string) {
	body = MessageText(*x)
	switch {
	case x.Recalled:
		body = "⊘ message recalled"
	case x.Edited > 0:
		body += " (edited)"
	}
	if client.Mentioned(x, m.me) && !x.Recalled {
		body = "@ " + body
	}
	if x.ReplyTo != 0 {
		quote = fmt.Sprintf("↪ #%d", x.ReplyTo)
		if i := indexOf(c, x.ReplyTo); i >= 0 {
			q := &c.msgs[i]
			text := MessageText(*q)
			if q.Recalled {
				text = "⊘ recalled"
			}
			quote = "↪ " + m.nameOf(q.From) + ": " + clip(oneLine(text), 40)
		}
	}
	var rs []string
	for _, r := range x.Reactions {
		mark := ""
		if slices.Contains(r.Users, m.me) {
			mark = "•"
		}
		rs = append(rs, fmt.Sprintf("%s%s %d", mark, r.Emoji, r.Count))
	}
	return body, quote, strings.Join(rs, "  ")
}

// lastShown is the index of c's newest message that is not an event, or -1.
func lastShown(c *conv) int {
	for i := len(c.msgs) - 1; i >= 0; i-- {
		if !protocol.IsEvent(c.msgs[i].ContentType) {
			return i
		}
	}
	return -1
}
