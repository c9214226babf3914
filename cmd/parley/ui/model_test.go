package ui

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
)

func TestLoginScreen(t *testing.T) {
	f := newFake()
	var saved []protocol.LoginOK
	m := New(f, Config{Addr: "127.0.0.1:7070", Saved: func(ok protocol.LoginOK) error {
		saved = append(saved, ok)
		return nil
	}})
	run(m, m.Init()) // no token: nothing to resume
	typeText(m, "alicex")
	press(m, tea.KeyBackspace)
	press(m, tea.KeyEnter) // to the password field, as it is empty
	typeText(m, "wrong")
	if v := screenText(m); !strings.Contains(v, "username alice") || !strings.Contains(v, "password *****") {
		t.Fatalf("login view:\n%s", v)
	}
	press(m, tea.KeyEnter)
	if m.screen != screenLogin || m.notice != "wrong username or password" || !m.bad {
		t.Fatalf("bad password: screen %d notice %q", m.screen, m.notice)
	}
	press(m, tea.KeyCtrlU) // the field's own editing keys work
	typeText(m, "alice-password")
	press(m, tea.KeyEnter)
	if m.screen != screenChat || !strings.Contains(m.notice, "logged in as alice") {
		t.Fatalf("login: screen %d notice %q", m.screen, m.notice)
	}
	if m.pass.Value() != "" {
		t.Fatal("the password stays in memory after the login")
	}
	if len(saved) != 1 || saved[0].Token != "good-token" {
		t.Fatalf("saved %+v", saved)
	}
}

func TestRegister(t *testing.T) {
	f := newFake()
	m := New(f, Config{})
	typeText(m, "bob")
	press(m, tea.KeyTab)
	typeText(m, "secret-enough")
	press(m, tea.KeyCtrlR)
	if m.screen != screenLogin || m.notice != "that username is taken" {
		t.Fatalf("taken: %q", m.notice)
	}
	press(m, tea.KeyShiftTab)
	typeText(m, "by")
	press(m, tea.KeyCtrlR)
	if m.screen != screenChat || m.names[m.me] != "bobby" {
		t.Fatalf("register: screen %d notice %q", m.screen, m.notice)
	}
}

func TestResumeSavedSession(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	// The first conversation opened: its history loaded, its unread
	// message acknowledged.
	v := screenText(m)
	for _, want := range []string{"▸ bob", "alice: hi bob", "bob: hey alice", "● online · 127.0.0.1:7070", "● bob"} {
		if !strings.Contains(v, want) {
			t.Errorf("no %q in\n%s", want, v)
		}
	}
	if f.acks[protocol.DirectConv(1, 2)] != 2 {
		t.Errorf("acks %v", f.acks)
	}
}

func TestResumeWithRevokedToken(t *testing.T) {
	f := newFake()
	m := New(f, Config{Token: "revoked", Username: "alice"})
	if !m.busy || !strings.Contains(m.notice, "resuming") {
		t.Fatalf("before: %q", m.notice)
	}
	run(m, m.Init())
	if m.screen != screenLogin || !strings.Contains(m.notice, "expired or was revoked") || !m.pass.Focused() {
		t.Fatalf("after: screen %d, notice %q", m.screen, m.notice)
	}
	typeText(m, "alice-password")
	press(m, tea.KeyEnter)
	if m.screen != screenChat {
		t.Fatalf("password login after it: %q", m.notice)
	}
}

func TestTypingAndSending(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	typeText(m, "how are yuo")
	press(m, tea.KeyBackspace, tea.KeyBackspace)
	typeText(m, "ou")
	if m.input.Value() != "how are you" {
		t.Fatalf("input %q", m.input.Value())
	}
	// Letters that come in one burst are text, even "down" or "left".
	drive(m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(" down left")})
	press(m, tea.KeyLeft, tea.KeyLeft, tea.KeyLeft, tea.KeyLeft, tea.KeyLeft)
	press(m, tea.KeyCtrlK)
	if m.input.Value() != "how are you down" {
		t.Fatalf("input %q", m.input.Value())
	}
	press(m, tea.KeyCtrlW, tea.KeyBackspace)
	cmd := step(m, tea.KeyMsg{Type: tea.KeyEnter})
	if m.input.Value() != "" || !strings.Contains(screenText(m), "alice: how are you (sending…)") {
		t.Fatalf("before the ack: input %q\n%s", m.input.Value(), screenText(m))
	}
	run(m, cmd)
	if len(f.sent) != 1 || f.sent[0].To != 2 || string(f.sent[0].Body) != "how are you" {
		t.Fatalf("sent %+v", f.sent)
	}
	if v := screenText(m); !strings.Contains(v, "alice: how are you") || strings.Contains(v, "sending") {
		t.Fatalf("after the ack:\n%s", v)
	}
	c := m.conv(m.current)
	if n := len(c.msgs); n != 3 || c.msgs[2].Seq != 3 || m.Queued() != 0 {
		t.Fatalf("messages %d, pending %d", n, m.Queued())
	}
	enter(m, "//me waves")
	if got := string(f.sent[1].Body); got != "/me waves" {
		t.Fatalf("a // line sent %q", got)
	}
}

