package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// A batch in one round trip.
//
// The general way (lane.store) reads before it writes: one round trip to
// lock the batch's conversations rows and read their last seqs (and any
// repeated client_msg_id), then one with the writes and the COMMIT. The
// rows stay locked across both, and every node's batches on a shared
// MariaDB wait a round trip more than the writes need.
//
// Most batches hold only plain messages: no event (whose write depends on
// its target's Meta) and no timer change. For those nothing the lane must
// decide depends on what it would read, so the whole transaction goes to
// the server as one multi-statement query:
//
//	START TRANSACTION;
//	INSERT INTO conversations … ON DUPLICATE KEY UPDATE conv = conv  -- create, lock (sorted)
//	SELECT last_seq, timer INTO @parley_s0, @parley_t0 FROM conversations WHERE conv = ? FOR UPDATE;  -- each
//	INSERT INTO conversations SELECT ?, 0, 0 FROM DUAL WHERE <not as assumed>;  -- the guard
//	INSERT INTO messages_NN … (?, @parley_s0+1, …), (?, @parley_s0+2, …);
//	… the Metas, client_msg_ids, expiries, conversations and membership rows
//	COMMIT;
//	SELECT @parley_s0, …;
//
// The server assigns the seqs: each conversation's last seq, read under
// its row lock into a user variable, plus the message's place in the batch.
// The last SELECT returns the variables, from which the lane knows the
// seqs it answers with.
//
// What the lane cannot read first it assumes and the script checks:
//   - a conversation's timer (it sets the messages' expires_at): the lane
//     keeps each one's timer as of its last commit of it (lane.known), 0
//     for one it does not know;
//   - whether the conversation had messages (a direct conversation's first
//     message adds its members' user_convs rows): the membership rows are
//     inserted on the condition that the variable read is 0, so only this
//     needs no assumption; but a conversation the lane saw with messages
//     and now finds empty (its tables emptied) fails the guard, so the
//     general way handles it.
//
// The guard inserts an existing conversations row again (a duplicate key)
// when a row is not as assumed; a client_msg_id stored before fails its
// message_ids insert the same way. Either error stops the script before
// COMMIT: the lane rolls back and stores the batch the general way, which
// reads them. Any other error is the batch's, as for the general way.
//
// User variables live on the connection, which the lane holds for the
// whole batch; every script sets each of its variables before use.

// convState is what a lane knows of a conversation from its last commit
// of it.
type convState struct {
	timer uint32 // its timer (seconds; 0: none)
	used  bool   // it had messages
}

// oneTrip reports whether a batch can be stored in one round trip: no
// event and no timer change.
func oneTrip(reqs []*appendReq) bool {
	for _, r := range reqs {
		if protocol.IsEvent(r.m.ContentType) || r.m.ContentType == protocol.ContentTimer {
			return false
		}
	}
	return true
}

// seqVar and timerVar are the user variables holding the last seq and the
// timer of a batch's i-th conversation (sorted).
func seqVar(i int) string   { return "@parley_s" + strconv.Itoa(i) }
func timerVar(i int) string { return "@parley_t" + strconv.Itoa(i) }

// storeOneTrip stores a batch that oneTrip allows in one transaction of
// one round trip on conn (see above) and returns the new messages in
// order, setting each request's stored. A duplicate-key error (isDuplicate)
// means the batch was not stored and the transaction is still open: the
// caller rolls it back and stores the batch the general way.
func (l *lane) storeOneTrip(ctx context.Context, conn *sql.Conn, reqs []*appendReq) ([]protocol.Message, error) {
	w := l.w
	convs := make([]string, 0, len(reqs))
	for _, r := range reqs {
		convs = append(convs, r.m.Conv)
	}
	slices.Sort(convs)
	convs = slices.Compact(convs)
	index := make(map[string]int, len(convs))
	for i, c := range convs {
		index[c] = i
	}
	seq := func(conv string, n uint64) string {
		return seqVar(index[conv]) + "+" + strconv.FormatUint(n, 10)
	}

	// What the lane assumes of each conversation (the guard checks it).
	assumed := make([]convState, len(convs))
	for i, c := range convs {
		assumed[i] = l.known[c]
	}

	// A statement added to the script fails only when a send does (a
	// script past maxScriptBytes sends what it holds), and from then on
	// every later one fails with it (script).
	x := &script{q: conn}
	_, _ = x.ExecContext(ctx, `START TRANSACTION`)
	// Create the rows not there yet and lock them all, in conv order.
	_, _ = x.ExecContext(ctx, createConvsQuery(len(convs)), anys(convs)...)
	for i, c := range convs {
		_, _ = x.ExecContext(ctx, readSeqQuery(i), c)
	}
	guard, guardArgs := guardQuery(assumed, convs[0])
	if _, err := x.ExecContext(ctx, guard, guardArgs...); err != nil {
		return nil, err
	}

	var (
		stored = make([]protocol.Message, 0, len(reqs))
		counts = make(map[string]uint64, len(convs)) // messages per conversation so far
		times  = make(map[string]int64, len(convs))
		events = newBatchEvents(w, ctx, conn, x)
	)
	for _, r := range reqs {
		m := r.m
		counts[m.Conv]++
		m.Seq = counts[m.Conv] // its place; the seq is known after COMMIT
		storage.Stamp(&m, assumed[index[m.Conv]].timer)
		times[m.Conv] = m.ServerTime
		events.stored(&m)
		stored = append(stored, m)
	}
	if err := writeBatch(ctx, x, w.s.shards, stored, events, nil, seq); err != nil {
		return nil, err
	}
	if err := updateConvs(ctx, x, reqs, counts, times, nil, seq); err != nil {
		return nil, err
	}
	if q, args := membersQuery(reqs, index, assumed); q != "" {
		if _, err := x.ExecContext(ctx, q, args...); err != nil {
			return nil, err
		}
	}
	if _, err := x.ExecContext(ctx, `COMMIT`); err != nil {
		return nil, err
	}
	last, err := x.queryUints(ctx, conn, readVarsQuery(len(convs)), len(convs))
	if err != nil {
		// Not committed, or (the connection lost after the COMMIT) not
		// known: either way the callers get the error, as for the
		// general way.
		return nil, fmt.Errorf("append in one round trip: %w", err)
	}
	for i := range stored {
		stored[i].Seq += last[index[stored[i].Conv]]
		reqs[i].stored, reqs[i].dup, reqs[i].err = stored[i], false, nil
	}
	if len(l.known)+len(convs) > maxKnownConvs {
		clear(l.known)
	}
	for i, c := range convs {
		l.known[c] = convState{timer: assumed[i].timer, used: true}
	}
	return stored, nil
}

