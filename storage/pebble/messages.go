package pebble

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// A message value: msg id, sender, recipient, group, server time (8 bytes
// each), content type (2), the client message id (uvarint length, bytes),
// then the body to the end. Conv and seq are in the key. A message that
// expires has the top bit of its msg id set (ids are never negative) and
// its expires_at (8 bytes) after the content type.
const (
	offFrom    = 8
	offTime    = 32
	offType    = 40
	offExpires = 42
	offCMID    = 42
	expiryFlag = 0x80
)

func appendMsgValue(b []byte, m *protocol.Message) []byte {
	at := len(b)
	b = binary.BigEndian.AppendUint64(b, uint64(m.MsgID))
	b = binary.BigEndian.AppendUint64(b, uint64(m.From))
	b = binary.BigEndian.AppendUint64(b, uint64(m.To))
	b = binary.BigEndian.AppendUint64(b, uint64(m.GroupID))
	b = binary.BigEndian.AppendUint64(b, uint64(m.ServerTime))
	b = binary.BigEndian.AppendUint16(b, m.ContentType)
	if m.ExpiresAt != 0 {
		b[at] |= expiryFlag
		b = binary.BigEndian.AppendUint64(b, uint64(m.ExpiresAt))
	}
	b = binary.AppendUvarint(b, uint64(len(m.ClientMsgID)))
	b = append(b, m.ClientMsgID...)
	return append(b, m.Body...)
}

func msgTime(v []byte) int64 {
	if len(v) < offTime+8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v[offTime:]))
}

func msgContentType(v []byte) uint16 {
	if len(v) < offType+2 {
		return 0
	}
	return binary.BigEndian.Uint16(v[offType:])
}

func msgFrom(v []byte) int64 {
	if len(v) < offFrom+8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v[offFrom:]))
}

// msgExpires returns the expires_at of a message value (0: never).
func msgExpires(v []byte) int64 {
	if len(v) < offExpires+8 || v[0]&expiryFlag == 0 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v[offExpires:]))
}

// msgGone reports whether a message value has expired at now.
func msgGone(v []byte, now int64) bool {
	e := msgExpires(v)
	return e != 0 && e <= now
}

// parseMessage decodes the message at key k with value v; it copies what it
// keeps.
func parseMessage(k, v []byte) (protocol.Message, error) {
	if len(k) < 10 || len(v) < offCMID {
		return protocol.Message{}, errCorrupt
	}
	m := protocol.Message{
		Conv:        string(k[1 : len(k)-9]),
		Seq:         seqOfKey(k),
		MsgID:       int64(binary.BigEndian.Uint64(v) &^ (expiryFlag << 56)),
		From:        int64(binary.BigEndian.Uint64(v[8:])),
		To:          int64(binary.BigEndian.Uint64(v[16:])),
		GroupID:     int64(binary.BigEndian.Uint64(v[24:])),
		ServerTime:  int64(binary.BigEndian.Uint64(v[32:])),
		ContentType: binary.BigEndian.Uint16(v[40:]),
	}
	off := offCMID
	if v[0]&expiryFlag != 0 {
		if len(v) < offExpires+8 {
			return protocol.Message{}, errCorrupt
		}
		m.ExpiresAt = int64(binary.BigEndian.Uint64(v[offExpires:]))
		off += 8
	}
	n, w := binary.Uvarint(v[off:])
	rest := v[off+max(w, 0):]
	if w <= 0 || uint64(len(rest)) < n {
		return protocol.Message{}, errCorrupt
	}
	m.ClientMsgID = string(rest[:n])
	m.Body = append([]byte{}, rest[n:]...)
	return m, nil
}

// AppendAsync is Append without waiting for the commit. done is called
// exactly once, from the writer, after the batch holding m is durable
// (stored, dup, nil) or has failed (err); done must not block. Messages
// handed in by one goroutine are committed in call order (within a
// conversation their seqs ascend in call order). If ctx ends before m joins
// a batch, done gets ctx.Err() and nothing is stored. AppendAsync itself
// blocks only while the writer's queue is full. m is copied; its Seq is not
// set.
func (s *Store) AppendAsync(ctx context.Context, m *protocol.Message, done func(stored protocol.Message, dup bool, err error)) {
	o := getAppendOp()
	o.done = done
	s.appendAsync(ctx, m, o)
}