// A send that loses the connection stays queued, goes out again with the
// same client_msg_id after the next login, and is shown once.
func TestSendDuringReconnect(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	f.sendErrs = []error{client.ErrDisconnected}
	drive(m, EventMsg{E: client.Event{Type: client.EventDisconnected, Err: errors.New("read: connection reset")}})
	typeText(m, "are you there?")
	cmd := step(m, tea.KeyMsg{Type: tea.KeyEnter})
	if v := screenText(m); !strings.Contains(v, "are you there? (queued, offline)") {
		t.Fatalf("while down:\n%s", v)
	}
	retry := step(m, cmd()) // the retry timer, not run
	if retry == nil || m.Queued() != 1 {
		t.Fatalf("after the drop: retry %v, queued %d", retry, m.Queued())
	}
	drive(m, EventMsg{E: client.Event{Type: client.EventReconnecting, Attempt: 1, Delay: 100 * time.Millisecond}})
	if !strings.Contains(screenText(m), "● reconnecting (attempt 1)") {
		t.Fatalf("status:\n%s", screenText(m))
	}
	drive(m, EventMsg{E: client.Event{Type: client.EventLoggedIn, Addr: "127.0.0.1:7070", UserID: 1}})
	if len(f.sent) != 2 || f.sent[0].ClientMsgID != f.sent[1].ClientMsgID {
		t.Fatalf("sent %+v", f.sent)
	}
	v := screenText(m)
	if strings.Count(v, "alice: are you there?") != 1 || strings.Contains(v, "queued") || !strings.Contains(v, "back online") {
		t.Fatalf("after the reconnect:\n%s", v)
	}
}

func TestSendRefused(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	f.sendErrs = []error{&protocol.Error{Code: protocol.CodeNotFriends}}
	enter(m, "hello?")
	if v := screenText(m); !strings.Contains(v, "✗ [1] hello?") || !strings.Contains(v, "not sent: you can only message friends") || !m.bad {
		t.Fatalf("refused:\n%s", v)
	}
	enter(m, "/retry")
	if len(f.sent) != 2 || strings.Contains(screenText(m), "✗") {
		t.Fatalf("retry: sent %d\n%s", len(f.sent), screenText(m))
	}

	// ↑ takes a failed message back to edit; Enter sends the new text in
	// its place.
	f.sendErrs = []error{&protocol.Error{Code: protocol.CodeNotFriends}}
	enter(m, "helo?")
	press(m, tea.KeyUp)
	if m.input.Value() != "helo?" {
		t.Fatalf("↑ on a failed message: input %q", m.input.Value())
	}
	press(m, tea.KeyLeft, tea.KeyBackspace)
	typeText(m, "lo")
	press(m, tea.KeyEnter)
	if len(f.sent) != 4 || string(f.sent[3].Body) != "hello?" || m.Queued() != 0 || strings.Contains(screenText(m), "✗") {
		t.Fatalf("after the edit: sent %+v, queued %d\n%s", f.sent, m.Queued(), screenText(m))
	}
}

