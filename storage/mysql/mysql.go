// Package mysql is the MySQL/MariaDB backend of storage.Store, for a
// cluster of Parley nodes sharing one database.
//
// # Schema
//
// Every table is InnoDB, utf8mb4 with the binary collation; columns that
// identify something (client_msg_id, the username keys) are VARBINARY, so
// they compare exactly as Go compares strings (utf8mb4_bin pads with spaces:
// it takes "x " for "x"). Bodies are bytes (MEDIUMBLOB), times Unix ms.
//
//	schema_migrations  version → applied; steps in migrate.go, run at Open
//	meta               'shards' → the shard count the database was made with
//	users              id, username, name_key (storage.FoldName, unique),
//	                   lower_name (SearchUsers), profile columns
//	tokens             hash → user, expiry
//	conversations      conv → last_seq, last_time: the row every Append of
//	                   the conversation locks, and the Conversations order
//	messages_00 … NN   (conv, seq) → the message; one table per shard
//	message_ids        (sender, client_msg_id) → conv, seq: dedupe across shards
//	user_convs         (user, conv) → ack_seq, cleared_seq: membership and cursor
//	hidden             (user, conv, seq): messages one user hid
//	friends, friend_requests, chat_groups, group_members, bans
//
// A conversation's messages live in messages_NN, NN = FNV-1a 32 of its id
// modulo the shard count (shardOf), so sync and history read one range of
// one primary key. The shard count is fixed when the database is created;
// Open refuses another (ErrShardCount).
//
// # Writes
//
// Appends are group-committed by the Store's writer (writer.go): concurrent
// Appends share a transaction and multi-row INSERTs, sent together in one
// round trip; Config.Lanes such writers may commit at the same time, each
// conversation always in the same lane. Sequence
// numbers come from the conversations rows, locked FOR UPDATE inside that
// transaction, so they stay dense even when several nodes append to one
// conversation at once. Everything else (accounts, cursors, friends,
// groups, bans) is a short transaction of its own; a deadlock is retried.
//
// Lock order, where a transaction holds more than one row lock:
//
//	Append batch     conversations rows, by conv id
//	group membership chat_groups row, then the group's conversations row
//	friend request   both users rows, by id
//
// Durability is the server's: an acknowledged Append survives a crash of
// the database machine only with innodb_flush_log_at_trx_commit = 1 (the
// default); Open logs a warning otherwise.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/fulltext"
	"github.com/parleyim/parley/storage/internal/lazycursor"
)

// Config configures Open. Zero values are documented per field.
type Config struct {
	// DSN is a go-sql-driver/mysql data source name,
	// user:pass@tcp(host:port)/db; it must name the database. Open sets
	// parseTime and utf8mb4 itself. Required.
	DSN string
	// Shards is the number of message tables; fixed when the database is
	// created (Open refuses another count). Default 16, at most 256.
	Shards int
	// Hook receives committed messages; may be nil.
	Hook storage.CommitHook
	// Stages, when set, is told how long Appends spend queued and in their
	// batch's transaction (storage.Stage; MySQL has no StageSync apart).
	Stages storage.StageObserver
	// MaxBatch bounds the Appends of one group commit. Default 256.
	// (The rows of a batch are inserted in statements of at most ~1 MiB of
	// bodies, so a batch never meets max_allowed_packet.)
	MaxBatch int
	// Lanes is how many Append transactions run at once (writer.go): each
	// conversation is in one lane, and a lane commits one batch at a time.
	// Default 1, at most 64. The lanes have a connection each, beside the
	// MaxOpenConns of everything else. More lanes overlap the round trips
	// of the batches, but split them into smaller ones that cost the
	// database more CPU per message: on a database short of CPU (two shared
	// cores, docs/benchmarks.md) 4 lanes were slower than 1.
	Lanes int
	// BatchInterval is the least time between the starts of two batches
	// of a lane: a lane whose last batch started less than this ago
	// gathers the Appends that come for the rest of it, and only a full
	// batch (MaxBatch) leaves sooner; so a lane commits about once an
	// interval under load, however thinly the Appends come. A lane idle
	// for longer commits the next Append at once. (Answers leave in the
	// order of the calls across lanes, so with several lanes an Append of
	// an idle lane may still wait for an earlier one of a busy lane.)
	// Every commit costs the database a fixed share of its CPU whatever it
	// holds, and a database shared by a cluster (or by cores shared with
	// the nodes, docs/benchmarks.md) answers every node more slowly the
	// more often each commits: without an interval a lane commits again as
	// soon as the one before is done, as often at 2,000 messages a second
	// as at 5,000. Default 15ms; negative: none.
	BatchInterval time.Duration
	// MaxOpenConns bounds the connection pool. Default 16.
	MaxOpenConns int
	// Logger receives the store's logs. Default: discard.
	Logger *slog.Logger
}

