package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/internal/batch"
)

// Group commit of Appends.
//
// Append queues a request and waits. The writer goroutine takes the first
// request, drains whatever else is queued (up to MaxBatch) and stores them
// all in one transaction: it locks the batch's conversation rows in id order
// (so two nodes never lock two conversations in opposite orders), reads
// their last sequences, assigns the next ones, writes the messages with one
// multi-row INSERT per shard table, and commits. Then it passes the new
// messages to the commit hook, in order, and answers the callers.
//
// A failed batch fails every request in it and stores nothing, and the
// writer goes on with the next one: database/sql replaces a broken
// connection, so the store recovers by itself once the server is back. Two
// failures are retried whole, since the transaction was rolled back and
// running it again is safe: a deadlock with another node, and a
// client_msg_id that another node stored at the same time in another
// conversation (the retry finds it and answers dup). A connection lost
// mid-batch is not retried: the commit may or may not have happened, so the
// callers get the error and resend (with a client_msg_id, idempotently).

// batchTimeout bounds one batch transaction.
const batchTimeout = 20 * time.Second

// Limits of one multi-row INSERT: rows well under the 65,535 placeholders of
// a prepared statement, and bodies well inside max_allowed_packet (16 MiB by
// default on MariaDB, 4 MiB on old MySQL) even escaped to twice their size.
const (
	maxInsertRows  = 1000
	maxInsertBytes = 1 << 20
)

type appendReq struct {
	ctx    context.Context
	m      protocol.Message
	parsed protocol.ParsedConv
	done   func(protocol.Message, bool, error) // called once, by finish

	stored protocol.Message
	dup    bool
	err    error
}

// finish answers the request with its result.
func (r *appendReq) finish() {
	if r.err != nil {
		r.done(protocol.Message{}, false, r.err)
		return
	}
	r.done(r.stored, r.dup, nil)
}

// maxKnownConvs bounds the writer's set of conversations known to have a
// row; past it the set is emptied and refills as batches commit.
const maxKnownConvs = 1 << 16

type writer struct {
	s        *Store
	hook     storage.CommitHook
	maxBatch int

	// known holds conversations whose conversations row exists (rows are
	// never deleted), so a batch locks them without creating them first.
	// Owned by the run goroutine.
	known map[string]struct{}

	reqs *batch.Queue[*appendReq]
	done chan struct{}
}

func newWriter(s *Store, hook storage.CommitHook, maxBatch int) *writer {
	return &writer{s: s, hook: hook, maxBatch: maxBatch, known: make(map[string]struct{}),
		reqs: batch.New[*appendReq](maxBatch), done: make(chan struct{})}
}

// Append implements storage.Messages: AppendAsync, then the wait.
func (s *Store) Append(ctx context.Context, m *protocol.Message) (protocol.Message, bool, error) {
	type result struct {
		stored protocol.Message
		dup    bool
		err    error
	}
	ch := make(chan result, 1)
	s.AppendAsync(ctx, m, func(stored protocol.Message, dup bool, err error) {
		ch <- result{stored, dup, err}
	})
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		// The append still commits if the writer has started it.
		return protocol.Message{}, false, ctx.Err()
	}
	if r.err != nil {
		return protocol.Message{}, false, r.err
	}
	if !r.dup {
		m.Seq = r.stored.Seq
	}
	return r.stored, r.dup, nil
}

// AppendAsync implements storage.Messages. The message and its body are
// copied before it returns; the writer calls done after the commit (or the
// failure) of the batch that holds it, before it starts the next batch.
func (s *Store) AppendAsync(ctx context.Context, m *protocol.Message, done func(protocol.Message, bool, error)) {
	if s.closed.Load() {
		done(protocol.Message{}, false, storage.ErrClosed)
		return
	}
	if m == nil {
		done(protocol.Message{}, false, errors.New("mysql: append: nil message"))
		return
	}
	parsed, ok := protocol.ParseConv(m.Conv)
	if !ok {
		done(protocol.Message{}, false, fmt.Errorf("mysql: append: invalid conversation id %q", m.Conv))
		return
	}
	if len(m.ClientMsgID) > maxClientMsgID {
		// Checked here so that it fails this call, not the whole batch.
		done(protocol.Message{}, false, fmt.Errorf("mysql: append: client_msg_id longer than %d bytes", maxClientMsgID))
		return
	}
	r := &appendReq{ctx: ctx, m: *m, parsed: parsed, done: done}
	r.m.Seq = 0
	r.m.Body = append([]byte{}, m.Body...)
	r.m.Mentions = slices.Clone(m.Mentions)
	if err := s.w.enqueue(r); err != nil {
		done(protocol.Message{}, false, err)
	}
}

