package mysql

import (
	"testing"
	"time"

	"github.com/parleyim/parley/storage/mysql/mysqltest"
)

// A database of schema 2 with groups: migration 3 gives them their
// directory names, so the open ones are listed.
func TestMigrationIndexesOldGroups(t *testing.T) {
	dsn := mysqltest.DSN(t)
	s := open(t, Config{DSN: dsn})
	ctx := t.Context()
	ids := users(t, s, "ann")
	lobby, err := s.CreateGroup(ctx, ids[0], "Lobby Ω", true, nil, 10, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateGroup(ctx, ids[0], "lobby closed", false, nil, 10, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Back to schema 2.
	for _, q := range []string{
		`ALTER TABLE chat_groups DROP INDEX chat_groups_directory`,
		`ALTER TABLE chat_groups DROP COLUMN lower_name`,
		`DELETE FROM schema_migrations WHERE version >= 3`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s.Close()

	s2 := open(t, Config{DSN: dsn})
	defer s2.Close()
	gs, err := s2.OpenGroups(ctx, "LOBBY", "", 0, 10)
	if err != nil || len(gs) != 1 || gs[0].ID != lobby.ID || gs[0].Name != "Lobby Ω" {
		t.Fatalf("after migrating: %+v %v", gs, err)
	}
	if gs, err := s2.OpenGroups(ctx, "lobby ω", "", 0, 10); err != nil || len(gs) != 1 {
		t.Fatalf("by the lower-cased name: %+v %v", gs, err)
	}
}