func TestSwitchingConversations(t *testing.T) {
	f := newFake()
	crag := protocol.GroupConv(7)
	f.groups = []protocol.GroupInfo{{GroupID: 7, Name: "crag", Members: 3, Created: t0}}
	f.history[crag] = []protocol.Message{msg(crag, 1, 3, "rope?"), msg(crag, 2, 2, "got one")}
	for i := range f.history[crag] {
		f.history[crag][i].ServerTime -= 3_600_000 // an hour before bob's
	}
	f.convs = append(f.convs, protocol.Conversation{Conv: crag, LastSeq: 2, Unread: 2, Last: &f.history[crag][1]})
	m := loggedIn(t, f)
	// bob's conversation is newer, so first and open; #crag waits.
	if m.current != protocol.DirectConv(1, 2) || m.conv(crag).unread() != 2 {
		t.Fatalf("current %s, #crag unread %d", m.current, m.conv(crag).unread())
	}
	if l := lineWith(screenText(m), "  #crag"); !strings.HasSuffix(strings.TrimSpace(strings.Split(l, "│")[0]), " 2") {
		t.Fatalf("no unread badge on %q", l)
	}
	press(m, tea.KeyTab)
	if m.current != crag || m.conv(crag).unread() != 0 || f.acks[crag] != 2 {
		t.Fatalf("after Tab: current %s, unread %d, acks %v", m.current, m.conv(crag).unread(), f.acks)
	}
	v := screenText(m)
	for _, want := range []string{"▸ #crag", "#crag · 3 members · id 7", "carol: rope?", "bob: got one"} {
		if !strings.Contains(v, want) {
			t.Errorf("no %q in\n%s", want, v)
		}
	}
	enter(m, "on my way")
	if len(f.sent) != 1 || f.sent[0].GroupID != 7 {
		t.Fatalf("sent to the group: %+v", f.sent)
	}
	press(m, tea.KeyShiftTab)
	if m.current == crag {
		t.Fatal("Shift+Tab stayed")
	}
}

func TestUnreadInAnotherConversation(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	carolConv := protocol.DirectConv(1, 3)
	later := func(x protocol.Message) protocol.Message { x.ServerTime += 3_600_000; return x }
	drive(m, IncomingMsg{M: later(msg(carolConv, 1, 3, "psst"))})
	c := m.conv(carolConv)
	if c == nil || c.unread() != 1 || m.current != protocol.DirectConv(1, 2) {
		t.Fatalf("conversation %+v, current %s", c, m.current)
	}
	if !strings.Contains(m.notice, "new message from carol: psst") {
		t.Fatalf("notice %q", m.notice)
	}
	drive(m, IncomingMsg{M: later(msg(carolConv, 2, 3, "again"))}, IncomingMsg{M: later(msg(carolConv, 2, 3, "again"))})
	if c.unread() != 2 || m.convs[0] != c {
		t.Fatalf("unread %d, first %s", c.unread(), m.convs[0].id)
	}
	if v := screenText(m); !strings.Contains(v, "carol") || !strings.Contains(v, " 2 ") {
		t.Fatalf("no badge:\n%s", v)
	}
	// A refresh that already counts them does not count them twice.
	f.convs = append(f.convs, protocol.Conversation{Conv: carolConv, LastSeq: 2, Unread: 2})
	drive(m, EventMsg{E: client.Event{Type: client.EventLoggedIn}})
	if c.unread() != 2 {
		t.Fatalf("after a refresh: %d", c.unread())
	}
	// One in the conversation shown is read at once.
	bobConv := protocol.DirectConv(1, 2)
	drive(m, IncomingMsg{M: msg(bobConv, 3, 2, "still there?")})
	if m.conv(bobConv).unread() != 0 || f.acks[bobConv] != 3 || !strings.Contains(screenText(m), "bob: still there?") {
		t.Fatalf("current conversation: unread %d, acks %v", m.conv(bobConv).unread(), f.acks)
	}
}

func TestScrollLoadsOlderHistory(t *testing.T) {
	f := newFake()
	f.longHistory(120, func(seq uint64) string { return fmt.Sprintf("message %d", seq) })
	bobConv := protocol.DirectConv(1, 2)
	m := loggedIn(t, f)
	c := m.conv(bobConv)
	if len(c.msgs) != 50 || c.msgs[0].Seq != 71 || !strings.Contains(chatText(m), "message 120") {
		t.Fatalf("first page: %d messages from %d", len(c.msgs), c.msgs[0].Seq)
	}
	press(m, tea.KeyPgUp)
	if v := chatText(m); !strings.Contains(v, "scrolled 19 lines") || strings.Contains(v, "message 120") || len(f.befores) != 1 {
		t.Fatalf("scrolled up:\n%s", v)
	}
	// At the top the page before loads; what was shown stays in place.
	cmd := step(m, tea.KeyMsg{Type: tea.KeyPgUp})
	v := chatText(m)
	if !strings.Contains(v, "loading older messages…") || !strings.Contains(v, "message 71") {
		t.Fatalf("at the top:\n%s", v)
	}
	bottom := lastLine(v)
	run(m, cmd)
	if len(f.befores) != 2 || f.befores[1] != 71 || len(c.msgs) != 100 {
		t.Fatalf("History calls %v, %d messages", f.befores, len(c.msgs))
	}
	if v := chatText(m); lastLine(v) != bottom || !strings.Contains(v, "message 70") {
		t.Fatalf("the load moved the view: bottom %q, was %q\n%s", lastLine(v), bottom, v)
	}
	for range 30 {
		press(m, tea.KeyPgUp)
	}
	if len(c.msgs) != 120 || !strings.Contains(screenText(m), "the beginning of your conversation with bob") {
		t.Fatalf("at the top: %d messages\n%s", len(c.msgs), screenText(m))
	}
	for range 40 {
		press(m, tea.KeyPgDown)
	}
	if m.scroll != 0 || !strings.Contains(chatText(m), "message 120") {
		t.Fatalf("back down: scroll %d", m.scroll)
	}
}

