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

// conv is one conversation of the list.
type conv struct {
	id    string
	kind  protocol.ConvKind
	peer  int64 // of a direct conversation, once the user is known
	group int64

	msgs []protocol.Message // loaded so far, by seq

	lastText string // the newest message, for the list
	lastFrom int64
	lastTime int64 // Unix ms: orders the list

	loaded  bool   // a page of history was asked for
	loading bool   // one is in flight
	more    bool   // older messages exist on the server
	next    uint64 // before_seq of the next older page

	// Unread: the server's count as of its last_seq base, plus the
	// messages from others pushed since with a seq above it.
	srvUnread int
	base      uint64
	extra     map[uint64]bool
	read      uint64 // the read cursor sent with Ack

	// The unread divider stands before the first message from others
	// above divider; jump: the view still has to be moved to it.
	divided, jump bool
	divider       uint64
	// found is the message /goto brought up (marked in the view); seek:
	// the view still has to be moved to it.
	found uint64
	seek  bool
	// notes are group events (joins, leaves...) shown in the timeline.
	notes []note

	// Receipts and state (receipts.go): the other user's read cursor and
	// what reached its devices (direct); the read counts of the user's own
	// messages (group); who types until when; the user's flags.
	peerRead, delivered uint64
	readBy              map[uint64]uint32
	typing              map[int64]int64
	muted, pinned       bool
	asked               bool // Receipts was asked since the last login

	timer       uint32 // disappearing messages, in seconds (expiry.go)
	lastExpires int64  // when the message of lastText expires (Unix ms; 0: never)
}

// note is a group event shown among the messages, at the time it came.
type note struct {
	at int64 // Unix ms
	e  protocol.GroupEvent
}

func (c *conv) unread() int { return c.srvUnread + len(c.extra) }

// top is the highest seq known of the conversation.
func (c *conv) top() uint64 {
	t := c.base
	if n := len(c.msgs); n > 0 {
		t = max(t, c.msgs[n-1].Seq)
	}
	return t
}

func (m *Model) conv(id string) *conv {
	for _, c := range m.convs {
		if c.id == id {
			return c
		}
	}
	return nil
}

// ensure returns the conversation, adding it to the list if new.
func (m *Model) ensure(id string) *conv {
	if c := m.conv(id); c != nil {
		return c
	}
	c := &conv{id: id, more: true, extra: map[uint64]bool{}}
	if p, ok := protocol.ParseConv(id); ok {
		c.kind, c.group = p.Kind, p.Group
		if p.Kind == protocol.ConvDirect && m.me != 0 {
			c.peer = p.Peer(m.me)
		}
	}
	m.convs = append(m.convs, c)
	return c
}

// sortConvs puts the pinned first, then the most recent first.
func (m *Model) sortConvs() {
	slices.SortStableFunc(m.convs, func(a, b *conv) int {
		switch {
		case a.pinned != b.pinned:
			if a.pinned {
				return -1
			}
			return 1
		case a.lastTime > b.lastTime:
			return -1
		case a.lastTime < b.lastTime:
			return 1
		}
		return 0
	})
}

// title names a conversation: the other user, or "#" and the group's name.
func (m *Model) title(c *conv) string {
	switch c.kind {
	case protocol.ConvGroup:
		return m.groupTitle(c.group)
	case protocol.ConvDirect:
		if c.peer == 0 {
			if p, ok := protocol.ParseConv(c.id); ok {
				c.peer = p.Peer(m.me)
			}
		}
		return m.nameOf(c.peer)
	}
	return c.id
}

// open shows a conversation from its newest message.
func (m *Model) open(id string) tea.Cmd {
	c := m.ensure(id)
	m.current, m.scroll, m.panel, m.newBelow = id, 0, nil, 0
	c.divided, c.jump = false, false
	return m.show(c)
}

// show marks the conversation shown read and loads its history.
func (m *Model) show(c *conv) tea.Cmd {
	cmds := []tea.Cmd{m.markRead(c)}
	if !c.loaded {
		cmds = append(cmds, m.loadHistory(c))
	}
	if c.kind == protocol.ConvDirect {
		cmds = append(cmds, m.learn(c.peer), m.askReceipts(c))
	}
	return tea.Batch(cmds...)
}

