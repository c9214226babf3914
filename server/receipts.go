package server

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Receipts, typing and the per-user state of conversations
// (docs/protocol.md, section 18).
//
// What each costs:
//   - Ack in a direct conversation: one ReadEvent to the other user (unless
//     it turned receipts off) and one to each of the reader's other
//     connections, only when the cursor moves; a cursor moves at most once
//     per message, so at most one ReadEvent per message and direction.
//   - Ack in a group: a ReadEvent to the reader's other connections, and the
//     range read joins the group's pending reads (groupReads); every
//     ReceiptInterval one GroupReadEvent per sender of the messages read
//     carries their new counts. Readers cost nothing per reader on the wire.
//   - Typing: nothing stored; one event per other member, limited per
//     connection (SignalRate) and coalesced (TypingTTL/3).
//   - Received: one DeliveredEvent to the other user, limited per
//     connection (SignalRate); the store keeps the delivery cursor, its
//     moves written together a moment later (storage.Deliveries).
//   - ConvPrefs and DeleteHistory: one ConvState to the user's other
//     connections.

// stateStore is the store's ConvState, or nil when the backend has none:
// the frames that need it are answered UNAVAILABLE.
func (s *Server) stateStore() (storage.ConvState, error) {
	if s.state == nil {
		return nil, refuse(protocol.CodeUnavailable, "this server's store keeps no receipts or conversation flags")
	}
	return s.state, nil
}

// signal takes a token of the connection's Typing and Received bucket.
func (c *call) signal(s *Server) error {
	if !c.ss.signals().bucket.allow(time.Now().UnixMilli(), s.cfg.SignalRate, s.cfg.SignalBurst) {
		return refuse(protocol.CodeRateLimited, "too many typing or delivery signals; slow down")
	}
	return nil
}

// ackMoved answers Ack on a store with ConvState: the cursor's moves are
// told to the reader's other connections, to the other user of a direct
// conversation and to the group's pending reads.
func (s *Server) ackMoved(c *call, a *protocol.Ack) (any, error) {
	ctx, user := c.ctx, c.user
	prev, cur, err := s.state.AckMoved(ctx, user, a.Conv, a.Seq)
	if err != nil {
		return nil, err
	}
	if cur <= prev {
		return &protocol.OK{}, nil
	}
	frame := protocol.MustFrame(protocol.TypeReadEvent, 0, &protocol.ReadEvent{Conv: a.Conv, User: user, Seq: cur})
	s.route([]int64{user}, frame, c.ss)
	if s.settings.receiptsOff(ctx, user) {
		return &protocol.OK{}, nil
	}
	p, _ := protocol.ParseConv(a.Conv)
	if p.Kind == protocol.ConvDirect {
		s.route([]int64{p.Peer(user)}, frame, nil)
	} else {
		s.reads.add(a.Conv, prev+1, cur)
	}
	return &protocol.OK{}, nil
}

