package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds parley once for the tests of this run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "parley-bin-"); buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "parley")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// user runs the built parley as one user: their own config file.
type user struct {
	t          *testing.T
	bin, addr  string
	conf       string
	stdin, env string // env: one KEY=VALUE, if set
}

type result struct {
	out, err string
	code     int
}

func (u user) run(args ...string) result {
	u.t.Helper()
	cmd := exec.Command(u.bin, append([]string{"--addr", u.addr, "--config", u.conf}, args...)...)
	cmd.Env = append(os.Environ(), "PARLEY_ADDR=", "PARLEY_CONFIG=")
	if u.env != "" {
		cmd.Env = append(cmd.Env, u.env)
	}
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(u.stdin), &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		u.t.Fatal(err)
	}
	u.t.Logf("parley %s → %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	return result{out.String(), errb.String(), code}
}

// ok runs a command that must succeed and returns its stdout.
func (u user) ok(args ...string) string {
	u.t.Helper()
	r := u.run(args...)
	if r.code != exitOK {
		u.t.Fatalf("parley %v: exit %d: %s", args, r.code, r.err)
	}
	return r.out
}

// okJSON runs a command with --json and decodes its stdout into v.
func (u user) okJSON(v any, args ...string) {
	u.t.Helper()
	out := u.ok(append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		u.t.Fatalf("parley --json %v: %v in %q", args, err, out)
	}
}

// fails runs a command that must fail with code, its stderr saying want.
func (u user) fails(code int, want string, args ...string) {
	u.t.Helper()
	r := u.run(args...)
	if r.code != code || !strings.Contains(r.err, want) {
		u.t.Fatalf("parley %v: exit %d, stderr %q; want exit %d and %q", args, r.code, r.err, code, want)
	}
}

// failsJSON runs a command with --json that must fail with code and the
// wire error code wire.
func (u user) failsJSON(code int, wire string, args ...string) {
	u.t.Helper()
	r := u.run(append([]string{"--json"}, args...)...)
	var e struct {
		Error, Code string
		Exit        int
	}
	if err := json.Unmarshal([]byte(r.err), &e); err != nil {
		u.t.Fatalf("parley --json %v: stderr %q: %v", args, r.err, err)
	}
	if r.code != code || e.Exit != code || e.Code != wire || e.Error == "" || r.out != "" {
		u.t.Fatalf("parley --json %v: exit %d, %+v, stdout %q; want exit %d, code %q", args, r.code, e, r.out, code, wire)
	}
}

func newUsers(t *testing.T, names ...string) map[string]user {
	srv := servertest.Start(t, func(c *server.Config) { c.DMPolicy = server.DMFriends }) // the real default
	bin, dir := binary(t), t.TempDir()
	us := map[string]user{}
	for _, n := range names {
		us[n] = user{t: t, bin: bin, addr: srv.Addr(), conf: filepath.Join(dir, n, "config.json")}
	}
	return us
}