// appendAsync is AppendAsync answering through o (its done, or its result
// channel).
func (s *Store) appendAsync(ctx context.Context, m *protocol.Message, o *appendOp) {
	if s.closed.Load() {
		o.answer(protocol.Message{}, false, storage.ErrClosed)
		return
	}
	if m == nil || m.MsgID < 0 {
		o.answer(protocol.Message{}, false, errors.New("pebble: append: nil message or negative msg id"))
		return
	}
	parsed, ok := protocol.ParseConv(m.Conv)
	if !ok {
		o.answer(protocol.Message{}, false, fmt.Errorf("pebble: append: invalid conversation id %q", m.Conv))
		return
	}
	o.m, o.parsed, o.queued = *m, parsed, time.Now()
	o.m.Seq, o.m.ExpiresAt = 0, 0
	// An event reads its target's state, which an earlier op of the batch
	// may have written.
	o.reads = protocol.IsEvent(m.ContentType)
	o.m.Mentions = slices.Clone(m.Mentions)
	o.m.Body = bytes.Clone(m.Body)
	if m.ClientMsgID != "" {
		o.hash = dedupeHash(s.seenSeed, m.From, m.ClientMsgID)
		// Look for an earlier copy here, on the caller's goroutine, so the
		// writer looks again only when batches were applied since and the
		// filter cannot rule the id out (exec).
		if err := s.findDup(o); err != nil {
			o.answer(protocol.Message{}, false, err)
			return
		}
	}
	if err := s.w.queue(ctx, o); err != nil {
		o.answer(protocol.Message{}, false, err)
	}
}

// findDup looks up o's client message id in the database and notes in o
// what it found and which batches it saw.
func (s *Store) findDup(o *appendOp) error {
	if !s.enter() {
		return storage.ErrClosed
	}
	defer s.exit()
	o.checkedAt, o.checked = s.w.applied.Load(), true
	if s.newID(o.hash) {
		return nil // no batch up to checkedAt stored it (dedupe.go)
	}
	mk, found, err := getFrom(s.db, dedupeKey(o.m.From, o.m.ClientMsgID))
	if err != nil || !found {
		return err
	}
	v, found, err := getFrom(s.db, mk)
	if err != nil || !found {
		return fmt.Errorf("pebble: read duplicate %q: found %v: %w", mk, found, err)
	}
	prev, err := parseMessage(mk, v)
	if err != nil {
		return fmt.Errorf("pebble: read duplicate: %w", err)
	}
	o.prev = &prev
	return nil
}

// resultChans recycles the channels Append waits on.
var resultChans = sync.Pool{New: func() any { return make(chan appendResult, 1) }}

type appendResult struct {
	stored protocol.Message
	dup    bool
	err    error
}

