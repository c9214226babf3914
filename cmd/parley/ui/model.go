// Package ui is the terminal chat client's screen: a Bubble Tea model
// that turns key presses and server events into state, and state into a
// view. It talks to the server only through Backend, so tests drive it
// with a fake and the program with a *client.Client.
package ui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// Backend is what the screen needs of a server connection; *client.Client
// has it.
type Backend interface {
	Login(ctx context.Context, username, password string) (protocol.LoginOK, error)
	Register(ctx context.Context, username, password string) (protocol.LoginOK, error)
	UserID() int64
	Send(ctx context.Context, to int64, contentType uint16, body []byte) (protocol.SendAck, error)
	SendGroup(ctx context.Context, group int64, contentType uint16, body []byte) (protocol.SendAck, error)
	History(ctx context.Context, conv string, beforeSeq uint64, limit uint32) (protocol.HistoryResult, error)
	DeleteHistory(ctx context.Context, conv string, seqs []uint64, upTo uint64) error
	Conversations(ctx context.Context, limit uint32) ([]protocol.Conversation, error)
	Ack(ctx context.Context, conv string, seq uint64) error
	SearchUsers(ctx context.Context, prefix, after string, limit uint32) (protocol.UserList, error)
	Profile(ctx context.Context, user int64) (protocol.UserInfo, error)
	RequestFriend(ctx context.Context, user int64, note string) error
	FriendRequests(ctx context.Context) (protocol.FriendRequestList, error)
	AnswerFriend(ctx context.Context, from int64, accept bool) error
	Friends(ctx context.Context) ([]protocol.UserInfo, error)
	CreateGroup(ctx context.Context, name string, open bool, members ...int64) (protocol.GroupInfo, error)
	JoinGroup(ctx context.Context, group int64) (protocol.GroupInfo, error)
	InviteToGroup(ctx context.Context, group int64, users ...int64) error
	LeaveGroup(ctx context.Context, group int64) error
	Groups(ctx context.Context) ([]protocol.GroupInfo, error)
	GroupMembers(ctx context.Context, group int64) ([]protocol.Member, error)
}

// Screens.
const (
	screenLogin = iota
	screenChat
)

// conv is one conversation in the list.
type conv struct {
	id     string
	title  string
	unread int
	last   string
	msgs   []protocol.Message // oldest first
	oldest uint64             // lowest seq loaded; 0 before any
	more   bool               // older history may exist
}

// Model is the screen's state.
type Model struct {
	b       Backend
	timeout time.Duration

	screen   int
	field    int // login: 0 username, 1 password
	username string
	password string

	me      int64
	convs   []*conv // by recency
	current string  // conversation shown
	names   map[int64]string
	friends []protocol.UserInfo
	reqs    []protocol.PendingRequest
	groups  []protocol.GroupInfo
	panel   []string // the side panel's extra lines (friends, members, help)

	told   bool // the pending requests were announced after login
	input  string
	status string // connection state
	notice string // the last notice or error, in plain words
	width  int
	height int
	quit   bool
}

// New returns the login screen.
func New(b Backend) *Model {
	return &Model{b: b, timeout: 10 * time.Second, names: map[int64]string{}, status: "connected", width: 100, height: 30}
}

// Messages the model receives besides key presses.
type (
	// IncomingMsg is a message delivered by the client.
	IncomingMsg struct{ M protocol.Message }
	// EventMsg is a change of the client's connection state.
	EventMsg struct{ E client.Event }
	// NoticeMsg is a friend, group or presence push.
	NoticeMsg struct{ N client.Notice }

	loggedInMsg struct {
		ok  protocol.LoginOK
		err error
	}
	resultMsg struct {
		text    string
		err     error
		refresh bool
		open    string // a conversation to show
	}
	convsMsg struct {
		list    []protocol.Conversation
		friends []protocol.UserInfo
		reqs    protocol.FriendRequestList
		groups  []protocol.GroupInfo
		err     error
	}
	historyMsg struct {
		conv string
		res  protocol.HistoryResult
		err  error
	}
	panelMsg struct {
		lines []string
		err   error
	}
)

// Init implements tea.Model.
func (m *Model) Init() tea.Cmd { return nil }

// Quitting reports whether the user asked to leave.
func (m *Model) Quitting() bool { return m.quit }

