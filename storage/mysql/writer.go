package mysql

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/internal/batch"
)

// Group commit of Appends, in lanes.
//
// Append queues a request and waits. Each conversation belongs to one lane
// (FNV-1a of its id modulo the lane count), so two lanes never share a
// conversations row. A lane's goroutine takes the first request waiting in
// its queue, drains whatever else is queued (up to MaxBatch) and stores them
// all in one transaction: it locks the batch's conversation rows in id order
// (so two nodes never lock two conversations in opposite orders), reads
// their last sequences, assigns the next ones, writes the messages with one
// multi-row INSERT per shard table, and commits. BEGIN, the lock and the
// dedupe read go to the server as one multi-statement query; the batch's
// writes (the INSERTs, the dedupe ids, the conversations rows) follow all
// its reads and go with the COMMIT as another (script): two round trips,
// whatever the number of shard tables it touches. A batch of plain
// messages takes one: the server assigns the seqs from what it reads under
// the lock (onetrip.go). Then it
// passes the new messages to the commit hook, in order (the hook's calls
// never overlap), and hands the requests to the answerer. With more than
// one lane (Config.Lanes; default 1) the lanes' transactions overlap. The
// answerer calls the requests' done in the order the
// requests were queued (a ticket each), so one goroutine's Appends are
// answered in call order across lanes; within a conversation, sequences
// ascend in call order (one lane, one batch at a time, retries included).
//
// A failed batch fails every request in it and stores nothing, and the
// lane goes on with the next one: database/sql replaces a broken
// connection, so the store recovers by itself once the server is back. Two
// failures are retried whole, since the transaction was rolled back and
// running it again is safe: a deadlock with another node, and a
// client_msg_id that another node (or lane) stored at the same time in
// another conversation (the retry finds it and answers dup). A connection
// lost mid-batch is not retried: the commit may or may not have happened,
// so the callers get the error and resend (with a client_msg_id,
// idempotently).

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
	ticket uint64                              // the order queued (writer.answer)
	done   func(protocol.Message, bool, error) // called once, by finish
	queued time.Time                           // when Append was called (storage.StageQueue)

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

// maxKnownConvs bounds a lane's set of conversations known to have a row;
// past it the set is emptied and refills as batches commit.
const maxKnownConvs = 1 << 16

type writer struct {
	s        *Store
	hook     storage.CommitHook
	stages   storage.StageObserver // may be nil
	maxBatch int
	interval time.Duration // the least time between a lane's batches (Config.BatchInterval)
	lanes    []*lane

	// tickets numbers the requests in the order queued.
	tickets atomic.Uint64
	// The batches stored, by how (onetrip.go): in one round trip; the
	// general way after that failed; the general way at once.
	oneTrips, fellBack, general atomic.Uint64
	// hookMu keeps the lanes' calls of the hook (and of the indexer's
	// Note) from overlapping.
	hookMu sync.Mutex
	// ansMu guards next and ready, and is held while done callbacks run
	// (they never block), so answers leave in ticket order.
	ansMu sync.Mutex
	next  uint64
	ready map[uint64]*appendReq
}

// lane stores the batches of its conversations, one at a time.
type lane struct {
	w    *writer
	reqs *batch.Queue[*appendReq]
	// known holds conversations whose conversations row exists (rows are
	// never deleted), so a batch of them only locks them, each with its
	// timer and whether it had messages as this lane last committed it (a
	// batch of one round trip assumes both, onetrip.go). Owned by the
	// lane's goroutine.
	known map[string]convState
	done  chan struct{}
}

func newWriter(s *Store, hook storage.CommitHook, stages storage.StageObserver, maxBatch, lanes int, interval time.Duration) *writer {
	w := &writer{s: s, hook: hook, stages: stages, maxBatch: maxBatch, interval: interval, ready: make(map[uint64]*appendReq)}
	for range lanes {
		w.lanes = append(w.lanes, &lane{w: w, reqs: batch.New[*appendReq](maxBatch),
			known: make(map[string]convState), done: make(chan struct{})})
	}
	return w
}

