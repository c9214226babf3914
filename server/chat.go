package server

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/parleyim/parley/protocol"
)

const maxClientMsgID = 64

// handleSend hands a message to the store and returns without waiting for
// the commit: the SendAck is written when the message is durable
// (session.sendDone, then drain). Delivery to the recipients follows from
// the store's commit hook.
func (s *Server) handleSend(c *call, m *protocol.Send) (any, error) {
	ctx, user := c.ctx, c.user
	switch {
	case m.ClientMsgID == "" || len(m.ClientMsgID) > maxClientMsgID:
		return nil, refuse(protocol.CodeBadMessage, "client_msg_id must be 1-64 bytes")
	case (m.To == 0) == (m.GroupID == 0):
		return nil, refuse(protocol.CodeBadMessage, "set exactly one of to and group_id")
	case len(m.Body) > s.cfg.MaxMessage:
		return nil, refuse(protocol.CodeMessageTooLong, "message body above the limit")
	case m.To == user:
		return nil, refuse(protocol.CodeSelfMessage, "cannot message yourself")
	}
	if err := checkAttachment(m); err != nil {
		return nil, err
	}
	msg := protocol.Message{
		MsgID:       s.ids.Generate().Int64(),
		From:        user,
		ClientMsgID: m.ClientMsgID,
		ContentType: m.ContentType,
		Body:        m.Body,
		ServerTime:  time.Now().UnixMilli(),
	}
	if m.GroupID != 0 {
		if err := s.groupMember(ctx, m.GroupID, user); err != nil {
			return nil, err
		}
		msg.Conv, msg.GroupID = protocol.GroupConv(m.GroupID), m.GroupID
	} else {
		if err := s.recipient(ctx, user, m.To); err != nil {
			return nil, err
		}
		msg.Conv, msg.To = protocol.DirectConv(user, m.To), m.To
	}
	if protocol.IsExpiryContent(m.ContentType) {
		if err := s.checkTimer(ctx, user, m, &msg); err != nil {
			return nil, err
		}
	}
	var orig *protocol.Message // a recall's target, for the search index; only events have one
	if protocol.IsEvent(m.ContentType) || m.Ref != 0 || m.ReplyTo != 0 || len(m.Mentions) > 0 || m.MentionAll {
		orig = new(protocol.Message)
		if err := s.checkEvent(ctx, user, m, &msg, orig); err != nil {
			return nil, err
		}
	}
	if !c.ss.reserveSend(s.cfg.MaxPendingSends) {
		return nil, refuse(protocol.CodeBusy, "too many sends waiting for their SendAck; wait for one")
	}
	// The store answers on its writer; the worker goes on with the next
	// frame meanwhile. What the answer needs waits in a pooled sending.
	st := getSending()
	st.s, st.ss, st.reqID, st.at, st.rc = s, c.ss, c.reqID, c.at, c.keep()
	st.msg, st.orig, st.t0 = msg, orig, time.Now()
	s.delivery.origin(msg.MsgID, st.ss)
	s.store.AppendAsync(ctx, &st.msg, st.done)
	return later, nil
}

// sending is a Send the store holds: what its answer needs. They are
// pooled, so a Send allocates neither this nor a closure for the store.
type sending struct {
	s     *Server
	ss    *session
	reqID uint32
	at    int64
	rc    *reqContext
	msg   protocol.Message // as handed to the store, which copies it
	orig  *protocol.Message
	t0    time.Time
	// done is st.stored, bound once when the sending is made.
	done func(stored protocol.Message, dup bool, err error)
}

var sendings sync.Pool // *sending

func getSending() *sending {
	if st, ok := sendings.Get().(*sending); ok {
		return st
	}
	st := new(sending)
	st.done = st.stored
	return st
}

// stored is the store's answer to a Send: it takes what it needs from st,
// hands st back to the pool and answers the connection.
func (st *sending) stored(stored protocol.Message, dup bool, err error) {
	s, ss, reqID, at, orig := st.s, st.ss, st.reqID, st.at, st.orig
	st.rc.cancel()
	if err == nil && dup && !sameContent(&stored, &st.msg) {
		// The id was used for another message: saying it was stored
		// would drop this one silently.
		err = refuse(protocol.CodeClientMsgIDReused, "client_msg_id was used for another message (recipient or body); use a new one")
	}
	if err == nil {
		s.m.stored(time.Since(st.t0), dup)
	}
	if err != nil || dup {
		s.delivery.forget(st.msg.MsgID)
	}
	done := st.done
	*st = sending{done: done}
	sendings.Put(st)
	if err == nil && !dup && orig != nil && orig.Seq != 0 {
		s.recalled(*orig)
	}
	stored.Body = nil // the answer needs only the ids
	ss.sendDone(sendResult{reqID: reqID, at: at, stored: stored, dup: dup, err: err})
}

// sameContent reports whether a stored message is the one a repeated Send
// (same client_msg_id) asks for: same conversation, content type and body.
func sameContent(stored, m *protocol.Message) bool {
	return stored.Conv == m.Conv && stored.ContentType == m.ContentType && bytes.Equal(stored.Body, m.Body)
}

// member checks that user may read conv: nil if so, or the refusal.
func (s *Server) member(ctx context.Context, user int64, conv string) error {
	p, ok := protocol.ParseConv(conv)
	switch {
	case !ok:
		return refuseCode(protocol.CodeBadConv)
	case p.Kind == protocol.ConvGroup:
		return s.groupMember(ctx, p.Group, user)
	case !p.Has(user):
		return refuseCode(protocol.CodeBadConv)
	}
	return nil
}