func TestAccountsAndFriends(t *testing.T) {
	us := newUsers(t, "alice", "bob", "carol")
	alice, bob, carol := us["alice"], us["bob"], us["carol"]

	alice.fails(exitNoLogin, "not logged in: run parley login NAME", "friends")
	alice.failsJSON(exitNoLogin, "", "friends")

	if out := alice.ok("register", "alice", "alice-password"); !strings.Contains(out, "logged in as alice") {
		t.Fatalf("register: %q", out)
	}
	info, err := os.Stat(alice.conf)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", info, err)
	}
	if dir, err := os.Stat(filepath.Dir(alice.conf)); err != nil || dir.Mode().Perm() != 0o700 {
		t.Fatalf("config directory: %v %v", dir, err)
	}
	var saved config
	if b, err := os.ReadFile(alice.conf); err != nil || json.Unmarshal(b, &saved) != nil || saved.Token == "" || saved.Username != "alice" || saved.Addr != alice.addr {
		t.Fatalf("saved %+v (%v)", saved, err)
	}

	var who sessionJSON
	bob.okJSON(&who, "register", "bob", "bob-password")
	if who.Username != "bob" || who.UserID == 0 || who.Addr != bob.addr {
		t.Fatalf("register --json: %+v", who)
	}
	bob.fails(exitRefused, "that username is taken (USERNAME_TAKEN)", "register", "bob", "other-password")
	bob.fails(exitRefused, "wrong username or password (BAD_CREDENTIALS)", "login", "bob", "wrong-password")
	bob.failsJSON(exitRefused, "WEAK_PASSWORD", "register", "bobby", "short")

	// The password from stdin, the flags through the environment.
	carol.stdin = "carol-password\n"
	carol.ok("register", "carol")
	carol.stdin = ""
	viaEnv := user{t: t, bin: carol.bin, addr: "127.0.0.1:1", conf: carol.conf, env: "PARLEY_ADDR=" + carol.addr}
	if r := viaEnv.run("whoami"); r.code != exitNoLogin || !strings.Contains(r.err, "not 127.0.0.1:1") {
		t.Fatalf("--addr wins over PARLEY_ADDR: %+v", r)
	}
	cmd := exec.Command(carol.bin, "whoami")
	cmd.Env = append(os.Environ(), "PARLEY_ADDR="+carol.addr, "PARLEY_CONFIG="+carol.conf)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "carol (id") {
		t.Fatalf("whoami from the environment: %v %s", err, out)
	}

	// Only friends may message each other.
	alice.failsJSON(exitRefused, "NOT_FRIENDS", "send", "bob", "hi")
	alice.fails(exitRefused, "you can only message friends: parley add NAME", "send", "bob", "hi")
	alice.ok("add", "bob", "it's", "alice")
	alice.failsJSON(exitRefused, "REQUEST_EXISTS", "add", "bob")
	var reqs requestsJSON
	bob.okJSON(&reqs, "requests")
	if len(reqs.Incoming) != 1 || reqs.Incoming[0].Username != "alice" || reqs.Incoming[0].Note != "it's alice" || len(reqs.Outgoing) != 0 {
		t.Fatalf("requests: %+v", reqs)
	}
	var done doneJSON
	bob.okJSON(&done, "accept", "alice")
	if done.Done != "accepted" || done.Username != "alice" {
		t.Fatalf("accept: %+v", done)
	}
	var friends []userJSON
	alice.okJSON(&friends, "friends")
	if len(friends) != 1 || friends[0].Username != "bob" || friends[0].UserID != who.UserID {
		t.Fatalf("friends: %+v", friends)
	}
	carol.ok("add", "alice")
	alice.ok("decline", "carol")
	alice.failsJSON(exitRefused, "NO_SUCH_REQUEST", "accept", "carol")
	alice.failsJSON(exitRefused, "NO_SUCH_USER", "add", "nobody")
	alice.failsJSON(exitRefused, "SELF_MESSAGE", "send", "alice", "hi me")

	// Messages, one from stdin; history oldest first, flags after the command.
	var sent sentJSON
	alice.okJSON(&sent, "send", "bob", "first", "message")
	if sent.Seq != 1 || sent.Conv == "" || sent.MsgID == 0 {
		t.Fatalf("send: %+v", sent)
	}
	bob.stdin = "a reply\nover two lines\n"
	bob.ok("send", "alice", "-")
	var hist []messageJSON
	alice.okJSON(&hist, "history", "bob")
	if len(hist) != 2 || hist[0].Text != "first message" || hist[0].FromName != "alice" ||
		hist[1].Text != "a reply\nover two lines" || hist[1].FromName != "bob" || hist[1].Seq != 2 {
		t.Fatalf("history: %+v", hist)
	}
	if out := alice.ok("history", "bob", "1"); strings.Count(out, "\n") != 2 || !strings.Contains(out, "bob: a reply\n    over two lines\n") {
		t.Fatalf("history 1: %q", out)
	}
	if out := alice.ok("history", "bob", "--json", "1"); !strings.HasPrefix(out, "[{") {
		t.Fatalf("a flag after the command: %q", out)
	}
	// Search, newest first; messages are indexed just after their commit.
	var found []foundJSON
	for range 100 {
		if alice.okJSON(&found, "search", "TWO", "lines"); len(found) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(found) != 1 || found[0].Text != "a reply\nover two lines" || found[0].Conv != sent.Conv || found[0].Seq != 2 {
		t.Fatalf("search: %+v", found)
	}
	var convs []convJSON
	bob.okJSON(&convs, "conversations")
	if len(convs) != 1 || convs[0].Title != "alice" || convs[0].Unread != 1 || convs[0].Last == nil || convs[0].Last.FromName != "bob" {
		t.Fatalf("conversations: %+v", convs)
	}
	bob.ok("unfriend", "alice")
	bob.failsJSON(exitRefused, "NOT_FRIENDS", "send", "alice", "still there?")
}

