// Package ui is the terminal chat client's screen: a Bubble Tea model that
// turns key presses and server pushes into state, and state into a view.
// Update does no I/O: every request to the server is a tea.Cmd that runs
// the Backend and returns its answer as a message, so tests drive the
// model with a fake Backend, and the program with a *client.Client.
package ui

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// Config is what the screen starts from. Zero values are documented.
type Config struct {
	Addr     string // the server, shown in the status line
	Username string // prefilled on the login screen
	// Token is the resume token of an earlier login. If set, Init logs in
	// with it; when the server refuses it the login screen says so.
	Token string
	// Saved is called after every login the screen makes, with the new
	// session, to keep its token. It runs in a tea.Cmd, not in Update. A
	// nil Saved keeps nothing; an error is shown.
	Saved    func(protocol.LoginOK) error
	Timeout  time.Duration // of each request; 0: 15s
	PageSize uint32        // messages per history page; 0: 50
	// Dir keeps each account's outgoing queue and cache (AccountFile);
	// "": in memory only.
	Dir string
	// Resumed: the client logs in with the saved session by itself
	// (client.Resume), as user UserID named Username. The screen starts
	// on the chat at once, from the cache and the outgoing queue, and
	// catches up when the login is through.
	Resumed bool
	UserID  int64
	// Bell is called for a message in a conversation not shown (nil:
	// none); Title keeps the unread count in the terminal's title.
	Bell  func()
	Title bool
}

type screen uint8

const (
	screenLogin screen = iota
	screenChat
)

// Model is the screen's state. Its zero value is not usable: call New.
type Model struct {
	b   Backend
	cfg Config
	st  styles

	screen     screen
	typingAt   time.Time // when typing was last told (receipts.go)
	user, pass textinput.Model
	busy       bool // a login is in flight

	me       int64
	names    map[int64]string // user id → username
	asked    map[int64]bool   // profiles looked up already
	convs    []*conv          // most recent first
	current  string           // the conversation shown
	friends  []protocol.UserInfo
	incoming []protocol.PendingRequest // friend requests to me
	outgoing []protocol.PendingRequest // mine, unanswered
	groups   map[int64]protocol.GroupInfo
	// refreshing: a snapshot is in flight; stale: another is wanted after
	// it; refreshed: one was applied since the login.
	refreshing, stale, refreshed bool

	input    textinput.Model
	scroll   int                // lines the chat is scrolled up from its newest
	panel    []string           // a list over the chat (help, friends, members...), until Esc
	found    []protocol.Message // the results of the last /search and its /more pages, for /goto
	srch     searching          // the last /search, for /more
	panelTop int

	state   connState
	attempt int
	addr    string
	notice  string
	// expireAt is when the next expireMsg is due (Unix ms; 0: none).
	expireAt int64
	bad      bool // notice reports a failure

	serverMax int         // LoginOK.max_message of the last login; 0: not told (DefaultMaxBody)
	locked    error       // another parley holds the account's queue: the screen quits
	outbox    *Outbox     // nil: the queue is kept in memory only
	out       []*outgoing // the outgoing queue, oldest first, refused ones too
	cachePath string
	closed    bool // the client is closed: nothing more goes out
	quitArmed bool // Ctrl+C was pressed once with messages queued
	wasOnline bool // logged in once at least
	// lookingUp is the user /msg looks for on the server; lines typed
	// meanwhile wait in held for that conversation.
	lookingUp string
	held      []string

	newBelow   int      // messages arrived below the view while scrolled up
	multi      []string // lines of a message composed with Alt+Enter
	hist       []string // lines entered, oldest first
	histPos    int      // index in hist while browsing with ↑/↓; len(hist): not browsing
	histDraft  string   // the input before browsing began
	titleCount int
	editing    string // client_msg_id of the failed message taken back with ↑
	catchingUp bool   // logged in, and the first snapshot after it is not in yet

	width, height int
	quitting      bool
}

