package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/cmd/parley/ui"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// screen is one person's chat screen: the real model on a real client,
// run by Bubble Tea in a virtual terminal.
type screen struct {
	t  *testing.T
	tm *teatest.TestModel
	c  *client.Client
}

func openScreen(t *testing.T, addr string, saved *[]protocol.LoginOK) *screen {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Quick reconnects: the test waits for them.
	c, err := client.Dial(ctx, addr, client.Options{Reconnect: true, SyncOnLogin: true, MaxBackoff: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	cfg := ui.Config{Addr: addr, Saved: func(ok protocol.LoginOK) error { *saved = append(*saved, ok); return nil }}
	tm := teatest.NewTestModel(t, ui.New(c, cfg), teatest.WithInitialTermSize(120, 30))
	ui.Pump(tm, c)
	return &screen{t: t, tm: tm, c: c}
}

// typeLine types a line and presses Enter.
func (s *screen) typeLine(line string) {
	s.tm.Type(line)
	s.tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
}

func (s *screen) key(k tea.KeyType) { s.tm.Send(tea.KeyMsg{Type: k}) }

// waitFor waits until the screen shows every one of want (colours aside).
// Each wait reads what was drawn since the last one.
func (s *screen) waitFor(want ...string) {
	s.t.Helper()
	teatest.WaitFor(s.t, s.tm.Output(), func(b []byte) bool {
		plain := []byte(ansi.Strip(string(b)))
		for _, w := range want {
			if !bytes.Contains(plain, []byte(w)) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(15*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
}

func (s *screen) quit() {
	s.typeLine("/quit")
	s.tm.WaitFinished(s.t, teatest.WithFinalTimeout(5*time.Second))
}

// Two people chat through their screens against a real server that lets
// only friends talk: they register, one asks the other to be friends,
// the other accepts, they talk, meet in a group, and one of them loses
// the connection for a while without losing a message.
func TestChatScreens(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.DMPolicy = server.DMFriends })
	link := servertest.NewProxy(t, srv.Addr()) // alice's line, to cut
	var aliceSaved, bobSaved []protocol.LoginOK
	alice := openScreen(t, link.Addr(), &aliceSaved)
	bob := openScreen(t, srv.Addr(), &bobSaved)

	alice.waitFor("log in, or register")
	alice.tm.Type("alice")
	alice.key(tea.KeyTab)
	alice.tm.Type("alice-password")
	alice.key(tea.KeyCtrlR)
	alice.waitFor("logged in as alice", "● online")

	bob.tm.Type("bob")
	bob.key(tea.KeyEnter) // on to the password
	bob.tm.Type("bob-password")
	bob.key(tea.KeyCtrlR)
	bob.waitFor("logged in as bob")
	if len(aliceSaved) != 1 || aliceSaved[0].Token == "" || len(bobSaved) != 1 {
		t.Fatalf("sessions kept: %+v %+v", aliceSaved, bobSaved)
	}

	// Strangers may not talk; a friend request, accepted.
	bob.typeLine("/msg alice")
	bob.waitFor("not a friend")
	bob.typeLine("hello?")
	bob.waitFor("✗ [1] hello? not sent: you can only message friends")
	bob.typeLine("/add alice it's bob")
	bob.waitFor("friend request sent to alice")
	alice.waitFor(`bob wants to be your friend ("it's bob"): /accept bob`, "? bob")
	alice.typeLine("/accept bob")
	alice.waitFor("bob is now your friend: /msg bob")
	alice.typeLine("/msg bob")
	alice.waitFor("bob · ● online")
	bob.waitFor("alice accepted: you are friends now")

	// They talk: bob's first try goes out again now that it may.
	bob.typeLine("/retry")
	alice.waitFor("bob: hello?")
	alice.typeLine("hi bob")
	bob.waitFor("alice: hi bob")

	// A group: alice makes it with bob, who sees it in his list with an
	// unread count and opens it.
	alice.typeLine("/group new crag bob")
	alice.waitFor("created #crag")
	bob.waitFor("alice added you to #crag")
	alice.typeLine("meet at nine")
	bob.waitFor("new message from alice in #crag: meet at nine", " 1 ")
	bob.key(tea.KeyTab)
	bob.waitFor("#crag · 2 members", "alice: meet at nine")
	bob.typeLine("see you there")
	alice.waitFor("bob: see you there")
	bob.typeLine("/members")
	bob.waitFor("members of #crag", "alice (owner)")
	bob.key(tea.KeyEsc)

	// alice's line goes down; bob writes meanwhile; nothing is lost.
	link.Cut()
	alice.waitFor("● reconnecting")
	bob.typeLine("did you get this?")
	alice.typeLine("and this?") // typed while offline: it goes out on reconnect
	alice.waitFor("alice: and this? (queued, offline)")
	link.Restore()
	alice.waitFor("● online", "bob: did you get this?")
	bob.waitFor("alice: and this?")

	// bob leaves; alice writes to the group; bob logs in again with his
	// password and finds it.
	bob.quit()
	alice.typeLine("where did bob go?")
	alice.waitFor("alice: where did bob go?")
	bob = openScreen(t, srv.Addr(), &bobSaved)
	bob.tm.Type("bob")
	bob.key(tea.KeyTab)
	bob.tm.Type("bob-password")
	bob.key(tea.KeyEnter)
	bob.waitFor("logged in as bob", "▸ #crag", "alice: where did bob go?", "see you there", "● alice")
	alice.quit()
	bob.quit()
}

// The composer counts against the limit the server tells in LoginOK
// (max_message), not against the default, and refuses a longer message
// before sending it.
func TestComposerCountsAgainstServerLimit(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.DMPolicy = server.DMAnyone; c.MaxMessage = 100 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bob, err := client.Dial(ctx, srv.Addr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bob.Close() })
	if _, err := bob.Register(ctx, "bob", "bob-password"); err != nil {
		t.Fatal(err)
	}
	var saved []protocol.LoginOK
	alice := openScreen(t, srv.Addr(), &saved)
	alice.tm.Type("alice")
	alice.key(tea.KeyTab)
	alice.tm.Type("alice-password")
	alice.key(tea.KeyCtrlR)
	alice.waitFor("logged in as alice")
	alice.typeLine("/msg bob")
	alice.waitFor("bob ·")

	alice.tm.Type(strings.Repeat("x", 90))
	alice.waitFor("10 bytes left")
	alice.tm.Type(strings.Repeat("y", 11))
	alice.waitFor("1 bytes over the limit")
	alice.key(tea.KeyEnter)
	alice.waitFor("too long by 1 bytes (limit 100): not sent")
	alice.key(tea.KeyBackspace)
	alice.key(tea.KeyEnter)
	select {
	case m := <-bob.Messages():
		if len(m.Body) != 100 {
			t.Fatalf("bob got %d bytes, want the 100 that fit", len(m.Body))
		}
	case <-ctx.Done():
		t.Fatal("the message that fits never reached bob")
	}
	// bob's answer comes after alice's SendAck on her connection.
	if _, err := bob.Send(ctx, saved[0].UserID, 0, []byte("got it")); err != nil {
		t.Fatal(err)
	}
	alice.waitFor("bob: got it")
	alice.quit()
}

// registered opens a screen and registers name on it.
func registered(t *testing.T, addr, name string) *screen {
	t.Helper()
	var saved []protocol.LoginOK
	s := openScreen(t, addr, &saved)
	s.tm.Type(name)
	s.key(tea.KeyTab)
	s.tm.Type(name + "-password")
	s.key(tea.KeyCtrlR)
	s.waitFor("logged in as " + name)
	return s
}

// The directory of open groups on two screens, under the friends-only
// policy: alice makes a group and opens it; bob, a stranger, finds it
// with /list and joins it with /join NAME, and they talk in it; closed
// again, it is gone from the list.
func TestOpenGroupScreens(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.DMPolicy = server.DMFriends })
	alice := registered(t, srv.Addr(), "alice")
	bob := registered(t, srv.Addr(), "bob")

	alice.typeLine("/group new Crag")
	alice.waitFor("created #Crag")
	bob.typeLine("/list")
	bob.waitFor("none yet: /group open NAME makes one")
	bob.key(tea.KeyEsc)
	alice.typeLine("/open")
	alice.waitFor("#Crag is open: anyone may find it with /list and /join it")

	bob.typeLine("/list cr")
	bob.waitFor(`open groups starting with "cr"`, "#Crag — id ", "1 member")
	bob.key(tea.KeyEsc)
	bob.typeLine("/join crag")
	bob.waitFor("you joined #Crag", "#Crag · 2 members")
	alice.waitFor("bob joined #Crag")
	bob.typeLine("hello climbers")
	alice.waitFor("bob: hello climbers")

	alice.typeLine("/close")
	alice.waitFor("#Crag is invite-only")
	bob.waitFor("alice made #Crag invite-only")
	bob.typeLine("/list")
	bob.waitFor("none yet: /group open NAME makes one")
	bob.key(tea.KeyEsc)
	alice.quit()
	bob.quit()
}