// queued is how many requests wait in the lanes' queues.
func (w *writer) queued() int {
	n := 0
	for _, l := range w.lanes {
		n += l.reqs.Len()
	}
	return n
}

// answer records the results of reqs and calls done for every request
// whose earlier tickets have all been answered, in ticket order.
func (w *writer) answer(reqs []*appendReq) {
	w.ansMu.Lock()
	defer w.ansMu.Unlock()
	for _, r := range reqs {
		w.ready[r.ticket] = r
	}
	for {
		r, ok := w.ready[w.next]
		if !ok {
			return
		}
		delete(w.ready, w.next)
		w.next++
		r.finish()
	}
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
// failure) of the batch that holds it, in the order queued.
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
	r := &appendReq{ctx: ctx, m: *m, parsed: parsed, done: done, queued: time.Now()}
	r.m.Seq = 0
	r.m.Body = append([]byte{}, m.Body...)
	r.m.Mentions = slices.Clone(m.Mentions)
	s.w.enqueue(r)
}

// enqueue queues r in its conversation's lane; the writer will answer it.
// If the writer is closed or r's context ends before there is room in the
// queue, r is not queued and is answered with that error. Requests queued
// by one goroutine are answered in the order queued, and within a
// conversation commit in that order.
func (w *writer) enqueue(r *appendReq) {
	if err := r.ctx.Err(); err != nil {
		// Answered at once, on the caller's goroutine, without a ticket.
		r.err = err
		r.finish()
		return
	}
	r.ticket = w.tickets.Add(1) - 1
	err := w.lanes[shardOf(r.m.Conv, len(w.lanes))].reqs.Put(r.ctx, r)
	if err == nil {
		return
	}
	if errors.Is(err, batch.ErrClosed) {
		err = storage.ErrClosed
	}
	// The ticket is answered in its turn, like any other.
	r.err = err
	w.answer([]*appendReq{r})
}

// start runs the lanes.
func (w *writer) start() {
	for _, l := range w.lanes {
		go l.run()
	}
}

// close stops taking requests and returns once every queued one is
// answered.
func (w *writer) close() {
	for _, l := range w.lanes {
		l.reqs.Close()
	}
	for _, l := range w.lanes {
		<-l.done
	}
}

// run is a lane's goroutine: it takes the first request waiting and the
// others already queued (storage/internal/batch, the queue the Pebble
// writer uses too) and stores them in one transaction. When its last
// batch started less than the writer's interval ago, it first gathers
// what comes for the rest of the interval, unless the batch fills.
func (l *lane) run() {
	defer close(l.done)
	b := make([]*appendReq, 0, l.w.maxBatch)
	var started time.Time
	for first := range l.reqs.Recv() {
		b = l.reqs.Gather(b[:0], first, l.w.maxBatch, l.w.interval-time.Since(started))
		started = time.Now()
		l.commit(b)
		clear(b)
	}
}

func (l *lane) commit(batch []*appendReq) {
	w := l.w
	defer w.answer(batch)
	start := time.Now()
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err // the caller has gone; nothing is stored for it
			continue
		}
		if w.stages != nil {
			w.stages(storage.StageQueue, start.Sub(r.queued), 1)
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	var stored []protocol.Message
	var err error
	for attempt := 0; ; attempt++ {
		stored, err = l.store(live)
		if err != nil && attempt < 3 && (isDeadlock(err) || isDuplicate(err)) {
			w.s.log.Debug("mysql: append batch retried", "appends", len(live), "err", err)
			if isDeadlock(err) {
				// Not again in step with the transaction it collided with.
				retryWait(context.Background(), attempt)
			}
			continue
		}
		break
	}
	if w.stages != nil && err == nil {
		w.stages(storage.StageWrite, time.Since(start), len(live))
	}
	if err != nil {
		err = w.s.fail("append batch", err)
		w.s.log.Error("mysql: append batch failed", "appends", len(live), "err", err)
		for _, r := range live {
			r.err, r.dup = err, false
		}
		return
	}
	if w.s.log.Enabled(context.Background(), slog.LevelDebug) {
		w.s.log.Debug("mysql: append batch committed", "appends", len(live), "messages", len(stored))
	}
	if len(stored) > 0 {
		w.hookMu.Lock()
		if w.hook != nil {
			w.hook(stored)
		}
		w.s.idx.Note(stored)
		w.hookMu.Unlock()
	}
}

