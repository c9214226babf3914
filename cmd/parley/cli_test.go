package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/cmd/parley/ui"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// cli runs the built parley binary as one user (its own config file).
type cli struct {
	t    *testing.T
	bin  string
	addr string
	conf string
}

func build(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "parley")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func (c cli) run(args ...string) (string, int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, append([]string{"--addr", c.addr, "--config", c.conf}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return out.String() + errb.String(), code
}

func (c cli) ok(args ...string) string {
	c.t.Helper()
	out, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("parley %v: exit %d: %s", args, code, out)
	}
	return out
}

func TestCommands(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.DMPolicy = server.DMFriends })
	bin := build(t)
	dir := t.TempDir()
	alice := cli{t, bin, srv.Addr(), filepath.Join(dir, "alice.json")}
	bob := cli{t, bin, srv.Addr(), filepath.Join(dir, "bob.json")}

	if out, code := alice.run("send", "bob", "hi"); code != exitNoLogin || !strings.Contains(out, "not logged in") {
		t.Fatalf("send before login: exit %d %q", code, out)
	}
	alice.ok("register", "alice", "alice-password")
	if info, err := os.Stat(alice.conf); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", info.Mode(), err)
	}
	var who map[string]any
	if err := json.Unmarshal([]byte(bob.ok("--json", "register", "bob", "bob-password")), &who); err != nil || who["username"] != "bob" {
		t.Fatalf("register --json: %v %v", who, err)
	}
	if out, code := bob.run("login", "bob", "wrong-password"); code != exitRefused || !strings.Contains(out, "wrong username or password") {
		t.Fatalf("bad password: exit %d %q", code, out)
	}
	if out, code := alice.run("send", "bob", "hi"); code != exitRefused || !strings.Contains(out, "NOT_FRIENDS") {
		t.Fatalf("send to a stranger: exit %d %q", code, out)
	}
	alice.ok("add", "bob", "hello", "bob")
	if out := bob.ok("requests"); !strings.Contains(out, "from alice: hello bob") {
		t.Fatalf("requests: %q", out)
	}
	bob.ok("accept", "alice")
	alice.ok("send", "bob", "first", "message")
	bob.ok("send", "alice", "reply")
	var lines []struct {
		Seq  uint64 `json:"seq"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(alice.ok("--json", "history", "bob")), &lines); err != nil || len(lines) != 2 ||
		lines[0].Text != "first message" || lines[1].Text != "reply" || lines[1].Seq != 2 {
		t.Fatalf("history --json: %+v %v", lines, err)
	}
	if out := alice.ok("friends"); !strings.Contains(out, "bob\tonline") && !strings.Contains(out, "bob\toffline") {
		t.Fatalf("friends: %q", out)
	}
	if out := alice.ok("group-create", "climbing", "bob"); !strings.Contains(out, "climbing created") {
		t.Fatalf("group-create: %q", out)
	}
	bob.ok("send", "#climbing", "saturday?")
	if out := alice.ok("history", "#climbing"); !strings.Contains(out, "saturday?") {
		t.Fatalf("group history: %q", out)
	}
	if out := alice.ok("--json", "groups"); !strings.Contains(out, `"name":"climbing"`) {
		t.Fatalf("groups --json: %q", out)
	}

	if _, code := alice.run("history"); code != exitUsage {
		t.Fatalf("history without a name: exit %d", code)
	}
	if _, code := alice.run("frobnicate"); code != exitUsage {
		t.Fatalf("unknown command: exit %d", code)
	}
	nowhere := cli{t, bin, servertest.FreeAddr(t), alice.conf}
	if out, code := nowhere.run("friends"); code != exitNoServer || !strings.Contains(out, "cannot reach") {
		t.Fatalf("no server: exit %d %q", code, out)
	}
}

// The full-screen client, its real model on a real client, against a real
// server: log in, receive and send a message, accept a friend request,
// get a group message.
func TestChatScreen(t *testing.T) {
	srv := servertest.Start(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg := func(name string) *client.Client {
		c, err := client.Dial(ctx, srv.Addr(), client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		if _, err := c.Register(ctx, name, name+"-password"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	reg("alice").Close()
	bob := reg("bob")

	c, err := client.Dial(ctx, srv.Addr(), client.Options{Reconnect: true, SyncOnLogin: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tm := teatest.NewTestModel(t, ui.New(c), teatest.WithInitialTermSize(110, 30))
	ui.Pump(tm, c)
	typeInto := func(s string) {
		tm.Type(s)
		tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
	}
	waitFor := func(what string) {
		t.Helper()
		teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(what)) },
			teatest.WithDuration(15*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
	}

	tm.Type("alice")
	tm.Send(tea.KeyMsg{Type: tea.KeyTab})
	typeInto("alice-password")
	waitFor("logged in as alice")

	// A friend request from bob, accepted with a slash command.
	aliceID := searchID(t, ctx, bob, "alice")
	if err := bob.RequestFriend(ctx, aliceID, "climb?"); err != nil {
		t.Fatal(err)
	}
	waitFor("/accept bob")
	typeInto("/accept bob")
	waitFor("bob is now your friend")
	expectNotice(t, bob, protocol.FriendAccepted)

	// Bob writes; alice reads it and answers.
	if _, err := bob.Send(ctx, aliceID, 0, []byte("hello alice")); err != nil {
		t.Fatal(err)
	}
	waitFor("hello alice")
	typeInto("hi bob")
	select {
	case m := <-bob.Messages():
		if string(m.Body) != "hi bob" {
			t.Fatalf("bob got %q", m.Body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bob got nothing")
	}

	// A group message.
	g, err := bob.CreateGroup(ctx, "crag", false, aliceID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SendGroup(ctx, g.GroupID, 0, []byte("meet at nine")); err != nil {
		t.Fatal(err)
	}
	waitFor("#crag (1)")
	tm.Send(tea.KeyMsg{Type: tea.KeyTab}) // to the group, first in the list now
	waitFor("bob: meet at nine")
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
}

func searchID(t *testing.T, ctx context.Context, c *client.Client, name string) int64 {
	t.Helper()
	page, err := c.SearchUsers(ctx, name, "", 1)
	if err != nil || len(page.Users) != 1 {
		t.Fatalf("search %s: %+v %v", name, page, err)
	}
	return page.Users[0].UserID
}

func expectNotice(t *testing.T, c *client.Client, kind string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n := <-c.Notices():
			if n.Friend != nil && n.Friend.Kind == kind {
				return
			}
		case <-timeout:
			t.Fatalf("no %s notice", kind)
		}
	}
}
