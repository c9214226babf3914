// Package sqlite is Parley's embedded storage backend: one SQLite database
// file (modernc.org/sqlite, pure Go) in WAL mode with synchronous=FULL.
//
// Every write (Append, Ack, Hide, users, tokens) goes to one writer goroutine
// that owns a single connection and commits queued writes together, one
// transaction and one fsync per batch (group commit); see writer.go. Reads
// run on a separate pool of read-only connections, which WAL lets proceed
// while the writer commits. So no call ever sees SQLITE_BUSY.
//
// A caller whose context ends while its write is queued gets ctx.Err() back;
// the write is skipped if the writer has not started it yet, but may still
// commit if it has. Only one Store may have a data directory open at a time.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/parleyim/parley/storage"
)

// Config configures Open. Zero values are documented per field.
type Config struct {
	Dir      string             // data directory, created if missing; the db file is Dir/parley.db
	Hook     storage.CommitHook // may be nil
	MaxBatch int                // max writes per group commit; 0 means 512
	Logger   *slog.Logger       // nil means discard
}

// DefaultMaxBatch is the MaxBatch used when Config.MaxBatch is 0.
const DefaultMaxBatch = 512

// FileName is the database file inside Config.Dir.
const FileName = "parley.db"

// busyTimeout bounds how long a connection waits for a lock. The writer is
// the only writer, so waits happen only around WAL checkpoints and recovery.
const busyTimeout = 10 * time.Second

// Store is the SQLite backend. Its methods are safe for concurrent use.
type Store struct {
	log    *slog.Logger
	wdb    *sql.DB // the writer's single connection
	rdb    *sql.DB // pool of read-only connections
	reads  readStmts
	w      *writer
	closed atomic.Bool

	migrated []int // schema versions applied by Open
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the database in cfg.Dir, applies schema
// migrations it lacks and starts the writer.
func Open(cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("sqlite: Config.Dir is empty")
	}
	if cfg.MaxBatch < 0 {
		return nil, fmt.Errorf("sqlite: Config.MaxBatch %d is negative", cfg.MaxBatch)
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create data dir: %w", err)
	}
	path := filepath.Join(cfg.Dir, FileName)
	ms := busyTimeout.Milliseconds()

	wdb, err := sql.Open("sqlite", dsn(path,
		"_pragma", fmt.Sprintf("busy_timeout(%d)", ms),
		"_pragma", "journal_mode(WAL)",
		"_pragma", "synchronous(FULL)",
		"_txlock", "immediate"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open writer: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s := &Store{log: cfg.Logger, wdb: wdb}
	ctx := context.Background()
	if err := s.init(ctx, path, cfg); err != nil {
		s.closeDBs()
		return nil, err
	}
	if len(s.migrated) > 0 {
		s.log.Info("sqlite: schema migrated", "path", path, "versions", s.migrated)
	}
	return s, nil
}

// init finishes Open: checks the journal mode, migrates, opens the read pool
// and starts the writer.
func (s *Store) init(ctx context.Context, path string, cfg Config) error {
	var mode string
	if err := s.wdb.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open %s: journal mode is %q, want wal", path, mode)
	}
	applied, err := migrate(ctx, s.wdb, migrations)
	if err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", path, err)
	}
	s.migrated = applied

	s.rdb, err = sql.Open("sqlite", dsn(path,
		"_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()),
		"_pragma", "query_only(1)"))
	if err != nil {
		return fmt.Errorf("sqlite: open readers: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.rdb.SetMaxOpenConns(n)
	s.rdb.SetMaxIdleConns(n)
	if err := s.reads.prepare(ctx, s.rdb); err != nil {
		return fmt.Errorf("sqlite: prepare reads: %w", err)
	}
	s.w, err = newWriter(ctx, s.wdb, cfg.Hook, cfg.MaxBatch, cfg.Logger)
	if err != nil {
		return fmt.Errorf("sqlite: prepare writes: %w", err)
	}
	go s.w.run()
	return nil
}

// dsn builds a modernc.org/sqlite data source name: the file path, then
// query parameters given as key, value pairs.
func dsn(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	return path + "?" + q.Encode()
}

// Close stops accepting calls, commits the writes already queued, and closes
// the database. Calls after Close, including Close, return storage.ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return storage.ErrClosed
	}
	s.w.close()
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	if s.w != nil {
		s.w.stmts.close()
	}
	s.reads.close()
	var errs []error
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	errs = append(errs, s.wdb.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// readErr turns an error of a read into the one to return: ErrClosed when
// the store closed under the call, else the error wrapped with what failed.
func (s *Store) readErr(what string, err error) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return fmt.Errorf("sqlite: %s: %w", what, err)
}

// CreateUser implements storage.Users.
func (s *Store) CreateUser(ctx context.Context, username string, passHash []byte) (storage.User, error) {
	if s.closed.Load() {
		return storage.User{}, storage.ErrClosed
	}
	o := &createUserOp{
		user: storage.User{
			Username: username,
			PassHash: bytesCopy(passHash),
			Created:  time.UnixMilli(time.Now().UnixMilli()),
		},
		key: storage.FoldName(username),
	}
	if err := s.w.do(ctx, o); err != nil {
		return storage.User{}, err
	}
	return o.user, nil
}

// UserByName implements storage.Users.
func (s *Store) UserByName(ctx context.Context, username string) (storage.User, error) {
	return s.user(ctx, s.reads.userByName, storage.FoldName(username))
}

// UserByID implements storage.Users.
func (s *Store) UserByID(ctx context.Context, id int64) (storage.User, error) {
	return s.user(ctx, s.reads.userByID, id)
}

func (s *Store) user(ctx context.Context, stmt *sql.Stmt, arg any) (storage.User, error) {
	if s.closed.Load() {
		return storage.User{}, storage.ErrClosed
	}
	var (
		u       storage.User
		created int64
	)
	err := stmt.QueryRowContext(ctx, arg).Scan(&u.ID, &u.Username, &u.PassHash, &created)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return storage.User{}, storage.ErrNotFound
	case err != nil:
		return storage.User{}, s.readErr("read user", err)
	}
	u.Created = time.UnixMilli(created)
	return u, nil
}