func (m *Model) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), m.timeout)
}

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyMsg:
		return m, m.key(msg)
	case loggedInMsg:
		if msg.err != nil {
			m.notice = Plain(msg.err)
			return m, nil
		}
		m.screen, m.me, m.notice = screenChat, msg.ok.UserID, "logged in as "+msg.ok.Username+" — /help for commands"
		m.names[m.me] = msg.ok.Username
		m.password = ""
		return m, m.refresh()
	case IncomingMsg:
		m.incoming(msg.M)
	case EventMsg:
		m.event(msg.E)
		if msg.E.Type == client.EventLoggedIn && m.screen == screenChat {
			return m, m.refresh()
		}
	case NoticeMsg:
		return m, m.noticed(msg.N)
	case resultMsg:
		if msg.err != nil {
			m.notice = Plain(msg.err)
		} else if msg.text != "" {
			m.notice = msg.text
		}
		if msg.open != "" {
			m.open(msg.open)
		}
		if msg.refresh {
			return m, m.refresh()
		}
	case convsMsg:
		m.loaded(msg)
		if c := m.conv(m.current); c != nil && c.oldest == 0 {
			return m, m.loadHistory(c)
		}
	case historyMsg:
		m.history(msg)
	case panelMsg:
		if msg.err != nil {
			m.notice = Plain(msg.err)
		} else {
			m.panel = msg.lines
		}
	}
	return m, nil
}

// key handles one key press.
func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	switch k.Type {
	case tea.KeyCtrlC:
		m.quit = true
		return tea.Quit
	case tea.KeyBackspace:
		m.editField(func(s string) string {
			if s == "" {
				return s
			}
			r := []rune(s)
			return string(r[:len(r)-1])
		})
		return nil
	case tea.KeyRunes, tea.KeySpace:
		text := string(k.Runes)
		if k.Type == tea.KeySpace {
			text = " "
		}
		m.editField(func(s string) string { return s + text })
		return nil
	}
	if m.screen == screenLogin {
		switch k.Type {
		case tea.KeyTab, tea.KeyShiftTab, tea.KeyUp, tea.KeyDown:
			m.field = 1 - m.field
		case tea.KeyEnter:
			return m.login(false)
		case tea.KeyCtrlR:
			return m.login(true)
		}
		return nil
	}
	switch k.Type {
	case tea.KeyTab, tea.KeyDown:
		m.cycle(1)
		return m.loadIfEmpty()
	case tea.KeyShiftTab, tea.KeyUp:
		m.cycle(-1)
		return m.loadIfEmpty()
	case tea.KeyPgUp:
		if c := m.conv(m.current); c != nil && c.more {
			return m.loadHistory(c)
		}
	case tea.KeyEsc:
		m.panel = nil
	case tea.KeyEnter:
		line := strings.TrimSpace(m.input)
		m.input = ""
		if line == "" {
			return nil
		}
		if strings.HasPrefix(line, "/") {
			cmd, err := Parse(line)
			if err != nil {
				m.notice = err.Error()
				return nil
			}
			return m.run(cmd)
		}
		return m.send(line)
	}
	return nil
}

func (m *Model) editField(f func(string) string) {
	switch {
	case m.screen == screenChat:
		m.input = f(m.input)
	case m.field == 0:
		m.username = f(m.username)
	default:
		m.password = f(m.password)
	}
}

func (m *Model) login(register bool) tea.Cmd {
	if m.username == "" || m.password == "" {
		m.notice = "type a username and a password"
		return nil
	}
	user, pass := m.username, m.password
	m.notice = "logging in…"
	return func() tea.Msg {
		ctx, cancel := m.ctx()
		defer cancel()
		var ok protocol.LoginOK
		var err error
		if register {
			ok, err = m.b.Register(ctx, user, pass)
		} else {
			ok, err = m.b.Login(ctx, user, pass)
		}
		return loggedInMsg{ok: ok, err: err}
	}
}

// refresh reloads the conversation list, friends, requests and groups.
func (m *Model) refresh() tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := m.ctx()
		defer cancel()
		var r convsMsg
		if r.list, r.err = m.b.Conversations(ctx, 100); r.err != nil {
			return r
		}
		if r.friends, r.err = m.b.Friends(ctx); r.err != nil {
			return r
		}
		if r.reqs, r.err = m.b.FriendRequests(ctx); r.err != nil {
			return r
		}
		r.groups, r.err = m.b.Groups(ctx)
		return r
	}
}