// New returns the login screen for b.
func New(b Backend, cfg Config) *Model {
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = 50
	}
	m := &Model{
		b: b, cfg: cfg, st: newStyles(),
		names: map[int64]string{}, asked: map[int64]bool{}, groups: map[int64]protocol.GroupInfo{},
		addr: cfg.Addr, width: 100, height: 30,
	}
	m.user = newInput("", "")
	m.user.CharLimit = 32
	m.user.SetValue(cfg.Username)
	m.pass = newInput("", "")
	m.pass.EchoMode = textinput.EchoPassword
	m.user.Width, m.pass.Width = 24, 24
	m.input = newInput("> ", "type a message, or /help")
	m.input.Width = m.width - 4
	if cfg.Username == "" {
		m.user.Focus()
	} else {
		m.pass.Focus()
	}
	if cfg.Resumed {
		m.screen, m.me, m.state = screenChat, cfg.UserID, stateReconnecting
		m.catchingUp = true
		m.names[m.me] = cfg.Username
		m.input.Focus()
		m.openAccount()
		m.say("connecting… what you send goes out when the server answers")
		if len(m.out) > 0 {
			m.say(fmt.Sprintf("offline · %d queued · sent when the server answers", len(m.out)))
		}
	} else if cfg.Token != "" {
		m.busy = true
		m.say("resuming the saved session…")
	} else {
		m.say("log in, or register a new account")
	}
	return m
}

func newInput(prompt, placeholder string) textinput.Model {
	t := textinput.New()
	t.Prompt, t.Placeholder = prompt, placeholder
	t.Cursor.SetMode(cursor.CursorStatic) // no blink timer: Update stays synchronous
	return t
}

// Messages the model receives besides key presses.
type (
	// IncomingMsg is a message delivered by the client.
	IncomingMsg struct{ M protocol.Message }
	// EventMsg is a change of the client's connection state.
	EventMsg struct{ E client.Event }
	// NoticeMsg is a friend, group or presence push.
	NoticeMsg struct{ N client.Notice }

	loginMsg struct {
		ok           protocol.LoginOK
		err, saveErr error
		resumed      bool // with the saved token
	}
	snapshotMsg struct {
		convs   []protocol.Conversation
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
	sentMsg struct {
		conv, id string // conversation, client_msg_id
		ack      protocol.SendAck
		err      error
	}
	profileMsg struct {
		id   int64
		user protocol.UserInfo
		err  error
	}
	// doneMsg is the result of a command: words for the notice line, and
	// what to do next.
	doneMsg struct {
		text    string
		err     error
		refresh bool   // reload conversations, friends and groups
		open    string // show this conversation
		drop    string // remove this conversation from the list
		lookup  string // the /msg lookup this answers
	}
	panelMsg struct {
		lines []string
		err   error
	}
)

// Init implements tea.Model: it resumes the saved session, if any.
func (m *Model) Init() tea.Cmd {
	if m.locked != nil {
		m.quitting = true
		return tea.Quit
	}
	if m.cfg.Resumed {
		return m.pump()
	}
	if m.cfg.Token == "" {
		return nil
	}
	token, b, save := m.cfg.Token, m.b, m.cfg.Saved
	return m.call(func(ctx context.Context) tea.Msg {
		ok, err := b.LoginToken(ctx, token)
		r := loginMsg{ok: ok, err: err, resumed: true}
		if err == nil && save != nil {
			r.saveErr = save(ok)
		}
		return r
	})
}

// Quitting reports whether the user asked to leave.
func (m *Model) Quitting() bool { return m.quitting }

// call runs f in a tea.Cmd with a request timeout.
func (m *Model) call(f func(ctx context.Context) tea.Msg) tea.Cmd {
	timeout := m.cfg.Timeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return f(ctx)
	}
}

