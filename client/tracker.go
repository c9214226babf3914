package client

import (
	"slices"

	"github.com/parleyim/parley/protocol"
)

// Bounds of the tracker's memory.
const (
	seenIDs  = 4096 // message ids remembered for dedupe, over all conversations
	ownIDs   = 4096 // client_msg_ids of this client's sends remembered
	maxHeld  = 1024 // messages held behind a gap in one conversation
	maxEarly = 64   // own acks held in a conversation no push has started yet
)

// tracker decides which messages reach Messages and in what order. Per
// conversation it keeps the last sequence number passed and the messages
// held behind a gap; the client feeds it pushes, the acks of its own sends
// and Sync pages, and starts a Sync when it asks for one. It does no I/O and
// is not safe for concurrent use: Client.tmu guards it.
//
// Messages this client sent itself never reach Messages (Send returned
// their SendAck), but they occupy their sequence numbers: an ack passes its
// seq silently, and a copy that comes back through Sync or a push is known
// by its client_msg_id and passed silently too.
type tracker struct {
	self  int64 // the logged-in user
	convs map[string]*convState
	seen  idSet[int64]  // message ids passed
	own   idSet[string] // client_msg_ids this client sent
	// planning is set from a login until the post-login resync has set each
	// conversation's starting point (SyncOnLogin): pushes of unknown
	// conversations are held meanwhile instead of starting at their seq.
	planning bool
	// out holds accepted messages in delivery order until the delivery
	// goroutine takes them.
	out []protocol.Message
}

// convState is what the tracker keeps per conversation; it stays small:
// held is nil unless a gap is open.
type convState struct {
	last     uint64             // every seq up to last was delivered or passed
	started  bool               // last is meaningful
	syncing  bool               // a Sync of the conversation is running
	overflow bool               // a push was dropped because held was full
	held     map[uint64]heldMsg // seqs above last+1, waiting for the gap to fill
}

type heldMsg struct {
	msg    protocol.Message
	silent bool // one of this client's own messages, known by its ack
}

func newTracker() *tracker {
	return &tracker{
		convs: make(map[string]*convState),
		seen:  newIDSet[int64](seenIDs),
		own:   newIDSet[string](ownIDs),
	}
}

func (t *tracker) conv(id string) *convState {
	st := t.convs[id]
	if st == nil {
		st = &convState{}
		t.convs[id] = st
	}
	return st
}

// hasState reports whether any conversation has a starting point, so a
// reconnect has something to catch up on.
func (t *tracker) hasState() bool {
	for _, st := range t.convs {
		if st.started {
			return true
		}
	}
	return false
}

// sending records the client_msg_id of a Send about to be written.
func (t *tracker) sending(clientMsgID string) {
	if clientMsgID != "" {
		t.own.add(clientMsgID)
	}
}

// push takes a pushed message. When it opens a gap and no Sync of the
// conversation is running, it marks one running and returns the seq to sync
// from with sync true; the caller must then run it.
func (t *tracker) push(m protocol.Message) (from uint64, sync bool) {
	if m.Conv == "" || m.Seq == 0 || (m.MsgID != 0 && t.seen.has(m.MsgID)) {
		return 0, false
	}
	st := t.conv(m.Conv)
	if !st.started {
		if t.planning {
			t.hold(st, m.Seq, heldMsg{msg: m})
			return 0, false
		}
		// A conversation new to this client: it starts at 0. A push above
		// seq 1 opens a gap, and its Sync from 0 brings what came before
		// (the server leaves out what the user may not see: messages
		// before it joined a group, and those it deleted), so a first push
		// that overtook an earlier one loses nothing.
		t.start(st, 0)
	}
	switch {
	case m.Seq <= st.last:
		return 0, false
	case m.Seq == st.last+1:
		t.accept(st, m)
		t.drain(st)
		return 0, false
	}
	t.hold(st, m.Seq, heldMsg{msg: m})
	return t.beginLocked(st)
}

