package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// A migration is one numbered step of the schema. MySQL commits DDL
// implicitly, so a step is not atomic: every statement is written to be
// repeatable (IF NOT EXISTS), and a step that stopped half-way is run again
// whole. Steps run under a named lock, so nodes starting together apply
// each once. Never edit a released step: add one at the end.
type migration struct {
	version int
	name    string
	stmts   func(shards int) []string
}

// tableOpts is every table's engine and character set: utf8mb4 for any
// text, binary collation so that comparisons are exact (usernames compare
// case-insensitively through name_key, not the collation).
const tableOpts = ` ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`

// Times are Unix milliseconds in BIGINT columns.
var migrations = []migration{
	{version: 1, name: "users, tokens, messages, social graph", stmts: func(shards int) []string {
		stmts := []string{
			// name_key: the username folded by storage.FoldName; lower_name:
			// lower-cased, the order of SearchUsers.
			`CREATE TABLE IF NOT EXISTS users (
				id           BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
				username     VARCHAR(64)   NOT NULL,
				name_key     VARCHAR(64)   NOT NULL,
				lower_name   VARCHAR(64)   NOT NULL,
				pass_hash    VARBINARY(255) NOT NULL,
				created      BIGINT        NOT NULL,
				display_name VARCHAR(255)  NOT NULL DEFAULT '',
				avatar_url   VARCHAR(1024) NOT NULL DEFAULT '',
				UNIQUE KEY users_name_key (name_key),
				KEY users_lower (lower_name)
			)` + tableOpts,
			`CREATE TABLE IF NOT EXISTS tokens (
				hash    VARBINARY(64) NOT NULL PRIMARY KEY,
				user_id BIGINT        NOT NULL,
				expires BIGINT        NOT NULL,
				KEY tokens_user (user_id)
			)` + tableOpts,
			// One row per conversation with a message; its lock orders appends.
			`CREATE TABLE IF NOT EXISTS conversations (
				conv      VARCHAR(48)     NOT NULL PRIMARY KEY,
				last_seq  BIGINT UNSIGNED NOT NULL,
				last_time BIGINT          NOT NULL
			)` + tableOpts,
			// client_msg_id dedupe across every shard.
			`CREATE TABLE IF NOT EXISTS message_ids (
				sender        BIGINT          NOT NULL,
				client_msg_id VARCHAR(64)     NOT NULL,
				conv          VARCHAR(48)     NOT NULL,
				seq           BIGINT UNSIGNED NOT NULL,
				PRIMARY KEY (sender, client_msg_id)
			)` + tableOpts,
			`CREATE TABLE IF NOT EXISTS user_convs (
				user_id     BIGINT          NOT NULL,
				conv        VARCHAR(48)     NOT NULL,
				ack_seq     BIGINT UNSIGNED NOT NULL DEFAULT 0,
				cleared_seq BIGINT UNSIGNED NOT NULL DEFAULT 0,
				PRIMARY KEY (user_id, conv),
				KEY user_convs_conv (conv)
			)` + tableOpts,
			`CREATE TABLE IF NOT EXISTS hidden (
				user_id BIGINT          NOT NULL,
				conv    VARCHAR(48)     NOT NULL,
				seq     BIGINT UNSIGNED NOT NULL,
				PRIMARY KEY (user_id, conv, seq)
			)` + tableOpts,
			`CREATE TABLE IF NOT EXISTS friends (
				user_id   BIGINT NOT NULL,
				friend_id BIGINT NOT NULL,
				created   BIGINT NOT NULL,
				PRIMARY KEY (user_id, friend_id)
			)` + tableOpts,
			`CREATE TABLE IF NOT EXISTS friend_requests (
				from_id BIGINT       NOT NULL,
				to_id   BIGINT       NOT NULL,
				note    VARCHAR(1024) NOT NULL DEFAULT '',
				created BIGINT       NOT NULL,
				PRIMARY KEY (from_id, to_id),
				KEY friend_requests_to (to_id)
			)` + tableOpts,
			`CREATE TABLE IF NOT EXISTS chat_groups (
				id      BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
				name    VARCHAR(255) NOT NULL,
				owner   BIGINT       NOT NULL,
				open    BOOLEAN      NOT NULL,
				created BIGINT       NOT NULL
			)` + tableOpts,
			`CREATE TABLE IF NOT EXISTS group_members (
				group_id BIGINT NOT NULL,
				user_id  BIGINT NOT NULL,
				joined   BIGINT NOT NULL,
				PRIMARY KEY (group_id, user_id),
				KEY group_members_user (user_id, group_id)
			)` + tableOpts,
			`CREATE TABLE IF NOT EXISTS bans (
				user_id BIGINT        NOT NULL PRIMARY KEY,
				until   BIGINT        NOT NULL,
				reason  VARCHAR(1024) NOT NULL DEFAULT '',
				created BIGINT        NOT NULL
			)` + tableOpts,
		}
		for i := range shards {
			stmts = append(stmts, `CREATE TABLE IF NOT EXISTS `+shardTable(i)+` (
				conv          VARCHAR(48)     NOT NULL,
				seq           BIGINT UNSIGNED NOT NULL,
				msg_id        BIGINT          NOT NULL,
				sender        BIGINT          NOT NULL,
				recipient     BIGINT          NOT NULL DEFAULT 0,
				group_id      BIGINT          NOT NULL DEFAULT 0,
				client_msg_id VARCHAR(64)     NOT NULL DEFAULT '',
				content_type  INT UNSIGNED    NOT NULL DEFAULT 0,
				body          MEDIUMBLOB      NOT NULL,
				server_time   BIGINT          NOT NULL,
				PRIMARY KEY (conv, seq)
			)`+tableOpts)
		}
		return stmts
	}},
	// utf8mb4_bin is a PAD SPACE collation: it compares 'x' and 'x ' equal,
	// so a unique key on it would take "x " for a repeat of "x". The columns
	// that identify something are bytes, compared exactly as Go compares
	// strings (and sorted in Go's order, which SearchUsers pages by).
	{version: 2, name: "exact keys: client_msg_id, name_key, lower_name as bytes", stmts: func(shards int) []string {
		stmts := []string{
			`ALTER TABLE message_ids MODIFY client_msg_id VARBINARY(255) NOT NULL`,
			`ALTER TABLE users MODIFY name_key VARBINARY(512) NOT NULL, MODIFY lower_name VARBINARY(512) NOT NULL`,
		}
		for i := range shards {
			stmts = append(stmts, `ALTER TABLE `+shardTable(i)+` MODIFY client_msg_id VARBINARY(255) NOT NULL DEFAULT ''`)
		}
		return stmts
	}},
	// The directory of open groups (OpenGroups): lower_name is
	// storage.DirectoryName(name), written by the store; existing rows get
	// the server's LOWER, which agrees with it but for rare scripts.
	{version: 3, name: "directory of open groups", stmts: func(int) []string {
		return []string{
			`ALTER TABLE chat_groups ADD COLUMN IF NOT EXISTS lower_name VARBINARY(512) NOT NULL DEFAULT ''`,
			`UPDATE chat_groups SET lower_name = CONVERT(LOWER(name) USING utf8mb4) WHERE lower_name = ''`,
			`CREATE INDEX IF NOT EXISTS chat_groups_directory ON chat_groups (open, lower_name, id)`,
		}
	}},
	// The text index (search.go): posting lists and progress per conversation.
	{version: 4, name: "text index", stmts: func(int) []string {
		return []string{
			`CREATE TABLE IF NOT EXISTS search_lists (
				conv   VARCHAR(48)     NOT NULL,
				bucket BIGINT UNSIGNED NOT NULL,
				gram   BIGINT UNSIGNED NOT NULL,
				list   MEDIUMBLOB      NOT NULL,
				PRIMARY KEY (conv, bucket, gram)
			)` + tableOpts,
			`CREATE TABLE IF NOT EXISTS search_progress (
				conv VARCHAR(48)     NOT NULL PRIMARY KEY,
				seq  BIGINT UNSIGNED NOT NULL
			)` + tableOpts,
		}
	}},
	// storage.Meta of messages with a reply, mentions, or an event's
	// target or results (recall, edits, reactions).
	{version: 5, name: "message_meta", stmts: func(int) []string {
		return []string{`CREATE TABLE IF NOT EXISTS message_meta (
			conv VARCHAR(48)     NOT NULL,
			seq  BIGINT UNSIGNED NOT NULL,
			meta MEDIUMBLOB      NOT NULL,
			PRIMARY KEY (conv, seq)
		)` + tableOpts}
	}},
	{version: 6, name: "conversation flags, user settings", stmts: func(int) []string {
		return []string{
			`ALTER TABLE user_convs ADD COLUMN IF NOT EXISTS flags TINYINT UNSIGNED NOT NULL DEFAULT 0`,
			`CREATE TABLE IF NOT EXISTS user_settings (
				user_id      BIGINT  NOT NULL PRIMARY KEY,
				receipts_off BOOLEAN NOT NULL DEFAULT FALSE
			)` + tableOpts,
		}
	}},
	// The messages that hold each file (the collector of files asks).
	// The text index records them: one built before is dropped, and the
	// indexer indexes every message again.
	{version: 7, name: "file references", stmts: func(int) []string {
		return []string{
			`CREATE TABLE IF NOT EXISTS file_refs (
				sum  BINARY(32)      NOT NULL,
				conv VARCHAR(48)     NOT NULL,
				seq  BIGINT UNSIGNED NOT NULL,
				PRIMARY KEY (sum, conv, seq)
			)` + tableOpts,
			`DELETE FROM search_progress`,
			`DELETE FROM search_lists`,
		}
	}},
	{version: 8, name: "delivery cursors", stmts: func(int) []string {
		return []string{`CREATE TABLE IF NOT EXISTS delivered (
			user_id BIGINT          NOT NULL,
			conv    VARCHAR(48)     NOT NULL,
			seq     BIGINT UNSIGNED NOT NULL,
			PRIMARY KEY (user_id, conv)
		)` + tableOpts}
	}},
	// Expiring messages (expiry.go): each message's expires_at (0: never),
	// the conversation's timer, and the timing wheel.
	{version: 9, name: "expiring messages", stmts: func(shards int) []string {
		stmts := []string{
			`ALTER TABLE conversations ADD COLUMN IF NOT EXISTS timer INT UNSIGNED NOT NULL DEFAULT 0`,
			`CREATE TABLE IF NOT EXISTS expiring (
				expires_at BIGINT          NOT NULL,
				conv       VARCHAR(48)     NOT NULL,
				seq        BIGINT UNSIGNED NOT NULL,
				PRIMARY KEY (expires_at, conv, seq)
			)` + tableOpts,
		}
		for i := range shards {
			stmts = append(stmts, `ALTER TABLE `+shardTable(i)+` ADD COLUMN IF NOT EXISTS expires_at BIGINT NOT NULL DEFAULT 0`)
		}
		return stmts
	}},
	// The text index's open buckets in parts (search.go): a pass inserts its
	// postings as a part of their own instead of rewriting the whole list
	// with CONCAT. search_lists keeps the lists of the buckets left, so
	// nodes of the version before keep working on it during an upgrade.
	{version: 10, name: "search lists in parts", stmts: func(int) []string {
		return []string{`CREATE TABLE IF NOT EXISTS search_parts (
			conv   VARCHAR(48)     NOT NULL,
			bucket BIGINT UNSIGNED NOT NULL,
			gram   BIGINT UNSIGNED NOT NULL,
			part   BIGINT UNSIGNED NOT NULL,
			list   MEDIUMBLOB      NOT NULL,
			PRIMARY KEY (conv, bucket, gram, part)
		)` + tableOpts,
			`ALTER TABLE search_progress ADD COLUMN IF NOT EXISTS passes INT UNSIGNED NOT NULL DEFAULT 0`}
	}},
}

