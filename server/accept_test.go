package server_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// The connection cap counts the connections of the process's other
// listeners (Server.Listener: the admin endpoint's) with the server's own,
// both ways.
func TestMaxConnsCountsOtherListeners(t *testing.T) {
	srv := startServer(t, func(c *server.Config) { c.MaxConns = 3 })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	other := srv.Listener(l)
	t.Cleanup(func() { _ = other.Close() })
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	take := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("the other listener accepted nothing")
			return nil
		}
	}
	dialOther := func() net.Conn {
		t.Helper()
		c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	dialOther()
	first := take()
	dialOther()
	take()

	a := dial(t, srv.Addr())
	a.ping()
	over := dial(t, srv.Addr())
	over.expectKick(protocol.KickTooManyConns)
	over.expectClosed()

	// At the cap the other listener closes what it accepts.
	c := dialOther()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("a connection past the cap on the other listener: read %d, %v", n, err)
	}
	select {
	case c := <-accepted:
		t.Fatalf("the other listener handed over a connection past the cap: %v", c.RemoteAddr())
	default:
	}

	// One of the other listener's connections closes: room for one more.
	_ = first.Close()
	b := dial(t, srv.Addr())
	b.ping()
}

// TestEMFILE runs a server in a child process with a low open-file limit,
// takes every descriptor the process has left while clients are logged
// in, and dials more: the server keeps serving the logged-in clients,
// and the connections that waited are served once descriptors free up.
// (gnet, accepting on its own, stopped its engine at the first EMFILE and
// dropped every client.)
func TestEMFILE(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	child := startEMFILEChild(t)
	addr := strings.TrimPrefix(child.expect("addr "), "addr ")

	a, b := dial(t, addr), dial(t, addr)
	a.register(uniqueName("emfa"))
	bob := b.register(uniqueName("emfb"))

	t.Log(child.do("hog", "hogged "))
	var waiting []*raw
	for range 8 {
		waiting = append(waiting, dial(t, addr)) // the kernel completes the handshake; accept cannot
	}
	time.Sleep(300 * time.Millisecond) // accept fails with EMFILE meanwhile

	for i := range 3 {
		a.sendText(bob.UserID, fmt.Sprintf("emfile-%d", i), "still here")
		if m := b.expectPush(); string(m.Body) != "still here" {
			t.Fatalf("push %q", m.Body)
		}
	}
	a.ping()
	if got := child.do("status", "status "); got != "status serving" {
		t.Fatalf("while out of descriptors: %s", got)
	}

	child.do("free", "freed")
	for _, w := range waiting {
		w.ping()
	}
	c := dial(t, addr)
	c.register(uniqueName("emfc"))
	a.sendText(bob.UserID, "emfile-after", "after")
	b.expectPush()
	if got := child.do("status", "status "); got != "status serving" {
		t.Fatalf("after descriptors freed: %s", got)
	}
	child.stop()
}

// TestEMFILEServerProcess is the server process of TestEMFILE.
func TestEMFILEServerProcess(t *testing.T) {
	if os.Getenv("PARLEY_EMFILE_SERVER") == "" {
		t.Skip("the server process of TestEMFILE, started by it")
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, func(c *server.Config) { c.FDReserve = 64 })
	fmt.Printf("addr %s\n", srv.Addr())
	var hog []*os.File
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "hog": // what a leak or a burst of store files would do
			for {
				f, err := os.Open(os.DevNull)
				if err != nil {
					break
				}
				hog = append(hog, f)
			}
			fmt.Printf("hogged %d descriptors\n", len(hog))
		case "free":
			for _, f := range hog {
				_ = f.Close()
			}
			hog = nil
			fmt.Println("freed")
		case "status":
			select {
			case <-srv.Done():
				fmt.Printf("status stopped: %v\n", srv.Err())
			default:
				fmt.Println("status serving")
			}
		}
	}
}

type emfileChild struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan string
	stderr *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startEMFILEChild(t *testing.T) *emfileChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestEMFILEServerProcess$", "-test.count=1")
	// The embedded store and the in-memory directory whatever the run's
	// PARLEY_TEST_*: with descriptors gone, a pool of MySQL or Redis
	// connections could not open one more.
	cmd.Env = append(os.Environ(), "PARLEY_EMFILE_SERVER=1", "PARLEY_TEST_STORE=pebble", "PARLEY_TEST_PRESENCE=memory")
	ch := &emfileChild{t: t, cmd: cmd, lines: make(chan string, 64), stderr: &lockedBuffer{}}
	var err error
	if ch.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = ch.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch.lines <- sc.Text()
		}
		close(ch.lines)
	}()
	t.Cleanup(func() {
		_ = ch.in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("server process stderr:\n%s", ch.stderr.String())
		}
	})
	return ch
}

// expect returns the next line of the child's output that starts with
// prefix, skipping others.
func (ch *emfileChild) expect(prefix string) string {
	ch.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-ch.lines:
			if !ok {
				ch.t.Fatalf("server process exited before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
			ch.t.Logf("server process: %s", l)
		case <-timeout:
			ch.t.Fatalf("server process: no %q", prefix)
		}
	}
}

func (ch *emfileChild) do(cmd, answer string) string {
	ch.t.Helper()
	if _, err := fmt.Fprintln(ch.in, cmd); err != nil {
		ch.t.Fatal(err)
	}
	return ch.expect(answer)
}

// stop ends the child, which stops its server, and checks that it passed.
func (ch *emfileChild) stop() {
	ch.t.Helper()
	_ = ch.in.Close()
	for l := range ch.lines {
		ch.t.Logf("server process: %s", l)
	}
	if err := ch.cmd.Wait(); err != nil {
		ch.t.Fatalf("server process: %v\n%s", err, ch.stderr.String())
	}
}
