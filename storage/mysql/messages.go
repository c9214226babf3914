package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// messageCols are the columns of a message, in scanMessage's order;
// mCols the same of the shard table aliased m.
const (
	messageCols = `conv, seq, msg_id, sender, recipient, group_id, client_msg_id, content_type, body, server_time, expires_at`
	mCols       = `m.conv, m.seq, m.msg_id, m.sender, m.recipient, m.group_id, m.client_msg_id, m.content_type, m.body, m.server_time, m.expires_at`
)

// hiddenJoin joins to each message m the row saying that the user given as
// its one parameter hid it; a query keeps the messages with `h.seq IS NULL`.
// (As NOT EXISTS, MariaDB materializes every hidden row of the user first;
// as an anti-join it looks up one primary key per message.) Messages at or
// below the user's cleared_seq are excluded by the query itself.
const hiddenJoin = `LEFT JOIN hidden h ON h.user_id = ? AND h.conv = m.conv AND h.seq = m.seq`

// live keeps the messages m that have not expired at the time given as its
// one parameter (expiry.go).
const live = `(m.expires_at = 0 OR m.expires_at > ?)`

type scanner interface{ Scan(dest ...any) error }

func scanMessage(r scanner) (protocol.Message, error) {
	var m protocol.Message
	err := r.Scan(&m.Conv, &m.Seq, &m.MsgID, &m.From, &m.To, &m.GroupID,
		&m.ClientMsgID, &m.ContentType, &m.Body, &m.ServerTime, &m.ExpiresAt)
	if m.Body == nil {
		m.Body = []byte{}
	}
	return m, err
}

func (s *Store) messages(ctx context.Context, q querier, what string, limit int, query string, args ...any) ([]protocol.Message, error) {
	msgs := make([]protocol.Message, 0, min(limit, 64))
	err := s.each(ctx, q, what, func(r *sql.Rows) error {
		m, err := scanMessage(r)
		msgs = append(msgs, m)
		return err
	}, query, args...)
	return msgs, err
}

// sqlLimit is a page size plus one, to learn whether there is more.
func sqlLimit(limit int) int64 { return int64(min(limit, math.MaxInt32)) + 1 }

// head reads a conversation's last seq and the user's cleared seq.
func head(ctx context.Context, q querier, user int64, conv string) (last, cleared uint64, err error) {
	err = q.QueryRowContext(ctx, `SELECT
		COALESCE((SELECT last_seq FROM conversations WHERE conv = ?), 0),
		COALESCE((SELECT cleared_seq FROM user_convs WHERE user_id = ? AND conv = ?), 0)`, conv, user, conv).Scan(&last, &cleared)
	return last, cleared, err
}

// After implements storage.Messages. It reads one snapshot, so lastSeq and
// the page agree.
func (s *Store) After(ctx context.Context, user int64, conv string, afterSeq uint64, limit int) (msgs []protocol.Message, next, lastSeq uint64, more bool, err error) {
	if s.closed.Load() {
		return nil, 0, 0, false, storage.ErrClosed
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, 0, 0, false, s.fail("sync", err)
	}
	defer func() { _ = tx.Rollback() }()
	lastSeq, cleared, err := head(ctx, tx, user, conv)
	if err != nil {
		return nil, 0, 0, false, s.fail("sync", err)
	}
	if limit < 1 || afterSeq >= lastSeq {
		return nil, afterSeq, lastSeq, lastSeq > afterSeq, nil
	}
	msgs, err = s.messages(ctx, tx, "sync", limit, `SELECT `+mCols+` FROM `+s.table(conv)+` m `+hiddenJoin+`
		WHERE m.conv = ? AND m.seq > ? AND h.seq IS NULL AND `+live+` ORDER BY m.seq LIMIT ?`,
		user, conv, max(afterSeq, cleared), nowMilli(), sqlLimit(limit))
	if err != nil {
		return nil, 0, 0, false, err
	}
	more = len(msgs) > limit
	msgs = msgs[:min(limit, len(msgs))]
	if err := s.fold(ctx, tx, conv, msgs, protocol.ShownReactors); err != nil {
		return nil, 0, 0, false, err
	}
	if more {
		return msgs, msgs[limit-1].Seq, lastSeq, true, nil
	}
	return msgs, lastSeq, lastSeq, false, nil
}

