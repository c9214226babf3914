package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Group commit.
//
// Callers queue ops on writer.ops and wait. The writer goroutine takes the
// first op, drains whatever else is queued (up to maxBatch) without waiting,
// runs them all in one transaction and commits once: while it commits, new
// ops queue up and form the next batch, so the batch grows with the load and
// one fsync serves many callers.
//
// Within a batch the ops run in queue order. An op that meets an expected
// domain error (a taken username) records it and the batch goes on; any
// other error rolls the whole batch back and fails every op in it. After a
// successful commit the writer calls the commit hook with the messages the
// batch stored, in the order they were appended, and only then answers the
// callers. Batches commit one after another, so the hook sees messages in
// commit order and sequences ascending per conversation.

// maxCachedConvs bounds the writer's conversation → last seq cache; past it
// the cache is emptied and refills from the database on demand.
const maxCachedConvs = 1 << 16

// op is one queued write.
type op interface {
	base() *opBase
	// exec runs the op inside the batch transaction. It returns an error
	// only when the batch must fail; a domain error goes in opBase.err.
	exec(b *batch) error
}

// opBase is the part of an op shared by every kind.
type opBase struct {
	ctx    context.Context
	done   chan error  // buffered; receives the op's result once (do)
	notify func(error) // or, if set, is called with it instead (async ops)
	err    error       // domain error, set by exec; written by the writer only

	skipped bool // the caller's context ended before the op ran
}

func (o *opBase) base() *opBase { return o }

// finish answers the op, once.
func (o *opBase) finish(err error) {
	if o.notify != nil {
		o.notify(err)
		return
	}
	o.done <- err
}

// writer owns the write connection and the goroutine that batches ops.
type writer struct {
	db       *sql.DB
	stmts    writeStmts
	hook     storage.CommitHook
	maxBatch int
	log      *slog.Logger

	// mu guards closed and the sends on ops: Close takes it exclusively to
	// close ops, so no send can follow.
	mu     sync.RWMutex
	closed bool
	ops    chan op
	done   chan struct{} // closed when run returns

	seqs map[string]uint64 // conv → last seq; owned by the run goroutine
}

func newWriter(ctx context.Context, db *sql.DB, hook storage.CommitHook, maxBatch int, log *slog.Logger) (*writer, error) {
	w := &writer{
		db:       db,
		hook:     hook,
		maxBatch: maxBatch,
		log:      log,
		ops:      make(chan op, maxBatch),
		done:     make(chan struct{}),
		seqs:     make(map[string]uint64),
	}
	if err := w.stmts.prepare(ctx, db); err != nil {
		return nil, err
	}
	return w, nil
}

// do queues o and waits for its result. If ctx ends first do returns
// ctx.Err(); the op still commits if the writer had already started it.
func (w *writer) do(ctx context.Context, o op) error {
	b := o.base()
	b.done = make(chan error, 1)
	if err := w.enqueue(ctx, o); err != nil {
		return err
	}
	select {
	case err := <-b.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enqueue queues o without waiting for its result; o's finish will be
// called by the writer. It fails (and o is not queued) if the writer is
// closed or ctx ends before there is room in the queue. Ops queued by one
// goroutine run in the order queued.
func (w *writer) enqueue(ctx context.Context, o op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.base().ctx = ctx
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return storage.ErrClosed
	}
	select {
	case w.ops <- o:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close stops accepting ops and waits until the queued ones are committed.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ops)
	}
	w.mu.Unlock()
	<-w.done
}