// Append implements storage.Messages. The message and its body are copied
// before they are queued; m.Seq is set when the message is newly stored. The
// returned message shares its body with the one given to the commit hook:
// neither may be modified.
func (s *Store) Append(ctx context.Context, m *protocol.Message) (protocol.Message, bool, error) {
	ch := resultChans.Get().(chan appendResult)
	o := getAppendOp()
	o.result = ch
	s.appendAsync(ctx, m, o)
	var r appendResult
	select {
	case r = <-ch:
		resultChans.Put(ch) // empty again; not when abandoned below
	case <-ctx.Done():
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

type appendOp struct {
	opBase
	m      protocol.Message
	parsed protocol.ParsedConv
	// The caller is answered through done (AppendAsync) or, without a
	// closure to allocate, on result (Append).
	done   func(stored protocol.Message, dup bool, err error)
	result chan<- appendResult

	// hash is the filter's hash of the client message id (dedupeHash).
	hash uint64
	// queued is when Append was called (storage.StageQueue).
	queued time.Time
	// What findDup saw: checked is set once it looked, with the batches
	// applied when it did (checkedAt); prev is the earlier copy it found,
	// and after exec, with dup set, the copy stored first.
	checked   bool
	checkedAt uint64
	prev      *protocol.Message

	// dup: m was stored before (prev); otherwise, after exec, m is the
	// message stored.
	dup bool
}

func (o *appendOp) finish(err error) {
	if err != nil {
		o.answer(protocol.Message{}, false, err)
		return
	}
	if o.dup {
		o.answer(*o.prev, true, nil)
		return
	}
	o.answer(o.m, false, nil)
}

// answer answers the caller, once, and hands o back to the pool: nothing
// may use o after it.
func (o *appendOp) answer(stored protocol.Message, dup bool, err error) {
	result, done := o.result, o.done
	*o = appendOp{}
	appendOps.Put(o)
	if result != nil {
		result <- appendResult{stored, dup, err}
		return
	}
	done(stored, dup, err)
}

// appendOps recycles appendOps, the largest allocation of an append; an op
// goes back once answered.
var appendOps = sync.Pool{New: func() any { return new(appendOp) }}

func getAppendOp() *appendOp { return appendOps.Get().(*appendOp) }

func (o *appendOp) exec(t *txn) error {
	m := &o.m
	var ref dupRef
	if m.ClientMsgID != "" {
		ref = dupRef{m.From, m.ClientMsgID}
		if o.prev != nil {
			o.dup = true
			return nil
		}
		// The filter holds every batch applied so far and the earlier
		// appends of this one: a miss proves the id new.
		fresh := t.w.newID(o.hash)
		if !fresh || t.dedupeMap {
			if prev, ok := t.inBatch(ref); ok { // an earlier op of this batch
				o.prev, o.dup = &prev, true
				return nil
			}
		}
		t.kbuf = append(append(append(t.kbuf[:0], tDedupe), make([]byte, 8)...), m.ClientMsgID...)
		binary.BigEndian.PutUint64(t.kbuf[1:], uint64(m.From))
		// Look again unless the filter proves the id new, or findDup's
		// lookup saw every batch applied so far (none was applied since it
		// read the count).
		if !fresh && (!o.checked || o.checkedAt != t.w.applied.Load()) {
			if prev, found, err := t.findDup(t.kbuf); err != nil || found {
				if found {
					o.prev, o.dup = &prev, true
				}
				return err
			}
		}
	}
	last, err := t.lastSeq(m.Conv)
	if err != nil {
		return err
	}
	m.Seq = last + 1
	if err := t.stamp(m); err != nil {
		return err
	}
	// The Metas escape (putMeta encodes them): they are declared where
	// they are used, so a plain message allocates neither.
	var target *storage.Meta
	if protocol.IsEvent(m.ContentType) {
		tm, domain, err := t.eventTarget(m)
		if err != nil || domain != nil {
			o.err = domain
			return err
		}
		target = &tm
	}
	mk := msgKey(m.Conv, m.Seq)
	t.vbuf = appendMsgValue(t.vbuf[:0], m)
	if err := t.set(mk, t.vbuf); err != nil {
		return err
	}
	if err := t.wheel(m); err != nil {
		return err
	}
	if own := storage.OwnMeta(m); !own.Empty() {
		mt := own
		if err := t.putMeta(m.Conv, m.Seq, &mt); err != nil {
			return err
		}
	}
	if target != nil {
		if err := t.writeEvent(m, target); err != nil {
			return err
		}
	}
	if m.ClientMsgID != "" {
		if err := t.set(t.kbuf, mk); err != nil {
			return err
		}
		t.w.seen.Add(o.hash) // before the batch is applied (dedupe.go)
		if t.dedupeMap {
			if t.dups == nil {
				t.dups = make(map[dupRef]protocol.Message, len(t.ops))
			}
			t.dups[ref] = *m
		}
	}
	if m.Seq == 1 && o.parsed.Kind == protocol.ConvDirect {
		// The two users are members from the first message on.
		for _, u := range [2]int64{o.parsed.A, o.parsed.B} {
			if err := t.setCursor(u, m.Conv, cursorRow{}); err != nil {
				return err
			}
		}
	}
	t.setSeq(m.Conv, m.Seq)
	if t.stored == nil {
		t.stored = t.w.storedSlice(len(t.ops))
	}
	t.stored = append(t.stored, *m)
	return nil
}

// inBatch returns the message an earlier append of this batch stored under
// ref. Without dups it scans the batch's messages: it is asked only when the
// filter cannot rule the id out (a resend, or a false positive).
func (t *txn) inBatch(ref dupRef) (protocol.Message, bool) {
	if t.dedupeMap {
		m, ok := t.dups[ref]
		return m, ok
	}
	for i := len(t.stored) - 1; i >= 0; i-- {
		if m := &t.stored[i]; m.From == ref.from && m.ClientMsgID == ref.cmid {
			return *m, true
		}
	}
	return protocol.Message{}, false
}

// findDup reads the message a dedupe key k points to, if k exists.
func (t *txn) findDup(k []byte) (protocol.Message, bool, error) {
	mk, found, err := t.get(k)
	if err != nil || !found {
		return protocol.Message{}, false, err
	}
	v, found, err := t.get(mk)
	if err != nil || !found {
		return protocol.Message{}, false, fmt.Errorf("read duplicate %q: found %v: %w", mk, found, err)
	}
	m, err := parseMessage(mk, v)
	if err != nil {
		return protocol.Message{}, false, fmt.Errorf("read duplicate: %w", err)
	}
	return m, true, nil
}

// Ack implements storage.Messages. The move is checked and clamped at once
// and written with the writer's next batch (see cursors.go): Ack returns
// before it is durable.
func (s *Store) Ack(ctx context.Context, user int64, conv string, seq uint64) error {
	_, _, err := s.AckMoved(ctx, user, conv, seq)
	return err
}

// AckMoved implements storage.ConvState, as Ack does.
func (s *Store) AckMoved(ctx context.Context, user int64, conv string, seq uint64) (prev, cursor uint64, err error) {
	if !s.enter() {
		return 0, 0, storage.ErrClosed
	}
	defer s.exit()
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	last, _, err := lastMessage(s.db, conv)
	if err != nil {
		return 0, 0, s.readErr("ack", err)
	}
	seq = min(seq, last)
	v, found, err := getFrom(s.db, cursorKey(user, conv))
	if err != nil {
		return 0, 0, s.readErr("ack", err)
	}
	var cur uint64
	if found {
		row, err := parseCursor(v)
		if err != nil {
			return 0, 0, s.readErr("ack", err)
		}
		cur = row.ack
	} else if !canJoin(user, conv) {
		return 0, 0, nil // not a member: nothing to move
	}
	cur = max(cur, s.cursors.get(user, conv))
	if seq <= cur {
		return cur, cur, nil
	}
	s.cursors.put(user, conv, seq)
	s.w.wake()
	return cur, seq, nil
}

// Hide implements storage.Messages. Sequences above the conversation's last
// one are ignored, so a future message is never hidden in advance. As with
// Ack, upTo creates the user's row only in a direct conversation.
func (s *Store) Hide(ctx context.Context, user int64, conv string, seqs []uint64, upTo uint64) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	if len(seqs) == 0 && upTo == 0 {
		return nil
	}
	seqs = slices.Clone(seqs)
	return s.write(ctx, "hide", func(t *txn) (error, error) {
		last, err := t.lastSeq(conv)
		if err != nil {
			return nil, err
		}
		upTo := min(upTo, last)
		for _, seq := range seqs {
			if seq == 0 || seq > last || seq <= upTo {
				continue
			}
			if err := t.set(hiddenKey(user, conv, seq), nil); err != nil {
				return nil, err
			}
		}
		if upTo == 0 {
			return nil, nil
		}
		row, found, err := t.cursor(user, conv)
		if err != nil {
			return nil, err
		}
		if (found || canJoin(user, conv)) && upTo > row.cleared {
			row.cleared = upTo
			if err := t.setCursor(user, conv, row); err != nil {
				return nil, err
			}
		}
		// Hidden keys at or below the cleared seq say nothing more.
		return nil, t.b.DeleteRange(hiddenKey(user, conv, 0), hiddenKey(user, conv, upTo+1), nil)
	})
}

// view is a consistent read of the database.
type view struct {
	s    *Store
	snap *pebble.Snapshot
	now  int64 // Unix ms: messages that expired by then are left out
}

// cleared returns user's cleared seq in conv and the row's ack (0s if none).
func (v view) cursor(user int64, conv string) (cursorRow, bool, error) {
	val, found, err := getFrom(v.snap, cursorKey(user, conv))
	if err != nil || !found {
		return cursorRow{}, false, err
	}
	r, err := parseCursor(val)
	return r, true, err
}

// hiddenSet walks user's hidden seqs of conv alongside a walk of messages.
type hiddenSet struct {
	it     *pebble.Iterator
	prefix []byte
	ok     bool
}

func (v view) hidden(user int64, conv string) (*hiddenSet, error) {
	p := hiddenPrefix(user, conv)
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, err
	}
	return &hiddenSet{it: it, prefix: p}, nil
}