func TestGroupCommands(t *testing.T) {
	us := newUsers(t, "alice", "bob", "carol")
	alice, bob, carol := us["alice"], us["bob"], us["carol"]
	for n, u := range us {
		u.ok("register", n, n+"-password")
	}
	// Under the friends policy only friends may be added to a group.
	alice.failsJSON(exitRefused, "NOT_FRIENDS", "group", "create", "crag", "bob")
	alice.ok("add", "bob")
	alice.ok("add", "carol")
	bob.ok("accept", "alice")
	carol.ok("accept", "alice")
	var crag, lobby groupJSON
	alice.okJSON(&crag, "group", "create", "crag", "bob")
	if crag.Name != "crag" || crag.Members != 2 || crag.Open {
		t.Fatalf("group create: %+v", crag)
	}
	alice.okJSON(&lobby, "group", "create", "--open", "lobby")
	if !lobby.Open || lobby.Members != 1 {
		t.Fatalf("group create --open: %+v", lobby)
	}
	bob.ok("group", "send", "crag", "saturday?")
	alice.ok("send", "#crag", "at nine")
	alice.ok("send", fmt.Sprintf("#%d", crag.GroupID), "at the wall")
	var hist []messageJSON
	bob.okJSON(&hist, "history", "#crag")
	if len(hist) != 3 || hist[0].FromName != "bob" || hist[2].Text != "at the wall" {
		t.Fatalf("group history: %+v", hist)
	}
	var groups []groupJSON
	bob.okJSON(&groups, "groups")
	if len(groups) != 1 || groups[0].GroupID != crag.GroupID {
		t.Fatalf("groups: %+v", groups)
	}
	carol.failsJSON(exitRefused, "GROUP_CLOSED", "group", "join", fmt.Sprint(crag.GroupID))
	// The directory: only open groups, joined by name.
	var open []groupJSON
	carol.okJSON(&open, "group", "list")
	if len(open) != 1 || open[0].GroupID != lobby.GroupID {
		t.Fatalf("group list: %+v", open)
	}
	carol.failsJSON(exitRefused, "NO_SUCH_GROUP", "group", "join", "crag") // closed: not in the directory
	if out := carol.ok("group", "join", "LOBBY"); !strings.Contains(out, fmt.Sprintf("joined #lobby (id %d)", lobby.GroupID)) {
		t.Fatalf("join by name: %q", out)
	}
	bob.failsJSON(exitRefused, "NOT_OWNER", "group", "open", "crag")
	alice.ok("group", "open", "crag")
	if out := carol.ok("group", "list", "CR"); !strings.Contains(out, fmt.Sprintf("#%d\tcrag\t2 members", crag.GroupID)) || strings.Contains(out, "lobby") {
		t.Fatalf("group list CR: %q", out)
	}
	alice.ok("group", "close", "crag")
	carol.okJSON(&open, "group", "list", "cr")
	if len(open) != 0 {
		t.Fatalf("closed, still listed: %+v", open)
	}
	carol.failsJSON(exitRefused, "NO_SUCH_GROUP", "send", "#crag", "hello?") // not hers: no name to find
	carol.failsJSON(exitRefused, "NOT_MEMBER", "send", fmt.Sprintf("#%d", crag.GroupID), "hello?")
	alice.ok("group", "invite", "crag", "carol")
	var members []memberJSON
	carol.okJSON(&members, "group", "members", "crag")
	if len(members) != 3 || !members[0].Owner && !members[1].Owner && !members[2].Owner {
		t.Fatalf("members: %+v", members)
	}
	if out := carol.ok("group", "members", "crag"); !strings.Contains(out, "alice\t") || !strings.Contains(out, "\towner") {
		t.Fatalf("members: %q", out)
	}
	carol.ok("group", "leave", "crag")
	alice.failsJSON(exitRefused, "OWNER_CANNOT_LEAVE", "group", "leave", "crag")
	var convs []convJSON
	carol.okJSON(&convs, "conversations")
	for _, c := range convs {
		if c.Title == "#crag" {
			t.Fatalf("a group left is still listed: %+v", convs)
		}
	}
}

func TestSessionAndFailures(t *testing.T) {
	us := newUsers(t, "alice")
	alice := us["alice"]
	alice.ok("register", "alice", "alice-password")
	if out := alice.ok("whoami"); !strings.Contains(out, "alice (id ") {
		t.Fatalf("whoami: %q", out)
	}

	// A logout elsewhere revokes the token this config still holds.
	copyConf := filepath.Join(t.TempDir(), "copy.json")
	b, _ := os.ReadFile(alice.conf)
	if err := os.WriteFile(copyConf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	other := alice
	other.conf = copyConf
	if out := other.ok("logout"); !strings.Contains(out, "alice is logged out") {
		t.Fatalf("logout: %q", out)
	}
	other.fails(exitNoLogin, "not logged in", "friends")
	alice.fails(exitNoLogin, "the saved session of alice is no longer valid", "friends")
	alice.failsJSON(exitNoLogin, "TOKEN_INVALID", "friends")
	alice.ok("login", "alice", "alice-password")
	alice.ok("friends")

	// Usage mistakes.
	for _, args := range [][]string{
		{"history"}, {"history", "bob", "0"}, {"history", "bob", "many"}, {"frobnicate"}, {"group"},
		{"group", "rename", "x"}, {"accept", "a", "b"}, {"--bogus", "friends"}, {"--timeout", "0s", "friends"},
	} {
		if r := alice.run(args...); r.code != exitUsage || !strings.HasPrefix(r.err, "parley: ") {
			t.Errorf("parley %v: exit %d, %q", args, r.code, r.err)
		}
	}
	if out := alice.ok("help"); !strings.Contains(out, "exit codes") || !strings.Contains(out, "group create NAME [USER...]") {
		t.Fatalf("help: %q", out)
	}
	alice.fails(exitUsage, "needs a terminal", "chat")
	alice.fails(exitUsage, "needs a terminal") // no command: the chat

	// No server.
	nowhere := alice
	nowhere.addr = servertest.FreeAddr(t)
	nowhere.fails(exitNoLogin, "the saved session is for "+alice.addr, "friends")
	nowhere.fails(exitNoServer, "cannot reach the server at "+nowhere.addr, "login", "alice", "alice-password")
	nowhere.failsJSON(exitNoServer, "", "register", "zed", "zed-password")

	// A broken config file.
	if err := os.WriteFile(alice.conf, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	alice.fails(exitConfig, "is not a parley config file", "friends")
}