func (m *Model) cycle(step int) tea.Cmd {
	if len(m.convs) == 0 {
		m.fail("no conversations yet: /msg NAME, /add NAME or /group new NAME")
		return nil
	}
	i := slices.IndexFunc(m.convs, func(c *conv) bool { return c.id == m.current })
	if i < 0 && step < 0 {
		i = 0
	}
	i = (i + step + len(m.convs)) % len(m.convs)
	return m.open(m.convs[i].id)
}

// drop removes a conversation from the list (a group left or gone).
func (m *Model) drop(id string) {
	i := slices.IndexFunc(m.convs, func(c *conv) bool { return c.id == id })
	if i < 0 {
		return
	}
	m.convs = slices.Delete(m.convs, i, i+1)
	if m.current == id {
		m.current, m.scroll = "", 0
		if len(m.convs) > 0 {
			m.current = m.convs[0].id
		}
	}
}

// markRead clears the unread count and moves the read cursor.
func (m *Model) markRead(c *conv) tea.Cmd {
	if c.unread() > 0 && c.id == m.current && !c.divided {
		c.divided, c.divider, c.jump = true, c.read, true
	}
	c.srvUnread, c.extra = 0, map[uint64]bool{}
	m.jumpToDivider(c)
	top := c.top()
	if top <= c.read {
		return nil
	}
	c.read = top
	b, id := m.b, c.id
	return m.call(func(ctx context.Context) tea.Msg {
		if err := b.Ack(ctx, id, top); err != nil {
			return doneMsg{err: err}
		}
		return nil
	})
}

// add records a message of c; it reports false for one it had.
func (m *Model) add(c *conv, x protocol.Message) bool {
	i, found := slices.BinarySearchFunc(c.msgs, x.Seq, func(y protocol.Message, seq uint64) int {
		switch {
		case y.Seq < seq:
			return -1
		case y.Seq > seq:
			return 1
		}
		return 0
	})
	if found || client.Expired(&x, time.Now()) {
		return false
	}
	c.msgs = slices.Insert(c.msgs, i, x)
	if secs, ok := protocol.ParseTimer(x.Body); ok && x.ContentType == protocol.ContentTimer && i == len(c.msgs)-1 {
		c.timer = secs
	}
	if protocol.IsEvent(x.ContentType) {
		applyEvent(c, &x)
		if t := indexOf(c, x.Ref); t >= 0 && t == lastShown(c) {
			c.lastText = string(c.msgs[t].Body)
		}
		return true
	}
	if i == len(c.msgs)-1 {
		c.lastText, c.lastFrom, c.lastExpires = MessageText(x), x.From, x.ExpiresAt
		c.lastTime = max(c.lastTime, x.ServerTime)
	}
	return true
}

// received adds a pushed message. One for another conversation raises its
// unread count and says so.
func (m *Model) received(x protocol.Message) tea.Cmd {
	c := m.ensure(x.Conv)
	shown := x.Conv == m.current
	before := 0
	if shown && m.scroll > 0 {
		before = len(m.chatLines(c))
	}
	if shown && m.catchingUp && x.From != m.me && x.Seq > c.read && !c.divided {
		// Missed while away, caught up after a login: the divider goes
		// above it.
		c.divided, c.divider, c.jump = true, c.read, true
	}
	if !m.add(c, x) {
		return nil
	}
	defer m.jumpToDivider(c)
	if shown && m.scroll > 0 {
		m.scroll += len(m.chatLines(c)) - before // the view stays where it was
		if x.From != m.me {
			m.newBelow++
		}
	}
	m.sortConvs()
	cmds := []tea.Cmd{m.learn(x.From)}
	switch {
	case x.From == m.me:
	case m.current == "":
		cmds = append(cmds, m.open(x.Conv))
	case shown && m.screen == screenChat:
		cmds = append(cmds, m.markRead(c))
	case protocol.IsEvent(x.ContentType):
		// A recall, edit or reaction is folded in and is no news.
	case x.Seq > c.base && x.Seq > c.read:
		c.extra[x.Seq] = true
		where := ""
		if c.kind == protocol.ConvGroup {
			where = " in " + m.title(c)
		}
		what := "new message from"
		if client.Mentioned(&x, m.me) {
			what = "you were mentioned by"
		} else if c.muted {
			break // counted, not announced: a mention is, even here
		}
		m.say(fmt.Sprintf("%s %s%s: %s — Tab to read", what, m.nameOf(x.From), where, clip(MessageText(x), 40)))
		if bell := m.cfg.Bell; bell != nil {
			cmds = append(cmds, func() tea.Msg { bell(); return nil })
		}
	}
	cmds = append(cmds, m.titleCmd())
	return tea.Batch(cmds...)
}