// enqueue queues r; the writer will finish it. It fails (and r is not
// queued) if the writer is closed or r's context ends before there is room
// in the queue. Requests queued by one goroutine commit in the order queued.
func (w *writer) enqueue(r *appendReq) error {
	if err := w.reqs.Put(r.ctx, r); err != nil {
		if errors.Is(err, batch.ErrClosed) {
			return storage.ErrClosed
		}
		return err
	}
	return nil
}

func (w *writer) close() {
	w.reqs.Close()
	<-w.done
}

// run is the writer goroutine: it takes the first request waiting and the
// others already queued (storage/internal/batch, the queue the Pebble writer
// uses too) and stores them in one transaction.
func (w *writer) run() {
	defer close(w.done)
	b := make([]*appendReq, 0, w.maxBatch)
	for first := range w.reqs.Recv() {
		b = w.reqs.Fill(b[:0], first, w.maxBatch)
		w.commit(b)
		clear(b)
	}
}

func (w *writer) commit(batch []*appendReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err // the caller has gone; nothing is stored for it
			r.finish()
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	var stored []protocol.Message
	var err error
	for attempt := 0; ; attempt++ {
		stored, err = w.store(live)
		if err != nil && attempt < 3 && (isDeadlock(err) || isDuplicate(err)) {
			w.s.log.Debug("mysql: append batch retried", "appends", len(live), "err", err)
			continue
		}
		break
	}
	if err != nil {
		err = w.s.fail("append batch", err)
		w.s.log.Error("mysql: append batch failed", "appends", len(live), "err", err)
		for _, r := range live {
			r.err, r.dup = err, false
			r.finish()
		}
		return
	}
	if w.s.log.Enabled(context.Background(), slog.LevelDebug) {
		w.s.log.Debug("mysql: append batch committed", "appends", len(live), "messages", len(stored))
	}
	if w.hook != nil && len(stored) > 0 {
		w.hook(stored)
	}
	if len(stored) > 0 {
		w.s.idx.Note(stored)
	}
	for _, r := range live {
		r.finish()
	}
}

type dupKey struct {
	sender int64
	cmid   string
}

// store writes one batch in a transaction and returns the new messages in
// order; it sets each request's stored and dup.
func (w *writer) store(reqs []*appendReq) ([]protocol.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	tx, err := w.s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()

	last, timers, err := w.lockConvs(ctx, tx, reqs)
	if err != nil {
		return nil, err
	}
	// A direct conversation gets its membership rows with its first
	// message; they are never deleted.
	fresh := map[string]bool{}
	for c, seq := range last {
		fresh[c] = seq == 0
	}
	prev, err := w.findDups(ctx, tx, reqs)
	if err != nil {
		return nil, err
	}
	var (
		stored  []protocol.Message
		inBatch = map[dupKey]int{} // → index in stored
		times   = map[string]int64{}
		events  = newBatchEvents(w, ctx, tx)
		// setTimers are the timers the batch's ContentTimer messages set.
		setTimers = map[string]uint32{}
	)
	for _, r := range reqs {
		r.dup, r.err = false, nil
		k := dupKey{r.m.From, r.m.ClientMsgID}
		if r.m.ClientMsgID != "" {
			if p, ok := prev[k]; ok {
				r.stored, r.dup = p, true
				continue
			}
			if i, ok := inBatch[k]; ok {
				r.stored, r.dup = stored[i], true
				continue
			}
		}
		m := r.m
		m.Seq = last[m.Conv] + 1
		if secs, ok := storage.TimerSecs(&m); ok {
			timers[m.Conv] = secs
			setTimers[m.Conv] = secs
		}
		storage.Stamp(&m, timers[m.Conv])
		if protocol.IsEvent(m.ContentType) {
			domain, err := events.event(&m)
			if err != nil {
				return nil, err
			}
			if domain != nil {
				r.err = domain // refused: nothing stored, no seq used
				continue
			}
		}
		if r.m.ClientMsgID != "" {
			inBatch[k] = len(stored)
		}
		last[m.Conv] = m.Seq
		times[m.Conv] = m.ServerTime
		events.stored(&m)
		r.stored = m
		stored = append(stored, m)
	}
	shards := make([][]*protocol.Message, w.s.shards)
	for i := range stored {
		n := shardOf(stored[i].Conv, w.s.shards)
		shards[n] = append(shards[n], &stored[i])
	}
	for n, msgs := range shards {
		if err := insertMessages(ctx, tx, shardTable(n), msgs); err != nil {
			return nil, err
		}
	}
	if err := events.write(); err != nil {
		return nil, err
	}
	if err := insertIDs(ctx, tx, stored); err != nil {
		return nil, err
	}
	if err := writeExpiry(ctx, tx, stored, setTimers); err != nil {
		return nil, err
	}
	if err := updateConvs(ctx, tx, reqs, last, times, fresh); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	if len(w.known)+len(last) > maxKnownConvs {
		clear(w.known)
	}
	for c := range last {
		w.known[c] = struct{}{}
	}
	return stored, nil
}

