package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/cmd/parley/ui"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// ptyTerm is the built parley running in a pseudo-terminal of a private tmux
// server, 80x24 unless told: the tests type into it, read its screen with
// capture-pane, and can kill it as a crash would.
type ptyTerm struct {
	t    *testing.T
	sock string
	n    int // windows started
}

// newTerm starts a private tmux server; it is killed when the test ends.
func newTerm(t *testing.T) *ptyTerm {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: the screen tests drive parley in a tmux pseudo-terminal")
	}
	dir, err := os.MkdirTemp("", "parley-tmux-") // a short path: sockets have a length limit
	if err != nil {
		t.Fatal(err)
	}
	tm := &ptyTerm{t: t, sock: filepath.Join(dir, "s")}
	t.Cleanup(func() {
		_ = exec.Command("tmux", "-S", tm.sock, "kill-server").Run()
		os.RemoveAll(dir)
	})
	return tm
}

func (tm *ptyTerm) tmux(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", tm.sock}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %.200q: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// start runs parley as u in a new 80x24 window; the window stays when
// parley ends, to show what it printed.
func (tm *ptyTerm) start(u user, w, h int, prefix ...string) {
	tm.t.Helper()
	tm.n++
	name := "w" + strconv.Itoa(tm.n)
	args := append([]string{"new-session", "-d", "-s", name, "-x", strconv.Itoa(w), "-y", strconv.Itoa(h),
		"-e", "PARLEY_ADDR=", "-e", "PARLEY_CONFIG=", "-e", "TERM=xterm-256color"}, prefix...)
	args = append(args, u.bin, "--addr", u.addr, "--config", u.conf)
	if tm.n == 1 {
		args = append([]string{"-f", "/dev/null"}, args...)
	}
	tm.tmux(args...)
	tm.tmux("set-option", "-t", name, "remain-on-exit", "on")
}

func (tm *ptyTerm) target() string { return "w" + strconv.Itoa(tm.n) }

// typeLine types text and presses Enter.
func (tm *ptyTerm) typeLine(text string) {
	tm.t.Helper()
	tm.tmux("send-keys", "-t", tm.target(), "-l", text)
	tm.tmux("send-keys", "-t", tm.target(), "Enter")
}

func (tm *ptyTerm) keys(keys ...string) {
	tm.t.Helper()
	tm.tmux(append([]string{"send-keys", "-t", tm.target()}, keys...)...)
}

// screen is what the terminal shows now.
func (tm *ptyTerm) screen() string {
	tm.t.Helper()
	return tm.tmux("capture-pane", "-p", "-t", tm.target())
}

// waitFor waits until the screen shows every one of want, and returns it.
func (tm *ptyTerm) waitFor(want ...string) string {
	tm.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := tm.screen()
		if !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(s, w) }) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("the screen never showed %q:\n%s", want, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends parley with SIGKILL, as a crash.
func (tm *ptyTerm) kill() {
	tm.t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(tm.tmux("display-message", "-p", "-t", tm.target(), "#{pane_pid}")))
	if err != nil {
		tm.t.Fatal(err)
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		tm.t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		tm.t.Fatal(err)
	}
	tm.waitDead()
}

