package pebble

import (
	"encoding/binary"
	"sync"

	"github.com/parleyim/parley/protocol"
)

// Read cursors.
//
// A user's row for a conversation (key p user conv) holds two cursors: ack,
// the read cursor that Ack moves, and cleared, below which Hide hid every
// message. The row is the membership: Conversations lists the rows.
//
// Ack does not commit: a client that acks as it reads would otherwise pay a
// commit per message read. Ack checks and clamps the move, then leaves it
// here, latest (highest) wins per user and conversation; the writer writes
// every pending move at the start of its next batch, or in a batch of its
// own ackDelay after the first pending one. Reads of a cursor (Conversations)
// take the higher of the stored and the pending value, so a caller sees its
// Ack at once. A crash loses at most the moves of the last ackDelay: the
// cursor steps back and the client sees those messages as unread again;
// never a message.

// cursorRow is the value of a p key: ack and cleared, then a byte of the
// user's flags of the conversation (flagMuted, flagPinned) when any is set.
type cursorRow struct {
	ack, cleared uint64
	flags        byte
}

// Bits of cursorRow.flags.
const (
	flagMuted  = 1 << 0
	flagPinned = 1 << 1
)

func (r cursorRow) value() []byte {
	v := make([]byte, 0, 17)
	v = binary.BigEndian.AppendUint64(v, r.ack)
	v = binary.BigEndian.AppendUint64(v, r.cleared)
	if r.flags != 0 {
		v = append(v, r.flags)
	}
	return v
}

func parseCursor(v []byte) (cursorRow, error) {
	if len(v) != 16 && len(v) != 17 {
		return cursorRow{}, errCorrupt
	}
	r := cursorRow{ack: binary.BigEndian.Uint64(v), cleared: binary.BigEndian.Uint64(v[8:])}
	if len(v) == 17 {
		r.flags = v[16]
	}
	return r, nil
}

// cursor reads user's row of conv as the txn sees it.
func (t *txn) cursor(user int64, conv string) (cursorRow, bool, error) {
	v, found, err := t.get(cursorKey(user, conv))
	if err != nil || !found {
		return cursorRow{}, false, err
	}
	r, err := parseCursor(v)
	return r, true, err
}

func (t *txn) setCursor(user int64, conv string, r cursorRow) error {
	return t.set(cursorKey(user, conv), r.value())
}

// canJoin reports whether a cursor write may create user's row for conv:
// only in a direct conversation of the user's. In a group the row is the
// membership, which the groups feature owns.
func canJoin(user int64, conv string) bool {
	return protocol.DirectOf(user, conv)
}

// pendingCursor is an Ack not yet written.
type pendingCursor struct {
	user int64
	conv string
	seq  uint64
}

// cursors holds the pending Acks. Its methods are safe for concurrent use.
type cursors struct {
	mu     sync.Mutex
	byUser map[int64]map[string]uint64
}

func newCursors() *cursors {
	return &cursors{byUser: make(map[int64]map[string]uint64)}
}

// put records a move of user's cursor in conv to seq, unless a higher one is
// pending.
func (c *cursors) put(user int64, conv string, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.byUser[user]
	if m == nil {
		m = make(map[string]uint64)
		c.byUser[user] = m
	}
	if seq > m[conv] {
		m[conv] = seq
	}
}

// get returns the pending move of user's cursor in conv, 0 if none.
func (c *cursors) get(user int64, conv string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byUser[user][conv]
}

// ofConv returns the pending moves in conv of those of users that have one.
func (c *cursors) ofConv(conv string, users []int64) map[int64]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out map[int64]uint64
	if len(c.byUser) < len(users) {
		for u, m := range c.byUser {
			if seq, ok := m[conv]; ok {
				if out == nil {
					out = make(map[int64]uint64)
				}
				out[u] = seq
			}
		}
		return out
	}
	for _, u := range users {
		if seq, ok := c.byUser[u][conv]; ok {
			if out == nil {
				out = make(map[int64]uint64)
			}
			out[u] = seq
		}
	}
	return out
}

// ofUser returns a copy of user's pending moves (nil if none).
func (c *cursors) ofUser(user int64) map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.byUser[user]
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// take returns the pending moves for the writer to write. They stay pending
// (and visible to reads) until written removes them.
func (c *cursors) take() []pendingCursor {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byUser) == 0 {
		return nil
	}
	var out []pendingCursor
	for user, m := range c.byUser {
		for conv, seq := range m {
			out = append(out, pendingCursor{user, conv, seq})
		}
	}
	return out
}

// written drops the moves a committed batch wrote, unless a higher move of
// the same cursor came meanwhile.
func (c *cursors) written(ps []pendingCursor) {
	if len(ps) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		m := c.byUser[p.user]
		if m[p.conv] == p.seq {
			delete(m, p.conv)
			if len(m) == 0 {
				delete(c.byUser, p.user)
			}
		}
	}
}

// writeAck writes a pending move into the batch: it only moves a cursor
// forward, and creates a row only in the user's own direct conversation.
func (t *txn) writeAck(p pendingCursor) error {
	row, found, err := t.cursor(p.user, p.conv)
	if err != nil {
		return err
	}
	if !found && !canJoin(p.user, p.conv) || p.seq <= row.ack {
		return nil
	}
	row.ack = p.seq
	return t.setCursor(p.user, p.conv, row)
}