func (m *Model) say(s string)  { m.notice, m.bad = s, false }
func (m *Model) fail(s string) { m.notice, m.bad = s, true }

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.input.Width = max(m.width-4, 1)
		m.clampScroll()
	case tea.KeyMsg:
		return m, m.key(msg)
	case loginMsg:
		return m, m.loggedIn(msg)
	case IncomingMsg:
		return m, tea.Batch(m.received(msg.M), m.expireSoon())
	case expireMsg:
		return m, m.expireDue(time.Now())
	case fileSentMsg:
		return m, m.fileSent(msg)
	case EventMsg:
		m.event(msg.E)
		switch msg.E.Type {
		case client.EventLoggedIn:
			if msg.E.MaxMessage > 0 {
				m.serverMax = msg.E.MaxMessage
			}
			if m.screen == screenChat {
				m.catchingUp = true
				return m, tea.Batch(m.refresh(), m.pump())
			}
		case client.EventClosed:
			m.closed = true
		}
	case receiptsMsg:
		if c := m.conv(msg.conv); c != nil {
			c.peerRead = max(c.peerRead, msg.peerRead)
			c.delivered = max(c.delivered, msg.delivered)
		}
	case NoticeMsg:
		return m, m.noticed(msg.N)
	case snapshotMsg:
		return m, tea.Batch(m.snapshot(msg), m.expireSoon())
	case historyMsg:
		return m, tea.Batch(m.history(msg), m.expireSoon())
	case searchMsg:
		m.searched(msg)
		return m, m.expireSoon()
	case sentMsg:
		return m, m.sent(msg)
	case pumpMsg:
		return m, m.pump()
	case profileMsg:
		if msg.err == nil && msg.user.Username != "" {
			m.names[msg.id] = msg.user.Username
			// A notice written before the name was known says it now.
			m.notice = rename(m.notice, fmt.Sprintf("user-%d", msg.id), msg.user.Username)
			m.saveCache()
		}
	case doneMsg:
		return m, m.done(msg)
	case panelMsg:
		if msg.err != nil {
			m.fail(Plain(msg.err))
		} else {
			m.panel, m.panelTop = msg.lines, 0
		}
	}
	return m, nil
}

// key handles one key press.
func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	if k.Type == tea.KeyCtrlC {
		return m.quit()
	}
	m.quitArmed = false
	if k.Type == tea.KeyCtrlL {
		return tea.ClearScreen // the whole screen is drawn again
	}
	if m.screen == screenLogin {
		return m.loginKey(k)
	}
	switch k.Type {
	case tea.KeyEsc:
		if m.panel != nil {
			m.panel = nil
		} else {
			m.input.Reset()
			m.editing = ""
		}
		return nil
	case tea.KeyTab, tea.KeyCtrlN:
		if k.Type == tea.KeyTab && m.complete() {
			return nil
		}
		return m.cycle(1)
	case tea.KeyShiftTab, tea.KeyCtrlP:
		return m.cycle(-1)
	case tea.KeyPgUp:
		return m.scrollBy(max(m.chatRows()-2, 1))
	case tea.KeyPgDown:
		return m.scrollBy(-max(m.chatRows()-2, 1))
	case tea.KeyShiftUp:
		return m.scrollBy(1)
	case tea.KeyShiftDown:
		return m.scrollBy(-1)
	case tea.KeyUp:
		if m.panel != nil {
			return m.scrollBy(1)
		}
		if m.input.Value() == "" && m.histPos >= len(m.hist) && m.editFailed() {
			return nil
		}
		m.browse(-1)
		return nil
	case tea.KeyDown:
		if m.panel != nil {
			return m.scrollBy(-1)
		}
		m.browse(1)
		return nil
	case tea.KeyEnd:
		m.stopJump()
		m.scroll = 0
		m.clampScroll()
		return nil
	case tea.KeyEnter:
		if k.Alt { // a new line in the same message
			m.multi = append(m.multi, m.input.Value())
			m.input.Reset()
			return nil
		}
		return m.enter()
	}
	cmd := edit(&m.input, k)
	if k.Type == tea.KeyRunes && !strings.HasPrefix(m.input.Value(), "/") {
		return tea.Batch(cmd, m.typed())
	}
	return cmd
}

// edit applies a key to a text field. Letters go in as typed: Bubble Tea
// hands a burst of them (a slow link, a paste without bracketed paste) to
// one KeyMsg, and the field's own key bindings, matched by name, would
// take the letters "down" or "left" for those keys.
func edit(t *textinput.Model, k tea.KeyMsg) tea.Cmd {
	if k.Type == tea.KeyRunes && !k.Alt {
		v, pos := []rune(t.Value()), t.Position()
		t.SetValue(string(slices.Insert(v, pos, k.Runes...)))
		t.SetCursor(pos + len(k.Runes))
		return nil
	}
	var cmd tea.Cmd
	*t, cmd = t.Update(k)
	return cmd
}

