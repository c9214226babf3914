package main

import (
	"os"
	"path/filepath"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
	"github.com/parleyim/parley/storage/blob"
)

// alice sends a file with /send-file; bob sees it as one line with its
// name, size and type, and saves it with /save, twice (the second copy gets
// a new name) — against a real server with a file endpoint.
func TestChatSendsAndSavesFiles(t *testing.T) {
	blobs, err := blob.OpenDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, func(c *server.Config) { c.FilesAddr, c.Blobs = "127.0.0.1:0", blobs })
	src := filepath.Join(t.TempDir(), "trip notes.txt")
	content := "day 1: the crag at nine\n"
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	t.Chdir(dst) // /save writes into the current directory

	var saved []protocol.LoginOK
	login := func(name string) *screen {
		s := openScreen(t, srv.Addr(), &saved)
		s.tm.Type(name)
		s.key(tea.KeyTab)
		s.tm.Type(name + "-password")
		s.key(tea.KeyCtrlR)
		s.waitFor("logged in as " + name)
		return s
	}
	alice, bob := login("alice"), login("bob")

	alice.typeLine("/msg bob")
	alice.waitFor("bob ·")
	alice.typeLine("/send-file " + src)
	alice.waitFor("sent trip notes.txt (24 B, text/plain; charset=utf-8)", "📎 trip notes.txt — 24 B, text/plain; charset=utf-8  (/save 1)")

	bob.waitFor("alice: 📎 trip notes.txt — 24 B, text/plain; charset=utf-8  (/save 1)")
	bob.typeLine("/save 2")
	bob.waitFor("message 2 here is not an attachment")
	bob.typeLine("/save 1")
	bob.waitFor("saved trip notes.txt (24 B)")
	bob.typeLine("/save 1")
	bob.waitFor("saved trip notes (2).txt (24 B)")
	for _, name := range []string{"trip notes.txt", "trip notes (2).txt"} {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(got) != content {
			t.Fatalf("%s: %q, %v", name, got, err)
		}
	}
	alice.typeLine("/send-file " + filepath.Join(dst, "no such file"))
	alice.waitFor("send-file no such file: no such file or directory")
	alice.quit()
	bob.quit()
}