// placeholders returns n groups of the tuple, comma separated.
func placeholders(n int, tuple string) string {
	return strings.TrimSuffix(strings.Repeat(tuple+",", n), ",")
}

// lockConvs locks the conversations rows of the batch in id order, creating
// those not known to exist, and returns their last sequences. In the steady
// state that is one locking read.
func (w *writer) lockConvs(ctx context.Context, tx *sql.Tx, reqs []*appendReq) (last map[string]uint64, timers map[string]uint32, err error) {
	var convs, unknown []string
	for _, r := range reqs {
		convs = append(convs, r.m.Conv)
	}
	slices.Sort(convs)
	convs = slices.Compact(convs)
	for _, c := range convs {
		if _, ok := w.known[c]; !ok {
			unknown = append(unknown, c)
		}
	}
	if err := createConvs(ctx, tx, unknown); err != nil {
		return nil, nil, err
	}
	last, timers, err = selectConvs(ctx, tx, convs)
	if err != nil {
		return nil, nil, err
	}
	if len(last) == len(convs) {
		return last, timers, nil
	}
	// A row known to exist is gone (the tables were emptied under us).
	var missing []string
	for _, c := range convs {
		if _, ok := last[c]; !ok {
			missing = append(missing, c)
			delete(w.known, c)
		}
	}
	if err := createConvs(ctx, tx, missing); err != nil {
		return nil, nil, err
	}
	more, moreTimers, err := selectConvs(ctx, tx, missing)
	if err != nil {
		return nil, nil, err
	}
	maps.Copy(last, more)
	maps.Copy(timers, moreTimers)
	if len(last) != len(convs) {
		return nil, nil, fmt.Errorf("lock conversations: %d rows for %d conversations", len(last), len(convs))
	}
	return last, timers, nil
}