func (s *Server) handleTyping(c *call, q *protocol.Typing) (any, error) {
	if err := c.signal(s); err != nil {
		return nil, err
	}
	ctx, user := c.ctx, c.user
	if err := s.member(ctx, user, q.Conv); err != nil {
		return nil, err
	}
	// Only to whom the user may write: no typing at strangers.
	if p, _ := protocol.ParseConv(q.Conv); p.Kind == protocol.ConvDirect {
		if err := s.recipient(ctx, user, p.Peer(user)); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	// A connection that keeps saying it types is fanned out once per
	// TypingTTL/3; a stop always is.
	sig := c.ss.signals()
	if !q.Stop && sig.typingConv == q.Conv && now.Sub(sig.typingAt) < s.cfg.TypingTTL/3 {
		return &protocol.OK{}, nil
	}
	sig.typingConv, sig.typingAt = q.Conv, now
	if q.Stop {
		sig.typingConv = ""
	}
	users, err := s.convUsers(ctx, q.Conv)
	if err != nil {
		return nil, err
	}
	if len(users) > s.cfg.TypingMaxGroup {
		return &protocol.OK{}, nil
	}
	ev := &protocol.TypingEvent{Conv: q.Conv, User: user}
	if !q.Stop {
		ev.Until = now.Add(s.cfg.TypingTTL).UnixMilli()
	}
	s.route(without(users, user), protocol.MustFrame(protocol.TypeTypingEvent, 0, ev), nil)
	return &protocol.OK{}, nil
}

// convUsers lists the users of a conversation: both of a direct one, the
// members of a group.
func (s *Server) convUsers(ctx context.Context, conv string) ([]int64, error) {
	p, ok := protocol.ParseConv(conv)
	if !ok {
		return nil, refuseCode(protocol.CodeBadConv)
	}
	if p.Kind == protocol.ConvDirect {
		return []int64{p.A, p.B}, nil
	}
	return s.members.get(ctx, p.Group)
}

// without returns users but user, in a new slice.
func without(users []int64, user int64) []int64 {
	out := make([]int64, 0, len(users))
	for _, u := range users {
		if u != user {
			out = append(out, u)
		}
	}
	return out
}

func (s *Server) handleReceived(c *call, q *protocol.Received) (any, error) {
	if err := c.signal(s); err != nil {
		return nil, err
	}
	ctx, user := c.ctx, c.user
	p, ok := protocol.ParseConv(q.Conv)
	if !ok || !p.Has(user) {
		return nil, refuse(protocol.CodeBadConv, "delivery receipts are for your direct conversations")
	}
	sig := c.ss.signals()
	if sig.receivedConv == q.Conv && q.Seq <= sig.receivedSeq || q.Seq == 0 {
		return &protocol.OK{}, nil
	}
	// The seq is clamped to the conversation's last, so a client cannot
	// mark the sender's future messages delivered.
	_, _, last, _, err := s.store.After(ctx, user, q.Conv, q.Seq-1, 1)
	if err != nil {
		return nil, err
	}
	seq := min(q.Seq, last)
	if seq == 0 {
		return &protocol.OK{}, nil
	}
	sig.receivedConv, sig.receivedSeq = q.Conv, seq
	if s.delivered != nil {
		// Kept for a sender that was away (Receipts); the store writes
		// the moves of a moment together, not one each.
		if err := s.delivered.Delivered(ctx, user, q.Conv, seq); err != nil {
			return nil, err
		}
	}
	s.route([]int64{p.Peer(user)}, protocol.MustFrame(protocol.TypeDeliveredEvent, 0,
		&protocol.DeliveredEvent{Conv: q.Conv, User: user, Seq: seq}), nil)
	return &protocol.OK{}, nil
}

// maxReceiptSeqs bounds the seqs of one Receipts request and the span
// between its lowest and highest.
const (
	maxReceiptSeqs = 100
	maxReceiptSpan = 500
)

func (s *Server) handleReceipts(c *call, q *protocol.Receipts) (any, error) {
	st, err := s.stateStore()
	if err != nil {
		return nil, err
	}
	ctx, user := c.ctx, c.user
	if err := s.member(ctx, user, q.Conv); err != nil {
		return nil, err
	}
	p, _ := protocol.ParseConv(q.Conv)
	res := &protocol.ReceiptList{Conv: q.Conv}
	if p.Kind == protocol.ConvDirect {
		cur, err := st.ReadCursors(ctx, q.Conv, []int64{p.Peer(user)})
		if err != nil {
			return nil, err
		}
		res.PeerRead = cur[0]
		if s.delivered != nil {
			if res.PeerDelivered, err = s.delivered.DeliveredCursor(ctx, p.Peer(user), q.Conv); err != nil {
				return nil, err
			}
		}
		return res, nil
	}
	if len(q.Seqs) == 0 {
		return res, nil
	}
	if len(q.Seqs) > maxReceiptSeqs || slices.Max(q.Seqs)-slices.Min(q.Seqs) >= maxReceiptSpan {
		return nil, refuse(protocol.CodeBadBody, "at most 100 seqs, within 500 of each other")
	}
	lo, hi := slices.Min(q.Seqs), slices.Max(q.Seqs)
	counts, err := s.readCounts(ctx, p.Group, q.Conv, max(lo, 1), hi)
	if err != nil {
		return nil, err
	}
	for _, seq := range q.Seqs {
		if n, ok := counts[seq]; ok {
			res.Reads = append(res.Reads, protocol.ReadCount{Seq: seq, Count: n.count})
		}
	}
	return res, nil
}

// readCount is the read count of one message and its sender.
type readCount struct {
	from  int64
	count uint32
}

// readCounts counts, for every message lo..hi of a group, the members but
// its sender whose visible read cursor is at or past it: one read of the
// messages and one of the members' cursors.
func (s *Server) readCounts(ctx context.Context, group int64, conv string, lo, hi uint64) (map[uint64]readCount, error) {
	members, err := s.members.get(ctx, group)
	if err != nil {
		return nil, err
	}
	msgs, _, _, _, err := s.store.After(ctx, 0, conv, lo-1, int(hi-lo+1))
	if err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	curs, err := s.state.ReadCursors(ctx, conv, members)
	if err != nil {
		return nil, err
	}
	own := make(map[int64]uint64, len(msgs))
	for _, m := range msgs {
		own[m.From] = 0
	}
	for i, u := range members {
		if _, ok := own[u]; ok {
			own[u] = curs[i]
		}
	}
	sorted := slices.Clone(curs)
	slices.Sort(sorted)
	out := make(map[uint64]readCount, len(msgs))
	for _, m := range msgs {
		// Members with cursor >= m.Seq, the sender aside.
		i, _ := slices.BinarySearch(sorted, m.Seq)
		n := len(sorted) - i
		if own[m.From] >= m.Seq {
			n--
		}
		out[m.Seq] = readCount{from: m.From, count: uint32(max(n, 0))}
	}
	return out, nil
}

func (s *Server) handleReaders(c *call, q *protocol.Readers) (any, error) {
	st, err := s.stateStore()
	if err != nil {
		return nil, err
	}
	ctx, user := c.ctx, c.user
	if err := s.member(ctx, user, q.Conv); err != nil {
		return nil, err
	}
	if q.Seq == 0 {
		return nil, refuse(protocol.CodeBadBody, "seq must be set")
	}
	msgs, _, _, _, err := s.store.After(ctx, user, q.Conv, q.Seq-1, 1)
	if err != nil {
		return nil, err
	}
	res := &protocol.ReaderList{Conv: q.Conv, Seq: q.Seq, Users: []int64{}}
	if len(msgs) == 0 || msgs[0].Seq != q.Seq {
		return res, nil
	}
	users, err := s.convUsers(ctx, q.Conv)
	if err != nil {
		return nil, err
	}
	curs, err := st.ReadCursors(ctx, q.Conv, users)
	if err != nil {
		return nil, err
	}
	for i, u := range users {
		if u != msgs[0].From && curs[i] >= q.Seq {
			res.Users = append(res.Users, u)
		}
	}
	return res, nil
}

func (s *Server) handleConvPrefs(c *call, q *protocol.ConvPrefs) (any, error) {
	st, err := s.stateStore()
	if err != nil {
		return nil, err
	}
	ctx, user := c.ctx, c.user
	if err := s.member(ctx, user, q.Conv); err != nil {
		return nil, err
	}
	if err := st.SetConvFlags(ctx, user, q.Conv, storage.ConvFlags{Muted: q.Muted, Pinned: q.Pinned}); err != nil {
		return nil, err
	}
	s.route([]int64{user}, protocol.MustFrame(protocol.TypeConvState, 0, &protocol.ConvState{
		Conv: q.Conv, Kind: protocol.StatePrefs, Muted: q.Muted, Pinned: q.Pinned,
	}), c.ss)
	return &protocol.OK{}, nil
}

func (s *Server) handleSettings(c *call, q *protocol.Settings) (any, error) {
	st, err := s.stateStore()
	if err != nil {
		return nil, err
	}
	ctx, user := c.ctx, c.user
	if q.Set {
		set := storage.UserSettings{ReceiptsOff: q.ReceiptsOff}
		if err := st.SetUserSettings(ctx, user, set); err != nil {
			return nil, err
		}
		s.settings.put(user, set)
		return &protocol.SettingsInfo{ReceiptsOff: set.ReceiptsOff}, nil
	}
	set, err := st.UserSettings(ctx, user)
	if err != nil {
		return nil, err
	}
	return &protocol.SettingsInfo{ReceiptsOff: set.ReceiptsOff}, nil
}

// settingsCache keeps users' settings read on their Acks, for a while: a
// user's connections are all on the node that owns it, which changes them
// here (put); settingsTTL bounds how long another node's view may lag after
// a slot moves. Like memberCache it is cleared when full.
type settingsCache struct {
	store storage.ConvState
	mu    sync.Mutex
	m     map[int64]settingsEntry
}

type settingsEntry struct {
	set storage.UserSettings
	at  time.Time
}

const (
	settingsTTL       = 30 * time.Second
	maxCachedSettings = 1 << 16
)

// receiptsOff reports whether user turned receipts off; when the store
// cannot say, receipts stay off (the safer side).
func (c *settingsCache) receiptsOff(ctx context.Context, user int64) bool {
	if c.store == nil {
		return false
	}
	c.mu.Lock()
	e, ok := c.m[user]
	c.mu.Unlock()
	if ok && time.Since(e.at) < settingsTTL {
		return e.set.ReceiptsOff
	}
	set, err := c.store.UserSettings(ctx, user)
	if err != nil {
		return true
	}
	c.put(user, set)
	return set.ReceiptsOff
}

func (c *settingsCache) put(user int64, set storage.UserSettings) {
	c.mu.Lock()
	if len(c.m) >= maxCachedSettings {
		clear(c.m)
	}
	c.m[user] = settingsEntry{set: set, at: time.Now()}
	c.mu.Unlock()
}
