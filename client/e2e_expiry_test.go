package client_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// A timer set with SetTimer: later messages carry ExpiresAt, the peer gets
// an Expired notice when they are deleted, and a refused timer is a
// *protocol.Error with BAD_TIMER.
func TestExpiry(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) {
		c.MinTimer = time.Second
		c.ExpireInterval = 50 * time.Millisecond
	})
	alice := register(t, srv, "alice")
	bob := register(t, srv, "bob")
	conv := protocol.DirectConv(alice.id, bob.id)
	if _, err := alice.SetTimer(ctx(t), conv, 1500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sent, err := alice.Send(ctx(t), bob.id, 0, []byte("soon gone"))
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, bob.Client, 2)
	if got[0].ContentType != protocol.ContentTimer || string(got[0].Body) != "1" {
		t.Fatalf("timer message: %+v", got[0])
	}
	if got[1].ExpiresAt != sent.ServerTime+1000 || client.Expired(&got[1], time.UnixMilli(sent.ServerTime)) ||
		!client.Expired(&got[1], time.UnixMilli(got[1].ExpiresAt)) {
		t.Fatalf("expiring message: %+v", got[1])
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case n := <-bob.Notices():
			if n.Expired == nil {
				continue
			}
			if n.Expired.Conv != conv || !slices.Equal(n.Expired.Seqs, []uint64{sent.Seq}) {
				t.Fatalf("Expired: %+v", n.Expired)
			}
		case <-deadline:
			t.Fatal("no Expired notice")
		}
		break
	}
	_, err = alice.SetTimer(ctx(t), conv, 500*time.Millisecond) // rounds to 0: off
	if err != nil {
		t.Fatalf("timer 0: %v", err)
	}
	_, err = alice.SetTimer(ctx(t), conv, 2*365*24*time.Hour)
	if err == nil {
		t.Fatal("a two-year timer was sent")
	}
	var pe *protocol.Error
	if _, err := alice.PostTo(ctx(t), conv, client.Post{ContentType: protocol.ContentTimer, Body: []byte("x")}); !errors.As(err, &pe) || pe.Code != protocol.CodeBadTimer {
		t.Fatalf("a bad timer body: %v, want BAD_TIMER", err)
	}
}

func TestParseTimer(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"off": 0, "0": 0, "30s": 30 * time.Second, "30": 30 * time.Second, "5m": 5 * time.Minute,
		"1h": time.Hour, "7d": 7 * 24 * time.Hour, "2W": 14 * 24 * time.Hour,
	} {
		if got, err := client.ParseTimer(in); err != nil || got != want {
			t.Errorf("ParseTimer(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "h", "-1h", "1y", "53w", "1.5h", "0h"} {
		if got, err := client.ParseTimer(in); err == nil {
			t.Errorf("ParseTimer(%q) = %v, want an error", in, got)
		}
	}
	for secs, want := range map[uint32]string{0: "off", 30: "30s", 300: "5m", 3600: "1h", 5400: "1h30m", 86400: "1d", 604800: "1w"} {
		if got := client.TimerText(secs); got != want {
			t.Errorf("TimerText(%d) = %q, want %q", secs, got, want)
		}
	}
}
