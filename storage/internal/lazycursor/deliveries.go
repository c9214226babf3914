package lazycursor

import (
	"context"
	"log/slog"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Deliveries is what the stores share of storage.Deliveries: the pending
// delivery cursor moves, bounded by storage's limits, and the checks of a
// reported move. A store adds its write and its read of a stored cursor.
type Deliveries struct {
	*Cursors
	log   *slog.Logger
	store string // prefix of its log lines: "mysql", "pebble"
}

// NewDeliveries returns the pending delivery cursors of store, written
// with write.
func NewDeliveries(store string, log *slog.Logger, write Write) *Deliveries {
	return &Deliveries{
		Cursors: New(storage.DeliveredDelay, storage.MaxPendingDelivered, storage.DeliveredWriteTimeout, write),
		log:     log,
		store:   store,
	}
}

// Move is storage.Deliveries.Delivered once the store has checked that it
// is open: ctx's error if it is done; nothing for seq 0 or a conv that is
// not a direct conversation of user's; otherwise the move is pending. A
// move dropped because too many are pending is logged, not returned.
func (d *Deliveries) Move(ctx context.Context, user int64, conv string, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if seq == 0 || !protocol.DirectOf(user, conv) {
		return nil
	}
	if !d.Put(user, conv, seq) {
		d.log.Warn(d.store+": delivery cursor move dropped: too many pending", "user", user, "conv", conv)
	}
	return nil
}