func (m *Model) loaded(r convsMsg) {
	if r.err != nil {
		m.notice = Plain(r.err)
		return
	}
	m.friends, m.reqs, m.groups = r.friends, append(r.reqs.Incoming, r.reqs.Outgoing...), r.groups
	for _, f := range r.friends {
		m.names[f.UserID] = f.Username
	}
	for _, q := range m.reqs {
		m.names[q.From.UserID], m.names[q.To.UserID] = q.From.Username, q.To.Username
	}
	for _, g := range r.groups {
		m.ensure(protocol.GroupConv(g.GroupID))
	}
	for _, c := range r.list {
		cv := m.ensure(c.Conv)
		cv.unread = int(c.Unread)
		if c.Last != nil {
			cv.last = string(c.Last.Body)
		}
	}
	for _, cv := range m.convs {
		cv.title = m.title(cv.id)
	}
	if m.current == "" && len(m.convs) > 0 {
		m.current = m.convs[0].id
	}
	if n := len(r.reqs.Incoming); n > 0 && !m.told {
		m.notice = fmt.Sprintf("%d friend request(s) waiting: /requests, /accept NAME", n)
	}
	m.told = true
}

// ensure returns the conversation, adding it to the list if new.
func (m *Model) ensure(id string) *conv {
	if c := m.conv(id); c != nil {
		return c
	}
	c := &conv{id: id, title: m.title(id), more: true}
	m.convs = append(m.convs, c)
	return c
}

func (m *Model) conv(id string) *conv {
	for _, c := range m.convs {
		if c.id == id {
			return c
		}
	}
	return nil
}

// title names a conversation: the other user, or the group's name.
func (m *Model) title(id string) string {
	p, ok := protocol.ParseConv(id)
	if !ok {
		return id
	}
	if p.Kind == protocol.ConvGroup {
		for _, g := range m.groups {
			if g.GroupID == p.Group {
				return "#" + g.Name
			}
		}
		return fmt.Sprintf("#group-%d", p.Group)
	}
	peer := p.A
	if peer == m.me {
		peer = p.B
	}
	if n, ok := m.names[peer]; ok {
		return n
	}
	return fmt.Sprintf("user-%d", peer)
}

func (m *Model) cycle(step int) {
	if len(m.convs) == 0 {
		return
	}
	i := slices.IndexFunc(m.convs, func(c *conv) bool { return c.id == m.current })
	i = (i + step + len(m.convs)) % len(m.convs)
	m.open(m.convs[i].id)
}

// open shows a conversation and marks it read.
func (m *Model) open(id string) {
	c := m.ensure(id)
	m.current = id
	c.unread = 0
}

func (m *Model) loadIfEmpty() tea.Cmd {
	c := m.conv(m.current)
	if c == nil || c.oldest != 0 || !c.more {
		return m.ack(c)
	}
	return tea.Batch(m.loadHistory(c), m.ack(c))
}

// ack moves the read cursor to the newest message shown.
func (m *Model) ack(c *conv) tea.Cmd {
	if c == nil || len(c.msgs) == 0 {
		return nil
	}
	id, seq := c.id, c.msgs[len(c.msgs)-1].Seq
	return func() tea.Msg {
		ctx, cancel := m.ctx()
		defer cancel()
		return resultMsg{err: m.b.Ack(ctx, id, seq)}
	}
}

// loadHistory fetches the page before the oldest message loaded.
func (m *Model) loadHistory(c *conv) tea.Cmd {
	id, before := c.id, c.oldest
	return func() tea.Msg {
		ctx, cancel := m.ctx()
		defer cancel()
		res, err := m.b.History(ctx, id, before, 30)
		return historyMsg{conv: id, res: res, err: err}
	}
}

func (m *Model) history(h historyMsg) {
	var pe *protocol.Error
	if errors.As(h.err, &pe) && (pe.Code == protocol.CodeNotMember || pe.Code == protocol.CodeNoSuchGroup) {
		m.notice = Plain(h.err)
		return
	}
	if h.err != nil {
		m.notice = Plain(h.err)
		return
	}
	c := m.ensure(h.conv)
	have := map[uint64]bool{}
	for _, x := range c.msgs {
		have[x.Seq] = true
	}
	for _, x := range h.res.Messages {
		if !have[x.Seq] {
			c.msgs = append(c.msgs, x)
		}
	}
	sort.Slice(c.msgs, func(i, j int) bool { return c.msgs[i].Seq < c.msgs[j].Seq })
	if len(c.msgs) > 0 {
		c.oldest = c.msgs[0].Seq
	}
	c.more = h.res.HasMore
}