func (m *Model) loginKey(k tea.KeyMsg) tea.Cmd {
	switch k.Type {
	case tea.KeyTab, tea.KeyShiftTab, tea.KeyUp, tea.KeyDown:
		m.switchField()
		return nil
	case tea.KeyEnter:
		if m.user.Focused() && m.pass.Value() == "" {
			m.switchField()
			return nil
		}
		return m.login(false)
	case tea.KeyCtrlR:
		return m.login(true)
	}
	if m.user.Focused() {
		return edit(&m.user, k)
	}
	return edit(&m.pass, k)
}

func (m *Model) switchField() {
	if m.user.Focused() {
		m.user.Blur()
		m.pass.Focus()
	} else {
		m.pass.Blur()
		m.user.Focus()
	}
}

// login logs in with the typed name and password, or registers them.
func (m *Model) login(register bool) tea.Cmd {
	if m.busy {
		return nil
	}
	user, pass := strings.TrimSpace(m.user.Value()), m.pass.Value()
	if user == "" || pass == "" {
		m.fail("type a username and a password")
		return nil
	}
	m.busy = true
	if register {
		m.say("registering " + user + "…")
	} else {
		m.say("logging in as " + user + "…")
	}
	b, save := m.b, m.cfg.Saved
	return m.call(func(ctx context.Context) tea.Msg {
		var r loginMsg
		if register {
			r.ok, r.err = b.Register(ctx, user, pass)
		} else {
			r.ok, r.err = b.Login(ctx, user, pass)
		}
		if r.err == nil && save != nil {
			r.saveErr = save(r.ok)
		}
		return r
	})
}

func (m *Model) loggedIn(r loginMsg) tea.Cmd {
	m.busy = false
	if r.err != nil {
		var pe *protocol.Error
		if r.resumed && errors.As(r.err, &pe) && pe.Code == protocol.CodeTokenInvalid {
			m.fail("your saved session has expired or was revoked: log in with your password")
		} else {
			m.fail(Plain(r.err))
		}
		return nil
	}
	m.screen, m.me = screenChat, r.ok.UserID
	m.names[m.me] = r.ok.Username
	if r.ok.MaxMessage > 0 {
		m.serverMax = int(r.ok.MaxMessage)
	}
	m.user.SetValue(r.ok.Username)
	m.pass.Reset()
	m.pass.Blur()
	m.user.Blur()
	m.input.Focus()
	m.state = stateOnline
	m.say("logged in as " + r.ok.Username + " — /help lists the commands")
	m.openAccount()
	if m.locked != nil {
		m.quitting = true
		return tea.Quit
	}
	if r.saveErr != nil {
		m.fail("logged in as " + r.ok.Username + ", but the session could not be saved: " + r.saveErr.Error())
	}
	return tea.Batch(m.refresh(), m.pump())
}

// enter sends the typed line, or runs it as a slash command. A line that
// starts with "//" is sent as a message starting with "/".
func (m *Model) enter() tea.Cmd {
	line := strings.TrimSpace(m.input.Value())
	if len(m.multi) > 0 {
		line = strings.TrimSpace(strings.Join(append(m.multi, m.input.Value()), "\n"))
		m.multi = nil
		if strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "//") {
			line = "/" + line // a message of several lines is never a command
		}
	}
	m.input.Reset()
	if id := m.editing; id != "" && line != "" && !strings.HasPrefix(line, "/") {
		// The edited text replaces the failed message.
		m.out = slices.DeleteFunc(m.out, func(o *outgoing) bool { return o.q.ClientMsgID == id })
		_ = m.outbox.Remove(id)
	}
	m.editing = ""
	if line != "" && (len(m.hist) == 0 || m.hist[len(m.hist)-1] != line) {
		m.hist = append(m.hist, line)
		if len(m.hist) > 200 {
			m.hist = m.hist[1:]
		}
	}
	m.histPos, m.histDraft = len(m.hist), ""
	if line != "" {
		m.notice = "" // what the last line brought is stale now
	}
	switch {
	case line == "":
		return nil
	case m.lookingUp != "" && (!strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//")):
		m.held = append(m.held, strings.TrimPrefix(line, "/"))
		m.say(fmt.Sprintf("%d line(s) held for %s until the server finds them", len(m.held), m.lookingUp))
		return nil
	case strings.HasPrefix(line, "//"):
		return m.send(line[1:])
	case strings.HasPrefix(line, "/"):
		c, err := Parse(line)
		if err != nil {
			m.fail(err.Error())
			return nil
		}
		return m.run(c)
	}
	return m.send(line)
}