func TestStatusLine(t *testing.T) {
	m := loggedIn(t, newFake())
	for _, c := range []struct {
		e            client.Event
		status, note string
	}{
		{client.Event{Type: client.EventDisconnected, Err: errors.New("read: connection reset")}, "● disconnected", "connection lost: read: connection reset"},
		{client.Event{Type: client.EventReconnecting, Attempt: 2, Delay: 300 * time.Millisecond}, "● reconnecting (attempt 2)", ""},
		{client.Event{Type: client.EventRedirected, Addr: "10.0.0.2:7070"}, "● redirected to 10.0.0.2:7070", ""},
		{client.Event{Type: client.EventLoggedIn, Addr: "10.0.0.2:7070"}, "● online · 10.0.0.2:7070", "back online"},
		{client.Event{Type: client.EventDisconnected, Err: &client.KickError{Reason: protocol.KickShutdown}}, "● disconnected", "connection lost: the server is shutting down"},
		{client.Event{Type: client.EventClosed, Err: &client.KickError{Reason: protocol.KickBanned, Message: "spam"}}, "● closed", "closed: this account is banned: spam"},
	} {
		drive(m, EventMsg{E: c.e})
		status := strings.Split(screenText(m), "\n")[m.height-2]
		if !strings.Contains(status, c.status) || !strings.Contains(status, c.note) {
			t.Errorf("after %s: status line %q, want %q and %q", c.e.Type, status, c.status, c.note)
		}
	}
}

func TestFriendRequestAccept(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	f.reqs.Incoming = []protocol.PendingRequest{{From: carol, To: alice, Note: "climbing?"}}
	drive(m, NoticeMsg{N: client.Notice{Friend: &protocol.FriendEvent{Kind: protocol.FriendRequested, User: carol, Note: "climbing?"}}})
	if !strings.Contains(m.notice, `carol wants to be your friend ("climbing?"): /accept carol or /decline carol`) {
		t.Fatalf("notice %q", m.notice)
	}
	if v := screenText(m); !strings.Contains(v, "Friend requests") || !strings.Contains(v, "? carol") {
		t.Fatalf("side:\n%s", v)
	}
	enter(m, "/requests")
	if v := screenText(m); !strings.Contains(v, `from carol "climbing?" — /accept carol`) {
		t.Fatalf("requests panel:\n%s", v)
	}
	enter(m, "/accept carol")
	if len(f.answers) != 1 || f.answers[0] != (protocol.FriendAnswer{From: 3, Accept: true}) {
		t.Fatalf("answers %+v", f.answers)
	}
	v := screenText(m)
	// /accept does not take the screen away from the conversation shown.
	if m.current != protocol.DirectConv(1, 2) || !strings.Contains(m.notice, "carol is now your friend: /msg carol") ||
		strings.Contains(v, "? carol") || !strings.Contains(v, "○ carol") {
		t.Fatalf("after accept: current %s, notice %q\n%s", m.current, m.notice, v)
	}
	f.reqs.Incoming = []protocol.PendingRequest{{From: dave, To: alice}}
	enter(m, "/decline dave")
	if f.answers[1] != (protocol.FriendAnswer{From: 4, Accept: false}) || !strings.Contains(m.notice, "declined dave") {
		t.Fatalf("decline: %+v %q", f.answers, m.notice)
	}
	enter(m, "/accept dave")
	if m.notice != "there is no friend request from them" {
		t.Fatalf("no request: %q", m.notice)
	}
	enter(m, "/accept nobody")
	if m.notice != `no user named "nobody"` {
		t.Fatalf("unknown user: %q", m.notice)
	}
	f.reqs.Outgoing = []protocol.PendingRequest{{From: alice, To: dave}}
	enter(m, "/add dave fellow climber")
	if len(f.requested) != 1 || f.requested[0] != (protocol.FriendRequest{To: 4, Note: "fellow climber"}) {
		t.Fatalf("requested %+v", f.requested)
	}
	if v := screenText(m); !strings.Contains(v, "… dave (waiting)") {
		t.Fatalf("outgoing request not listed:\n%s", v)
	}
	drive(m, NoticeMsg{N: client.Notice{Friend: &protocol.FriendEvent{Kind: protocol.FriendAccepted, User: dave}}})
	if m.notice != "dave accepted: you are friends now — /msg dave" {
		t.Fatalf("accepted: %q", m.notice)
	}
}

