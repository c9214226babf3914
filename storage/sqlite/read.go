package sqlite

import (
	"context"
	"database/sql"
	"math"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// The reads. They run on the read pool; the writer never waits for them.

// messageCols are the columns of a message, in scanMessage's order.
const messageCols = `conv, seq, msg_id, sender, recipient, group_id, client_msg_id, content_type, body, server_time`

// notHidden is a condition on messages m: the user ?3 has not hidden m one
// by one; messages at or below the user's cleared_seq are excluded separately.
const notHidden = `NOT EXISTS (SELECT 1 FROM hidden h WHERE h.user_id = ?3 AND h.conv = m.conv AND h.seq = m.seq)`

// afterQuery pages forward: ?1 conv, ?2 the seq to start after (at least the
// user's cleared_seq), ?3 user, ?4 limit.
const afterQuery = `SELECT ` + messageCols + ` FROM messages m
	WHERE m.conv = ?1 AND m.seq > ?2 AND ` + notHidden + `
	ORDER BY m.seq LIMIT ?4`

// beforeQuery pages backward: ?1 conv, ?2 the seq to end before, ?3 user,
// ?4 limit.
const beforeQuery = `SELECT ` + messageCols + ` FROM messages m
	WHERE m.conv = ?1 AND m.seq < ?2
	AND m.seq > coalesce((SELECT cleared_seq FROM user_convs WHERE user_id = ?3 AND conv = ?1), 0)
	AND ` + notHidden + `
	ORDER BY m.seq DESC LIMIT ?4`

// convsQuery lists a user's conversations: ?3 user, ?4 limit (?1 and ?2 are
// unused). The page is chosen first, so the unread counts and last messages
// are computed for its rows only.
const convsQuery = `WITH page AS MATERIALIZED (
		SELECT uc.conv, uc.ack_seq, uc.cleared_seq, c.last_seq, c.last_time
		FROM user_convs uc JOIN conversations c ON c.conv = uc.conv
		WHERE uc.user_id = ?3
		ORDER BY c.last_time DESC, c.conv
		LIMIT ?4
	)
	SELECT p.conv, p.last_seq, p.ack_seq,
		(SELECT count(*) FROM messages m
			WHERE m.conv = p.conv AND m.seq > max(p.ack_seq, p.cleared_seq)
			AND m.sender <> ?3 AND ` + notHidden + `),
		l.seq, l.msg_id, l.sender, l.recipient, l.group_id, l.client_msg_id,
		l.content_type, l.body, l.server_time
	FROM page p
	LEFT JOIN messages l ON l.conv = p.conv AND l.seq = (
		SELECT m.seq FROM messages m
		WHERE m.conv = p.conv AND m.seq > p.cleared_seq AND ` + notHidden + `
		ORDER BY m.seq DESC LIMIT 1)
	ORDER BY p.last_time DESC, p.conv`

type readStmts struct {
	userByName, userByID, tokenUser *sql.Stmt
	convHead, after, before, convs  *sql.Stmt
}

func (st *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	return prepareAll(ctx, db, []stmtDef{
		{&st.userByName, `SELECT id, username, pass_hash, created FROM users WHERE name_key = ?`},
		{&st.userByID, `SELECT id, username, pass_hash, created FROM users WHERE id = ?`},
		{&st.tokenUser, `SELECT user_id, expires FROM tokens WHERE hash = ? AND expires > ?`},
		// ?1 conv, ?2 user
		{&st.convHead, `SELECT
			coalesce((SELECT last_seq FROM conversations WHERE conv = ?1), 0),
			coalesce((SELECT cleared_seq FROM user_convs WHERE user_id = ?2 AND conv = ?1), 0)`},
		{&st.after, afterQuery},
		{&st.before, beforeQuery},
		{&st.convs, convsQuery},
	})
}

func (st *readStmts) close() {
	closeAll(st.userByName, st.userByID, st.tokenUser, st.convHead, st.after, st.before, st.convs)
}

type scanner interface{ Scan(dest ...any) error }

func scanMessage(r scanner) (protocol.Message, error) {
	var m protocol.Message
	err := r.Scan(&m.Conv, &m.Seq, &m.MsgID, &m.From, &m.To, &m.GroupID,
		&m.ClientMsgID, &m.ContentType, &m.Body, &m.ServerTime)
	return m, err
}

func scanMessages(rows *sql.Rows, limit int) ([]protocol.Message, error) {
	defer rows.Close()
	msgs := make([]protocol.Message, 0, min(limit, 64))
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, rows.Err()
}

// sqlLimit is a page size plus one, to learn whether there is more, as a
// value SQLite takes.
func sqlLimit(limit int) int64 {
	return int64(min(limit, math.MaxInt32)) + 1
}

// After implements storage.Messages. A limit below 1 returns no messages.
// It reads in one transaction, so lastSeq and the page agree.
func (s *Store) After(ctx context.Context, user int64, conv string, afterSeq uint64, limit int) (msgs []protocol.Message, next, lastSeq uint64, more bool, err error) {
	if s.closed.Load() {
		return nil, 0, 0, false, storage.ErrClosed
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, 0, false, s.readErr("sync", err)
	}
	defer func() { _ = tx.Rollback() }()
	var cleared uint64
	if err := tx.StmtContext(ctx, s.reads.convHead).QueryRowContext(ctx, conv, user).Scan(&lastSeq, &cleared); err != nil {
		return nil, 0, 0, false, s.readErr("sync", err)
	}
	if limit < 1 || afterSeq >= lastSeq {
		return nil, afterSeq, lastSeq, lastSeq > afterSeq, nil
	}
	rows, err := tx.StmtContext(ctx, s.reads.after).QueryContext(ctx, conv, max(afterSeq, cleared), user, sqlLimit(limit))
	if err != nil {
		return nil, 0, 0, false, s.readErr("sync", err)
	}
	if msgs, err = scanMessages(rows, limit); err != nil {
		return nil, 0, 0, false, s.readErr("sync", err)
	}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		return msgs, msgs[limit-1].Seq, lastSeq, true, nil
	}
	// Everything up to lastSeq was examined.
	return msgs, lastSeq, lastSeq, false, nil
}