// refresh reloads conversations, friends, requests and groups; requests
// made while one is in flight are folded into one more after it.
func (m *Model) refresh() tea.Cmd {
	if m.refreshing {
		m.stale = true
		return nil
	}
	m.refreshing = true
	b := m.b
	return m.call(func(ctx context.Context) tea.Msg {
		var r snapshotMsg
		if r.convs, r.err = b.Conversations(ctx, 200); r.err != nil {
			return r
		}
		if r.friends, r.err = b.Friends(ctx); r.err != nil {
			return r
		}
		if r.reqs, r.err = b.FriendRequests(ctx); r.err != nil {
			return r
		}
		r.groups, r.err = b.Groups(ctx)
		return r
	})
}

// learn looks up the name of a user not met before.
func (m *Model) learn(id int64) tea.Cmd {
	if id == 0 || m.asked[id] {
		return nil
	}
	if _, ok := m.names[id]; ok {
		return nil
	}
	m.asked[id] = true
	b := m.b
	return m.call(func(ctx context.Context) tea.Msg {
		u, err := b.Profile(ctx, id)
		return profileMsg{id: id, user: u, err: err}
	})
}

// rename replaces a placeholder name that nameOf or groupTitle gave
// before the real one was known ("user-12", "#group-3"), but not the
// placeholder of a longer id.
func rename(s, placeholder, name string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, placeholder)
		if i < 0 {
			return b.String() + s
		}
		b.WriteString(s[:i])
		if rest := s[i+len(placeholder):]; rest != "" && rest[0] >= '0' && rest[0] <= '9' {
			b.WriteString(placeholder)
		} else {
			b.WriteString(name)
		}
		s = s[i+len(placeholder):]
	}
}

// nameOf is a user's name; "you" for oneself.
func (m *Model) nameOf(id int64) string {
	if id == m.me && m.me != 0 {
		return "you"
	}
	if n, ok := m.names[id]; ok {
		return n
	}
	return fmt.Sprintf("user-%d", id)
}

func (m *Model) done(d doneMsg) tea.Cmd {
	if d.lookup != "" {
		if d.lookup != m.lookingUp {
			return nil // a later /msg replaced it
		}
		held := m.held
		m.lookingUp, m.held = "", nil
		if d.err != nil {
			if len(held) > 0 {
				m.input.SetValue(held[len(held)-1])
				m.fail(fmt.Sprintf("%s — %d held line(s) not sent; the last is back in the input", Plain(d.err), len(held)))
				return nil
			}
			m.fail(Plain(d.err))
			return nil
		}
		cmds := []tea.Cmd{m.open(d.open)}
		for _, line := range held {
			cmds = append(cmds, m.queue(m.ensure(d.open), line))
		}
		return tea.Batch(cmds...)
	}
	if d.err != nil {
		m.fail(Plain(d.err))
	} else if d.text != "" {
		m.say(d.text)
	}
	var cmds []tea.Cmd
	if d.drop != "" {
		m.drop(d.drop)
	}
	if d.open != "" {
		cmds = append(cmds, m.open(d.open))
	}
	if d.refresh {
		cmds = append(cmds, m.refresh())
	}
	return tea.Batch(cmds...)
}