func TestPresence(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	drive(m, NoticeMsg{N: client.Notice{Presence: &protocol.Presence{UserID: 2, Online: false}}})
	if v := screenText(m); !strings.Contains(v, "○ bob") || !strings.Contains(v, "bob went offline") || !strings.Contains(v, "bob · ○ offline") {
		t.Fatalf("offline:\n%s", v)
	}
	drive(m, NoticeMsg{N: client.Notice{Presence: &protocol.Presence{UserID: 2, Online: true}}})
	if !strings.Contains(screenText(m), "● bob") {
		t.Fatal("not back online")
	}
}

func TestGroups(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	enter(m, "/leave")
	if m.notice != "/leave acts on a group: open one first (Tab)" {
		t.Fatalf("leave in a 1:1: %q", m.notice)
	}
	enter(m, "/group new crag bob carol")
	if len(f.created) != 1 || f.created[0].Name != "crag" || fmt.Sprint(f.created[0].Members) != "[2 3]" || f.created[0].Open {
		t.Fatalf("created %+v", f.created)
	}
	if m.current != protocol.GroupConv(7) || !strings.Contains(screenText(m), "▸ #crag") {
		t.Fatalf("current %s\n%s", m.current, screenText(m))
	}
	enter(m, "/invite dave")
	if len(f.invited) != 1 || f.invited[0].GroupID != 7 || f.invited[0].Users[0] != 4 {
		t.Fatalf("invited %+v", f.invited)
	}
	f.members[7] = []protocol.Member{{UserInfo: alice, Owner: true}, {UserInfo: protocol.UserInfo{UserID: 2, Username: "bob", Online: true}}}
	enter(m, "/members")
	if v := screenText(m); !strings.Contains(v, "members of #crag") || !strings.Contains(v, "○ alice (owner)") || !strings.Contains(v, "● bob") {
		t.Fatalf("members:\n%s", v)
	}
	press(m, tea.KeyEsc)
	if m.panel != nil {
		t.Fatal("Esc left the panel")
	}
	enter(m, "/leave")
	if len(f.left) != 1 || m.conv(protocol.GroupConv(7)) != nil || m.current == protocol.GroupConv(7) {
		t.Fatalf("left %v, current %s", f.left, m.current)
	}
	enter(m, "/join 9")
	if len(f.joined) != 1 || f.joined[0] != 9 || m.current != protocol.GroupConv(9) || !strings.Contains(m.notice, "you joined #lobby") {
		t.Fatalf("join: %v %s %q", f.joined, m.current, m.notice)
	}
	// Someone adds alice to a group: it shows up, named once refreshed.
	f.groups = append(f.groups, protocol.GroupInfo{GroupID: 8, Name: "boulder", Members: 2})
	drive(m, NoticeMsg{N: client.Notice{Group: &protocol.GroupEvent{GroupID: 8, Kind: protocol.GroupJoined, Actor: 2, Users: []int64{1}}}})
	if m.notice != "bob added you to #boulder" || m.conv(protocol.GroupConv(8)) == nil || !strings.Contains(screenText(m), "#boulder") {
		t.Fatalf("added: %q\n%s", m.notice, screenText(m))
	}
	f.groups = f.groups[:len(f.groups)-1]
	drive(m, NoticeMsg{N: client.Notice{Group: &protocol.GroupEvent{GroupID: 8, Kind: protocol.GroupDisbanded, Actor: 2}}})
	if m.notice != "bob disbanded #boulder" || m.conv(protocol.GroupConv(8)) != nil {
		t.Fatalf("disbanded: %q", m.notice)
	}
}