type dupKey struct {
	sender int64
	cmid   string
}

// store writes one batch in a transaction and returns the new messages in
// order; it sets each request's stored and dup.
func (l *lane) store(reqs []*appendReq) ([]protocol.Message, error) {
	w := l.w
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	// The transaction is run by hand on one connection, so that BEGIN
	// travels with the first reads and COMMIT with the writes.
	conn, err := w.s.wdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			rollback(conn)
		}
		_ = conn.Close()
	}()
	if oneTrip(reqs) {
		stored, err := l.storeOneTrip(ctx, conn, reqs)
		if err == nil || !isDuplicate(err) {
			if committed = err == nil; committed {
				w.oneTrips.Add(1)
			}
			return stored, err
		}
		// A client_msg_id stored before, or a conversation not as the
		// lane assumed: the general way below reads them first.
		if err := rollbackTx(ctx, conn); err != nil {
			return nil, err
		}
		w.fellBack.Add(1)
	} else {
		w.general.Add(1)
	}
	// The batch's writes follow all its reads; they go in one round trip
	// with the COMMIT (or a few for large bodies).
	x := &script{q: conn}

	last, timers, prev, err := l.begin(ctx, conn, reqs)
	if err != nil {
		return nil, err
	}
	// A direct conversation gets its membership rows with its first
	// message; they are never deleted.
	fresh := map[string]bool{}
	for c, seq := range last {
		fresh[c] = seq == 0
	}
	var (
		stored  []protocol.Message
		inBatch = map[dupKey]int{} // → index in stored
		times   = map[string]int64{}
		events  = newBatchEvents(w, ctx, conn, x)
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
	if err := writeBatch(ctx, x, w.s.shards, stored, events, setTimers, nil); err != nil {
		return nil, err
	}
	if err := updateConvs(ctx, x, reqs, last, times, fresh, nil); err != nil {
		return nil, err
	}
	if _, err := x.ExecContext(ctx, `COMMIT`); err != nil {
		return nil, fmt.Errorf("append writes: %w", err)
	}
	if err := x.flush(ctx); err != nil {
		// Not committed, or (the connection lost during the COMMIT) not
		// known: either way the callers get the error.
		return nil, fmt.Errorf("append writes: %w", err)
	}
	committed = true
	if len(l.known)+len(last) > maxKnownConvs {
		clear(l.known)
	}
	for c := range last {
		l.known[c] = convState{timer: timers[c], used: last[c] > 0}
	}
	return stored, nil
}

// writeBatch adds the writes of a batch's stored messages to x: the
// messages, one multi-row INSERT per shard table, their Metas, their
// client_msg_ids and expiries, and the timers the batch set. seq writes
// their seqs (nil: as values).
func writeBatch(ctx context.Context, x execer, nshards int, stored []protocol.Message, events *batchEvents, setTimers map[string]uint32, seq seqSQL) error {
	shards := make([][]*protocol.Message, nshards)
	for i := range stored {
		n := shardOf(stored[i].Conv, nshards)
		shards[n] = append(shards[n], &stored[i])
	}
	for n, msgs := range shards {
		if err := insertMessages(ctx, x, shardTable(n), msgs, seq); err != nil {
			return err
		}
	}
	if err := events.write(seq); err != nil {
		return err
	}
	if err := insertIDs(ctx, x, stored, seq); err != nil {
		return err
	}
	return writeExpiry(ctx, x, stored, setTimers, seq)
}

// rollback ends a transaction left open on conn (a failed batch; after a
// COMMIT it does nothing); a connection that cannot say so is discarded
// rather than handed back to the pool in a transaction.
func rollback(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		_ = conn.Raw(func(any) error { return sqldriver.ErrBadConn })
	}
}

// execer is where a batch's writes go: a script, or a connection.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// maxScriptBytes bounds a script's statements with their arguments
// interpolated (strings and bytes escaped to at most twice their size), well
// inside max_allowed_packet.
const maxScriptBytes = 4 << 20

