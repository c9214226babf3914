package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
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

// The admin commands work on the store of a running server, as another
// store handle would from another process; the server kicks banned users.
// The store must allow a second handle: SQLite or MySQL (see
// TestAdminPebbleInUse).
func TestAdminBanKicksAndRefusesLogin(t *testing.T) {
	st := servertest.NewSharedStorage(t)
	srv := servertest.StartOn(t, st, nil) // bans polled every 100ms
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

	out := runAdmin(t, append([]string{"ban", "--user", "MALLORY", "--days", "1.5", "--reason", "spam"}, st.Flags()...)...)
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
	if list := runAdmin(t, append([]string{"bans"}, st.Flags()...)...); !strings.Contains(list, "mallory") || !strings.Contains(list, "spam") {
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

	runAdmin(t, append([]string{"unban", "--user", "mallory"}, st.Flags()...)...)
	if list := runAdmin(t, append([]string{"bans"}, st.Flags()...)...); strings.Contains(list, "mallory") {
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

// A data dir of one embedded store is refused to the other, rather than
// taken for an empty store.
func TestStoreKindMismatch(t *testing.T) {
	dir := t.TempDir()
	s, err := pebble.Open(pebble.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err = admin([]string{"bans", "--store", "sqlite", "--data-dir", dir}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "holds a Pebble store") {
		t.Fatalf("sqlite on a pebble dir: %v", err)
	}
	dir = t.TempDir()
	if err := admin([]string{"bans", "--store", "sqlite", "--data-dir", dir}, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	err = admin([]string{"bans", "--store", "pebble", "--data-dir", dir}, &strings.Builder{})
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