func TestDeleteHistory(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	enter(m, "/delete 1")
	bobConv := protocol.DirectConv(1, 2)
	if len(f.deleted) != 1 || fmt.Sprint(f.deleted[0].Seqs) != "[2]" || strings.Contains(screenText(m), "hey alice") {
		t.Fatalf("deleted %+v\n%s", f.deleted, screenText(m))
	}
	// Bug 8 of issue 17: /delete without a number asks first.
	enter(m, "/delete")
	if len(f.deleted) != 1 || !strings.Contains(screenText(m), "hi bob") || !strings.Contains(m.notice, "/delete all does it") {
		t.Fatalf("/delete did not ask: deleted %+v, notice %q", f.deleted, m.notice)
	}
	enter(m, "/delete all")
	if d := f.deleted[1]; d.Conv != bobConv || d.UpTo != 2 || d.Seqs != nil || strings.Contains(screenText(m), "hi bob") ||
		!strings.Contains(m.notice, "hidden from you") {
		t.Fatalf("deleted %+v, notice %q", f.deleted, m.notice)
	}
}

func TestHelpAndMistakes(t *testing.T) {
	m := loggedIn(t, newFake())
	enter(m, "/help")
	if v := screenText(m); !strings.Contains(v, "/accept NAME") || !strings.Contains(v, "/group new NAME [USER...]") {
		t.Fatalf("help:\n%s", v)
	}
	press(m, tea.KeyEsc)
	enter(m, "/frobnicate")
	if m.notice != "no command /frobnicate: /help lists them" || !m.bad {
		t.Fatalf("unknown: %q", m.notice)
	}
	enter(m, "/join crag")
	if !strings.Contains(m.notice, `no open group is named "crag": /list shows them`) || !m.bad {
		t.Fatalf("join: %q", m.notice)
	}
	enter(m, "/msg alice")
	if !strings.Contains(m.notice, "that is you") {
		t.Fatalf("msg self: %q", m.notice)
	}
	cmd := step(m, tea.KeyMsg{Type: tea.KeyCtrlC})
	if !m.Quitting() || cmd == nil || cmd() != tea.Quit() {
		t.Fatal("Ctrl+C does not quit")
	}
}

// Text from others cannot drive the terminal.
func TestControlCharactersShownInert(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	drive(m, IncomingMsg{M: msg(protocol.DirectConv(1, 2), 3, 2, "evil\x1b[2Jtext\x07")})
	if v := m.View(); strings.Contains(v, "\x1b[2J") || strings.Contains(v, "\x07") || !strings.Contains(screenText(m), "evil�[2Jtext�") {
		t.Fatalf("view %q", v)
	}
}