// script collects write statements and sends them to the server together,
// as one multi-statement query (the writer's pool has multiStatements on):
// one round trip instead of one per statement. The server runs them in
// order and stops at the first that fails, whose error the next flush
// returns; the caller then rolls the transaction back. A statement's result
// is not known when ExecContext returns, so statements whose result matters
// do not go through a script. A send that failed fails the script: every
// later call returns its error and sends nothing, so that no statement
// (a COMMIT above all) runs after one that did not.
type script struct {
	q    execer
	b    strings.Builder
	args []any
	size int
	err  error // the first send's failure
}

// ExecContext adds a statement; it sends those before it first when the
// script would pass maxScriptBytes. The result it returns is always nil.
func (s *script) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s.err != nil {
		return nil, s.err
	}
	n := len(query) + 1
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			n += 2*len(v) + 3
		case string:
			n += 2*len(v) + 3
		default:
			n += 24
		}
	}
	if s.size > 0 && s.size+n > maxScriptBytes {
		if err := s.flush(ctx); err != nil {
			return nil, err
		}
	}
	if s.size > 0 {
		s.b.WriteByte(';')
	}
	s.b.WriteString(query)
	s.args = append(s.args, args...)
	s.size += n
	return nil, nil
}

// flush sends the statements added since the last flush.
func (s *script) flush(ctx context.Context) error {
	if s.err != nil || s.size == 0 {
		return s.err
	}
	_, s.err = s.q.ExecContext(ctx, s.b.String(), s.args...)
	s.reset()
	return s.err
}

// reset empties the script of the statements sent.
func (s *script) reset() {
	s.b.Reset()
	clear(s.args)
	s.args, s.size = s.args[:0], 0
}

// seqSQL writes a message's seq in a statement. nil writes it as a value
// (a placeholder, the seq among the arguments). A batch of one round trip
// (onetrip.go) does not know its seqs when it writes them: there m.Seq
// holds the message's place in its conversation's part of the batch (1,
// 2, ...), and seqSQL returns an expression that adds it to the user
// variable holding the conversation's last seq.
type seqSQL func(conv string, n uint64) string

// seqOf is a row's seq among the values of values.row.
type seqOf struct {
	conv string
	n    uint64
}

// values builds the rows of a multi-row INSERT: one placeholder a value,
// but a seqOf written by seq.
type values struct {
	seq  seqSQL
	b    strings.Builder
	args []any
	n    int // rows
}

// row adds a row of vals.
func (v *values) row(vals ...any) {
	if v.n > 0 {
		v.b.WriteByte(',')
	}
	v.n++
	v.b.WriteByte('(')
	for i, x := range vals {
		if i > 0 {
			v.b.WriteString(", ")
		}
		if s, ok := x.(seqOf); ok {
			if v.seq != nil {
				v.b.WriteString(v.seq(s.conv, s.n))
				continue
			}
			x = s.n
		}
		v.b.WriteByte('?')
		v.args = append(v.args, x)
	}
	v.b.WriteByte(')')
}

// sql returns the rows, comma separated.
func (v *values) sql() string { return v.b.String() }

// placeholders returns n groups of the tuple, comma separated.
func placeholders(n int, tuple string) string {
	return strings.TrimSuffix(strings.Repeat(tuple+",", n), ",")
}