// loadHistory asks for the page before the oldest message loaded.
func (m *Model) loadHistory(c *conv) tea.Cmd {
	if c.loading || (c.loaded && !c.more) {
		return nil
	}
	c.loading, c.loaded = true, true
	b, id, before, n := m.b, c.id, c.next, m.cfg.PageSize
	return m.call(func(ctx context.Context) tea.Msg {
		res, err := b.History(ctx, id, before, n)
		return historyMsg{conv: id, res: res, err: err}
	})
}

func (m *Model) history(h historyMsg) tea.Cmd {
	c := m.conv(h.conv)
	if c == nil {
		return nil
	}
	c.loading = false
	if h.err != nil {
		c.loaded = false // PgUp asks again
		m.fail(Plain(h.err))
		return nil
	}
	var cmds []tea.Cmd
	m.anchored(c, func() {
		// A page may bring newer messages too (the catch-up has not
		// delivered them yet): they go below the view, which stays.
		for _, x := range h.res.Messages {
			m.add(c, x)
			cmds = append(cmds, m.learn(x.From))
		}
		c.more, c.next = h.res.HasMore, h.res.Next
	})
	m.saveCache()
	m.jumpToDivider(c)
	cmds = append(cmds, m.seekFound(c))
	if c.id == m.current {
		cmds = append(cmds, m.markRead(c))
		if c.more && m.scroll >= m.maxScroll() {
			// The page does not fill the screen, or the reader is at the
			// top already: the next one.
			cmds = append(cmds, m.loadHistory(c))
		}
	}
	m.sortConvs()
	return tea.Batch(cmds...)
}

// snapshot applies a refresh.
func (m *Model) snapshot(s snapshotMsg) tea.Cmd {
	m.refreshing = false
	var cmds []tea.Cmd
	if m.stale {
		m.stale = false
		cmds = append(cmds, m.refresh())
	}
	if s.err != nil {
		if !errors.Is(s.err, client.ErrClosed) {
			m.fail(Plain(s.err))
		}
		return tea.Batch(cmds...)
	}
	m.friends = s.friends
	m.incoming, m.outgoing = s.reqs.Incoming, s.reqs.Outgoing
	for _, f := range s.friends {
		m.names[f.UserID] = f.Username
	}
	for _, r := range append(slices.Clone(s.reqs.Incoming), s.reqs.Outgoing...) {
		m.names[r.From.UserID], m.names[r.To.UserID] = r.From.Username, r.To.Username
	}
	m.groups = map[int64]protocol.GroupInfo{}
	for _, g := range s.groups {
		m.groups[g.GroupID] = g
		m.notice = rename(m.notice, fmt.Sprintf("#group-%d", g.GroupID), "#"+g.Name)
		c := m.ensure(protocol.GroupConv(g.GroupID))
		c.lastTime = max(c.lastTime, g.Created)
	}
	for _, sc := range s.convs {
		p, ok := protocol.ParseConv(sc.Conv)
		if !ok {
			continue
		}
		if _, member := m.groups[p.Group]; p.Kind == protocol.ConvGroup && !member {
			continue // a group left: its conversation is gone from the list
		}
		c := m.ensure(sc.Conv)
		c.srvUnread, c.base = int(sc.Unread), sc.LastSeq
		c.read = max(c.read, sc.AckSeq)
		c.muted, c.pinned = sc.Muted, sc.Pinned
		c.timer = sc.Timer
		c.asked = false // read again what the other side read meanwhile
		for seq := range c.extra {
			if seq <= sc.LastSeq {
				delete(c.extra, seq)
			}
		}
		if l := sc.Last; l != nil && (len(c.msgs) == 0 || l.Seq >= c.msgs[len(c.msgs)-1].Seq) {
			c.lastText, c.lastFrom, c.lastExpires = MessageText(*l), l.From, l.ExpiresAt
			c.lastTime = max(c.lastTime, l.ServerTime)
			cmds = append(cmds, m.learn(l.From))
		}
		if c.kind == protocol.ConvDirect {
			cmds = append(cmds, m.learn(p.Peer(m.me)))
		}
	}
	for _, c := range slices.Clone(m.convs) {
		if _, member := m.groups[c.group]; c.kind == protocol.ConvGroup && !member {
			m.drop(c.id)
		}
	}
	m.sortConvs()
	if c := m.conv(m.current); c != nil {
		cmds = append(cmds, m.show(c))
	} else if len(m.convs) > 0 {
		cmds = append(cmds, m.open(m.convs[0].id))
	}
	if !m.refreshed && len(m.incoming) > 0 {
		m.say(fmt.Sprintf("%d friend request(s) waiting: /requests lists them, /accept NAME answers", len(m.incoming)))
	}
	m.refreshed, m.catchingUp = true, false
	m.saveCache()
	return tea.Batch(cmds...)
}