// readSeqQuery reads the last seq and the timer of the batch's i-th
// conversation into its variables. One statement a conversation: an
// equality on the primary key locks just the row, where one statement
// with an IN list may scan a small table whole and lock rows of other
// nodes' batches.
func readSeqQuery(i int) string {
	return `SELECT last_seq, timer INTO ` + seqVar(i) + `, ` + timerVar(i) + ` FROM conversations WHERE conv = ? FOR UPDATE`
}

// readVarsQuery returns the variables of n conversations.
func readVarsQuery(n int) string {
	vars := make([]string, n)
	for i := range vars {
		vars[i] = seqVar(i)
	}
	return `SELECT ` + strings.Join(vars, `, `)
}

// guardQuery returns the statement that fails with a duplicate key when a
// conversation's row, read into the variables, is not as the lane assumes
// (assumed[i] of the batch's i-th conversation): another timer, or no
// messages in one the lane saw with messages. It inserts the row of
// first, a conversation of the batch, again: the script has created it if
// need be. It reads no table, so it takes no lock beyond the rows' own.
func guardQuery(assumed []convState, first string) (string, []any) {
	var q strings.Builder
	q.WriteString(`INSERT INTO conversations (conv, last_seq, last_time) SELECT ?, 0, 0 FROM DUAL WHERE NOT IFNULL(`)
	for i, st := range assumed {
		if i > 0 {
			q.WriteString(` AND `)
		}
		q.WriteString(timerVar(i) + ` = ` + strconv.FormatUint(uint64(st.timer), 10))
		if st.used {
			q.WriteString(` AND ` + seqVar(i) + ` > 0`)
		}
	}
	q.WriteString(`, 0)`)
	return q.String(), []any{first}
}

// membersQuery returns the statement that adds the membership rows of the
// batch's direct conversations that had no messages before it (their
// variable is 0), for those not assumed to have had messages (the guard
// checks the others); "" if there are none.
func membersQuery(reqs []*appendReq, index map[string]int, assumed []convState) (string, []any) {
	var q strings.Builder
	var args []any
	seen := map[string]bool{}
	for _, r := range reqs {
		c := r.m.Conv
		if r.parsed.Kind != protocol.ConvDirect || seen[c] || assumed[index[c]].used {
			continue
		}
		seen[c] = true
		for _, u := range []int64{r.parsed.A, r.parsed.B} {
			if len(args) > 0 {
				q.WriteString(` UNION ALL `)
			}
			q.WriteString(`SELECT ?, ? FROM DUAL WHERE ` + seqVar(index[c]) + ` = 0`)
			args = append(args, u, c)
		}
	}
	if len(args) == 0 {
		return "", nil
	}
	return `INSERT IGNORE INTO user_convs (user_id, conv) ` + q.String(), args
}

// queryUints sends the statements added since the last flush followed by
// query, on q, and returns the n unsigned integers of query's one row.
func (s *script) queryUints(ctx context.Context, q querier, query string, n int) ([]uint64, error) {
	if s.err != nil {
		return nil, s.err
	}
	if s.size > 0 {
		s.b.WriteByte(';')
	}
	s.b.WriteString(query)
	rows, err := q.QueryContext(ctx, s.b.String(), s.args...)
	s.reset()
	if err != nil {
		s.err = err
		return nil, err
	}
	defer rows.Close()
	out := make([]uint64, n)
	ptrs := make([]any, n)
	for i := range out {
		ptrs[i] = &out[i]
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("no row")
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	return out, rows.Err()
}

// rollbackTx rolls back the transaction open on conn, so that the batch
// can be stored again on it.
func rollbackTx(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		return fmt.Errorf("roll back: %w", err)
	}
	return nil
}