// begin starts the batch's transaction on conn and, in the same round trip
// (one multi-statement query), creates the conversations rows not known to
// exist, locks the batch's rows in id order and reads their last sequences
// and timers, then reads which requests repeat a stored client_msg_id. It
// returns the rows' sequences and timers and the repeated messages. When a
// row is to be created, the upsert takes all the batch's rows, so that
// they are locked in id order, not the new ones first.
func (l *lane) begin(ctx context.Context, conn querier, reqs []*appendReq) (last map[string]uint64, timers map[string]uint32, prev map[dupKey]protocol.Message, err error) {
	var convs, create []string
	for _, r := range reqs {
		convs = append(convs, r.m.Conv)
	}
	slices.Sort(convs)
	convs = slices.Compact(convs)
	for _, c := range convs {
		if _, ok := l.known[c]; !ok {
			create = convs
			break
		}
	}
	var dupArgs []any
	for _, r := range reqs {
		if r.m.ClientMsgID != "" {
			dupArgs = append(dupArgs, r.m.From, r.m.ClientMsgID)
		}
	}
	var q strings.Builder
	var args []any
	q.WriteString(`START TRANSACTION`)
	if len(create) > 0 {
		q.WriteString(`;` + createConvsQuery(len(create)))
		args = append(args, anys(create)...)
	}
	q.WriteString(`;` + selectConvsQuery(len(convs)))
	args = append(args, anys(convs)...)
	if len(dupArgs) > 0 {
		q.WriteString(`;` + findDupsQuery(len(dupArgs)/2))
		args = append(args, dupArgs...)
	}
	rows, err := conn.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lock conversations: %w", err)
	}
	last, timers, err = scanConvs(rows, len(convs))
	var hits []dupHit
	if err == nil && len(dupArgs) > 0 {
		if !rows.NextResultSet() {
			err = rows.Err()
			if err == nil {
				err = errors.New("no result")
			}
			err = fmt.Errorf("find duplicates: %w", err)
		} else {
			hits, err = scanDupHits(rows)
		}
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if len(last) != len(convs) {
		// A row known to exist is gone (the tables were emptied under us).
		var missing []string
		for _, c := range convs {
			if _, ok := last[c]; !ok {
				missing = append(missing, c)
				delete(l.known, c)
			}
		}
		if err := createConvs(ctx, conn, missing); err != nil {
			return nil, nil, nil, err
		}
		more, moreTimers, err := selectConvs(ctx, conn, missing)
		if err != nil {
			return nil, nil, nil, err
		}
		maps.Copy(last, more)
		maps.Copy(timers, moreTimers)
		if len(last) != len(convs) {
			return nil, nil, nil, fmt.Errorf("lock conversations: %d rows for %d conversations", len(last), len(convs))
		}
	}
	prev, err = l.w.readDups(ctx, conn, hits)
	return last, timers, prev, err
}

func createConvsQuery(n int) string {
	return `INSERT INTO conversations (conv, last_seq, last_time) VALUES ` +
		placeholders(n, "(?, 0, 0)") + ` ON DUPLICATE KEY UPDATE conv = conv`
}

// createConvs creates the conversations rows of convs (sorted) that do not
// exist, and locks them.
func createConvs(ctx context.Context, q querier, convs []string) error {
	if len(convs) == 0 {
		return nil
	}
	if _, err := q.ExecContext(ctx, createConvsQuery(len(convs)), anys(convs)...); err != nil {
		return fmt.Errorf("create conversations: %w", err)
	}
	return nil
}

func selectConvsQuery(n int) string {
	return `SELECT conv, last_seq, timer FROM conversations WHERE conv IN (` +
		placeholders(n, "?") + `) ORDER BY conv FOR UPDATE`
}

// selectConvs locks the conversations rows of convs (sorted) and returns
// their last sequences and timers.
func selectConvs(ctx context.Context, q querier, convs []string) (map[string]uint64, map[string]uint32, error) {
	rows, err := q.QueryContext(ctx, selectConvsQuery(len(convs)), anys(convs)...)
	if err != nil {
		return nil, nil, fmt.Errorf("lock conversations: %w", err)
	}
	defer rows.Close()
	last, timers, err := scanConvs(rows, len(convs))
	if err != nil {
		return nil, nil, err
	}
	return last, timers, rows.Err()
}

// scanConvs reads the rows of selectConvsQuery in the current result set.
func scanConvs(rows *sql.Rows, n int) (map[string]uint64, map[string]uint32, error) {
	last := make(map[string]uint64, n)
	timers := make(map[string]uint32, n)
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
	return last, timers, nil
}

func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func findDupsQuery(n int) string {
	return `SELECT sender, client_msg_id, conv, seq FROM message_ids WHERE (sender, client_msg_id) IN (` +
		placeholders(n, "(?, ?)") + `)`
}