// run is the writer goroutine.
func (w *writer) run() {
	defer close(w.done)
	batch := make([]op, 0, w.maxBatch)
	for {
		o, ok := <-w.ops
		if !ok {
			return
		}
		batch = append(batch[:0], o)
	fill:
		for len(batch) < w.maxBatch {
			select {
			case o, ok := <-w.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		w.commit(batch)
		clear(batch)
	}
}

// commit runs ops as one transaction and answers them.
func (w *writer) commit(ops []op) {
	if len(w.seqs) > maxCachedConvs {
		clear(w.seqs)
	}
	b := &batch{w: w, loaded: make(map[string]struct{})}
	if err := b.run(ops); err != nil {
		// The cache may hold seqs the rollback undid.
		for conv := range b.loaded {
			delete(w.seqs, conv)
		}
		err = fmt.Errorf("sqlite: write batch: %w", err)
		w.log.Error("sqlite: write batch failed", "ops", len(ops), "err", err)
		for _, o := range ops {
			if ob := o.base(); ob.skipped {
				ob.finish(ob.err)
			} else {
				ob.finish(err)
			}
		}
		return
	}
	if w.log.Enabled(context.Background(), slog.LevelDebug) {
		w.log.Debug("sqlite: batch committed", "ops", len(ops), "messages", len(b.stored))
	}
	if w.hook != nil && len(b.stored) > 0 {
		w.hook(b.stored)
	}
	for _, o := range ops {
		ob := o.base()
		ob.finish(ob.err)
	}
}

// batch is the state of one transaction.
type batch struct {
	w      *writer
	tx     *sql.Tx
	stmts  map[*sql.Stmt]*sql.Stmt // writer statement → its tx-bound copy
	loaded map[string]struct{}     // convs whose cached seq this batch read or set
	convs  []*convUpdate           // convs that got messages, in first-append order
	convAt map[string]int          // conv → index in convs
	stored []protocol.Message      // new messages, in append order; goes to the hook
}

// convUpdate is what a batch appended to one conversation.
type convUpdate struct {
	conv     string
	parsed   protocol.ParsedConv
	lastSeq  uint64
	lastTime int64
}

func (b *batch) run(ops []op) (err error) {
	b.tx, err = b.w.db.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = b.tx.Rollback()
		}
	}()
	for _, o := range ops {
		ob := o.base()
		if err := ob.ctx.Err(); err != nil {
			ob.err, ob.skipped = err, true // the caller has gone
			continue
		}
		if err := o.exec(b); err != nil {
			return err
		}
	}
	if err := b.flush(); err != nil {
		return err
	}
	if err := b.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// stmt returns s bound to the batch transaction.
func (b *batch) stmt(s *sql.Stmt) *sql.Stmt {
	if b.stmts == nil {
		b.stmts = make(map[*sql.Stmt]*sql.Stmt)
	}
	ts, ok := b.stmts[s]
	if !ok {
		ts = b.tx.Stmt(s)
		b.stmts[s] = ts
	}
	return ts
}

func (b *batch) exec(s *sql.Stmt, args ...any) (sql.Result, error) {
	return b.stmt(s).Exec(args...)
}

// lastSeq returns conv's last sequence, from the cache or the database.
func (b *batch) lastSeq(conv string) (uint64, error) {
	b.loaded[conv] = struct{}{}
	if seq, ok := b.w.seqs[conv]; ok {
		return seq, nil
	}
	var seq uint64
	err := b.stmt(b.w.stmts.lastSeq).QueryRow(conv).Scan(&seq)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read last seq: %w", err)
	}
	b.w.seqs[conv] = seq
	return seq, nil
}

// appended records that m was stored as the next message of its conversation.
func (b *batch) appended(m protocol.Message, parsed protocol.ParsedConv) {
	b.w.seqs[m.Conv] = m.Seq
	b.stored = append(b.stored, m)
	if i, ok := b.convAt[m.Conv]; ok {
		b.convs[i].lastSeq, b.convs[i].lastTime = m.Seq, m.ServerTime
		return
	}
	if b.convAt == nil {
		b.convAt = make(map[string]int)
	}
	b.convAt[m.Conv] = len(b.convs)
	b.convs = append(b.convs, &convUpdate{conv: m.Conv, parsed: parsed, lastSeq: m.Seq, lastTime: m.ServerTime})
}

// flush writes the per-conversation rows of the messages the batch appended:
// the conversation's last seq and time, and for a direct conversation the
// membership rows of its two users.
func (b *batch) flush() error {
	st := &b.w.stmts
	for _, cu := range b.convs {
		if _, err := b.exec(st.upsertConv, cu.conv, cu.lastSeq, cu.lastTime); err != nil {
			return fmt.Errorf("update conversation: %w", err)
		}
		if cu.parsed.Kind != protocol.ConvDirect {
			continue
		}
		for _, u := range [2]int64{cu.parsed.A, cu.parsed.B} {
			if _, err := b.exec(st.addMember, u, cu.conv); err != nil {
				return fmt.Errorf("add member: %w", err)
			}
		}
	}
	return nil
}