// hasUp reports whether seq is hidden; calls must ask ascending seqs.
func (h *hiddenSet) hasUp(seq uint64, first bool) bool {
	if first {
		h.ok = h.it.SeekGE(binary.BigEndian.AppendUint64(slices.Clip(h.prefix), seq))
	}
	for h.ok && seqOfKey(h.it.Key()) < seq {
		h.ok = h.it.Next()
	}
	return h.ok && seqOfKey(h.it.Key()) == seq
}

// hasDown reports whether seq is hidden; calls must ask descending seqs.
func (h *hiddenSet) hasDown(seq uint64, first bool) bool {
	if first {
		h.ok = h.it.SeekLT(binary.BigEndian.AppendUint64(slices.Clip(h.prefix), seq+1))
	}
	for h.ok && seqOfKey(h.it.Key()) > seq {
		h.ok = h.it.Prev()
	}
	return h.ok && seqOfKey(h.it.Key()) == seq
}

func (h *hiddenSet) close() error { return h.it.Close() }

// readView opens a view; the caller closes it with done.
func (s *Store) readView() view {
	return view{s: s, snap: s.db.NewSnapshot(), now: time.Now().UnixMilli()}
}

func (v view) done() { _ = v.snap.Close() }

// walk calls fn for conv's messages with seq in (lo, hi) that user has not
// hidden and that have not expired, ascending (or descending when down),
// until fn returns false.
func (v view) walk(user int64, conv string, lo, hi uint64, down bool, fn func(k, val []byte) bool) (err error) {
	if hi <= lo+1 {
		return nil
	}
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: msgKey(conv, lo+1), UpperBound: msgKey(conv, hi)})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	hs, err := v.hidden(user, conv)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, hs.close()) }()
	first := true
	step := it.Next
	ok := it.First()
	if down {
		step, ok = it.Prev, it.Last()
	}
	for ; ok; ok = step() {
		seq := seqOfKey(it.Key())
		var hidden bool
		if down {
			hidden = hs.hasDown(seq, first)
		} else {
			hidden = hs.hasUp(seq, first)
		}
		first = false
		if hidden {
			continue
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if msgGone(val, v.now) {
			continue
		}
		if !fn(it.Key(), val) {
			return nil
		}
	}
	return it.Error()
}