// Before implements storage.Messages. A limit below 1 returns no messages.
// When there is no older page, next is 1: the page below it is empty.
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
	rows, err := s.reads.before.QueryContext(ctx, conv, int64(below), user, sqlLimit(limit))
	if err != nil {
		return nil, 0, false, s.readErr("history", err)
	}
	if msgs, err = scanMessages(rows, limit); err != nil {
		return nil, 0, false, s.readErr("history", err)
	}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		return msgs, msgs[limit-1].Seq, true, nil
	}
	return msgs, 1, false, nil
}

// Conversations implements storage.Messages: one query. Conversations with
// the same last message time are ordered by id. A limit below 1 returns none.
func (s *Store) Conversations(ctx context.Context, user int64, limit int) ([]protocol.Conversation, error) {
	if s.closed.Load() {
		return nil, storage.ErrClosed
	}
	if limit < 1 {
		return nil, nil
	}
	// The query numbers its parameters to share notHidden: ?3 and ?4.
	rows, err := s.reads.convs.QueryContext(ctx, nil, nil, user, int64(min(limit, math.MaxInt32)))
	if err != nil {
		return nil, s.readErr("conversations", err)
	}
	defer rows.Close()
	var out []protocol.Conversation
	for rows.Next() {
		var (
			c    protocol.Conversation
			seq  sql.Null[uint64]
			last protocol.Message
			cmid sql.NullString
		)
		var msgID, sender, recipient, groupID, ctype, stime sql.NullInt64
		if err := rows.Scan(&c.Conv, &c.LastSeq, &c.AckSeq, &c.Unread,
			&seq, &msgID, &sender, &recipient, &groupID, &cmid, &ctype, &last.Body, &stime); err != nil {
			return nil, s.readErr("conversations", err)
		}
		if seq.Valid {
			last.Conv, last.Seq = c.Conv, seq.V
			last.MsgID, last.From, last.To, last.GroupID = msgID.Int64, sender.Int64, recipient.Int64, groupID.Int64
			last.ClientMsgID, last.ContentType, last.ServerTime = cmid.String, uint16(ctype.Int64), stime.Int64
			c.Last = &last
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("conversations", err)
	}
	return out, nil
}