// DefaultBatchInterval is Config.BatchInterval's default.
const DefaultBatchInterval = 15 * time.Millisecond

// Errors of Open.
var (
	ErrConfig      = errors.New("mysql: invalid config")
	ErrShardCount  = errors.New("mysql: shard count differs from the database's")
	ErrSchemaNewer = errors.New("mysql: database schema is newer than this build")
)

func (c *Config) fill() {
	if c.Shards == 0 {
		c.Shards = 16
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 256
	}
	if c.Lanes <= 0 {
		c.Lanes = 1
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = DefaultBatchInterval
	}
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = 16
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	switch {
	case c.DSN == "":
		return fmt.Errorf("%w: DSN is empty", ErrConfig)
	case c.Shards < 1 || c.Shards > 256:
		return fmt.Errorf("%w: Shards %d not in 1-256", ErrConfig, c.Shards)
	case c.Lanes > 64:
		return fmt.Errorf("%w: Lanes %d not in 1-64", ErrConfig, c.Lanes)
	case c.BatchInterval > time.Second:
		return fmt.Errorf("%w: BatchInterval %v above 1s", ErrConfig, c.BatchInterval)
	}
	return nil
}

// Store is the MySQL backend. Its methods are safe for concurrent use.
type Store struct {
	db     *sql.DB
	wdb    *sql.DB // the writer's lanes: multiStatements on (writer.go, script)
	log    *slog.Logger
	shards int
	w      *writer
	closed atomic.Bool
	idx    *fulltext.Indexer
	// delivered holds the delivery cursor moves not yet written
	// (delivered.go).
	delivered *lazycursor.Deliveries
}

var _ storage.Store = (*Store)(nil)

// driverLog routes the driver's own messages (it has one logger per
// process) to the first opened Store's logger, at debug level: the errors
// they describe reach the caller anyway.
var driverLog sync.Once

type driverLogger struct{ log *slog.Logger }

func (l driverLogger) Print(v ...any) { l.log.Debug("mysql driver: " + fmt.Sprint(v...)) }

// Open connects, creates or migrates the schema, and starts the writer.
func Open(cfg Config) (*Store, error) {
	cfg.fill()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	driverLog.Do(func() { _ = driver.SetLogger(driverLogger{cfg.Logger}) })
	dc, err := driver.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("%w: DSN: %v", ErrConfig, err)
	}
	if dc.DBName == "" {
		return nil, fmt.Errorf("%w: DSN names no database", ErrConfig)
	}
	dc.ParseTime = true
	dc.Collation = "utf8mb4_bin"
	dc.MultiStatements = false
	dc.InterpolateParams = true // one round trip per statement
	db, err := sql.Open("mysql", dc.FormatDSN())
	if err != nil {
		return nil, fmt.Errorf("mysql: open: %w", err)
	}
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxOpenConns)
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)
	// The writer's pool sends a batch's writes as one multi-statement
	// query; every value in them is a placeholder interpolated by the driver.
	dc.MultiStatements = true
	wdb, err := sql.Open("mysql", dc.FormatDSN())
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("mysql: open: %w", err)
	}
	wdb.SetMaxOpenConns(cfg.Lanes)
	wdb.SetMaxIdleConns(cfg.Lanes)
	wdb.SetConnMaxLifetime(30 * time.Minute)
	wdb.SetConnMaxIdleTime(5 * time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := &Store{db: db, wdb: wdb, log: cfg.Logger, shards: cfg.Shards}
	s.delivered = lazycursor.NewDeliveries("mysql", cfg.Logger, s.writeDelivered)
	applied, err := migrate(ctx, db, cfg.Shards)
	if err != nil {
		_ = db.Close()
		_ = wdb.Close()
		return nil, err
	}
	if len(applied) > 0 {
		cfg.Logger.Info("mysql: schema migrated", "versions", applied, "shards", cfg.Shards)
	}
	warnDurability(ctx, db, cfg.Logger)
	s.idx = fulltext.NewIndexer(fulltext.IndexerConfig{Lists: indexLists{s}, Logger: cfg.Logger})
	s.w = newWriter(s, cfg.Hook, cfg.Stages, cfg.MaxBatch, cfg.Lanes, max(cfg.BatchInterval, 0))
	s.w.start()
	return s, nil
}