// lineWith is the first line of v that contains s.
func lineWith(v, s string) string {
	for _, l := range strings.Split(v, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// chatText is the chat area of the view, without the list beside it.
func chatText(m *Model) string {
	var b strings.Builder
	for _, l := range strings.Split(screenText(m), "\n") {
		if _, chat, ok := strings.Cut(l, "│"); ok {
			b.WriteString(chat + "\n")
		}
	}
	return b.String()
}

func lastLine(v string) string {
	lines := strings.Split(strings.TrimRight(v, "\n"), "\n")
	return lines[len(lines)-1]
}

// Bug 2 of issue 17: /msg NAME of a known user switches at once, without
// waiting for the server; an unknown one is looked up, and lines typed
// meanwhile go to it, not to the conversation shown before.
func TestMsgSwitchesAtOnce(t *testing.T) {
	f := newFake()
	crag := protocol.GroupConv(7)
	f.groups = []protocol.GroupInfo{{GroupID: 7, Name: "crag", Members: 3, Created: t0 + 1e9}}
	m := loggedIn(t, f)
	_ = step(m, tea.KeyMsg{Type: tea.KeyTab}) // to #crag
	run(m, m.open(crag))
	if m.current != crag {
		t.Fatalf("current %q", m.current)
	}
	typeText(m, "/msg bob")
	_ = step(m, tea.KeyMsg{Type: tea.KeyEnter}) // the server is not asked: nothing is run
	if m.current != protocol.DirectConv(1, 2) {
		t.Fatalf("after /msg bob, current %q", m.current)
	}
	run(m, m.open(crag))

	typeText(m, "/msg carol")
	lookup := step(m, tea.KeyMsg{Type: tea.KeyEnter})
	enter(m, "carol to alice while down")
	if len(f.sent) != 0 {
		t.Fatalf("a line went out before the lookup: %+v", f.sent)
	}
	run(m, lookup)
	if m.current != protocol.DirectConv(1, 3) || len(f.sent) != 1 || f.sent[0].To != 3 || f.sent[0].GroupID != 0 {
		t.Fatalf("current %q, sent %+v", m.current, f.sent)
	}
}

// Bug 4 of issue 17: emoji with a skin tone (👍🏽: two cells by Unicode,
// four in tmux) never make a line longer than the screen, counted either
// way, and the header row stays; Ctrl+L repaints.
func TestWideEmojiKeepTheLayout(t *testing.T) {
	f := newFake()
	bobConv := protocol.DirectConv(1, 2)
	f.history[bobConv] = append(f.history[bobConv], msg(bobConv, 3, 2, strings.Repeat("👍🏽", 45)+" ok"), msg(bobConv, 4, 2, "x "+strings.Repeat("👨‍👩‍👧", 30)))
	f.convs[0].LastSeq, f.convs[0].Last = 4, &f.history[bobConv][3]
	m := loggedIn(t, f)
	for _, w := range []int{80, 100, 57} {
		drive(m, tea.WindowSizeMsg{Width: w, Height: 24})
		lines := strings.Split(m.View(), "\n")
		if len(lines) != 24 || !strings.Contains(ansi.Strip(lines[0]), "Conversations") {
			t.Fatalf("width %d: %d lines, first %q", w, len(lines), ansi.Strip(lines[0]))
		}
		for i, l := range lines {
			if uw, tw := ansi.StringWidth(l), ansi.StringWidth(l)+extraWidth(l); uw >= w || tw >= w {
				t.Fatalf("width %d: line %d is %d cells by Unicode, %d drawn part by part: %q", w, i, uw, tw, ansi.Strip(l))
			}
		}
		if v := screenText(m); !strings.Contains(v, " ok") {
			t.Fatalf("width %d: the end of the message is lost:\n%s", w, v)
		}
	}
	if cmd := step(m, tea.KeyMsg{Type: tea.KeyCtrlL}); cmd == nil || fmt.Sprintf("%T", cmd()) != "tea.clearScreenMsg" {
		t.Fatal("Ctrl+L does not repaint")
	}
}

// The unread divider stands before the first unread message, and the view
// opens on it when the unread messages do not fit; messages that arrive
// while scrolled up are counted, "N new ↓", until End.
func TestUnreadDividerAndNewBelow(t *testing.T) {
	f := newFake()
	bobConv := protocol.DirectConv(1, 2)
	for seq := uint64(3); seq <= 40; seq++ {
		f.history[bobConv] = append(f.history[bobConv], msg(bobConv, seq, 2, fmt.Sprintf("bob says %d", seq)))
	}
	f.convs[0] = protocol.Conversation{Conv: bobConv, LastSeq: 40, AckSeq: 5, Unread: 35, Last: &f.history[bobConv][39]}
	m := loggedIn(t, f)
	v := screenText(m)
	lines := strings.Split(v, "\n")
	// One line of what was read before stays in sight above the divider.
	if !strings.Contains(lines[1], "bob says 5") || !strings.Contains(lines[2], dividerText) || !strings.Contains(lines[3], "bob says 6") || strings.Contains(v, "bob: bob says 40") {
		t.Fatalf("the view does not open on the divider:\n%s", v)
	}
	drive(m, IncomingMsg{M: msg(bobConv, 41, 2, "one more")})
	if v := screenText(m); !strings.Contains(v, "1 new ↓ (End)") || strings.Contains(v, "bob: one more") {
		t.Fatalf("a message below the view:\n%s", v)
	}
	press(m, tea.KeyEnd)
	if v := screenText(m); !strings.Contains(v, "bob: one more") || strings.Contains(v, "new ↓") {
		t.Fatalf("after End:\n%s", v)
	}
}

// ↑ and ↓ bring back the lines entered before; Alt+Enter starts a new
// line of the same message.
func TestInputHistoryAndMultiLine(t *testing.T) {
	f := newFake()
	m := loggedIn(t, f)
	enter(m, "first")
	enter(m, "second")
	typeText(m, "draft")
	press(m, tea.KeyUp)
	if m.input.Value() != "second" {
		t.Fatalf("↑: %q", m.input.Value())
	}
	press(m, tea.KeyUp, tea.KeyUp)
	if m.input.Value() != "first" {
		t.Fatalf("↑↑↑: %q", m.input.Value())
	}
	press(m, tea.KeyDown, tea.KeyDown)
	if m.input.Value() != "draft" {
		t.Fatalf("back down: %q", m.input.Value())
	}
	m.input.Reset()
	typeText(m, "line one")
	drive(m, tea.KeyMsg{Type: tea.KeyEnter, Alt: true})
	if len(f.sent) != 2 || !strings.Contains(screenText(m), "  line one") {
		t.Fatalf("Alt+Enter sent or hid the line: %+v\n%s", f.sent, screenText(m))
	}
	enter(m, "line two")
	if len(f.sent) != 3 || string(f.sent[2].Body) != "line one\nline two" {
		t.Fatalf("sent %+v", f.sent)
	}
}

// Joins and leaves are lines of the group's timeline; a group of one says
// "1 member".
func TestGroupEventsInTimeline(t *testing.T) {
	f := newFake()
	crag := protocol.GroupConv(7)
	f.groups = []protocol.GroupInfo{{GroupID: 7, Name: "crag", Members: 1, Created: t0 + 1e9}}
	m := loggedIn(t, f)
	run(m, m.open(crag))
	if v := screenText(m); !strings.Contains(v, "#crag · 1 member ·") {
		t.Fatalf("header:\n%s", v)
	}
	drive(m, NoticeMsg{N: client.Notice{Group: &protocol.GroupEvent{GroupID: 7, Kind: protocol.GroupJoined, Users: []int64{3}, Actor: 3}}})
	drive(m, NoticeMsg{N: client.Notice{Group: &protocol.GroupEvent{GroupID: 7, Kind: protocol.GroupLeft, Users: []int64{3}, Actor: 3}}})
	v := screenText(m)
	if !strings.Contains(v, "· carol joined #crag") || !strings.Contains(v, "· carol left #crag") {
		t.Fatalf("timeline:\n%s", v)
	}
}

// A long URL is never split across lines: it gets a line of its own, cut
// short, and links to the whole URL; a short one moves to the next line
// whole.
func TestLongURLsNotSplit(t *testing.T) {
	f := newFake()
	bobConv := protocol.DirectConv(1, 2)
	long := "https://example.com/" + strings.Repeat("abcdefghij", 15) + "/end"
	short := "https://example.org/some/page/that/fits"
	f.history[bobConv] = append(f.history[bobConv], msg(bobConv, 3, 2, "see "+long+" and the words after it, then "+short+" too"))
	f.convs[0].LastSeq, f.convs[0].Last = 3, &f.history[bobConv][2]
	m := loggedIn(t, f)
	drive(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	view := m.View()
	if !strings.Contains(view, ansi.SetHyperlink(long)) {
		t.Fatalf("no link to the whole URL:\n%q", view)
	}
	v := screenText(m)
	if !strings.Contains(v, "https://example.com/abcdefghij") || strings.Contains(v, "/end") {
		t.Fatalf("the long URL:\n%s", v)
	}
	if !strings.Contains(v, short) {
		t.Fatalf("the short URL was split:\n%s", v)
	}
}

// The bell rings, and the title counts, for a message in a conversation
// not shown; not for one in the conversation shown.
func TestBellAndTitle(t *testing.T) {
	f := newFake()
	rings := 0
	m := New(f, Config{Addr: "127.0.0.1:7070", Token: f.token, Username: "alice", Bell: func() { rings++ }, Title: true})
	drive(m, tea.WindowSizeMsg{Width: 100, Height: 24})
	run(m, m.Init())
	bobConv := protocol.DirectConv(1, 2)
	drive(m, IncomingMsg{M: msg(bobConv, 3, 2, "shown")})
	if rings != 0 {
		t.Fatalf("rang for the conversation shown")
	}
	carolConv := protocol.DirectConv(1, 3)
	cmd := step(m, IncomingMsg{M: msg(carolConv, 1, 3, "elsewhere")})
	if cmd == nil {
		t.Fatal("no command for a message elsewhere")
	}
	var title string
	for _, c := range cmd().(tea.BatchMsg) {
		if c == nil {
			continue
		}
		if msg := c(); msg != nil && fmt.Sprintf("%T", msg) == "tea.setWindowTitleMsg" {
			title = fmt.Sprint(msg)
		}
	}
	if rings != 1 || title != "(1) parley" {
		t.Fatalf("rings %d, title %q", rings, title)
	}
}
