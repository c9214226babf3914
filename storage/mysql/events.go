package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Conversation events (storage/events.go). A message's storage.Meta is a
// row of message_meta; the writer applies an event to its target's Meta in
// the event's batch transaction (the conversation's row is locked, so no
// other node changes it meanwhile), and a recall empties the bodies of the
// target and of its edits in the same transaction.

var _ storage.Events = (*Store)(nil)

type convSeq struct {
	conv string
	seq  uint64
}

// batchEvents is the Meta state of one batch: what it read and wrote.
type batchEvents struct {
	w     *writer
	ctx   context.Context
	tx    querier // its reads
	x     execer  // its writes
	metas map[convSeq]*storage.Meta
	dirty []convSeq            // metas to write, in first-change order
	types map[convSeq]uint16   // content types of the batch's own messages
	exps  map[convSeq]int64    // expires_at of the batch's own messages
	blank []convSeq            // bodies to empty
	inSet map[convSeq]struct{} // dirty as a set
}

func newBatchEvents(w *writer, ctx context.Context, tx querier, x execer) *batchEvents {
	return &batchEvents{w: w, ctx: ctx, tx: tx, x: x, metas: map[convSeq]*storage.Meta{},
		types: map[convSeq]uint16{}, exps: map[convSeq]int64{}, inSet: map[convSeq]struct{}{}}
}

func (b *batchEvents) touch(k convSeq) {
	if _, ok := b.inSet[k]; !ok {
		b.inSet[k] = struct{}{}
		b.dirty = append(b.dirty, k)
	}
}

// meta returns the Meta of k, read once per batch.
func (b *batchEvents) meta(k convSeq) (*storage.Meta, error) {
	if mt, ok := b.metas[k]; ok {
		return mt, nil
	}
	var raw []byte
	err := b.tx.QueryRowContext(b.ctx, `SELECT meta FROM message_meta WHERE conv = ? AND seq = ?`, k.conv, k.seq).Scan(&raw)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("read meta: %w", err)
	}
	mt, err := storage.DecodeMeta(raw)
	if err != nil {
		return nil, fmt.Errorf("decode meta: %w", err)
	}
	b.metas[k] = &mt
	return &mt, nil
}

// event checks event m (its Seq set) against its target and applies it:
// domain is the refusal, with nothing changed.
func (b *batchEvents) event(m *protocol.Message) (domain, err error) {
	if m.Ref == 0 || m.Ref >= m.Seq {
		return storage.ErrNotTarget, nil
	}
	k := convSeq{m.Conv, m.Ref}
	ct, ok := b.types[k]
	exp := b.exps[k]
	if !ok {
		err := b.tx.QueryRowContext(b.ctx, `SELECT content_type, expires_at FROM `+b.w.s.table(m.Conv)+` WHERE conv = ? AND seq = ?`,
			m.Conv, m.Ref).Scan(&ct, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return storage.ErrNotTarget, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read event target: %w", err)
		}
	}
	if exp != 0 && exp <= m.ServerTime {
		return storage.ErrNotTarget, nil // expired
	}
	mt, err := b.meta(k)
	if err != nil {
		return nil, err
	}
	if domain := mt.Apply(m, ct); domain != nil {
		return domain, nil
	}
	m.ExpiresAt = storage.TargetExpiry(m.ExpiresAt, exp)
	b.touch(k)
	if m.ContentType == protocol.ContentRecall {
		b.blank = append(b.blank, k)
		for _, s := range mt.Edits {
			b.blank = append(b.blank, convSeq{m.Conv, s})
		}
	}
	return nil, nil
}

// stored notes a message of the batch: its content type and own Meta.
func (b *batchEvents) stored(m *protocol.Message) {
	k := convSeq{m.Conv, m.Seq}
	b.types[k] = m.ContentType
	b.exps[k] = m.ExpiresAt
	own := storage.OwnMeta(m)
	b.metas[k] = &own
	if !own.Empty() {
		b.touch(k)
	}
}

// write writes the changed Metas and empties the recalled bodies; the
// batch's messages are inserted already. seq writes the seqs of the
// Metas' rows (nil: as values).
func (b *batchEvents) write(seq seqSQL) error {
	rows := values{seq: seq}
	for _, k := range b.dirty {
		v, err := storage.EncodeMeta(b.metas[k])
		if err != nil {
			return err
		}
		rows.row(k.conv, seqOf{k.conv, k.seq}, v)
	}
	if rows.n > 0 {
		if _, err := b.x.ExecContext(b.ctx, `INSERT INTO message_meta (conv, seq, meta) VALUES `+rows.sql()+
			` ON DUPLICATE KEY UPDATE meta = VALUES(meta)`, rows.args...); err != nil {
			return fmt.Errorf("write meta: %w", err)
		}
	}
	for _, k := range b.blank {
		if _, err := b.x.ExecContext(b.ctx, `UPDATE `+b.w.s.table(k.conv)+` SET body = '' WHERE conv = ? AND seq = ?`, k.conv, k.seq); err != nil {
			return fmt.Errorf("recall: %w", err)
		}
	}
	return nil
}

