package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parleyim/parley/protocol/secure"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
)

// parley encrypts by default, pins the server's key on first use with a
// warning, and refuses a server whose key is not the pinned one.
func TestPinOnFirstUseThenRefuseChange(t *testing.T) {
	srv := servertest.Start(t, func(c *server.Config) { c.RequireEncryption = true })
	dir := t.TempDir()
	u := user{t: t, bin: binary(t), addr: srv.Addr(), conf: filepath.Join(dir, "config.json")}
	r := u.run("register", "pinuser", "pinuser-password")
	if r.code != exitOK || !strings.Contains(r.err, "pinned its key "+secure.Fingerprint(srv.NoiseKey())) {
		t.Fatalf("first use: exit %d, stderr %q", r.code, r.err)
	}
	pins := filepath.Join(dir, "known_servers")
	data, err := os.ReadFile(pins)
	if err != nil || !strings.Contains(string(data), srv.Addr()+" "+base64.StdEncoding.EncodeToString(srv.NoiseKey())) {
		t.Fatalf("known_servers: %q, %v", data, err)
	}
	// Second use: no warning.
	if r := u.run("whoami"); r.code != exitOK || strings.Contains(r.err, "pinned") {
		t.Fatalf("second use: exit %d, stderr %q", r.code, r.err)
	}
	// Another key pinned: refused.
	other, _ := secure.NewKey(nil)
	if err := os.WriteFile(pins, []byte(srv.Addr()+" "+base64.StdEncoding.EncodeToString(other.Public)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u.fails(exitNoServer, "its key is not the one pinned", "whoami")
}