// waitDead waits until parley has ended (tmux does not always print "Pane
// is dead" in time; its pane_dead flag is exact).
func (tm *ptyTerm) waitDead() {
	tm.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.TrimSpace(tm.tmux("display-message", "-p", "-t", tm.target(), "#{pane_dead}")) != "1" {
		if time.Now().After(deadline) {
			tm.t.Fatalf("parley did not end:\n%s", tm.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shot logs the screen, framed, for the record.
func (tm *ptyTerm) shot(title string) {
	tm.t.Helper()
	tm.t.Logf("%s\n+%s+\n%s+%s+", title, strings.Repeat("-", 80), frame(tm.screen()), strings.Repeat("-", 80))
}

func frame(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(&b, "|%s|\n", l+strings.Repeat(" ", max(80-len([]rune(l)), 0)))
	}
	return b.String()
}

// texts is the conversation of u with peer as the server stored it, oldest
// first.
func texts(u user, peer string) []string {
	u.t.Helper()
	var ms []struct{ Text string }
	u.okJSON(&ms, "history", peer, "50")
	var out []string
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

// Bugs 1, 6 and 7 of issue 17, and the crash test: alice types five lines
// while the server is down, parley is killed, started again (still
// offline, from the saved session, the cache and the outgoing queue), and
// when the server is back the five are stored in the order typed, once.
func TestQueueSurvivesCrashAndGoesOutInOrder(t *testing.T) {
	st := servertest.NewStorage(t)
	srv := servertest.StartOn(t, st, nil)
	addr := srv.Addr()
	bin, dir := binary(t), t.TempDir()
	alice := user{t: t, bin: bin, addr: addr, conf: filepath.Join(dir, "alice", "config.json")}
	bob := user{t: t, bin: bin, addr: addr, conf: filepath.Join(dir, "bob", "config.json")}
	alice.ok("register", "alice", "alice-password")
	bob.ok("register", "bob", "bob-password")
	alice.ok("send", "bob", "before the outage")

	tm := newTerm(t)
	tm.start(alice, 80, 24)
	tm.waitFor("online", "alice: before the outage")
	servertest.Stop(t, srv)
	tm.waitFor("reconnecting")
	for i := 1; i <= 5; i++ {
		tm.typeLine(fmt.Sprintf("offline order test %d", i))
	}
	tm.waitFor("offline order test 5 (queued, offline)")

	// Bug 6: a quit with messages queued says so first.
	tm.keys("C-c")
	tm.waitFor("5 message(s) not sent yet (5 to bob)")
	tm.kill()
	if info, err := os.Stat(filepath.Join(dir, "alice")); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("config directory: %v %v", info, err)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "alice", "outbox-*.json"))
	if len(matches) != 1 {
		t.Fatalf("outbox files %v", matches)
	}
	if info, err := os.Stat(matches[0]); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("outbox file: %v %v", info, err)
	}

	// Bug 7: the screen starts while the server is down.
	tm.start(alice, 80, 24)
	tm.waitFor("offline · 5 queued", "alice: before the outage", "offline order test 1 (queued, offline)", "offline order test 5 (queued, offline)")
	tm.shot("offline start with a queue (80x24)")

	servertest.StartOn(t, st, func(c *server.Config) { c.Addr = addr })
	tm.waitFor("online")
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(tm.screen(), "queued") || strings.Contains(tm.screen(), "sending") {
		if time.Now().After(deadline) {
			t.Fatalf("the queue never emptied:\n%s", tm.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := []string{"before the outage", "offline order test 1", "offline order test 2", "offline order test 3", "offline order test 4", "offline order test 5"}
	if got := texts(bob, "alice"); !slices.Equal(got, want) {
		t.Fatalf("stored %q, want %q", got, want)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "alice", "outbox-*.json")); len(m) != 0 {
		t.Fatalf("outbox left behind: %v", m)
	}

	// Nothing queued: Ctrl+C quits at once.
	tm.keys("C-c")
	tm.waitDead()
}

// Bug 5 of issue 17: 200 CJK characters typed without bracketed paste (600
// bytes: Bubble Tea's 256-byte reads end inside a character) are stored
// whole.
func TestTypedBurstKeepsEveryCharacter(t *testing.T) {
	srv := servertest.Start(t, nil)
	bin, dir := binary(t), t.TempDir()
	alice := user{t: t, bin: bin, addr: srv.Addr(), conf: filepath.Join(dir, "alice", "config.json")}
	bob := user{t: t, bin: bin, addr: srv.Addr(), conf: filepath.Join(dir, "bob", "config.json")}
	alice.ok("register", "alice", "alice-password")
	bob.ok("register", "bob", "bob-password")
	bob.ok("send", "alice", "hi")

	tm := newTerm(t)
	tm.start(alice, 80, 24)
	tm.waitFor("online", "bob: hi")
	text := strings.Repeat("漢字かな", 50) // 200 characters, 600 bytes
	tm.typeLine(text)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := texts(bob, "alice")
		if len(got) == 2 {
			if got[1] != text {
				t.Fatalf("stored %d characters, want %d: %q", len([]rune(got[1])), len([]rune(text)), got[1])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never stored; screen:\n%s", tm.screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Bug 3 of issue 17: a refused message is one line where it was typed, and
// later messages show below it; /discard drops it. An overlong line is
// refused before it is sent, with a counter on the status line.
func TestFailedMessage(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.DMPolicy = server.DMFriends })
	bin, dir := binary(t), t.TempDir()
	alice := user{t: t, bin: bin, addr: srv.Addr(), conf: filepath.Join(dir, "alice", "config.json")}
	bob := user{t: t, bin: bin, addr: srv.Addr(), conf: filepath.Join(dir, "bob", "config.json")}
	alice.ok("register", "alice", "alice-password")
	bob.ok("register", "bob", "bob-password")

	tm := newTerm(t)
	tm.start(alice, 80, 24)
	tm.waitFor("online")
	tm.typeLine("/msg bob")
	tm.waitFor("bob · not a friend")
	tm.typeLine("hello bob, are you there?")
	tm.waitFor("✗ [1] hello bob, are you … not sent: you can only", "/retry 1 or /discard 1")

	bob.ok("add", "alice")
	alice.ok("accept", "bob")
	bob.ok("send", "alice", "a message after the failed one")
	s := tm.waitFor("bob: a message after the failed one")
	if strings.Index(s, "✗ [1]") > strings.Index(s, "bob: a message after the failed one") {
		t.Fatalf("the failed message is not in time order:\n%s", s)
	}
	tm.shot("a failed message (80x24)")

	for i := 0; i < ui.DefaultMaxBody+5; i += 1000 {
		tm.keys("-l", strings.Repeat("x", min(1000, ui.DefaultMaxBody+5-i)))
	}
	tm.waitFor("5 bytes over the limit")
	tm.keys("Enter")
	tm.waitFor("too long by 5 bytes (limit 16384)")
	tm.keys("C-u")
	tm.typeLine("/discard 1")
	tm.waitFor("discarded 1 message(s)")
	if strings.Contains(tm.screen(), "✗") {
		t.Fatalf("discarded, still shown:\n%s", tm.screen())
	}
	if got := texts(bob, "alice"); !slices.Equal(got, []string{"a message after the failed one"}) {
		t.Fatalf("stored %q", got)
	}
}

// The unread divider: alice read bob's first three messages, quit; bob
// wrote 25 more. On her next start the view opens on the divider, the
// first unread message right below it.
func TestUnreadDividerOnScreen(t *testing.T) {
	srv := servertest.Start(t, nil)
	bin, dir := binary(t), t.TempDir()
	alice := user{t: t, bin: bin, addr: srv.Addr(), conf: filepath.Join(dir, "alice", "config.json")}
	bob := user{t: t, bin: bin, addr: srv.Addr(), conf: filepath.Join(dir, "bob", "config.json")}
	alice.ok("register", "alice", "alice-password")
	bob.ok("register", "bob", "bob-password")
	for i := 1; i <= 3; i++ {
		bob.ok("send", "alice", fmt.Sprintf("read %d", i))
	}
	tm := newTerm(t)
	tm.start(alice, 80, 24)
	tm.waitFor("online", "bob: read 3")
	time.Sleep(200 * time.Millisecond) // the read cursor's Ack
	tm.keys("C-c")
	tm.waitDead()
	for i := 1; i <= 25; i++ {
		bob.ok("send", "alice", fmt.Sprintf("unread %d", i))
	}
	tm.start(alice, 80, 24)
	s := tm.waitFor("online", "── new ──", "bob: unread 1", "bob: unread 19")
	lines := strings.Split(s, "\n")
	if !strings.Contains(lines[1], "bob: read 3") || !strings.Contains(lines[2], "── new ──") || !strings.Contains(lines[3], "bob: unread 1") {
		t.Fatalf("the view does not open on the divider:\n%s", s)
	}
	tm.shot("the unread divider (80x24)")
}

// Two copies of parley on one account: the second says that another is
// running and exits 5 without touching the queue; the first goes on, and
// once it quits the account opens again.
func TestSecondCopyFindsQueueLocked(t *testing.T) {
	srv := servertest.Start(t, nil)
	bin, dir := binary(t), t.TempDir()
	alice := user{t: t, bin: bin, addr: srv.Addr(), conf: filepath.Join(dir, "alice", "config.json")}
	alice.ok("register", "alice", "alice-password")

	tm := newTerm(t)
	tm.start(alice, 80, 24)
	tm.waitFor("online")
	first := tm.target()
	// The second copy ends at once: its window must stay from the start,
	// and a shell around it prints its exit status (tmux 3.3a does not
	// always record one for a pane that dies this fast).
	tm.tmux("set-window-option", "-g", "remain-on-exit", "on")
	tm.start(alice, 80, 24, "sh", "-c", `"$0" "$@"; echo "parley exited $?"`)
	tm.waitDead()
	// What it printed, scrolled off or not, with wrapped lines joined.
	s := tm.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", tm.target())
	if !regexp.MustCompile(`parley: another parley \(pid \d+\) is running for this account and holds its outgoing queue: quit that one first`).MatchString(s) {
		t.Fatalf("the second copy printed:\n%s", s)
	}
	if !strings.Contains(s, "parley exited 5") {
		t.Fatalf("the second copy did not exit 5:\n%s", s)
	}

	tm.tmux("send-keys", "-t", first, "C-c")
	deadline := time.Now().Add(10 * time.Second)
	for strings.TrimSpace(tm.tmux("display-message", "-p", "-t", first, "#{pane_dead}")) != "1" {
		if time.Now().After(deadline) {
			t.Fatal("the first copy did not quit")
		}
		time.Sleep(50 * time.Millisecond)
	}
	tm.start(alice, 80, 24)
	tm.waitFor("online")
	tm.keys("C-c")
	tm.waitDead()
}