// fold folds the Metas of msgs (all of conv) into them.
func (s *Store) fold(ctx context.Context, q querier, conv string, msgs []protocol.Message, shown int) error {
	if len(msgs) == 0 {
		return nil
	}
	lo, hi := msgs[0].Seq, msgs[len(msgs)-1].Seq
	if lo > hi {
		lo, hi = hi, lo
	}
	metas := map[uint64][]byte{}
	err := s.each(ctx, q, "read meta", func(r *sql.Rows) error {
		var (
			seq uint64
			raw []byte
		)
		err := r.Scan(&seq, &raw)
		metas[seq] = raw
		return err
	}, `SELECT seq, meta FROM message_meta WHERE conv = ? AND seq BETWEEN ? AND ?`, conv, lo, hi)
	if err != nil {
		return err
	}
	if err := storage.FoldAll(msgs, metas, shown); err != nil {
		return s.fail("decode meta", err)
	}
	return nil
}

// MessagesAt implements storage.Events.
func (s *Store) MessagesAt(ctx context.Context, conv string, seqs []uint64) ([]protocol.Message, error) {
	if s.closed.Load() {
		return nil, storage.ErrClosed
	}
	seqs = slices.Clone(seqs)
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	if len(seqs) == 0 {
		return nil, nil
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, s.fail("messages at", err)
	}
	defer func() { _ = tx.Rollback() }()
	msgs, err := s.messages(ctx, tx, "messages at", len(seqs), `SELECT `+messageCols+` FROM `+s.table(conv)+`
		WHERE conv = ? AND seq IN (`+placeholders(len(seqs), "?")+`) ORDER BY seq`, append([]any{conv}, anys(seqs)...)...)
	if err != nil {
		return nil, err
	}
	msgs = dropExpired(msgs, nowMilli())
	if err := s.foldAll(ctx, tx, conv, msgs); err != nil {
		return nil, err
	}
	return msgs, nil
}

// foldAll folds each message's Meta with every reactor listed.
func (s *Store) foldAll(ctx context.Context, q querier, conv string, msgs []protocol.Message) error {
	for i := range msgs {
		if err := s.fold(ctx, q, conv, msgs[i:i+1], -1); err != nil {
			return err
		}
	}
	return nil
}

// EditHistory implements storage.Events.
func (s *Store) EditHistory(ctx context.Context, conv string, seq uint64) ([]protocol.EditVersion, error) {
	if s.closed.Load() {
		return nil, storage.ErrClosed
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
	if err != nil {
		return nil, s.fail("edit history", err)
	}
	defer func() { _ = tx.Rollback() }()
	var raw []byte
	err = tx.QueryRowContext(ctx, `SELECT meta FROM message_meta WHERE conv = ? AND seq = ?`, conv, seq).Scan(&raw)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, s.fail("edit history", err)
	}
	mt, err := storage.DecodeMeta(raw)
	if err != nil {
		return nil, s.fail("edit history", err)
	}
	if mt.Recalled {
		return nil, storage.ErrRecalled
	}
	seqs := append([]uint64{seq}, mt.Edits...)
	var out []protocol.EditVersion
	now := nowMilli()
	err = s.each(ctx, tx, "edit history", func(r *sql.Rows) error {
		var (
			v   protocol.EditVersion
			exp int64
		)
		err := r.Scan(&v.Seq, &v.Body, &v.ServerTime, &exp)
		if exp != 0 && exp <= now {
			return err // expired: as if gone
		}
		if v.Body == nil {
			v.Body = []byte{}
		}
		out = append(out, v)
		return err
	}, `SELECT seq, body, server_time, expires_at FROM `+s.table(conv)+` WHERE conv = ? AND seq IN (`+
		placeholders(len(seqs), "?")+`) ORDER BY seq`, append([]any{conv}, anys(seqs)...)...)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 || out[0].Seq != seq {
		return nil, storage.ErrNotFound
	}
	// An edit event may have expired before its target (the timer was set
	// between them): its version is gone with it.
	return out, nil
}