// After implements storage.Messages. A limit below 1 returns no messages.
// It reads one snapshot, so lastSeq and the page agree.
func (s *Store) After(ctx context.Context, user int64, conv string, afterSeq uint64, limit int) (msgs []protocol.Message, next, lastSeq uint64, more bool, err error) {
	if !s.enter() {
		return nil, 0, 0, false, storage.ErrClosed
	}
	defer s.exit()
	if err := ctx.Err(); err != nil {
		return nil, 0, 0, false, err
	}
	v := s.readView()
	defer v.done()
	lastSeq, _, err = lastMessage(v.snap, conv)
	if err != nil {
		return nil, 0, 0, false, s.readErr("sync", err)
	}
	if limit < 1 || afterSeq >= lastSeq {
		return nil, afterSeq, lastSeq, lastSeq > afterSeq, nil
	}
	row, _, err := v.cursor(user, conv)
	if err != nil {
		return nil, 0, 0, false, s.readErr("sync", err)
	}
	var perr error
	err = v.walk(user, conv, max(afterSeq, row.cleared), math.MaxUint64, false, func(k, val []byte) bool {
		m, err := parseMessage(k, val)
		if err != nil {
			perr = err
			return false
		}
		msgs = append(msgs, m)
		return len(msgs) <= limit
	})
	if err = errors.Join(err, perr); err != nil {
		return nil, 0, 0, false, s.readErr("sync", err)
	}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		if err := v.fold(conv, msgs, protocol.ShownReactors); err != nil {
			return nil, 0, 0, false, s.readErr("sync", err)
		}
		return msgs, msgs[limit-1].Seq, lastSeq, true, nil
	}
	if err := v.fold(conv, msgs, protocol.ShownReactors); err != nil {
		return nil, 0, 0, false, s.readErr("sync", err)
	}
	// Everything up to lastSeq was examined.
	return msgs, lastSeq, lastSeq, false, nil
}

