package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/internal/lazycursor"
)

// Delivery cursors (storage.Deliveries): one row of the delivered table per
// user and direct conversation, written lazily (storage/internal/lazycursor):
// the moves of a moment are one INSERT in one transaction.

var _ storage.Deliveries = (*Store)(nil)

// deliveredChunk is how many moves one INSERT writes.
const deliveredChunk = 500

// writeDelivered stores moves in one transaction; a row only moves forward.
func (s *Store) writeDelivered(ctx context.Context, moves []lazycursor.Move) error {
	return s.tx(ctx, "delivered", func(tx *sql.Tx) error {
		for lo := 0; lo < len(moves); lo += deliveredChunk {
			part := moves[lo:min(lo+deliveredChunk, len(moves))]
			args := make([]any, 0, 3*len(part))
			for _, m := range part {
				args = append(args, m.User, m.Conv, m.Seq)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO delivered (user_id, conv, seq) VALUES `+
				placeholders(len(part), "(?, ?, ?)")+` ON DUPLICATE KEY UPDATE seq = GREATEST(seq, VALUES(seq))`, args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// Delivered implements storage.Deliveries.
func (s *Store) Delivered(ctx context.Context, user int64, conv string, seq uint64) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	return s.delivered.Move(ctx, user, conv, seq)
}

// DeliveredCursor implements storage.Deliveries.
func (s *Store) DeliveredCursor(ctx context.Context, user int64, conv string) (uint64, error) {
	if s.closed.Load() {
		return 0, storage.ErrClosed
	}
	pending := s.delivered.Get(user, conv)
	var seq uint64
	err := s.db.QueryRowContext(ctx, `SELECT seq FROM delivered WHERE user_id = ? AND conv = ?`, user, conv).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("mysql: delivered: %w", err)
	}
	return max(seq, pending), nil
}
