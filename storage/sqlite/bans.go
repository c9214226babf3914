package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/parleyim/parley/storage"
)

// BanUser implements storage.Bans.
func (s *Store) BanUser(ctx context.Context, user int64, until time.Time, reason string, now time.Time) error {
	return s.write(ctx, "ban", func(b *batch) (error, error) {
		if ok, err := b.userExists(user); err != nil || !ok {
			return storage.ErrNotFound, err
		}
		_, err := b.tx.Exec(`INSERT INTO bans (user_id, until, reason, created) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (user_id) DO UPDATE SET until = ?2, reason = ?3, created = ?4`,
			user, until.UnixMilli(), reason, now.UnixMilli())
		return nil, err
	})
}

// UnbanUser implements storage.Bans.
func (s *Store) UnbanUser(ctx context.Context, user int64) error {
	return s.write(ctx, "unban", func(b *batch) (error, error) {
		_, err := b.tx.Exec(`DELETE FROM bans WHERE user_id = ?`, user)
		return nil, err
	})
}

// BannedUntil implements storage.Bans.
func (s *Store) BannedUntil(ctx context.Context, user int64, now time.Time) (time.Time, error) {
	var until time.Time
	err := s.read(ctx, "banned until", func(r *sql.Rows) error {
		var ms int64
		err := r.Scan(&ms)
		until = time.UnixMilli(ms)
		return err
	}, `SELECT until FROM bans WHERE user_id = ? AND until > ?`, user, now.UnixMilli())
	return until, err
}

// ActiveBans implements storage.Bans.
func (s *Store) ActiveBans(ctx context.Context, now time.Time) ([]storage.Ban, error) {
	var out []storage.Ban
	err := s.read(ctx, "active bans", func(r *sql.Rows) error {
		var (
			b              storage.Ban
			until, created int64
		)
		err := r.Scan(&b.UserID, &b.Username, &until, &b.Reason, &created)
		b.Until, b.Created = time.UnixMilli(until), time.UnixMilli(created)
		out = append(out, b)
		return err
	}, `SELECT b.user_id, u.username, b.until, b.reason, b.created FROM bans b JOIN users u ON u.id = b.user_id
		WHERE b.until > ? ORDER BY b.user_id`, now.UnixMilli())
	return out, err
}