// dupHit is a stored client_msg_id that a request repeats.
type dupHit struct {
	k    dupKey
	conv string
	seq  uint64
}

// scanDupHits reads the rows of findDupsQuery in the current result set.
func scanDupHits(rows *sql.Rows) ([]dupHit, error) {
	var hits []dupHit
	for rows.Next() {
		var h dupHit
		if err := rows.Scan(&h.k.sender, &h.k.cmid, &h.conv, &h.seq); err != nil {
			return nil, err
		}
		hits = append(hits, h)
	}
	return hits, nil
}

// readDups returns the stored messages of hits.
func (w *writer) readDups(ctx context.Context, q querier, hits []dupHit) (map[dupKey]protocol.Message, error) {
	if len(hits) == 0 {
		return nil, nil
	}
	out := make(map[dupKey]protocol.Message, len(hits))
	for _, h := range hits {
		m, err := scanMessage(q.QueryRowContext(ctx, `SELECT `+messageCols+` FROM `+w.s.table(h.conv)+` WHERE conv = ? AND seq = ?`, h.conv, h.seq))
		if err != nil {
			return nil, fmt.Errorf("read duplicate: %w", err)
		}
		out[h.k] = m
	}
	return out, nil
}

// insertMessages writes msgs to one shard table, in statements within the
// INSERT limits; seq writes their seqs (nil: as values).
func insertMessages(ctx context.Context, tx execer, table string, msgs []*protocol.Message, seq seqSQL) error {
	for len(msgs) > 0 {
		n, size := 0, 0
		for n < len(msgs) && n < maxInsertRows && (n == 0 || size+len(msgs[n].Body) <= maxInsertBytes) {
			size += len(msgs[n].Body)
			n++
		}
		v := values{seq: seq, args: make([]any, 0, n*11)}
		for _, m := range msgs[:n] {
			v.row(m.Conv, seqOf{m.Conv, m.Seq}, m.MsgID, m.From, m.To, m.GroupID, m.ClientMsgID, m.ContentType, m.Body, m.ServerTime, m.ExpiresAt)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (`+messageCols+`) VALUES `+v.sql(), v.args...); err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
		msgs = msgs[n:]
	}
	return nil
}

// insertIDs records the client message ids of msgs for dedupe; seq writes
// their seqs (nil: as values).
func insertIDs(ctx context.Context, tx execer, msgs []protocol.Message, seq seqSQL) error {
	v := values{seq: seq}
	flush := func() error {
		if v.n == 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO message_ids (sender, client_msg_id, conv, seq) VALUES `+v.sql(), v.args...)
		v = values{seq: seq}
		if err != nil {
			return fmt.Errorf("insert message ids: %w", err)
		}
		return nil
	}
	for _, m := range msgs {
		if m.ClientMsgID == "" {
			continue
		}
		v.row(m.From, m.ClientMsgID, m.Conv, seqOf{m.Conv, m.Seq})
		if v.n == maxInsertRows {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// updateConvs writes the conversations' new last seq and time, and the
// membership rows of the users of direct conversations that were fresh
// (without messages) before the batch; seq writes the seqs (nil: as
// values).
func updateConvs(ctx context.Context, tx execer, reqs []*appendReq, last map[string]uint64, times map[string]int64, fresh map[string]bool, seq seqSQL) error {
	convs := values{seq: seq}
	var memberArgs []any
	seen := map[string]bool{}
	for _, r := range reqs {
		c := r.m.Conv
		t, ok := times[c]
		if !ok || seen[c] {
			continue
		}
		seen[c] = true
		convs.row(c, seqOf{c, last[c]}, t)
		if r.parsed.Kind == protocol.ConvDirect && fresh[c] {
			memberArgs = append(memberArgs, r.parsed.A, c, r.parsed.B, c)
		}
	}
	if convs.n == 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO conversations (conv, last_seq, last_time) VALUES `+convs.sql()+
		` ON DUPLICATE KEY UPDATE last_seq = VALUES(last_seq), last_time = VALUES(last_time)`, convs.args...); err != nil {
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
