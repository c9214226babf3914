package pebble

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// A store made before the directory has open groups without o keys: the
// next Open indexes them, once.
func TestOpenIndexesOldOpenGroups(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Config{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	u, err := s.CreateUser(ctx, "ann", []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	lobby, err := s.CreateGroup(ctx, u.ID, "Lobby", true, nil, 10, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGroup(ctx, u.ID, "closed", false, nil, 10, time.Now()); err != nil {
		t.Fatal(err)
	}
	// As an older version left it: no o keys, no marker.
	b := s.db.NewBatch()
	if err := b.DeleteRange([]byte{tOpen}, []byte{tOpen + 1}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(keyOpenIndexed, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if gs, err := s.OpenGroups(ctx, "", "", 0, 10); err != nil || len(gs) != 0 {
		t.Fatalf("without the index: %+v %v", gs, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := open(t, Config{Dir: dir})
	gs, err := s2.OpenGroups(ctx, "lob", "", 0, 10)
	if err != nil || len(gs) != 1 || gs[0].ID != lobby.ID || gs[0].Name != "Lobby" {
		t.Fatalf("after reopening: %+v %v", gs, err)
	}
	if gs, err := s2.OpenGroups(ctx, "", "", 0, 10); err != nil || len(gs) != 1 {
		t.Fatalf("the closed group was indexed: %+v %v", gs, err)
	}
}