// noticed shows a push in words and reloads what it changed.
func (m *Model) noticed(n client.Notice) tea.Cmd {
	switch {
	case n.Friend != nil:
		u := n.Friend.User
		m.names[u.UserID] = u.Username
		switch n.Friend.Kind {
		case protocol.FriendRequested:
			note := ""
			if n.Friend.Note != "" {
				note = fmt.Sprintf(" (%q)", n.Friend.Note)
			}
			m.say(fmt.Sprintf("%s wants to be your friend%s: /accept %s or /decline %s", u.Username, note, u.Username, u.Username))
		case protocol.FriendAccepted:
			m.say(u.Username + " accepted: you are friends now — /msg " + u.Username)
		case protocol.FriendDeclined:
			m.say(u.Username + " declined your friend request")
		case protocol.FriendRemoved:
			m.say(u.Username + " is no longer your friend")
		}
		return m.refresh()
	case n.Group != nil:
		e := n.Group
		if c := m.conv(protocol.GroupConv(e.GroupID)); c != nil {
			c.notes = append(c.notes, note{at: time.Now().UnixMilli(), e: *e})
		}
		cmds := []tea.Cmd{m.learn(e.Actor)}
		for _, u := range e.Users {
			cmds = append(cmds, m.learn(u))
		}
		m.say(m.groupWords(e))
		if m.lostGroup(e) {
			m.drop(protocol.GroupConv(e.GroupID))
		}
		return tea.Batch(append(cmds, m.refresh())...)
	case n.Read != nil, n.Delivered != nil, n.GroupRead != nil, n.Typing != nil, n.State != nil:
		return m.receipt(n)
	case n.Expired != nil:
		return m.expired(n.Expired)
	case n.Presence != nil:
		p := n.Presence
		for i := range m.friends {
			if m.friends[i].UserID == p.UserID && m.friends[i].Online != p.Online {
				m.friends[i].Online = p.Online
				if p.Online {
					m.say(m.friends[i].Username + " is online")
				} else {
					m.say(m.friends[i].Username + " went offline")
				}
			}
		}
	}
	return nil
}

// lostGroup reports whether e takes the group away from this user.
func (m *Model) lostGroup(e *protocol.GroupEvent) bool {
	switch e.Kind {
	case protocol.GroupDisbanded:
		return true
	case protocol.GroupLeft, protocol.GroupRemoved:
		for _, u := range e.Users {
			if u == m.me {
				return true
			}
		}
	}
	return false
}

func (m *Model) groupWords(e *protocol.GroupEvent) string {
	g := m.groupTitle(e.GroupID)
	actor := m.nameOf(e.Actor)
	var users []string
	meIn := false
	for _, u := range e.Users {
		users = append(users, m.nameOf(u))
		meIn = meIn || u == m.me
	}
	who := strings.Join(users, ", ")
	switch e.Kind {
	case protocol.GroupJoined:
		switch {
		case meIn && e.Actor != 0 && e.Actor != m.me:
			return fmt.Sprintf("%s added you to %s", actor, g)
		case e.Actor != 0 && (len(e.Users) != 1 || e.Users[0] != e.Actor):
			return fmt.Sprintf("%s added %s to %s", actor, who, g)
		}
		return fmt.Sprintf("%s joined %s", who, g)
	case protocol.GroupLeft:
		return fmt.Sprintf("%s left %s", who, g)
	case protocol.GroupRemoved:
		return fmt.Sprintf("%s removed %s from %s", actor, who, g)
	case protocol.GroupRenamed:
		return fmt.Sprintf("%s renamed %s to #%s", actor, g, e.Name)
	case protocol.GroupOwner:
		return fmt.Sprintf("%s handed %s to %s", actor, g, who)
	case protocol.GroupDisbanded:
		return fmt.Sprintf("%s disbanded %s", actor, g)
	case protocol.GroupOpened:
		return fmt.Sprintf("%s opened %s: anyone may find it and join", actor, g)
	case protocol.GroupClosed:
		return fmt.Sprintf("%s made %s invite-only", actor, g)
	}
	return fmt.Sprintf("%s: %s", g, e.Kind)
}

// groupTitle is "#name", or "#group-ID" before the group is known.
func (m *Model) groupTitle(id int64) string {
	if g, ok := m.groups[id]; ok {
		return "#" + g.Name
	}
	return fmt.Sprintf("#group-%d", id)
}