// sent records the ack of one of this client's sends: its seq is passed
// without delivering anything. An ack ahead of the conversation waits for
// the pushes before it; a Sync starts only if too many pile up.
func (t *tracker) sent(ack protocol.SendAck) (from uint64, sync bool) {
	if ack.MsgID != 0 {
		t.seen.add(ack.MsgID)
	}
	if ack.Conv == "" || ack.Seq == 0 {
		return 0, false
	}
	st := t.conv(ack.Conv)
	if !st.started {
		// No push has told where this conversation starts for us: a push
		// below the ack may still be on its way.
		t.hold(st, ack.Seq, heldMsg{silent: true})
		if len(st.held) > maxEarly && !t.planning {
			t.start(st, minKey(st.held)-1)
		}
		return 0, false
	}
	switch {
	case ack.Seq <= st.last:
		return 0, false
	case ack.Seq == st.last+1:
		st.last++
		t.drain(st)
		return 0, false
	}
	t.hold(st, ack.Seq, heldMsg{silent: true})
	if len(st.held) < maxHeld/2 && !st.overflow {
		return 0, false
	}
	return t.beginLocked(st)
}

// begin marks a Sync of conv running and returns its starting seq; ok is
// false if the conversation has no starting point or is already syncing.
func (t *tracker) begin(conv string) (from uint64, ok bool) {
	st := t.convs[conv]
	if st == nil || !st.started {
		return 0, false
	}
	return t.beginLocked(st)
}

func (t *tracker) beginLocked(st *convState) (uint64, bool) {
	if st.syncing {
		return 0, false
	}
	st.syncing = true
	return st.last, true
}

// applySync takes one Sync page asked for from seq from. The page is the
// server's word on (from, res.Next]: a seq it skipped is hidden for this
// user and is not waited for. It returns the seq to ask for next, and more
// false once the conversation has no gap left; then the Sync is over.
// gapLeft tells a last page that left a gap (only pushes newer than the
// server's read fill it) from a page with more to come.
func (t *tracker) applySync(conv string, from uint64, res protocol.SyncResult) (next uint64, more, gapLeft bool) {
	st := t.conv(conv)
	if !st.started {
		t.start(st, from)
	}
	msgs := res.Messages
	if !slices.IsSortedFunc(msgs, bySeq) {
		msgs = slices.Clone(msgs)
		slices.SortFunc(msgs, bySeq)
	}
	for _, m := range msgs {
		if m.Seq <= st.last || (m.Conv != conv && m.Conv != "") {
			continue
		}
		m.Conv = conv
		t.flushBelow(st, m.Seq)
		st.last = m.Seq - 1
		t.accept(st, m)
		t.drain(st)
	}
	if res.Next > st.last {
		// next is the highest seq the server examined: those it did not
		// return are hidden for this user (DeleteHistory).
		t.flushBelow(st, res.Next+1)
		st.last = res.Next
		t.drain(st)
	}
	if res.HasMore {
		next = st.last
		if next > from {
			return next, true, false
		}
		// The server claims more but its cursor does not move: stop
		// rather than loop, and treat the page as the last.
	}
	if len(st.held) == 0 && !st.overflow {
		st.syncing = false
		return 0, false, false
	}
	st.overflow = false
	return st.last, true, true
}

// endSync ends a Sync that cannot finish. With skip the gap is given up:
// what is held is delivered in order (the server refused the Sync, or the
// gap stayed open too long); without, it stays for the next push, Sync or
// login to fill.
func (t *tracker) endSync(conv string, skip bool) {
	st := t.convs[conv]
	if st == nil {
		return
	}
	st.syncing = false
	if skip && len(st.held) > 0 {
		t.flushBelow(st, maxKey(st.held)+1)
	}
}