// createConvs creates the conversations rows of convs (sorted) that do not
// exist, and locks them.
func createConvs(ctx context.Context, tx *sql.Tx, convs []string) error {
	if len(convs) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO conversations (conv, last_seq, last_time) VALUES `+
		placeholders(len(convs), "(?, 0, 0)")+` ON DUPLICATE KEY UPDATE conv = conv`, anys(convs)...); err != nil {
		return fmt.Errorf("create conversations: %w", err)
	}
	return nil
}

// selectConvs locks the conversations rows of convs (sorted) and returns
// their last sequences and timers.
func selectConvs(ctx context.Context, tx *sql.Tx, convs []string) (map[string]uint64, map[string]uint32, error) {
	rows, err := tx.QueryContext(ctx, `SELECT conv, last_seq, timer FROM conversations WHERE conv IN (`+
		placeholders(len(convs), "?")+`) ORDER BY conv FOR UPDATE`, anys(convs)...)
	if err != nil {
		return nil, nil, fmt.Errorf("lock conversations: %w", err)
	}
	defer rows.Close()
	last := make(map[string]uint64, len(convs))
	timers := make(map[string]uint32, len(convs))
	for rows.Next() {
		var (
			c     string
			seq   uint64
			timer uint32
		)
		if err := rows.Scan(&c, &seq, &timer); err != nil {
			return nil, nil, err
		}
		last[c], timers[c] = seq, timer
	}
	return last, timers, rows.Err()
}

func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

// findDups returns the stored messages that requests of the batch repeat.
func (w *writer) findDups(ctx context.Context, tx *sql.Tx, reqs []*appendReq) (map[dupKey]protocol.Message, error) {
	var args []any
	for _, r := range reqs {
		if r.m.ClientMsgID != "" {
			args = append(args, r.m.From, r.m.ClientMsgID)
		}
	}
	if len(args) == 0 {
		return nil, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT sender, client_msg_id, conv, seq FROM message_ids WHERE (sender, client_msg_id) IN (`+
		placeholders(len(args)/2, "(?, ?)")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("find duplicates: %w", err)
	}
	type hit struct {
		k    dupKey
		conv string
		seq  uint64
	}
	var hits []hit
	for rows.Next() {
		var h hit
		if err := rows.Scan(&h.k.sender, &h.k.cmid, &h.conv, &h.seq); err != nil {
			rows.Close()
			return nil, err
		}
		hits = append(hits, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make(map[dupKey]protocol.Message, len(hits))
	for _, h := range hits {
		m, err := scanMessage(tx.QueryRowContext(ctx, `SELECT `+messageCols+` FROM `+w.s.table(h.conv)+` WHERE conv = ? AND seq = ?`, h.conv, h.seq))
		if err != nil {
			return nil, fmt.Errorf("read duplicate: %w", err)
		}
		out[h.k] = m
	}
	return out, nil
}

// insertMessages writes msgs to one shard table, in statements within the
// INSERT limits.
func insertMessages(ctx context.Context, tx *sql.Tx, table string, msgs []*protocol.Message) error {
	for len(msgs) > 0 {
		n, size := 0, 0
		for n < len(msgs) && n < maxInsertRows && (n == 0 || size+len(msgs[n].Body) <= maxInsertBytes) {
			size += len(msgs[n].Body)
			n++
		}
		args := make([]any, 0, n*11)
		for _, m := range msgs[:n] {
			args = append(args, m.Conv, m.Seq, m.MsgID, m.From, m.To, m.GroupID, m.ClientMsgID, m.ContentType, m.Body, m.ServerTime, m.ExpiresAt)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (`+messageCols+`) VALUES `+
			placeholders(n, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"), args...); err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
		msgs = msgs[n:]
	}
	return nil
}

// insertIDs records the client message ids of msgs for dedupe.
func insertIDs(ctx context.Context, tx *sql.Tx, msgs []protocol.Message) error {
	var args []any
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO message_ids (sender, client_msg_id, conv, seq) VALUES `+
			placeholders(len(args)/4, "(?, ?, ?, ?)"), args...)
		args = args[:0]
		if err != nil {
			return fmt.Errorf("insert message ids: %w", err)
		}
		return nil
	}
	for _, m := range msgs {
		if m.ClientMsgID == "" {
			continue
		}
		args = append(args, m.From, m.ClientMsgID, m.Conv, m.Seq)
		if len(args) == 4*maxInsertRows {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// updateConvs writes the conversations' new last seq and time, and the
// membership rows of the users of direct conversations that were fresh
// (without messages) before the batch.
func updateConvs(ctx context.Context, tx *sql.Tx, reqs []*appendReq, last map[string]uint64, times map[string]int64, fresh map[string]bool) error {
	var convArgs, memberArgs []any
	seen := map[string]bool{}
	for _, r := range reqs {
		c := r.m.Conv
		t, ok := times[c]
		if !ok || seen[c] {
			continue
		}
		seen[c] = true
		convArgs = append(convArgs, c, last[c], t)
		if r.parsed.Kind == protocol.ConvDirect && fresh[c] {
			memberArgs = append(memberArgs, r.parsed.A, c, r.parsed.B, c)
		}
	}
	if len(convArgs) == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO conversations (conv, last_seq, last_time) VALUES `+
		placeholders(len(convArgs)/3, "(?, ?, ?)")+
		` ON DUPLICATE KEY UPDATE last_seq = VALUES(last_seq), last_time = VALUES(last_time)`, convArgs...); err != nil {
		return fmt.Errorf("update conversations: %w", err)
	}
	if len(memberArgs) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT IGNORE INTO user_convs (user_id, conv) VALUES `+
			placeholders(len(memberArgs)/2, "(?, ?)"), memberArgs...); err != nil {
			return fmt.Errorf("add members: %w", err)
		}
	}
	return nil
}
