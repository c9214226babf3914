package mysql

import (
	"context"
	"database/sql"
	"errors"
	"math"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// messageCols are the columns of a message, in scanMessage's order.
const messageCols = `conv, seq, msg_id, sender, recipient, group_id, client_msg_id, content_type, body, server_time`

// notHidden is a condition on messages m for the user given as its one
// parameter.
const notHidden = `NOT EXISTS (SELECT 1 FROM hidden h WHERE h.user_id = ? AND h.conv = m.conv AND h.seq = m.seq)`

type scanner interface{ Scan(dest ...any) error }

func scanMessage(r scanner) (protocol.Message, error) {
	var m protocol.Message
	err := r.Scan(&m.Conv, &m.Seq, &m.MsgID, &m.From, &m.To, &m.GroupID,
		&m.ClientMsgID, &m.ContentType, &m.Body, &m.ServerTime)
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
	msgs, err = s.messages(ctx, tx, "sync", limit, `SELECT `+messageCols+` FROM `+s.table(conv)+` m
		WHERE m.conv = ? AND m.seq > ? AND `+notHidden+` ORDER BY m.seq LIMIT ?`,
		conv, max(afterSeq, cleared), user, sqlLimit(limit))
	if err != nil {
		return nil, 0, 0, false, err
	}
	if len(msgs) > limit {
		msgs = msgs[:limit]
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
	msgs, err = s.messages(ctx, s.db, "history", limit, `SELECT `+messageCols+` FROM `+s.table(conv)+` m
		WHERE m.conv = ? AND m.seq < ?
		AND m.seq > COALESCE((SELECT cleared_seq FROM user_convs WHERE user_id = ? AND conv = ?), 0)
		AND `+notHidden+` ORDER BY m.seq DESC LIMIT ?`,
		conv, below, user, conv, user, sqlLimit(limit))
	if err != nil {
		return nil, 0, false, err
	}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		return msgs, msgs[limit-1].Seq, true, nil
	}
	return msgs, 1, false, nil
}

// canJoin reports whether a cursor write may create user's row for conv:
// only in a direct conversation of the user's; a group's row is its
// membership, which the groups own.
func canJoin(user int64, conv string) bool {
	p, ok := protocol.ParseConv(conv)
	return ok && p.Has(user)
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
	if seq == 0 {
		return nil
	}
	return s.tx(ctx, "ack", func(tx *sql.Tx) error {
		last, err := lastSeq(ctx, tx, conv)
		if err != nil {
			return err
		}
		seq := min(seq, last)
		if seq == 0 {
			return nil
		}
		if canJoin(user, conv) {
			_, err = tx.ExecContext(ctx, `INSERT INTO user_convs (user_id, conv, ack_seq) VALUES (?, ?, ?)
				ON DUPLICATE KEY UPDATE ack_seq = GREATEST(ack_seq, VALUES(ack_seq))`, user, conv, seq)
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE user_convs SET ack_seq = GREATEST(ack_seq, ?) WHERE user_id = ? AND conv = ?`, seq, user, conv)
		}
		return err
	})
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

// Conversations implements storage.Messages: the page from the cursor and
// conversation tables, then per row its unread count and last visible
// message from its shard.
func (s *Store) Conversations(ctx context.Context, user int64, limit int) ([]protocol.Conversation, error) {
	if s.closed.Load() {
		return nil, storage.ErrClosed
	}
	if limit < 1 {
		return nil, nil
	}
	type row struct {
		c       protocol.Conversation
		cleared uint64
	}
	var page []row
	err := s.each(ctx, s.db, "conversations", func(r *sql.Rows) error {
		var x row
		err := r.Scan(&x.c.Conv, &x.c.LastSeq, &x.c.AckSeq, &x.cleared)
		page = append(page, x)
		return err
	}, `SELECT uc.conv, c.last_seq, uc.ack_seq, uc.cleared_seq
		FROM user_convs uc JOIN conversations c ON c.conv = uc.conv
		WHERE uc.user_id = ? AND c.last_seq > 0
		ORDER BY c.last_time DESC, c.conv LIMIT ?`, user, min(limit, math.MaxInt32))
	if err != nil {
		return nil, err
	}
	out := make([]protocol.Conversation, 0, len(page))
	for _, x := range page {
		c := x.c
		t := s.table(c.Conv)
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t+` m
			WHERE m.conv = ? AND m.seq > ? AND m.sender <> ? AND `+notHidden,
			c.Conv, max(c.AckSeq, x.cleared), user, user).Scan(&c.Unread); err != nil {
			return nil, s.fail("conversations", err)
		}
		last, err := scanMessage(s.db.QueryRowContext(ctx, `SELECT `+messageCols+` FROM `+t+` m
			WHERE m.conv = ? AND m.seq > ? AND `+notHidden+` ORDER BY m.seq DESC LIMIT 1`, c.Conv, x.cleared, user))
		switch {
		case err == nil:
			c.Last = &last
		case !errors.Is(err, sql.ErrNoRows):
			return nil, s.fail("conversations", err)
		}
		out = append(out, c)
	}
	return out, nil
}
