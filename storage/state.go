package storage

import (
	"context"
	"time"

	"github.com/parleyim/parley/protocol"
)

// ConvState is the per-user state of conversations beyond the messages:
// read cursors as others see them, the user's flags of each conversation
// (muted, pinned), the user's settings, and Conversations in pages. The
// embedded and MySQL backends implement it; the server finds it by type
// assertion and answers the frames that need it with UNAVAILABLE on a
// backend that lacks it.
type ConvState interface {
	// AckMoved is Ack that also reports user's cursor in conv before and
	// after the call: the call moved it when cursor > prev. Like Ack it is
	// clamped to the last sequence, and a not-member's call changes nothing
	// (0, 0).
	AckMoved(ctx context.Context, user int64, conv string, seq uint64) (prev, cursor uint64, err error)

	// ReadCursors returns, for each of users in order, its read cursor in
	// conv as other users may see it: 0 for a user without a row in conv,
	// and 0 for a user who turned receipts off (UserSettings).
	ReadCursors(ctx context.Context, conv string, users []int64) ([]uint64, error)

	// SetConvFlags replaces user's flags of conv. In a direct conversation
	// of the user's it creates the user's row; elsewhere a user without a
	// row (not a member) gets ErrNotMember and nothing is written.
	SetConvFlags(ctx context.Context, user int64, conv string, f ConvFlags) error

	// ConversationsAfter is Conversations from the entry after the one
	// whose LastTime and Conv are afterTime and afterConv (afterConv ""
	// starts at the first), in the same order: LastTime descending, then
	// Conv ascending. It fills LastTime, Muted and Pinned of each entry.
	// more says whether entries follow the page.
	ConversationsAfter(ctx context.Context, user int64, afterTime int64, afterConv string, limit int) (page []protocol.Conversation, more bool, err error)

	// SetUserSettings replaces user's settings; UserSettings reads them
	// (zero for a user who never set any).
	SetUserSettings(ctx context.Context, user int64, s UserSettings) error
	UserSettings(ctx context.Context, user int64) (UserSettings, error)
}

// ConvFlags are a user's own flags of one conversation.
type ConvFlags struct {
	Muted  bool
	Pinned bool
}

// UserSettings are a user's account-wide settings.
type UserSettings struct {
	// ReceiptsOff: the user's read cursors are not shown to others (no
	// ReadEvent to the other user, not counted in group reads).
	ReceiptsOff bool
}

// Deliveries is the optional ability of a store to keep delivery cursors,
// found by type assertion: for a user and a direct conversation of its, the
// highest seq a device of the user said it holds (protocol.Received), so
// that the other user learns what was delivered after being away.
//
// A move is not a commit of its own: moves are held, the highest per
// cursor wins, and those of DeliveredDelay are written together in one
// write that joins a group commit (storage/internal/lazycursor). A crash
// may take back the moves of that moment (the cursor steps back, nothing
// else is lost); Close writes those pending.
type Deliveries interface {
	// Delivered moves user's delivery cursor in conv forward to seq. The
	// caller clamps seq to the conversation's last seq; a conv that is not
	// a direct conversation of user's is ignored. It returns before the
	// move is durable; DeliveredCursor sees it at once.
	Delivered(ctx context.Context, user int64, conv string, seq uint64) error

	// DeliveredCursor returns user's delivery cursor in conv, 0 if none.
	DeliveredCursor(ctx context.Context, user int64, conv string) (uint64, error)
}

// Bounds of the pending delivery cursor moves of a store.
const (
	DeliveredDelay        = 100 * time.Millisecond // from the first pending move to its write
	MaxPendingDelivered   = 1 << 16                // cursors with a pending move; past it a move is dropped
	DeliveredWriteTimeout = 5 * time.Second        // one write of the pending moves
)