// warnDurability logs a warning when the server does not flush its log at
// each commit: Append promises that an acknowledged message survives a crash
// of the database machine, which only innodb_flush_log_at_trx_commit = 1
// (the default) keeps.
func warnDurability(ctx context.Context, db *sql.DB, log *slog.Logger) {
	var flush sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT @@innodb_flush_log_at_trx_commit`).Scan(&flush); err != nil {
		log.Warn("mysql: cannot read innodb_flush_log_at_trx_commit", "err", err)
		return
	}
	if flush.Int64 != 1 {
		log.Warn("mysql: innodb_flush_log_at_trx_commit is not 1: acknowledged messages may be lost if the database machine crashes",
			"innodb_flush_log_at_trx_commit", flush.Int64)
	}
}

// BatchCounts is how many group commits the store has made, by how each
// was stored (onetrip.go).
type BatchCounts struct {
	OneTrip  uint64 // in one round trip
	FellBack uint64 // tried in one, stored the general way (a guard failed)
	General  uint64 // the general way at once (an event or a timer change)
}

// Batches returns the store's group commits so far, for metrics.
func (s *Store) Batches() BatchCounts {
	return BatchCounts{OneTrip: s.w.oneTrips.Load(), FellBack: s.w.fellBack.Load(), General: s.w.general.Load()}
}

// Close implements storage.Store: queued Appends are committed first.
func (s *Store) Close() error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), storage.DeliveredWriteTimeout)
	if err := s.delivered.Close(ctx); err != nil {
		s.log.Warn("mysql: delivery cursors not written", "err", err)
	}
	cancel()
	if !s.closed.CompareAndSwap(false, true) {
		return storage.ErrClosed
	}
	s.w.close()
	s.idx.Close()
	_ = s.wdb.Close()
	return s.db.Close()
}

// shardOf is the message table of a conversation: FNV-1a 32 of its id,
// modulo the shard count. It must never change for a database.
func shardOf(conv string, shards int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(conv))
	return int(h.Sum32() % uint32(shards))
}

func shardTable(i int) string { return fmt.Sprintf("messages_%02d", i) }

func (s *Store) table(conv string) string { return shardTable(shardOf(conv, s.shards)) }

// fail wraps an error of the database, or reports ErrClosed when the store
// closed under the call.
func (s *Store) fail(what string, err error) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return fmt.Errorf("mysql: %s: %w", what, err)
}

// Server error numbers the store acts on.
const (
	errDupEntry        = 1062 // ER_DUP_ENTRY
	errLockWaitTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT
	errLockDeadlock    = 1213 // ER_LOCK_DEADLOCK
)

// isDuplicate reports a unique-key violation.
func isDuplicate(err error) bool {
	var me *driver.MySQLError
	return errors.As(err, &me) && me.Number == errDupEntry
}

// isDeadlock reports a transaction the server rolled back to break a lock
// cycle or a lock wait; running it again is safe.
func isDeadlock(err error) bool {
	var me *driver.MySQLError
	return errors.As(err, &me) && (me.Number == errLockDeadlock || me.Number == errLockWaitTimeout)
}

// retryWait waits before attempt+1 of a transaction that deadlocked: 2 ms
// doubling to at most 64 ms, between half and all of it at random, so the
// transactions that collided do not collide again in step. It reports
// false if ctx ended first.
func retryWait(ctx context.Context, attempt int) bool {
	d := 2 * time.Millisecond << min(attempt, 5)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// tx runs fn in a transaction, retrying a deadlock or lock timeout a few
// times after a short random wait. fn returns a domain error (its writes are rolled back and the
// error returned as is) or a failure.
func (s *Store) tx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	for attempt := 0; ; attempt++ {
		err := s.tryTx(ctx, fn)
		if attempt < 5 && isDeadlock(err) && retryWait(ctx, attempt) {
			continue
		}
		if err == nil || isDomain(err) {
			return err
		}
		return s.fail(what, err)
	}
}

func (s *Store) tryTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isDomain reports the errors of the storage contract.
func isDomain(err error) bool {
	for _, e := range []error{storage.ErrNotFound, storage.ErrUsernameTaken, storage.ErrAlreadyFriends,
		storage.ErrRequestExists, storage.ErrNotFriends, storage.ErrGroupFull, storage.ErrAlreadyMember, storage.ErrNotMember} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// exists reports whether query finds a row.
func exists(ctx context.Context, q querier, query string, args ...any) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// each runs query and calls scan for every row.
func (s *Store) each(ctx context.Context, q querier, what string, scan func(*sql.Rows) error, query string, args ...any) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return s.fail(what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return s.fail(what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail(what, err)
	}
	return nil
}

// CreateUser implements storage.Users.
func (s *Store) CreateUser(ctx context.Context, username string, passHash []byte) (storage.User, error) {
	u := storage.User{Username: username, PassHash: append([]byte(nil), passHash...), Created: time.UnixMilli(time.Now().UnixMilli())}
	err := s.tx(ctx, "create user", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO users (username, name_key, lower_name, pass_hash, created) VALUES (?, ?, ?, ?, ?)`,
			username, storage.FoldName(username), strings.ToLower(username), u.PassHash, u.Created.UnixMilli())
		if isDuplicate(err) {
			return storage.ErrUsernameTaken
		}
		if err != nil {
			return err
		}
		u.ID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return storage.User{}, err
	}
	return u, nil
}