// maxClientMsgID is the longest client message id the schema holds, in bytes.
const maxClientMsgID = 255

// lockName serializes migrations of one database across processes; the
// lock is named after the database too (cut to the 64 characters MySQL
// allows), so databases on one server migrate independently.
const lockName = "parley_migrate."

// migrate brings the schema up to date and returns the versions applied.
func migrate(ctx context.Context, db *sql.DB, shards int) ([]int, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("mysql: connect: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(LEFT(CONCAT(?, DATABASE()), 64), 60)`, lockName).Scan(&got); err != nil {
		return nil, fmt.Errorf("mysql: migration lock: %w", err)
	}
	if got.Int64 != 1 {
		return nil, fmt.Errorf("mysql: migration lock: another process held it for 60 s")
	}
	defer conn.ExecContext(context.Background(), `SELECT RELEASE_LOCK(LEFT(CONCAT(?, DATABASE()), 64))`, lockName) //nolint:errcheck

	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS schema_migrations (
			version INT          NOT NULL PRIMARY KEY,
			name    VARCHAR(255) NOT NULL,
			applied BIGINT       NOT NULL
		)` + tableOpts,
		`CREATE TABLE IF NOT EXISTS meta (
			k VARCHAR(64)  NOT NULL PRIMARY KEY,
			v VARCHAR(255) NOT NULL
		)` + tableOpts,
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("mysql: create schema tables: %w", err)
		}
	}
	if err := checkShards(ctx, conn, shards); err != nil {
		return nil, err
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return nil, fmt.Errorf("mysql: read schema version: %w", err)
	}
	if current > len(migrations) {
		return nil, fmt.Errorf("%w: version %d, this build knows %d", ErrSchemaNewer, current, len(migrations))
	}
	var applied []int
	for _, m := range migrations[current:] {
		for _, stmt := range m.stmts(shards) {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				return applied, fmt.Errorf("mysql: migration %d (%s): %w", m.version, m.name, err)
			}
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)`,
			m.version, m.name, time.Now().UnixMilli()); err != nil {
			return applied, fmt.Errorf("mysql: record migration %d: %w", m.version, err)
		}
		applied = append(applied, m.version)
	}
	return applied, nil
}

// checkShards records the shard count of a new database, or checks it.
func checkShards(ctx context.Context, conn *sql.Conn, shards int) error {
	var v string
	err := conn.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = 'shards'`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		_, err = conn.ExecContext(ctx, `INSERT INTO meta (k, v) VALUES ('shards', ?)`, strconv.Itoa(shards))
		return err
	}
	if err != nil {
		return fmt.Errorf("mysql: read shard count: %w", err)
	}
	if v != strconv.Itoa(shards) {
		return fmt.Errorf("%w: database has %s, config %d", ErrShardCount, v, shards)
	}
	return nil
}