// Before implements storage.Messages. When there is no older page, next is 1.
func (s *Store) Before(ctx context.Context, user int64, conv string, beforeSeq uint64, limit int) (msgs []protocol.Message, next uint64, more bool, err error) {
	if s.closed.Load() {
		return nil, 0, false, storage.ErrClosed
	}
	if limit < 1 {
		return nil, max(beforeSeq, 1), false, nil
	}
	below := beforeSeq
	if below == 0 || below > math.MaxInt64 {
		below = math.MaxInt64
	}
	msgs, err = s.messages(ctx, s.db, "history", limit, `SELECT `+mCols+` FROM `+s.table(conv)+` m `+hiddenJoin+`
		WHERE m.conv = ? AND m.seq < ?
		AND m.seq > COALESCE((SELECT cleared_seq FROM user_convs WHERE user_id = ? AND conv = ?), 0)
		AND h.seq IS NULL AND `+live+` ORDER BY m.seq DESC LIMIT ?`,
		user, conv, below, user, conv, nowMilli(), sqlLimit(limit))
	if err != nil {
		return nil, 0, false, err
	}
	more = len(msgs) > limit
	msgs = msgs[:min(limit, len(msgs))]
	if err := s.fold(ctx, s.db, conv, msgs, protocol.ShownReactors); err != nil {
		return nil, 0, false, err
	}
	if more {
		return msgs, msgs[limit-1].Seq, true, nil
	}
	return msgs, 1, false, nil
}

// canJoin reports whether a cursor write may create user's row for conv:
// only in a direct conversation of the user's; a group's row is its
// membership, which the groups own.
func canJoin(user int64, conv string) bool {
	return protocol.DirectOf(user, conv)
}

func lastSeq(ctx context.Context, tx *sql.Tx, conv string) (uint64, error) {
	var last uint64
	err := tx.QueryRowContext(ctx, `SELECT last_seq FROM conversations WHERE conv = ?`, conv).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return last, err
}

// Ack implements storage.Messages.
func (s *Store) Ack(ctx context.Context, user int64, conv string, seq uint64) error {
	_, _, err := s.AckMoved(ctx, user, conv, seq)
	return err
}

// AckMoved implements storage.ConvState, as Ack does.
func (s *Store) AckMoved(ctx context.Context, user int64, conv string, seq uint64) (prev, cursor uint64, err error) {
	err = s.tx(ctx, "ack", func(tx *sql.Tx) error {
		prev, cursor = 0, 0
		last, err := lastSeq(ctx, tx, conv)
		if err != nil {
			return err
		}
		seq := min(seq, last)
		var cur sql.Null[uint64]
		err = tx.QueryRowContext(ctx, `SELECT ack_seq FROM user_convs WHERE user_id = ? AND conv = ? FOR UPDATE`, user, conv).Scan(&cur)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if !canJoin(user, conv) {
				return nil // not a member: nothing to move
			}
		case err != nil:
			return err
		}
		prev, cursor = cur.V, cur.V
		if seq <= cursor {
			return nil
		}
		if cur.Valid {
			_, err = tx.ExecContext(ctx, `UPDATE user_convs SET ack_seq = ? WHERE user_id = ? AND conv = ?`, seq, user, conv)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO user_convs (user_id, conv, ack_seq) VALUES (?, ?, ?)
				ON DUPLICATE KEY UPDATE ack_seq = GREATEST(ack_seq, VALUES(ack_seq))`, user, conv, seq)
		}
		if err == nil {
			cursor = seq
		}
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return prev, cursor, nil
}

// Hide implements storage.Messages. Sequences above the conversation's
// last one are ignored.
func (s *Store) Hide(ctx context.Context, user int64, conv string, seqs []uint64, upTo uint64) error {
	if len(seqs) == 0 && upTo == 0 {
		return nil
	}
	return s.tx(ctx, "hide", func(tx *sql.Tx) error {
		last, err := lastSeq(ctx, tx, conv)
		if err != nil {
			return err
		}
		upTo := min(upTo, last)
		var args []any
		for _, seq := range seqs {
			if seq == 0 || seq > last || seq <= upTo {
				continue
			}
			args = append(args, user, conv, seq)
		}
		if len(args) > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO hidden (user_id, conv, seq) VALUES `+
				placeholders(len(args)/3, "(?, ?, ?)"), args...); err != nil {
				return err
			}
		}
		if upTo == 0 {
			return nil
		}
		if canJoin(user, conv) {
			_, err = tx.ExecContext(ctx, `INSERT INTO user_convs (user_id, conv, cleared_seq) VALUES (?, ?, ?)
				ON DUPLICATE KEY UPDATE cleared_seq = GREATEST(cleared_seq, VALUES(cleared_seq))`, user, conv, upTo)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE user_convs SET cleared_seq = GREATEST(cleared_seq, ?) WHERE user_id = ? AND conv = ?`, upTo, user, conv)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM hidden WHERE user_id = ? AND conv = ? AND seq <= ?`, user, conv, upTo)
		return err
	})
}

// convsChunk is how many conversations one detail query of Conversations
// covers.
const convsChunk = 32

// Conversations implements storage.Messages. It reads one snapshot: the
// page from the cursor and conversation tables, ordered by the time of the
// last message and then by id; then, for convsChunk conversations per round
// trip, each one's unread count and last visible message from its shard.
func (s *Store) Conversations(ctx context.Context, user int64, limit int) ([]protocol.Conversation, error) {
	page, _, err := s.ConversationsAfter(ctx, user, 0, "", limit)
	return page, err
}