func (s *Server) handleAck(c *call, a *protocol.Ack) (any, error) {
	ctx, user := c.ctx, c.user
	if err := s.member(ctx, user, a.Conv); err != nil {
		return nil, err
	}
	if s.state != nil {
		return s.ackMoved(c, a)
	}
	if err := s.store.Ack(ctx, user, a.Conv, a.Seq); err != nil {
		return nil, err
	}
	return &protocol.OK{}, nil
}

func (s *Server) handleSync(c *call, q *protocol.Sync) (any, error) {
	ctx, user := c.ctx, c.user
	if err := s.member(ctx, user, q.Conv); err != nil {
		return nil, err
	}
	msgs, next, last, more, err := s.store.After(ctx, user, q.Conv, q.LastAckID, s.limit(q.Limit))
	if err != nil {
		return nil, err
	}
	if kept := fitReply(msgs); kept < len(msgs) {
		msgs, next, more = msgs[:kept], msgs[kept-1].Seq, true
	}
	// A client that asks past the end is not told to go on from there.
	next = min(next, last)
	return &protocol.SyncResult{
		Conv: q.Conv, Messages: nonNil(msgs), Next: next, LastSeq: last, HasMore: more,
	}, nil
}

func (s *Server) handleHistory(c *call, q *protocol.History) (any, error) {
	ctx, user := c.ctx, c.user
	if err := s.member(ctx, user, q.Conv); err != nil {
		return nil, err
	}
	msgs, next, more, err := s.store.Before(ctx, user, q.Conv, q.BeforeSeq, s.limit(q.Limit))
	if err != nil {
		return nil, err
	}
	if kept := fitReply(msgs); kept < len(msgs) {
		msgs, next, more = msgs[:kept], msgs[kept-1].Seq, true
	}
	return &protocol.HistoryResult{
		Conv: q.Conv, Messages: nonNil(msgs), Next: next, HasMore: more,
	}, nil
}

func (s *Server) handleDeleteHistory(c *call, d *protocol.DeleteHistory) (any, error) {
	ctx, user := c.ctx, c.user
	if err := s.member(ctx, user, d.Conv); err != nil {
		return nil, err
	}
	if len(d.Seqs) == 0 && d.UpTo == 0 {
		return nil, refuse(protocol.CodeBadBody, "name seqs or up_to")
	}
	if len(d.Seqs) > s.cfg.MaxSyncLimit {
		return nil, refuse(protocol.CodeBadBody, "too many seqs in one request")
	}
	if err := s.store.Hide(ctx, user, d.Conv, d.Seqs, d.UpTo); err != nil {
		return nil, err
	}
	// The user's other connections drop them too.
	s.route([]int64{user}, protocol.MustFrame(protocol.TypeConvState, 0, &protocol.ConvState{
		Conv: d.Conv, Kind: protocol.StateHidden, Seqs: d.Seqs, UpTo: d.UpTo,
	}), c.ss)
	return &protocol.OK{}, nil
}

func (s *Server) handleConversations(c *call, q *protocol.Conversations) (any, error) {
	ctx, user := c.ctx, c.user
	var (
		convs []protocol.Conversation
		more  bool
		err   error
	)
	if s.state != nil {
		convs, more, err = s.state.ConversationsAfter(ctx, user, q.AfterTime, q.AfterConv, s.limit(q.Limit))
	} else if q.AfterConv != "" {
		err = refuse(protocol.CodeUnavailable, "this server's store pages no conversations")
	} else {
		convs, err = s.store.Conversations(ctx, user, s.limit(q.Limit))
	}
	if err != nil {
		return nil, err
	}
	if convs == nil {
		convs = []protocol.Conversation{}
	}
	fitLasts(convs)
	return &protocol.ConversationList{Conversations: convs, HasMore: more}, nil
}

// maxReply bounds the replies the server makes (docs/protocol.md promises
// clients no frame above 1 MiB): half of the default MaxOutbound, so that a
// reply fits beside as much again still waiting for the client
// (session.outputRoom).
const maxReply = 512 << 10

// fitReply returns how many of msgs fit in one reply frame (at least one:
// a message fits in a client frame, so it fits in a reply).
func fitReply(msgs []protocol.Message) int {
	return fitCount(len(msgs), maxReply, func(i int) int { return msgSize(&msgs[i]) })
}

// msgSize is at least what m takes encoded in a reply.
func msgSize(m *protocol.Message) int {
	const overhead = 240 // keys, ids and framing of one message, events' fields too, generously
	size := overhead + len(m.Body) + len(m.Conv) + len(m.ClientMsgID) + 9*len(m.Mentions)
	for _, r := range m.Reactions {
		size += 32 + len(r.Emoji) + 9*len(r.Users) // emoji, count and users, as the keys and ids take
	}
	return size
}

// fitLasts keeps a ConversationList within maxReply: past it, the newest
// messages (Last) of the conversations at the end of the list are left
// out, which the client reads with Sync or History when it opens one.
// Without them the list of even the most conversations fits.
func fitLasts(convs []protocol.Conversation) {
	const overhead = 160 // one conversation's keys, ids and name, generously
	size := 256
	for i := range convs {
		size += overhead + len(convs[i].Conv)
		if convs[i].Last != nil {
			size += msgSize(convs[i].Last)
		}
	}
	for i := len(convs) - 1; i >= 0 && size > maxReply; i-- {
		if convs[i].Last != nil {
			size -= msgSize(convs[i].Last)
			convs[i].Last = nil
		}
	}
}

// nonNil makes an empty result encode as an empty array, not nil.
func nonNil(m []protocol.Message) []protocol.Message {
	if m == nil {
		return []protocol.Message{}
	}
	return m
}