// UserByName implements storage.Users.
func (s *Store) UserByName(ctx context.Context, username string) (storage.User, error) {
	return s.user(ctx, `name_key = ?`, storage.FoldName(username))
}

// UserByID implements storage.Users.
func (s *Store) UserByID(ctx context.Context, id int64) (storage.User, error) {
	return s.user(ctx, `id = ?`, id)
}

func (s *Store) user(ctx context.Context, where string, arg any) (storage.User, error) {
	var (
		u     storage.User
		found bool
	)
	err := s.each(ctx, s.db, "read user", func(r *sql.Rows) error {
		var created int64
		found = true
		err := r.Scan(&u.ID, &u.Username, &u.PassHash, &created)
		u.Created = time.UnixMilli(created)
		return err
	}, `SELECT id, username, pass_hash, created FROM users WHERE `+where, arg)
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	return u, err
}

// CreateToken implements storage.Tokens.
func (s *Store) CreateToken(ctx context.Context, hash []byte, userID int64, expires time.Time) error {
	return s.tx(ctx, "create token", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens (hash, user_id, expires) VALUES (?, ?, ?)
			ON DUPLICATE KEY UPDATE user_id = VALUES(user_id), expires = VALUES(expires)`, hash, userID, expires.UnixMilli())
		return err
	})
}

// TokenUser implements storage.Tokens.
func (s *Store) TokenUser(ctx context.Context, hash []byte, now time.Time) (int64, time.Time, error) {
	var (
		user, expires int64
		found         bool
	)
	err := s.each(ctx, s.db, "read token", func(r *sql.Rows) error {
		found = true
		return r.Scan(&user, &expires)
	}, `SELECT user_id, expires FROM tokens WHERE hash = ? AND expires > ?`, hash, now.UnixMilli())
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	return user, time.UnixMilli(expires), err
}

// DeleteToken implements storage.Tokens.
func (s *Store) DeleteToken(ctx context.Context, hash []byte) error {
	return s.tx(ctx, "delete token", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE hash = ?`, hash)
		return err
	})
}

// DeleteUserTokens implements storage.Tokens.
func (s *Store) DeleteUserTokens(ctx context.Context, userID int64) error {
	return s.tx(ctx, "delete tokens", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM tokens WHERE user_id = ?`, userID)
		return err
	})
}