// ConversationsAfter implements storage.ConvState: Conversations from a
// place in the list, one more row read to tell whether more follow.
func (s *Store) ConversationsAfter(ctx context.Context, user int64, afterTime int64, afterConv string, limit int) ([]protocol.Conversation, bool, error) {
	if s.closed.Load() {
		return nil, false, storage.ErrClosed
	}
	if limit < 1 {
		return nil, false, nil
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, false, s.fail("conversations", err)
	}
	defer func() { _ = tx.Rollback() }()
	var (
		page    []protocol.Conversation
		cleared []uint64
	)
	where, args := ``, []any{user}
	if afterConv != "" {
		where = ` AND (c.last_time < ? OR c.last_time = ? AND c.conv > ?)`
		args = append(args, afterTime, afterTime, afterConv)
	}
	args = append(args, sqlLimit(limit))
	err = s.each(ctx, tx, "conversations", func(r *sql.Rows) error {
		var (
			c     protocol.Conversation
			cl    uint64
			flags uint8
		)
		err := r.Scan(&c.Conv, &c.LastSeq, &c.LastTime, &c.AckSeq, &cl, &flags, &c.Timer)
		c.Muted, c.Pinned = flags&flagMuted != 0, flags&flagPinned != 0
		page, cleared = append(page, c), append(cleared, cl)
		return err
	}, `SELECT uc.conv, c.last_seq, c.last_time, uc.ack_seq, uc.cleared_seq, uc.flags, c.timer
		FROM user_convs uc JOIN conversations c ON c.conv = uc.conv
		WHERE uc.user_id = ? AND c.last_seq > 0`+where+`
		ORDER BY c.last_time DESC, c.conv LIMIT ?`, args...)
	if err != nil {
		return nil, false, err
	}
	more := len(page) > limit
	page = page[:min(limit, len(page))]
	for lo := 0; lo < len(page); lo += convsChunk {
		if err := s.convDetails(ctx, tx, user, page[lo:min(lo+convsChunk, len(page))], cleared[lo:]); err != nil {
			return nil, false, err
		}
	}
	return page, more, nil
}

// eventTypes is the range of the content types of events, which do not
// count as unread (protocol.CountsUnread).
const eventTypes = "256 AND 511"

// convDetails fills in the unread count and last message of each of page,
// whose cleared seqs are cleared[i], with one UNION ALL over their shards.
func (s *Store) convDetails(ctx context.Context, tx *sql.Tx, user int64, page []protocol.Conversation, cleared []uint64) error {
	var (
		q    strings.Builder
		args []any
		now  = nowMilli()
	)
	for i, c := range page {
		if i > 0 {
			q.WriteString("\nUNION ALL\n")
		}
		t := s.table(c.Conv)
		// i: the row; the unread messages; the newest visible message, or
		// NULLs (the LEFT JOIN keeps the row when there is none).
		q.WriteString(`SELECT ` + strconv.Itoa(i) + ` AS i,
			(SELECT COUNT(*) FROM ` + t + ` m ` + hiddenJoin + `
				WHERE m.conv = ? AND m.seq > ? AND m.sender <> ? AND h.seq IS NULL AND ` + live + `
					AND m.content_type NOT BETWEEN ` + eventTypes + `) AS unread,
			l.seq, l.msg_id, l.sender, l.recipient, l.group_id, l.client_msg_id, l.content_type, l.body, l.server_time, l.expires_at
			FROM (SELECT 1 AS one) o LEFT JOIN ` + t + ` l ON l.conv = ? AND l.seq = (
				SELECT m.seq FROM ` + t + ` m ` + hiddenJoin + `
				WHERE m.conv = ? AND m.seq > ? AND h.seq IS NULL AND ` + live + ` ORDER BY m.seq DESC LIMIT 1)`)
		args = append(args, user, c.Conv, max(c.AckSeq, cleared[i]), user, now,
			c.Conv, user, c.Conv, cleared[i], now)
	}
	return s.each(ctx, tx, "conversations", func(r *sql.Rows) error {
		var (
			i                                        int
			unread                                   uint64
			seq                                      sql.Null[uint64]
			msgID, sender, recipient, groupID, ctype sql.NullInt64
			stime, expires                           sql.NullInt64
			cmid                                     sql.NullString
			body                                     []byte
		)
		if err := r.Scan(&i, &unread, &seq, &msgID, &sender, &recipient, &groupID, &cmid, &ctype, &body, &stime, &expires); err != nil {
			return err
		}
		if i < 0 || i >= len(page) {
			return fmt.Errorf("conversation detail row %d of %d", i, len(page))
		}
		c := &page[i]
		c.Unread = unread
		if seq.Valid {
			if body == nil {
				body = []byte{}
			}
			c.Last = &protocol.Message{Conv: c.Conv, Seq: seq.V, MsgID: msgID.Int64, From: sender.Int64, To: recipient.Int64,
				GroupID: groupID.Int64, ClientMsgID: cmid.String, ContentType: uint16(ctype.Int64), Body: body, ServerTime: stime.Int64,
				ExpiresAt: expires.Int64}
		}
		return nil
	}, q.String(), args...)
}
