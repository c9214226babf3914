package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Expiring messages (storage/expiry.go). A message's expires_at is a column
// of its shard table (0: never), the timer a column of its conversations row
// (read with the row's lock by every batch, so stamping costs no query), and
// the timing wheel a table ordered by (expires_at, conv, seq), written in the
// batch that stores the message: about 40 bytes of row and index a message.
//
// Expire takes the due rows of the wheel with FOR UPDATE SKIP LOCKED under
// READ COMMITTED (no gap locks), so the nodes of a cluster sweep side by side
// without waiting on each other or on the appends, and deletes the messages,
// their meta and their dedupe rows in the same transaction. The
// conversation's last seq lives in its conversations row, so a message is
// deleted whole.

var _ storage.Expirer = (*Store)(nil)

func nowMilli() int64 { return time.Now().UnixMilli() }

// dropExpired removes from msgs those expired at now.
func dropExpired(msgs []protocol.Message, now int64) []protocol.Message {
	out := msgs[:0]
	for _, m := range msgs {
		if !storage.Expired(&m, now) {
			out = append(out, m)
		}
	}
	return out
}

// writeExpiry puts the batch's expiring messages on the wheel and writes the
// timers its ContentTimer messages set; seq writes the messages' seqs
// (nil: as values).
func writeExpiry(ctx context.Context, tx execer, msgs []protocol.Message, timers map[string]uint32, seq seqSQL) error {
	v := values{seq: seq}
	flush := func() error {
		if v.n == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT IGNORE INTO expiring (expires_at, conv, seq) VALUES `+v.sql(), v.args...)
		v = values{seq: seq}
		if err != nil {
			return fmt.Errorf("insert expiring: %w", err)
		}
		return nil
	}
	for _, m := range msgs {
		if m.ExpiresAt == 0 {
			continue
		}
		v.row(m.ExpiresAt, m.Conv, seqOf{m.Conv, m.Seq})
		if v.n == maxInsertRows {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	for conv, secs := range timers {
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET timer = ? WHERE conv = ?`, secs, conv); err != nil {
			return fmt.Errorf("set timer: %w", err)
		}
	}
	return nil
}

// Expire implements storage.Expirer. A deadlock with another node's sweep
// or with an append is retried.
func (s *Store) Expire(ctx context.Context, now int64, limit int) ([]protocol.Message, error) {
	if s.closed.Load() {
		return nil, storage.ErrClosed
	}
	if limit < 1 {
		return nil, nil
	}
	limit = min(limit, maxInsertRows)
	for attempt := 0; ; attempt++ {
		out, err := s.expire(ctx, now, limit)
		if err != nil && attempt < 5 && isDeadlock(err) && retryWait(ctx, attempt) {
			continue
		}
		if err != nil {
			return nil, s.fail("expire", err)
		}
		slices.SortFunc(out, func(a, b protocol.Message) int {
			return cmp.Or(cmp.Compare(a.ExpiresAt, b.ExpiresAt), cmp.Compare(a.Conv, b.Conv), cmp.Compare(a.Seq, b.Seq))
		})
		return out, nil
	}
}

// expire is one attempt of Expire: one transaction. Every statement names
// rows by their whole primary key, so it locks only those rows.
func (s *Store) expire(ctx context.Context, now int64, limit int) ([]protocol.Message, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	var (
		wheel  []any
		byConv = map[string][]any{}
		convs  []string
	)
	rows, err := tx.QueryContext(ctx, `SELECT expires_at, conv, seq FROM expiring WHERE expires_at <= ?
		ORDER BY expires_at, conv, seq LIMIT ? FOR UPDATE SKIP LOCKED`, now, limit)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var (
			at   int64
			conv string
			seq  uint64
		)
		if err := rows.Scan(&at, &conv, &seq); err != nil {
			rows.Close()
			return nil, err
		}
		wheel = append(wheel, at, conv, seq)
		if _, ok := byConv[conv]; !ok {
			convs = append(convs, conv)
		}
		byConv[conv] = append(byConv[conv], seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(wheel) == 0 {
		return nil, err
	}
	var out []protocol.Message
	for _, conv := range convs {
		seqs := byConv[conv]
		in := `conv = ? AND seq IN (` + placeholders(len(seqs), "?") + `)`
		args := append([]any{conv}, seqs...)
		msgs, err := s.folded(ctx, tx, "expire", len(seqs), `SELECT `+mCols+`, mm.meta FROM `+s.table(conv)+` m `+metaJoin+
			` WHERE m.conv = ? AND m.seq IN (`+placeholders(len(seqs), "?")+`) FOR UPDATE`, args...)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+s.table(conv)+` WHERE `+in, args...); err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM message_meta WHERE `+in, args...); err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	var ids []any
	for _, m := range out {
		if m.ClientMsgID != "" {
			ids = append(ids, m.From, m.ClientMsgID)
		}
	}
	if len(ids) > 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM message_ids WHERE `+
			strings.Repeat(`(sender = ? AND client_msg_id = ?) OR `, len(ids)/2-1)+`(sender = ? AND client_msg_id = ?)`, ids...); err != nil {
			return nil, err
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM expiring WHERE `+
		strings.Repeat(`(expires_at = ? AND conv = ? AND seq = ?) OR `, len(wheel)/3-1)+`(expires_at = ? AND conv = ? AND seq = ?)`, wheel...); err != nil {
		return nil, err
	}
	return out, tx.Commit()
}
