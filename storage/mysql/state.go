package mysql

import (
	"context"
	"database/sql"
	"errors"

	"github.com/parleyim/parley/storage"
)

// Per-user conversation state (storage.ConvState): the flags of a
// conversation are user_convs.flags; settings are rows of user_settings.

var _ storage.ConvState = (*Store)(nil)

// Bits of user_convs.flags.
const (
	flagMuted  = 1 << 0
	flagPinned = 1 << 1
)

// ReadCursors implements storage.ConvState with one query over the
// conversation's rows (the user_convs_conv index), however many users.
func (s *Store) ReadCursors(ctx context.Context, conv string, users []int64) ([]uint64, error) {
	if s.closed.Load() {
		return nil, storage.ErrClosed
	}
	got := make(map[int64]uint64, len(users))
	err := s.each(ctx, s.db, "read cursors", func(r *sql.Rows) error {
		var (
			u   int64
			ack uint64
		)
		err := r.Scan(&u, &ack)
		got[u] = ack
		return err
	}, `SELECT uc.user_id, uc.ack_seq FROM user_convs uc
		LEFT JOIN user_settings st ON st.user_id = uc.user_id
		WHERE uc.conv = ? AND uc.ack_seq > 0 AND NOT COALESCE(st.receipts_off, FALSE)`, conv)
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(users))
	for i, u := range users {
		out[i] = got[u]
	}
	return out, nil
}

// SetConvFlags implements storage.ConvState.
func (s *Store) SetConvFlags(ctx context.Context, user int64, conv string, f storage.ConvFlags) error {
	var flags uint8
	if f.Muted {
		flags |= flagMuted
	}
	if f.Pinned {
		flags |= flagPinned
	}
	return s.tx(ctx, "conv flags", func(tx *sql.Tx) error {
		if canJoin(user, conv) {
			_, err := tx.ExecContext(ctx, `INSERT INTO user_convs (user_id, conv, flags) VALUES (?, ?, ?)
				ON DUPLICATE KEY UPDATE flags = VALUES(flags)`, user, conv, flags)
			return err
		}
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM user_convs WHERE user_id = ? AND conv = ? FOR UPDATE`, user, conv).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotMember
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE user_convs SET flags = ? WHERE user_id = ? AND conv = ?`, flags, user, conv)
		return err
	})
}

// SetUserSettings implements storage.ConvState.
func (s *Store) SetUserSettings(ctx context.Context, user int64, set storage.UserSettings) error {
	return s.tx(ctx, "settings", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO user_settings (user_id, receipts_off) VALUES (?, ?)
			ON DUPLICATE KEY UPDATE receipts_off = VALUES(receipts_off)`, user, set.ReceiptsOff)
		return err
	})
}

// UserSettings implements storage.ConvState.
func (s *Store) UserSettings(ctx context.Context, user int64) (storage.UserSettings, error) {
	if s.closed.Load() {
		return storage.UserSettings{}, storage.ErrClosed
	}
	var set storage.UserSettings
	err := s.db.QueryRowContext(ctx, `SELECT receipts_off FROM user_settings WHERE user_id = ?`, user).Scan(&set.ReceiptsOff)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return storage.UserSettings{}, s.fail("settings", err)
	}
	return set, nil
}