// writeStmts are the writer's prepared statements.
type writeStmts struct {
	userByKey, insertUser                     *sql.Stmt
	upsertToken, deleteToken, deleteUserToken *sql.Stmt
	findDup, lastSeq, insertMessage           *sql.Stmt
	upsertConv, addMember                     *sql.Stmt
	upsertAck, updateAck                      *sql.Stmt
	insertHidden, upsertCleared               *sql.Stmt
	updateCleared, deleteHiddenUpTo           *sql.Stmt
}

func (st *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	return prepareAll(ctx, db, []stmtDef{
		{&st.userByKey, `SELECT id FROM users WHERE name_key = ?`},
		{&st.insertUser, `INSERT INTO users (username, name_key, pass_hash, created) VALUES (?, ?, ?, ?)`},
		{&st.upsertToken, `INSERT INTO tokens (hash, user_id, expires) VALUES (?, ?, ?)
			ON CONFLICT (hash) DO UPDATE SET user_id = excluded.user_id, expires = excluded.expires`},
		{&st.deleteToken, `DELETE FROM tokens WHERE hash = ?`},
		{&st.deleteUserToken, `DELETE FROM tokens WHERE user_id = ?`},
		{&st.findDup, `SELECT ` + messageCols + ` FROM messages
			WHERE sender = ? AND client_msg_id = ? AND client_msg_id <> ''`},
		{&st.lastSeq, `SELECT last_seq FROM conversations WHERE conv = ?`},
		{&st.insertMessage, `INSERT INTO messages (` + messageCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&st.upsertConv, `INSERT INTO conversations (conv, last_seq, last_time) VALUES (?, ?, ?)
			ON CONFLICT (conv) DO UPDATE SET last_seq = excluded.last_seq, last_time = excluded.last_time`},
		{&st.addMember, `INSERT INTO user_convs (user_id, conv) VALUES (?, ?) ON CONFLICT DO NOTHING`},
		{&st.upsertAck, `INSERT INTO user_convs (user_id, conv, ack_seq) VALUES (?, ?, ?)
			ON CONFLICT (user_id, conv) DO UPDATE SET ack_seq = max(ack_seq, excluded.ack_seq)`},
		{&st.updateAck, `UPDATE user_convs SET ack_seq = max(ack_seq, ?) WHERE user_id = ? AND conv = ?`},
		{&st.insertHidden, `INSERT INTO hidden (user_id, conv, seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`},
		{&st.upsertCleared, `INSERT INTO user_convs (user_id, conv, cleared_seq) VALUES (?, ?, ?)
			ON CONFLICT (user_id, conv) DO UPDATE SET cleared_seq = max(cleared_seq, excluded.cleared_seq)`},
		{&st.updateCleared, `UPDATE user_convs SET cleared_seq = max(cleared_seq, ?) WHERE user_id = ? AND conv = ?`},
		{&st.deleteHiddenUpTo, `DELETE FROM hidden WHERE user_id = ? AND conv = ? AND seq <= ?`},
	})
}

func (st *writeStmts) close() {
	closeAll(st.userByKey, st.insertUser, st.upsertToken, st.deleteToken, st.deleteUserToken,
		st.findDup, st.lastSeq, st.insertMessage, st.upsertConv, st.addMember,
		st.upsertAck, st.updateAck, st.insertHidden, st.upsertCleared, st.updateCleared, st.deleteHiddenUpTo)
}

type stmtDef struct {
	dst   **sql.Stmt
	query string
}

func prepareAll(ctx context.Context, db *sql.DB, defs []stmtDef) error {
	for _, d := range defs {
		s, err := db.PrepareContext(ctx, d.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", d.query, err)
		}
		*d.dst = s
	}
	return nil
}

func closeAll(stmts ...*sql.Stmt) {
	for _, s := range stmts {
		if s != nil {
			_ = s.Close()
		}
	}
}
