package ui

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

// fake is a Backend that records what the screen asked for.
type fake struct {
	Backend // unimplemented methods panic: a test that reaches one is wrong
	me      int64
	users   map[string]int64
	sent    []protocol.Send
	answers []protocol.FriendAnswer
	acks    map[string]uint64
}

func newFake() *fake {
	return &fake{me: 1, users: map[string]int64{"alice": 1, "bob": 2, "carol": 3}, acks: map[string]uint64{}}
}

func (f *fake) Login(_ context.Context, u, p string) (protocol.LoginOK, error) {
	if p != "secret" {
		return protocol.LoginOK{}, &protocol.Error{Code: protocol.CodeBadCredentials}
	}
	return protocol.LoginOK{UserID: f.users[u], Username: u}, nil
}
func (f *fake) UserID() int64 { return f.me }
func (f *fake) Send(_ context.Context, to int64, _ uint16, body []byte) (protocol.SendAck, error) {
	f.sent = append(f.sent, protocol.Send{To: to, Body: body})
	return protocol.SendAck{Seq: uint64(2 + len(f.sent)), Conv: protocol.DirectConv(f.me, to)}, nil
}
func (f *fake) Conversations(context.Context, uint32) ([]protocol.Conversation, error) {
	return []protocol.Conversation{{Conv: "d:1:2", LastSeq: 2, Unread: 1, Last: &protocol.Message{Body: []byte("hey")}}}, nil
}
func (f *fake) Friends(context.Context) ([]protocol.UserInfo, error) {
	return []protocol.UserInfo{{UserID: 2, Username: "bob", Online: true}}, nil
}
func (f *fake) FriendRequests(context.Context) (protocol.FriendRequestList, error) {
	return protocol.FriendRequestList{}, nil
}
func (f *fake) Groups(context.Context) ([]protocol.GroupInfo, error) { return nil, nil }
func (f *fake) History(_ context.Context, conv string, _ uint64, _ uint32) (protocol.HistoryResult, error) {
	return protocol.HistoryResult{Conv: conv, Messages: []protocol.Message{{Conv: conv, Seq: 2, From: 2, Body: []byte("hey")}, {Conv: conv, Seq: 1, From: 1, Body: []byte("hi")}}}, nil
}
func (f *fake) Ack(_ context.Context, conv string, seq uint64) error { f.acks[conv] = seq; return nil }
func (f *fake) SearchUsers(_ context.Context, prefix, _ string, _ uint32) (protocol.UserList, error) {
	if id, ok := f.users[strings.ToLower(prefix)]; ok {
		return protocol.UserList{Users: []protocol.UserInfo{{UserID: id, Username: prefix}}}, nil
	}
	return protocol.UserList{}, nil
}
func (f *fake) AnswerFriend(_ context.Context, from int64, accept bool) error {
	f.answers = append(f.answers, protocol.FriendAnswer{From: from, Accept: accept})
	return nil
}

// drive feeds msg to the model and runs every command it returns, feeding
// their results back, until none is left.
func drive(m *Model, msg tea.Msg) {
	queue := []tea.Msg{msg}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		if batch, ok := next.(tea.BatchMsg); ok {
			for _, c := range batch {
				if c != nil {
					queue = append(queue, c())
				}
			}
			continue
		}
		if next == nil {
			continue
		}
		_, cmd := m.Update(next)
		if cmd != nil {
			queue = append(queue, cmd())
		}
	}
}

