package ui

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// One process at a time holds an outbox: a second open finds it locked
// and says by whom; once the first is closed, the queue opens again with
// what was queued.
func TestOutboxLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alice", "outbox-1@x.json")
	a, err := OpenOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(Queued{Conv: "d:1:2", ClientMsgID: "c1", To: 2, Body: "one"}); err != nil {
		t.Fatal(err)
	}
	_, err = OpenOutbox(path)
	var le *LockedError
	if !errors.Is(err, ErrOutboxLocked) || !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Fatalf("second open: %v, want ErrOutboxLocked naming pid %d", err, os.Getpid())
	}
	if info, err := os.Stat(path + ".lock"); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", info, err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := OpenOutbox(path)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	defer b.Close()
	if items := b.Items(); len(items) != 1 || items[0].ClientMsgID != "c1" {
		t.Fatalf("queue after reopening: %+v", items)
	}
}

// A screen started on an account whose queue another parley holds quits
// at once and says why, without touching the queue.
func TestScreenQuitsWhenQueueLocked(t *testing.T) {
	dir := t.TempDir()
	other, err := OpenOutbox(AccountFile(dir, "outbox", "127.0.0.1:7070", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	m := resumed(t, newFake(), dir)
	if !errors.Is(m.Locked(), ErrOutboxLocked) {
		t.Fatalf("Locked() = %v", m.Locked())
	}
	if cmd := m.Init(); cmd == nil || !m.Quitting() {
		t.Fatal("the screen did not quit")
	}
	if _, err := os.Stat(AccountFile(dir, "cache", "127.0.0.1:7070", 1)); !os.IsNotExist(err) {
		t.Fatalf("the locked-out screen wrote the cache: %v", err)
	}
}
