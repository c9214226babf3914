package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// A migration is one numbered step of the schema. Steps are applied in order,
// each in its own transaction together with its row in schema_migrations, so
// a database is always at a whole version. Never edit a released step: add a
// new one at the end (friends, groups and bans tables come that way).
type migration struct {
	version int
	name    string
	stmts   []string
}

// migrations is the schema, oldest step first; versions are 1, 2, 3, ...
//
// Times are Unix milliseconds. Sequence numbers are stored in INTEGER columns
// (int64), which is plenty for uint64 counters that start at 1.
var migrations = []migration{
	{version: 1, name: "users, tokens, messages", stmts: []string{
		// name_key is the username folded by storage.FoldName: SQLite's NOCASE folds
		// ASCII only, and "Ärger" must collide with "äRGER".
		`CREATE TABLE users (
			id        INTEGER PRIMARY KEY AUTOINCREMENT,
			username  TEXT    NOT NULL,
			name_key  TEXT    NOT NULL UNIQUE,
			pass_hash BLOB    NOT NULL,
			created   INTEGER NOT NULL
		)`,
		`CREATE TABLE tokens (
			hash    BLOB    PRIMARY KEY,
			user_id INTEGER NOT NULL,
			expires INTEGER NOT NULL
		) WITHOUT ROWID`,
		`CREATE INDEX tokens_user ON tokens (user_id)`,
		// One row per conversation with at least one message.
		`CREATE TABLE conversations (
			conv      TEXT    PRIMARY KEY,
			last_seq  INTEGER NOT NULL,
			last_time INTEGER NOT NULL
		) WITHOUT ROWID`,
		// (conv, seq) serves After (ascending) and Before (descending).
		`CREATE TABLE messages (
			conv          TEXT    NOT NULL,
			seq           INTEGER NOT NULL,
			msg_id        INTEGER NOT NULL,
			sender        INTEGER NOT NULL,
			recipient     INTEGER NOT NULL DEFAULT 0,
			group_id      INTEGER NOT NULL DEFAULT 0,
			client_msg_id TEXT    NOT NULL DEFAULT '',
			content_type  INTEGER NOT NULL DEFAULT 0,
			body          BLOB    NOT NULL,
			server_time   INTEGER NOT NULL,
			PRIMARY KEY (conv, seq)
		) WITHOUT ROWID`,
		`CREATE UNIQUE INDEX messages_client_msg ON messages (sender, client_msg_id)
			WHERE client_msg_id <> ''`,
		// A user's membership of a conversation and cursors in it: ack_seq is
		// the read cursor, cleared_seq hides every message up to it.
		`CREATE TABLE user_convs (
			user_id     INTEGER NOT NULL,
			conv        TEXT    NOT NULL,
			ack_seq     INTEGER NOT NULL DEFAULT 0,
			cleared_seq INTEGER NOT NULL DEFAULT 0,
			PRIMARY KEY (user_id, conv)
		) WITHOUT ROWID`,
		// Messages a user hid one by one, above the user's cleared_seq.
		`CREATE TABLE hidden (
			user_id INTEGER NOT NULL,
			conv    TEXT    NOT NULL,
			seq     INTEGER NOT NULL,
			PRIMARY KEY (user_id, conv, seq)
		) WITHOUT ROWID`,
	}},
	{version: 2, name: "profiles, friends, groups, bans", stmts: []string{
		`ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT ''`,
		`ALTER TABLE users ADD COLUMN avatar_url TEXT NOT NULL DEFAULT ''`,
		// Usernames are ASCII (the server checks), so lower() is the
		// lower-cased username that search pages by.
		`CREATE INDEX users_lower ON users (lower(username))`,
		// A friendship is two rows, one per direction.
		`CREATE TABLE friends (
			user_id   INTEGER NOT NULL,
			friend_id INTEGER NOT NULL,
			created   INTEGER NOT NULL,
			PRIMARY KEY (user_id, friend_id)
		) WITHOUT ROWID`,
		`CREATE TABLE friend_requests (
			from_id INTEGER NOT NULL,
			to_id   INTEGER NOT NULL,
			note    TEXT    NOT NULL DEFAULT '',
			created INTEGER NOT NULL,
			PRIMARY KEY (from_id, to_id)
		) WITHOUT ROWID`,
		`CREATE INDEX friend_requests_to ON friend_requests (to_id)`,
		// AUTOINCREMENT: a disbanded group's id, and so its conversation, is
		// never reused.
		`CREATE TABLE chat_groups (
			id      INTEGER PRIMARY KEY AUTOINCREMENT,
			name    TEXT    NOT NULL,
			owner   INTEGER NOT NULL,
			open    INTEGER NOT NULL,
			created INTEGER NOT NULL
		)`,
		// Beside each row here the member has a user_convs row for the
		// group's conversation: its cursors.
		`CREATE TABLE group_members (
			group_id INTEGER NOT NULL,
			user_id  INTEGER NOT NULL,
			joined   INTEGER NOT NULL,
			PRIMARY KEY (group_id, user_id)
		) WITHOUT ROWID`,
		`CREATE INDEX group_members_user ON group_members (user_id, group_id)`,
		`CREATE TABLE bans (
			user_id INTEGER PRIMARY KEY,
			until   INTEGER NOT NULL,
			reason  TEXT    NOT NULL DEFAULT '',
			created INTEGER NOT NULL
		)`,
	}},
}

// migrate brings db up to the last step of steps and returns the versions it
// applied (none when the database was current). A database newer than steps
// is an error: an older build must not write to it.
func migrate(ctx context.Context, db *sql.DB, steps []migration) ([]int, error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY,
		name    TEXT    NOT NULL,
		applied INTEGER NOT NULL
	)`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	if n := len(steps); current > n {
		return nil, fmt.Errorf("database schema version %d is newer than this build's %d", current, n)
	}
	var applied []int
	for i, m := range steps {
		if m.version != i+1 {
			return applied, fmt.Errorf("migration %q has version %d, want %d", m.name, m.version, i+1)
		}
		if m.version <= current {
			continue
		}
		done, err := applyMigration(ctx, db, m)
		if err != nil {
			return applied, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if done {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

// applyMigration runs one step in a transaction. It reports false when
// another process applied the step first.
func applyMigration(ctx context.Context, db *sql.DB, m migration) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM schema_migrations WHERE version = ?`, m.version).Scan(&one)
	switch {
	case err == nil:
		return false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return false, err
	}
	for _, stmt := range m.stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return false, err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return false, err
	}
	return true, tx.Commit()
}