func typeText(m *Model, s string) {
	for _, r := range s {
		if r == ' ' {
			drive(m, tea.KeyMsg{Type: tea.KeySpace})
			continue
		}
		drive(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

func press(m *Model, k tea.KeyType) { drive(m, tea.KeyMsg{Type: k}) }

func loggedIn(t *testing.T) (*Model, *fake) {
	t.Helper()
	f := newFake()
	m := New(f)
	typeText(m, "alice")
	press(m, tea.KeyTab)
	typeText(m, "secret")
	press(m, tea.KeyEnter)
	if m.screen != screenChat || m.me != 1 {
		t.Fatalf("after login: screen %d me %d notice %q", m.screen, m.me, m.notice)
	}
	return m, f
}

func TestLoginScreen(t *testing.T) {
	f := newFake()
	m := New(f)
	typeText(m, "alicex")
	press(m, tea.KeyBackspace)
	press(m, tea.KeyTab)
	typeText(m, "wrong")
	if v := m.View(); !strings.Contains(v, "username: alice\n") || !strings.Contains(v, "password: *****") {
		t.Fatalf("login view:\n%s", v)
	}
	press(m, tea.KeyEnter)
	if m.screen != screenLogin || m.notice != "wrong username or password" {
		t.Fatalf("bad password: screen %d notice %q", m.screen, m.notice)
	}
	for range 5 {
		press(m, tea.KeyBackspace)
	}
	typeText(m, "secret")
	press(m, tea.KeyEnter)
	if m.screen != screenChat || !strings.Contains(m.notice, "logged in as alice") {
		t.Fatalf("login: screen %d notice %q", m.screen, m.notice)
	}
	if m.password != "" {
		t.Fatal("the password stays in memory after login")
	}
}

func TestConversationsAndSending(t *testing.T) {
	m, f := loggedIn(t)
	// The list came from Conversations, its history was loaded.
	if v := m.View(); !strings.Contains(v, "▸bob (1)") || !strings.Contains(v, "bob: hey") || !strings.Contains(v, "me: hi") {
		t.Fatalf("view after login:\n%s", v)
	}
	typeText(m, "how are you")
	press(m, tea.KeyEnter)
	if len(f.sent) != 1 || f.sent[0].To != 2 || string(f.sent[0].Body) != "how are you" {
		t.Fatalf("sent %+v", f.sent)
	}
	if m.input != "" || !strings.Contains(m.View(), "me: how are you") {
		t.Fatalf("after sending: input %q\n%s", m.input, m.View())
	}
}

func TestIncomingInAnotherConversation(t *testing.T) {
	m, _ := loggedIn(t)
	drive(m, IncomingMsg{M: protocol.Message{Conv: "d:1:3", Seq: 1, From: 3, Body: []byte("psst")}})
	c := m.conv("d:1:3")
	if c == nil || c.unread != 1 || m.current != "d:1:2" || !strings.Contains(m.notice, "new message") {
		t.Fatalf("unread %+v current %s notice %q", c, m.current, m.notice)
	}
	drive(m, IncomingMsg{M: protocol.Message{Conv: "d:1:3", Seq: 2, From: 3, Body: []byte("again")}})
	if c.unread != 2 || m.convs[0] != c {
		t.Fatalf("second message: unread %d, first in list %s", c.unread, m.convs[0].id)
	}
	// Switching to it clears the count and acks.
	for m.current != "d:1:3" {
		press(m, tea.KeyTab)
	}
	if c.unread != 0 {
		t.Fatalf("unread after opening: %d", c.unread)
	}
}

func TestFriendRequestAccept(t *testing.T) {
	m, f := loggedIn(t)
	drive(m, NoticeMsg{N: client.Notice{Friend: &protocol.FriendEvent{Kind: protocol.FriendRequested, User: protocol.UserInfo{UserID: 3, Username: "carol"}, Note: "hi!"}}})
	if !strings.Contains(m.notice, "/accept carol") {
		t.Fatalf("notice %q", m.notice)
	}
	typeText(m, "/accept carol")
	press(m, tea.KeyEnter)
	if len(f.answers) != 1 || f.answers[0] != (protocol.FriendAnswer{From: 3, Accept: true}) {
		t.Fatalf("answers %+v", f.answers)
	}
	if m.current != "d:1:3" || !strings.Contains(m.notice, "carol is now your friend") {
		t.Fatalf("after accept: current %s notice %q", m.current, m.notice)
	}
	typeText(m, "/accept nobody")
	press(m, tea.KeyEnter)
	if !strings.Contains(m.notice, `no user named "nobody"`) {
		t.Fatalf("unknown user: %q", m.notice)
	}
}

func TestStatusLine(t *testing.T) {
	m, _ := loggedIn(t)
	drive(m, EventMsg{E: client.Event{Type: client.EventDisconnected, Err: errors.New("connection reset")}})
	drive(m, EventMsg{E: client.Event{Type: client.EventReconnecting, Attempt: 2, Delay: 300 * time.Millisecond}})
	if !strings.Contains(m.View(), "[reconnecting (attempt 2, in 300ms)]") {
		t.Fatalf("status while reconnecting:\n%s", m.View())
	}
	drive(m, EventMsg{E: client.Event{Type: client.EventRedirected, Addr: "10.0.0.2:7070"}})
	if m.status != "redirected to 10.0.0.2:7070" {
		t.Fatalf("status %q", m.status)
	}
	drive(m, EventMsg{E: client.Event{Type: client.EventClosed, Err: &client.KickError{Reason: protocol.KickBanned, Message: "account banned"}}})
	if m.status != "closed" || !strings.Contains(m.notice, "account banned") {
		t.Fatalf("closed: %q %q", m.status, m.notice)
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		line, name, args, text, err string
	}{
		{line: "/add bob hello there", name: "add", args: "bob hello there", text: "hello there"},
		{line: "/group new climbing bob carol", name: "group new", args: "climbing bob carol", text: "bob carol"},
		{line: "/group open lobby", name: "group open", args: "lobby"},
		{line: "/help", name: "help"},
		{line: "/add", err: "usage: /add NAME [NOTE]"},
		{line: "/group", err: "usage: /group new"},
		{line: "/frobnicate", err: "unknown command /frobnicate"},
		{line: "/", err: "empty command"},
	} {
		got, err := Parse(c.line)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.line, err, c.err)
			}
			continue
		}
		if err != nil || got.Name != c.name || strings.Join(got.Args, " ") != c.args || got.Text != c.text {
			t.Errorf("%q: %+v %v", c.line, got, err)
		}
	}
}

func TestHelpAndBadCommand(t *testing.T) {
	m, _ := loggedIn(t)
	typeText(m, "/help")
	press(m, tea.KeyEnter)
	if !strings.Contains(m.View(), "/accept NAME") {
		t.Fatalf("help not shown:\n%s", m.View())
	}
	press(m, tea.KeyEsc)
	typeText(m, "/leave")
	press(m, tea.KeyEnter)
	if m.notice != "open a group conversation first" {
		t.Fatalf("leave outside a group: %q", m.notice)
	}
}
