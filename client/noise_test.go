package client_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/client"
	"github.com/parleyim/parley/protocol/secure"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

func TestClientPinsOnFirstUse(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.RequireEncryption = true })
	pins := client.NewMemoryPins()
	var mu sync.Mutex
	var told [][]byte
	opts := client.Options{Pins: pins, OnPin: func(addr string, key []byte, rotated bool) {
		mu.Lock()
		defer mu.Unlock()
		if rotated || addr != srv.Addr() {
			t.Errorf("OnPin(%s, rotated %v)", addr, rotated)
		}
		told = append(told, key)
	}}
	c := connect(t, srv.Addr(), opts)
	if _, err := c.Register(context.Background(), "pinner", "correct horse"); err != nil {
		t.Fatal(err)
	}
	pin, _ := pins.Pin(srv.Addr())
	if !bytes.Equal(pin, srv.NoiseKey()) {
		t.Fatalf("pinned %x, the server's key is %x", pin, srv.NoiseKey())
	}
	// The second connection uses the pin (IK) and pins nothing new.
	c2 := connect(t, srv.Addr(), opts)
	if _, err := c2.Login(context.Background(), "pinner", "correct horse"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(told) != 1 {
		t.Fatalf("OnPin called %d times, want once", len(told))
	}
}

func TestClientRefusesChangedKey(t *testing.T) {
	srv := servertest.Start(t, nil)
	other, _ := secure.NewKey(nil)
	pins := client.NewMemoryPins()
	_ = pins.SetPin(srv.Addr(), other.Public)
	_, err := client.Dial(context.Background(), srv.Addr(), client.Options{Pins: pins, Logger: servertest.Logger(t)})
	if !errors.Is(err, client.ErrKeyChanged) {
		t.Fatalf("dial with a wrong pin: %v, want ErrKeyChanged", err)
	}
	t.Log(err)
	if pin, _ := pins.Pin(srv.Addr()); !bytes.Equal(pin, other.Public) {
		t.Fatal("the pin was replaced")
	}
}

func TestFilePins(t *testing.T) {
	p := &client.FilePins{Path: filepath.Join(t.TempDir(), "sub", "known_servers")}
	if k, err := p.Pin("a:1"); k != nil || err != nil {
		t.Fatalf("empty: %x %v", k, err)
	}
	k1, _ := secure.NewKey(nil)
	k2, _ := secure.NewKey(nil)
	for _, step := range []struct {
		addr string
		key  []byte
	}{{"a:1", k1.Public}, {"b:2", k2.Public}, {"a:1", k2.Public}} {
		if err := p.SetPin(step.addr, step.key); err != nil {
			t.Fatal(err)
		}
	}
	if k, _ := p.Pin("a:1"); !bytes.Equal(k, k2.Public) {
		t.Fatal("a:1 not replaced")
	}
	if k, _ := p.Pin("b:2"); !bytes.Equal(k, k2.Public) {
		t.Fatal("b:2 lost")
	}
}

// A reconnect to a server that no longer holds the pinned key is refused
// and closes the client with ErrKeyChanged, instead of retrying forever.
func TestClientReconnectRefusesChangedKey(t *testing.T) {
	st := servertest.NewStorage(t)
	srv := servertest.StartOn(t, st, nil)
	addr := srv.Addr()
	c := connect(t, addr, client.Options{Reconnect: true})
	if _, err := c.Register(context.Background(), "repin", "correct horse"); err != nil {
		t.Fatal(err)
	}
	servertest.Stop(t, srv)
	other, _ := secure.NewKey(nil)
	servertest.StartOn(t, st, func(cfg *server.Config) {
		cfg.Addr = addr
		cfg.NoiseKeys = &server.NoiseKeys{Static: other}
	})
	deadline := time.After(wait)
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				t.Fatal("events closed without EventClosed")
			}
			if ev.Type == client.EventClosed {
				if !errors.Is(ev.Err, client.ErrKeyChanged) {
					t.Fatalf("closed with %v, want ErrKeyChanged", ev.Err)
				}
				return
			}
		case <-deadline:
			t.Fatalf("still %s after the server's key changed", c.State())
		}
	}
}
