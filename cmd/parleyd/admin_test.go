package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
	"github.com/parleyim/parley/storage/pebble"
)

func runAdmin(t *testing.T, args ...string) string {
	t.Helper()
	var out strings.Builder
	if err := admin(args, &out); err != nil {
		t.Fatalf("admin %v: %v", args, err)
	}
	return out.String()
}

// The admin commands work on a running server: through its admin endpoint
// (any store), or on the store directly when it admits a second handle
// (MySQL), as from another process; the server kicks banned users.
func TestAdminBanKicksAndRefusesLogin(t *testing.T) {
	modes := []string{"server"}
	if os.Getenv("PARLEY_TEST_STORE") == "mysql" {
		modes = append(modes, "store")
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) { testAdminBan(t, mode) })
	}
}

func testAdminBan(t *testing.T, mode string) {
	st := servertest.NewStorage(t)
	srv := servertest.StartOn(t, st, nil) // bans polled every 100ms
	flags := st.Flags()
	if mode == "server" {
		addr := servertest.FreeAddr(t)
		stop, err := serveMetrics(addr, server.NewMetrics(), srv, "s3cret", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		flags = []string{"--server", addr, "--admin-token", "s3cret"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, srv.Addr(), client.Options{Reconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ok, err := c.Register(ctx, "mallory", "mallory-password")
	if err != nil {
		t.Fatal(err)
	}

	if err := admin(append([]string{"ban", "--user", "nobody", "--days", "1"}, flags...), &strings.Builder{}); !errors.Is(err, errNoUser) {
		t.Fatalf("ban of nobody: %v", err)
	}
	out := runAdmin(t, append([]string{"ban", "--user", "MALLORY", "--days", "1.5", "--reason", "spam"}, flags...)...)
	if !strings.Contains(out, "banned mallory") {
		t.Fatalf("ban said %q", out)
	}
	start := time.Now()
	var kick *client.KickError
	for ev := range c.Events() {
		if ev.Type == client.EventClosed || ev.Type == client.EventDisconnected {
			if !errors.As(ev.Err, &kick) {
				t.Fatalf("closed by %v, want a kick", ev.Err)
			}
			break
		}
	}
	if kick.Reason != protocol.KickBanned || time.Until(time.UnixMilli(kick.Until)) < 35*time.Hour {
		t.Fatalf("kick %+v, want BANNED for 1.5 days", kick)
	}
	t.Logf("kicked %v after the ban", time.Since(start))
	if list := runAdmin(t, append([]string{"bans"}, flags...)...); !strings.Contains(list, "mallory") || !strings.Contains(list, "spam") {
		t.Fatalf("bans list %q", list)
	}

	// Logins, by password or token, are refused with the end of the ban.
	for _, login := range []func(*client.Client) error{
		func(c *client.Client) error { _, err := c.Login(ctx, "mallory", "mallory-password"); return err },
		func(c *client.Client) error { _, err := c.LoginToken(ctx, ok.Token); return err },
	} {
		c2, err := client.Dial(ctx, srv.Addr(), client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var pe *protocol.Error
		if err := login(c2); !errors.As(err, &pe) || pe.Code != protocol.CodeBanned || pe.Until != kick.Until {
			t.Fatalf("login while banned: %v, want BANNED until %d", err, kick.Until)
		}
		_ = c2.Close()
	}

	runAdmin(t, append([]string{"unban", "--user", "mallory"}, flags...)...)
	if list := runAdmin(t, append([]string{"bans"}, flags...)...); strings.Contains(list, "mallory") {
		t.Fatalf("bans list after unban %q", list)
	}
	c3, err := client.Dial(ctx, srv.Addr(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if _, err := c3.Login(ctx, "mallory", "mallory-password"); err != nil {
		t.Fatalf("login after unban: %v", err)
	}
}

// The admin API refuses requests without the right token, and is off
// without one configured.
func TestAdminAPIAuth(t *testing.T) {
	srv := servertest.Start(t, nil)
	for _, tc := range []struct {
		serverToken, token, want string
	}{
		{"", "", "403 Forbidden: the admin API is off"},
		{"right", "", "401 Unauthorized: a wrong or missing admin token"},
		{"right", "wrong", "401 Unauthorized: a wrong or missing admin token"},
	} {
		addr := servertest.FreeAddr(t)
		stop, err := serveMetrics(addr, server.NewMetrics(), srv, tc.serverToken, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		err = admin([]string{"bans", "--server", addr, "--admin-token", tc.token}, &strings.Builder{})
		stop()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("server token %q, token %q: %v, want %q", tc.serverToken, tc.token, err, tc.want)
		}
	}
}

// Pebble locks its directory to one process: admin on the store of a
// running server says so rather than failing obscurely.
func TestAdminPebbleInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := pebble.Open(pebble.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = admin([]string{"bans", "--store", "pebble", "--data-dir", dir}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "running parleyd") {
		t.Fatalf("admin on a locked store: %v", err)
	}
}

// The data dir of an earlier parleyd's SQLite store is refused rather
// than taken for an empty store.
func TestStoreSQLiteDirRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "parley.db"), []byte("SQLite format 3\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := admin([]string{"bans", "--store", "pebble", "--data-dir", dir}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "holds a SQLite store") {
		t.Fatalf("pebble on a sqlite dir: %v", err)
	}
}

func TestAdminErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"ban", "--data-dir", dir, "--days", "1"},
		{"ban", "--data-dir", dir, "--user", "x"},
		{"ban", "--data-dir", dir, "--user", "nobody", "--days", "1"},
	} {
		if err := admin(args, &strings.Builder{}); err == nil {
			t.Errorf("admin %v succeeded", args)
		}
	}
}
