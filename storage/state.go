package storage

import (
	"context"

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