// Before implements storage.Messages. A limit below 1 returns no messages.
// When there is no older page, next is 1: the page below it is empty.
func (s *Store) Before(ctx context.Context, user int64, conv string, beforeSeq uint64, limit int) (msgs []protocol.Message, next uint64, more bool, err error) {
	if !s.enter() {
		return nil, 0, false, storage.ErrClosed
	}
	defer s.exit()
	if err := ctx.Err(); err != nil {
		return nil, 0, false, err
	}
	if limit < 1 {
		return nil, max(beforeSeq, 1), false, nil
	}
	below := beforeSeq
	if below == 0 {
		below = math.MaxUint64
	}
	v := s.readView()
	defer v.done()
	row, _, err := v.cursor(user, conv)
	if err != nil {
		return nil, 0, false, s.readErr("history", err)
	}
	var perr error
	err = v.walk(user, conv, row.cleared, below, true, func(k, val []byte) bool {
		m, err := parseMessage(k, val)
		if err != nil {
			perr = err
			return false
		}
		msgs = append(msgs, m)
		return len(msgs) <= limit
	})
	if err = errors.Join(err, perr); err != nil {
		return nil, 0, false, s.readErr("history", err)
	}
	more = len(msgs) > limit
	msgs = msgs[:min(limit, len(msgs))]
	if err := v.fold(conv, msgs, protocol.ShownReactors); err != nil {
		return nil, 0, false, s.readErr("history", err)
	}
	if more {
		return msgs, msgs[limit-1].Seq, true, nil
	}
	return msgs, 1, false, nil
}

// Conversations implements storage.Messages. Conversations with the same
// last message time are ordered by id. A limit below 1 returns none. It
// reads the user's rows, then each conversation's newest message; unread
// counts and last messages are computed for the page only.
func (s *Store) Conversations(ctx context.Context, user int64, limit int) ([]protocol.Conversation, error) {
	page, _, err := s.ConversationsAfter(ctx, user, 0, "", limit)
	return page, err
}

// ConversationsAfter implements storage.ConvState: Conversations from a
// place in the list.
func (s *Store) ConversationsAfter(ctx context.Context, user int64, afterTime int64, afterConv string, limit int) ([]protocol.Conversation, bool, error) {
	if !s.enter() {
		return nil, false, storage.ErrClosed
	}
	defer s.exit()
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if limit < 1 {
		return nil, false, nil
	}
	// Pending cursors first: one written meanwhile is in the snapshot.
	pending := s.cursors.ofUser(user)
	v := s.readView()
	defer v.done()
	type row struct {
		conv     string
		cur      cursorRow
		lastSeq  uint64
		lastTime int64
	}
	var rows []row
	p := key(tCursor, user)
	err := scanFrom(v.snap, p, func(k, val []byte) error {
		c, err := parseCursor(val)
		if err != nil {
			return err
		}
		r := row{conv: string(k[len(p):]), cur: c}
		r.cur.ack = max(r.cur.ack, pending[r.conv])
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		return nil, false, s.readErr("conversations", err)
	}
	live := rows[:0]
	for _, r := range rows {
		if r.lastSeq, r.lastTime, err = lastMessage(v.snap, r.conv); err != nil {
			return nil, false, s.readErr("conversations", err)
		}
		if r.lastSeq > 0 && (afterConv == "" || r.lastTime < afterTime || r.lastTime == afterTime && r.conv > afterConv) {
			live = append(live, r)
		}
	}
	slices.SortFunc(live, func(a, b row) int {
		if c := cmp.Compare(b.lastTime, a.lastTime); c != 0 {
			return c
		}
		return cmp.Compare(a.conv, b.conv)
	})
	more := len(live) > limit
	live = live[:min(limit, len(live))]
	out := make([]protocol.Conversation, 0, len(live))
	for _, r := range live {
		c := protocol.Conversation{Conv: r.conv, LastSeq: r.lastSeq, AckSeq: r.cur.ack, LastTime: r.lastTime,
			Muted: r.cur.flags&flagMuted != 0, Pinned: r.cur.flags&flagPinned != 0}
		if c.Timer, err = v.timer(r.conv); err != nil {
			return nil, false, s.readErr("conversations", err)
		}
		err := v.walk(user, r.conv, max(r.cur.ack, r.cur.cleared), math.MaxUint64, false, func(_, val []byte) bool {
			if msgFrom(val) != user && protocol.CountsUnread(msgContentType(val)) {
				c.Unread++
			}
			return true
		})
		if err != nil {
			return nil, false, s.readErr("conversations", err)
		}
		var perr error
		err = v.walk(user, r.conv, r.cur.cleared, math.MaxUint64, true, func(k, val []byte) bool {
			m, err := parseMessage(k, val)
			c.Last, perr = &m, err
			return false
		})
		if err = errors.Join(err, perr); err != nil {
			return nil, false, s.readErr("conversations", err)
		}
		out = append(out, c)
	}
	return out, more, nil
}