// scrollBy moves the chat up (n > 0) or down; at the top it loads the
// page before.
func (m *Model) scrollBy(n int) tea.Cmd {
	m.stopJump()
	if m.panel != nil {
		bottom := max(len(m.panel)-m.chatRows(), 0)
		if n < 0 && m.panelTop >= bottom && m.searchPanel() && m.srch.more {
			return m.more() // PgDn at the end of the matches: the next page
		}
		m.panelTop = min(max(m.panelTop-n, 0), bottom)
		return nil
	}
	c := m.conv(m.current)
	if c == nil {
		return nil
	}
	m.scroll += n
	m.clampScroll()
	if n > 0 && m.scroll >= m.maxScroll() && c.more {
		return m.loadHistory(c)
	}
	return nil
}

func (m *Model) clampScroll() {
	m.scroll = min(max(m.scroll, 0), m.maxScroll())
	if m.scroll == 0 {
		m.newBelow = 0
	}
}

// anchored runs f, which adds lines to c, and keeps the line at the
// bottom of the view where it was, when the reader has scrolled up.
func (m *Model) anchored(c *conv, f func()) {
	if c.id != m.current || m.scroll == 0 {
		f()
		return
	}
	lines := m.chatLines(c)
	i := len(lines) - 1 - m.scroll
	if i < 0 || i >= len(lines) {
		f()
		return
	}
	anchor := lines[i]
	f()
	after := m.chatLines(c)
	for j := len(after) - 1; j >= 0; j-- {
		if after[j] == anchor {
			m.scroll = len(after) - 1 - j
			return
		}
	}
}

// stopJump leaves the view where the reader puts it.
func (m *Model) stopJump() {
	if c := m.conv(m.current); c != nil {
		c.jump = false
	}
}

// jumpToDivider scrolls the conversation shown so that its unread divider
// is the second line in sight (one line of what was read above it), once
// its line is loaded.
func (m *Model) jumpToDivider(c *conv) {
	if !c.jump || c.id != m.current {
		return
	}
	lines := m.chatLines(c)
	i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, dividerText) })
	if i < 0 {
		return
	}
	m.scroll = max(len(lines)-i-(m.chatRows()-1), 0)
	m.clampScroll()
	// While all of it fits, messages still coming in (a catch-up) could
	// push the divider out of sight: keep it in sight until the view has
	// to scroll, or the reader moves.
	c.jump = m.scroll == 0
}

// titleCmd sets the terminal's title to the unread count of the other
// conversations, when it changed (Config.Title).
func (m *Model) titleCmd() tea.Cmd {
	if !m.cfg.Title {
		return nil
	}
	n := 0
	for _, c := range m.convs {
		n += c.unread()
	}
	if n == m.titleCount {
		return nil
	}
	m.titleCount = n
	if n == 0 {
		return tea.SetWindowTitle("parley")
	}
	return tea.SetWindowTitle(fmt.Sprintf("(%d) parley", n))
}

// maxScroll is how far up the loaded lines of the conversation shown go.
func (m *Model) maxScroll() int {
	c := m.conv(m.current)
	if c == nil {
		return 0
	}
	return max(len(m.chatLines(c))-m.chatRows(), 0)
}
