package storage

import (
	"context"

	"github.com/parleyim/parley/protocol"
)

// Expiring messages (protocol/expiry.go). A ContentTimer message sets its
// conversation's timer in the transaction that stores it; Append stamps each
// later message of the conversation (but ContentTimer ones) with ExpiresAt =
// ServerTime + timer, and an event (recall, edit, reaction) expires no later
// than its target. The expiry of a message is fixed when it is stored: a new
// timer rewrites nothing.
//
// Each backend keeps a timing wheel beside the messages: an index ordered by
// (expires_at, conv, seq), written in the transaction that stores the
// message, so it survives a restart with the messages. Reads (After, Before,
// Conversations' unread counts and last messages, MessagesAt, EditHistory,
// Search) leave out every message whose ExpiresAt is at or before the time
// of the read, whether or not Expire has deleted it yet.

// Expirer is the ability of a store to expire messages: both backends have
// it, found by type assertion.
type Expirer interface {
	// Expire deletes up to limit messages whose ExpiresAt is at or before
	// now (Unix ms), earliest first, with their Meta and dedupe record, and
	// returns them as History showed them (an edited one with its latest
	// text, which the search index holds: for Unindex, and the members'
	// Expired notices). Deleting is idempotent: a message
	// another node (or an earlier call) deleted is not returned again. Several
	// callers may run it at once, on one node or many.
	Expire(ctx context.Context, now int64, limit int) ([]protocol.Message, error)
}

// TimerSecs returns the timer a ContentTimer message m sets, and whether m
// sets one (an unparsable body sets none).
func TimerSecs(m *protocol.Message) (uint32, bool) {
	if m.ContentType != protocol.ContentTimer {
		return 0, false
	}
	return protocol.ParseTimer(m.Body)
}

// Stamp sets m.ExpiresAt from its conversation's timer (seconds) as Append
// does: ServerTime + timer for any message but a ContentTimer one.
func Stamp(m *protocol.Message, timer uint32) {
	m.ExpiresAt = 0
	if timer > 0 && m.ContentType != protocol.ContentTimer {
		m.ExpiresAt = m.ServerTime + int64(timer)*1000
	}
}

// Expired reports whether m has expired at now (Unix ms).
func Expired(m *protocol.Message, now int64) bool {
	return m.ExpiresAt != 0 && m.ExpiresAt <= now
}

// TargetExpiry returns the expiry of event ev on a target that expires at
// target: the earlier of the two (zero: never).
func TargetExpiry(ev, target int64) int64 {
	if target != 0 && (ev == 0 || target < ev) {
		return target
	}
	return ev
}
