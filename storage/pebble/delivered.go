package pebble

import (
	"context"
	"encoding/binary"

	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/internal/lazycursor"
)

// Delivery cursors (storage.Deliveries): a v key per user and direct
// conversation,
//
//	v user conv → the seq (8 bytes) up to which a device of the user holds conv
//
// written lazily (storage/internal/lazycursor): the moves of a moment are
// one write op, which rides in a group commit with the other ops.

var _ storage.Deliveries = (*Store)(nil)

const tDelivered = 'v'

func deliveredKey(user int64, conv string) []byte {
	return append(key(tDelivered, user), conv...)
}

// writeDelivered stores moves in one op; a move that is not forward is
// skipped.
func (s *Store) writeDelivered(ctx context.Context, moves []lazycursor.Move) error {
	o := &txOp{fn: func(t *txn) (error, error) {
		for _, m := range moves {
			k := deliveredKey(m.User, m.Conv)
			v, found, err := t.get(k)
			if err != nil {
				return nil, err
			}
			if found && len(v) == 8 && binary.BigEndian.Uint64(v) >= m.Seq {
				continue
			}
			if err := t.set(k, binary.BigEndian.AppendUint64(nil, m.Seq)); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}}
	o.reads = true
	o.done = make(chan error, 1)
	return s.w.do(ctx, o, o.done)
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
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	defer s.exit()
	pending := s.delivered.Get(user, conv)
	v, found, err := getFrom(s.db, deliveredKey(user, conv))
	if err != nil {
		return 0, s.readErr("delivered", err)
	}
	if !found {
		return pending, nil
	}
	if len(v) != 8 {
		return 0, s.readErr("delivered", errCorrupt)
	}
	return max(binary.BigEndian.Uint64(v), pending), nil
}