// CreateToken implements storage.Tokens. Expiry is kept to the millisecond.
func (s *Store) CreateToken(ctx context.Context, hash []byte, userID int64, expires time.Time) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	o := &tokenOp{kind: tokenCreate, hash: bytesCopy(hash), userID: userID, expires: expires.UnixMilli()}
	return s.w.do(ctx, o)
}

// TokenUser implements storage.Tokens. A token expires at its expiry
// millisecond: it is found while now is before it.
func (s *Store) TokenUser(ctx context.Context, hash []byte, now time.Time) (int64, time.Time, error) {
	if s.closed.Load() {
		return 0, time.Time{}, storage.ErrClosed
	}
	var userID, expires int64
	err := s.reads.tokenUser.QueryRowContext(ctx, nonNilBytes(hash), now.UnixMilli()).Scan(&userID, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, time.Time{}, storage.ErrNotFound
	case err != nil:
		return 0, time.Time{}, s.readErr("read token", err)
	}
	return userID, time.UnixMilli(expires), nil
}

// DeleteToken implements storage.Tokens.
func (s *Store) DeleteToken(ctx context.Context, hash []byte) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	o := &tokenOp{kind: tokenDelete, hash: bytesCopy(hash)}
	return s.w.do(ctx, o)
}

// DeleteUserTokens implements storage.Tokens.
func (s *Store) DeleteUserTokens(ctx context.Context, userID int64) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	o := &tokenOp{kind: tokenDeleteUser, userID: userID}
	return s.w.do(ctx, o)
}

// nonNilBytes makes nil an empty slice, so it binds as an empty BLOB rather
// than NULL.
func nonNilBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// bytesCopy copies b for a queued write: the caller may reuse b once its call
// returns, even when it returns early on a done context.
func bytesCopy(b []byte) []byte {
	return append([]byte{}, b...)
}