// incoming adds a delivered message; one for another conversation raises
// its unread count and says so.
func (m *Model) incoming(x protocol.Message) {
	c := m.ensure(x.Conv)
	if !slices.ContainsFunc(c.msgs, func(y protocol.Message) bool { return y.Seq == x.Seq }) {
		c.msgs = append(c.msgs, x)
	}
	c.last = string(x.Body)
	m.toFront(c)
	if x.Conv != m.current {
		c.unread++
		m.notice = fmt.Sprintf("new message from %s in %s", m.nameOf(x.From), c.title)
	}
	if m.current == "" {
		m.current = x.Conv
	}
}

func (m *Model) toFront(c *conv) {
	i := slices.Index(m.convs, c)
	if i > 0 {
		copy(m.convs[1:i+1], m.convs[:i])
		m.convs[0] = c
	}
}

func (m *Model) nameOf(user int64) string {
	if user == m.me {
		return "me"
	}
	if n, ok := m.names[user]; ok {
		return n
	}
	return fmt.Sprintf("user-%d", user)
}

// event turns connection events into the status line.
func (m *Model) event(e client.Event) {
	switch e.Type {
	case client.EventConnected:
		m.status = "connected to " + e.Addr
	case client.EventLoggedIn:
		m.status = "online at " + e.Addr
	case client.EventDisconnected:
		m.status = "disconnected"
		if e.Err != nil {
			m.notice = Plain(e.Err)
		}
	case client.EventReconnecting:
		m.status = fmt.Sprintf("reconnecting (attempt %d, in %v)", e.Attempt, e.Delay.Round(time.Millisecond))
	case client.EventRedirected:
		m.status = "redirected to " + e.Addr
	case client.EventClosed:
		m.status = "closed"
		if e.Err != nil {
			m.notice = Plain(e.Err)
		}
	}
}

// noticed shows a push in plain words and refreshes what it changed.
func (m *Model) noticed(n client.Notice) tea.Cmd {
	switch {
	case n.Friend != nil:
		who := n.Friend.User.Username
		m.names[n.Friend.User.UserID] = who
		switch n.Friend.Kind {
		case protocol.FriendRequested:
			m.notice = fmt.Sprintf("%s wants to be your friend (%q): /accept %s or /decline %s", who, n.Friend.Note, who, who)
		case protocol.FriendAccepted:
			m.notice = who + " is now your friend"
		case protocol.FriendDeclined:
			m.notice = who + " declined your friend request"
		case protocol.FriendRemoved:
			m.notice = who + " removed you as a friend"
		}
		return m.refresh()
	case n.Group != nil:
		m.notice = fmt.Sprintf("group %d: %s", n.Group.GroupID, n.Group.Kind)
		return m.refresh()
	case n.Presence != nil:
		state := "offline"
		if n.Presence.Online {
			state = "online"
		}
		for i := range m.friends {
			if m.friends[i].UserID == n.Presence.UserID {
				m.friends[i].Online = n.Presence.Online
			}
		}
		m.notice = m.nameOf(n.Presence.UserID) + " is " + state
	}
	return nil
}

// send sends a line to the current conversation.
func (m *Model) send(text string) tea.Cmd {
	p, ok := protocol.ParseConv(m.current)
	if !ok {
		m.notice = "no conversation open: /msg NAME or /group new NAME"
		return nil
	}
	me := m.me
	// Shown at once; the server's copy never comes back to this client.
	pending := protocol.Message{Conv: m.current, From: me, Body: []byte(text), ServerTime: time.Now().UnixMilli()}
	return func() tea.Msg {
		ctx, cancel := m.ctx()
		defer cancel()
		var ack protocol.SendAck
		var err error
		if p.Kind == protocol.ConvGroup {
			ack, err = m.b.SendGroup(ctx, p.Group, 0, []byte(text))
		} else {
			peer := p.A
			if peer == me {
				peer = p.B
			}
			ack, err = m.b.Send(ctx, peer, 0, []byte(text))
		}
		if err != nil {
			return resultMsg{err: err}
		}
		pending.Seq, pending.MsgID = ack.Seq, ack.MsgID
		return IncomingMsg{M: pending}
	}
}