// plan sets each conversation's starting point after a login from the
// server's list and returns those to sync, sorted. complete says the list
// holds every conversation of the user; listed false says there is no list
// (the request failed). With syncOnLogin a conversation starts at the
// server's read cursor when the local state is behind it or missing;
// without, only conversations known before are caught up.
func (t *tracker) plan(list []protocol.Conversation, listed, complete, syncOnLogin bool) []string {
	t.planning = false
	var out []string
	inList := make(map[string]bool, len(list))
	for _, cv := range list {
		if cv.Conv == "" {
			continue
		}
		inList[cv.Conv] = true
		st := t.convs[cv.Conv]
		switch {
		case st != nil && st.started:
			if syncOnLogin && cv.AckSeq > st.last {
				// Read on another device: skip ahead.
				t.start(st, cv.AckSeq)
			}
		case syncOnLogin:
			st = t.conv(cv.Conv)
			t.start(st, cv.AckSeq)
		default:
			continue
		}
		if cv.LastSeq > st.last || len(st.held) > 0 {
			out = append(out, cv.Conv)
		}
	}
	for id, st := range t.convs {
		if inList[id] {
			continue
		}
		if !st.started {
			// Never started, not in the list: start at the first thing held,
			// as a push would have.
			if !syncOnLogin || len(st.held) == 0 {
				continue
			}
			t.start(st, minKey(st.held)-1)
		}
		if !listed || !complete || len(st.held) > 0 {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// start sets where a conversation begins for this client: after last.
func (t *tracker) start(st *convState, last uint64) {
	st.started = true
	st.last = last
	for seq := range st.held {
		if seq <= last {
			delete(st.held, seq)
		}
	}
	t.drain(st)
}

// hold keeps seq until the gap before it fills. An ack of this client's
// own send replaces a pushed copy of the same seq.
func (t *tracker) hold(st *convState, seq uint64, h heldMsg) {
	if old, ok := st.held[seq]; ok {
		if h.silent && !old.silent {
			st.held[seq] = h
		}
		return
	}
	if len(st.held) >= maxHeld {
		st.overflow = true
		return
	}
	if st.held == nil {
		st.held = make(map[uint64]heldMsg)
	}
	st.held[seq] = h
}

// accept passes m, which is st.last+1 or the server's next, and delivers it
// unless it was seen before or is this client's own.
func (t *tracker) accept(st *convState, m protocol.Message) {
	st.last = m.Seq
	if m.MsgID != 0 {
		if t.seen.has(m.MsgID) {
			return
		}
		t.seen.add(m.MsgID)
	}
	if t.self != 0 && m.From == t.self && m.ClientMsgID != "" && t.own.has(m.ClientMsgID) {
		return
	}
	t.out = append(t.out, m)
}

// drain passes the held messages that follow st.last without a gap.
func (t *tracker) drain(st *convState) {
	for len(st.held) > 0 {
		h, ok := st.held[st.last+1]
		if !ok {
			break
		}
		delete(st.held, st.last+1)
		if h.silent {
			st.last++
		} else {
			t.accept(st, h.msg)
		}
	}
	if len(st.held) == 0 {
		st.held = nil
	}
}

// flushBelow passes every held seq below seq in order, gaps or not.
func (t *tracker) flushBelow(st *convState, seq uint64) {
	if len(st.held) == 0 {
		return
	}
	var keys []uint64
	for k := range st.held {
		if k < seq {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		h := st.held[k]
		delete(st.held, k)
		if k <= st.last {
			continue
		}
		if h.silent {
			st.last = k
		} else {
			t.accept(st, h.msg)
		}
	}
	if len(st.held) == 0 {
		st.held = nil
	}
}

// take hands the accepted messages to the delivery goroutine, reusing buf
// as the next out slice.
func (t *tracker) take(buf []protocol.Message) []protocol.Message {
	out := t.out
	t.out = buf[:0]
	return out
}

func bySeq(a, b protocol.Message) int {
	switch {
	case a.Seq < b.Seq:
		return -1
	case a.Seq > b.Seq:
		return 1
	}
	return 0
}

func minKey(m map[uint64]heldMsg) uint64 {
	first := true
	var k uint64
	for s := range m {
		if first || s < k {
			k, first = s, false
		}
	}
	return k
}

func maxKey(m map[uint64]heldMsg) uint64 {
	var k uint64
	for s := range m {
		k = max(k, s)
	}
	return k
}

// idSet remembers the last n ids added, forgetting the oldest first.
type idSet[K comparable] struct {
	set  map[K]struct{}
	ring []K
	next int
}

func newIDSet[K comparable](n int) idSet[K] {
	return idSet[K]{set: make(map[K]struct{}, n), ring: make([]K, 0, n)}
}

func (s *idSet[K]) has(k K) bool {
	_, ok := s.set[k]
	return ok
}

func (s *idSet[K]) add(k K) {
	if s.has(k) {
		return
	}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, k)
	} else {
		delete(s.set, s.ring[s.next])
		s.ring[s.next] = k
		s.next = (s.next + 1) % len(s.ring)
	}
	s.set[k] = struct{}{}
}
