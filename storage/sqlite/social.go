package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/parleyim/parley/storage"
)

// Profiles, friends, groups and bans. Their writes are rare next to
// messages: each runs as a txOp in the writer's batch, inside a savepoint,
// so a domain error (ErrGroupFull half-way through adding members) undoes
// that op alone. Their reads use plain queries on the read pool.
//
// This file holds what they share and the profiles; friends.go, groups.go
// and bans.go the rest.

// txOp runs fn inside the batch transaction. fn returns a domain error to
// hand the caller (its writes are rolled back), or a failure (err) that
// fails the whole batch.
type txOp struct {
	opBase
	fn func(b *batch) (domain error, err error)
}

func (o *txOp) exec(b *batch) error {
	if _, err := b.tx.Exec(`SAVEPOINT op`); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	domain, err := o.fn(b)
	if err != nil {
		return err
	}
	if domain != nil {
		o.err = domain
		if _, err := b.tx.Exec(`ROLLBACK TO op`); err != nil {
			return fmt.Errorf("rollback to savepoint: %w", err)
		}
	}
	if _, err := b.tx.Exec(`RELEASE op`); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// write runs fn as one op of the writer.
func (s *Store) write(ctx context.Context, what string, fn func(b *batch) (error, error)) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	err := s.w.do(ctx, &txOp{fn: func(b *batch) (error, error) {
		domain, err := fn(b)
		if err != nil {
			err = fmt.Errorf("%s: %w", what, err)
		}
		return domain, err
	}})
	return err
}

// exists reports whether query, run in the batch, finds a row.
func (b *batch) exists(query string, args ...any) (bool, error) {
	var one int
	err := b.tx.QueryRow(query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (b *batch) userExists(id int64) (bool, error) {
	return b.exists(`SELECT 1 FROM users WHERE id = ?`, id)
}

// read runs a query on the read pool and calls scan for each row.
func (s *Store) read(ctx context.Context, what string, scan func(*sql.Rows) error, query string, args ...any) error {
	return s.readOn(ctx, s.rdb, what, scan, query, args...)
}

// querier is the read pool or one of its transactions.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// readOn is read on q.
func (s *Store) readOn(ctx context.Context, q querier, what string, scan func(*sql.Rows) error, query string, args ...any) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return s.readErr(what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return s.readErr(what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return s.readErr(what, err)
	}
	return nil
}

// profileCols are a user's public columns, for scanProfile, from users u.
const profileCols = `u.id, u.username, u.display_name, u.avatar_url`

func scanProfile(r scanner, extra ...any) (storage.Profile, error) {
	var p storage.Profile
	err := r.Scan(append([]any{&p.ID, &p.Username, &p.DisplayName, &p.AvatarURL}, extra...)...)
	return p, err
}

// Profile implements storage.Profiles.
func (s *Store) Profile(ctx context.Context, user int64) (storage.Profile, error) {
	var (
		p     storage.Profile
		found bool
	)
	err := s.read(ctx, "profile", func(r *sql.Rows) (err error) {
		p, err = scanProfile(r)
		found = true
		return err
	}, `SELECT `+profileCols+` FROM users u WHERE u.id = ?`, user)
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	return p, err
}

// SetProfile implements storage.Profiles. The profile returned is read in
// the write's transaction, so a concurrent SetProfile cannot show through.
func (s *Store) SetProfile(ctx context.Context, user int64, displayName, avatarURL string) (storage.Profile, error) {
	var p storage.Profile
	err := s.write(ctx, "set profile", func(b *batch) (error, error) {
		res, err := b.tx.Exec(`UPDATE users SET display_name = ?, avatar_url = ? WHERE id = ?`, displayName, avatarURL, user)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound, nil
		}
		p, err = scanProfile(b.tx.QueryRow(`SELECT `+profileCols+` FROM users u WHERE u.id = ?`, user))
		return nil, err
	})
	if err != nil {
		return storage.Profile{}, err
	}
	return p, nil
}

// prefixEnd is above every string that starts with the prefix it follows.
const prefixEnd = "\U0010FFFF"

// SearchUsers implements storage.Profiles. The server admits ASCII
// usernames only, so SQL's lower(), which folds ASCII only, is the
// lower-cased username (and users_lower its index). The prefix is a range
// of that index, not a LIKE pattern: '%' and '_' in it are literal.
func (s *Store) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]storage.Profile, error) {
	if limit < 1 {
		return nil, nil
	}
	lo := strings.ToLower(prefix)
	var out []storage.Profile
	err := s.read(ctx, "search users", func(r *sql.Rows) error {
		p, err := scanProfile(r)
		out = append(out, p)
		return err
	}, `SELECT `+profileCols+` FROM users u
		WHERE lower(u.username) >= ?1 AND lower(u.username) < ?2 AND lower(u.username) > ?3
		ORDER BY lower(u.username) LIMIT ?4`,
		lo, lo+prefixEnd, strings.ToLower(after), sqlLimit(limit)-1)
	return out, err
}
