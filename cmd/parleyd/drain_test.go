package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server/servertest"
)

// startParleyd runs the parleyd binary on dataDir and waits until it
// accepts connections.
func startParleyd(t *testing.T, bin, addr, dataDir string, extra ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "parleyd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"--listen", addr, "--data-dir", dataDir, "--bcrypt-cost", "4",
		"--rate-limit", "-1", "--dm-policy", "anyone", "--log-level", "info"}, extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PARLEY_AUTH_RATE=-1", "PARLEY_AUTH_RATE_PER_ADDR=-1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("parleyd log (last 3000 bytes):\n%s", tail(b, 3000))
			}
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("parleyd did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// SIGTERM under load: parleyd kicks every client SHUTDOWN with a retry
// hint, stores every message it acknowledged, and exits 0 within its
// timeout.
func TestDrainUnderLoad(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "parleyd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build parleyd: %v\n%s", err, out)
	}
	addr, dataDir := servertest.FreeAddr(t), t.TempDir()
	const timeout = 10 * time.Second
	cmd := startParleyd(t, bin, addr, dataDir, "--shutdown-timeout", timeout.String())

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type pair struct {
		from, to *client.Client
		toID     int64
		toName   string
	}
	const pairs = 8
	var ps []pair
	for i := range pairs {
		var p pair
		for j, c := range []**client.Client{&p.from, &p.to} {
			cl, err := client.Dial(ctx, addr, client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cl.Close() })
			name := fmt.Sprintf("drain%d_%d", i, j)
			ok, err := cl.Register(ctx, name, name+"-password")
			if err != nil {
				t.Fatal(err)
			}
			*c = cl
			if j == 1 {
				p.toID, p.toName = ok.UserID, name
			}
		}
		ps = append(ps, p)
	}

	// Load: every sender sends flat out, and keeps what was acknowledged.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked = map[string][]uint64{} // conv → seqs
	)
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ack, err := p.from.Send(ctx, p.toID, 0, []byte(fmt.Sprintf("m%d", i)))
				if err != nil {
					return
				}
				mu.Lock()
				acked[ack.Conv] = append(acked[ack.Conv], ack.Seq)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	sigAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("parleyd exited with %v after SIGTERM", err)
		}
	case <-time.After(timeout + 2*time.Second):
		t.Fatalf("parleyd still running %v after SIGTERM", time.Since(sigAt))
	}
	took := time.Since(sigAt)
	wg.Wait()

	// Every client was told: SHUTDOWN, and when to come back.
	for _, p := range ps {
		for _, c := range []*client.Client{p.from, p.to} {
			var kick *client.KickError
			for ev := range c.Events() {
				if ev.Type == client.EventClosed || ev.Type == client.EventDisconnected {
					if !errors.As(ev.Err, &kick) {
						t.Fatalf("closed by %v, want a Kick SHUTDOWN", ev.Err)
					}
					break
				}
			}
			if kick == nil || kick.Reason != protocol.KickShutdown {
				t.Fatalf("kick %+v, want SHUTDOWN", kick)
			}
			if until := time.UnixMilli(kick.Until); until.Before(sigAt.Add(2*time.Second)) || until.After(time.Now().Add(4*time.Second)) {
				t.Fatalf("retry hint %v, want 2-4s after the kick (signal at %v)", until, sigAt)
			}
		}
	}

	// Every acknowledged message was stored: a new process has them all.
	// (It runs with another send window, which its LoginOKs tell.)
	addr2 := servertest.FreeAddr(t)
	startParleyd(t, bin, addr2, dataDir, "--send-window", "64")
	total := 0
	for _, p := range ps {
		conv := protocol.DirectConv(p.from.UserID(), p.toID)
		cl, err := client.Dial(ctx, addr2, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ok, err := cl.Login(ctx, p.toName, p.toName+"-password")
		if err != nil {
			t.Fatal(err)
		}
		if ok.SendWindow != 64 {
			t.Fatalf("LoginOK.send_window %d under --send-window 64", ok.SendWindow)
		}
		stored := map[uint64]bool{}
		for after := uint64(0); ; {
			res, err := cl.Sync(ctx, conv, after, 500)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range res.Messages {
				stored[m.Seq] = true
			}
			if !res.HasMore {
				break
			}
			after = res.Next
		}
		_ = cl.Close()
		for _, seq := range acked[conv] {
			if !stored[seq] {
				t.Fatalf("%s: seq %d was acknowledged before SIGTERM but is not stored (%d stored)", conv, seq, len(stored))
			}
		}
		total += len(acked[conv])
	}
	if total == 0 {
		t.Fatal("no message was acknowledged: no load")
	}
	t.Logf("drained in %v under load; all %d acknowledged messages stored", took, total)
}
