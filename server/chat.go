package server

import (
	"context"
	"errors"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

const maxClientMsgID = 64

// handleSend stores a message and answers SendAck once it is durable;
// delivery to the recipients follows from the store's commit hook.
func (s *Server) handleSend(ctx context.Context, ss *session, user int64, reqID uint32, m *protocol.Send, out []byte) []byte {
	switch {
	case m.ClientMsgID == "" || len(m.ClientMsgID) > maxClientMsgID:
		return appendError(out, reqID, protocol.CodeBadMessage, "client_msg_id must be 1-64 bytes")
	case (m.To == 0) == (m.GroupID == 0):
		return appendError(out, reqID, protocol.CodeBadMessage, "set exactly one of to and group_id")
	case len(m.Body) > s.cfg.MaxMessage:
		return appendError(out, reqID, protocol.CodeMessageTooLong, "message body above the limit")
	case m.GroupID != 0:
		return appendError(out, reqID, protocol.CodeBadMessage, "group messages are not enabled on this server")
	case m.To == user:
		return appendError(out, reqID, protocol.CodeSelfMessage, "cannot message yourself")
	}
	if _, err := s.store.UserByID(ctx, m.To); errors.Is(err, storage.ErrNotFound) {
		return appendError(out, reqID, protocol.CodeNoSuchUser, "no such user")
	} else if err != nil {
		return s.storeError(out, reqID, "send", err)
	}
	msg := protocol.Message{
		MsgID:       s.ids.Generate().Int64(),
		Conv:        protocol.DirectConv(user, m.To),
		From:        user,
		To:          m.To,
		ClientMsgID: m.ClientMsgID,
		ContentType: m.ContentType,
		Body:        m.Body,
		ServerTime:  time.Now().UnixMilli(),
	}
	s.delivery.origin(msg.MsgID, ss)
	stored, dup, err := s.store.Append(ctx, &msg)
	if err != nil || dup {
		s.delivery.forget(msg.MsgID)
	}
	if err != nil {
		return s.storeError(out, reqID, "send", err)
	}
	return appendReply(out, protocol.TypeSendAck, reqID, &protocol.SendAck{
		MsgID:      stored.MsgID,
		Conv:       stored.Conv,
		Seq:        stored.Seq,
		ServerTime: stored.ServerTime,
		Duplicate:  dup,
	})
}

// member reports whether user may read conv.
func (s *Server) member(user int64, conv string) bool {
	p, ok := protocol.ParseConv(conv)
	return ok && p.Has(user)
}

func (s *Server) handleAck(ctx context.Context, user int64, reqID uint32, a *protocol.Ack, out []byte) []byte {
	if !s.member(user, a.Conv) {
		return appendError(out, reqID, protocol.CodeBadConv, "not a conversation of yours")
	}
	if err := s.store.Ack(ctx, user, a.Conv, a.Seq); err != nil {
		return s.storeError(out, reqID, "ack", err)
	}
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleSync(ctx context.Context, user int64, reqID uint32, q *protocol.Sync, out []byte) []byte {
	if !s.member(user, q.Conv) {
		return appendError(out, reqID, protocol.CodeBadConv, "not a conversation of yours")
	}
	msgs, next, last, more, err := s.store.After(ctx, user, q.Conv, q.LastAckID, s.limit(q.Limit))
	if err != nil {
		return s.storeError(out, reqID, "sync", err)
	}
	if kept := fitReply(msgs); kept < len(msgs) {
		msgs, next, more = msgs[:kept], msgs[kept-1].Seq, true
	}
	return appendReply(out, protocol.TypeSyncResult, reqID, &protocol.SyncResult{
		Conv: q.Conv, Messages: nonNil(msgs), Next: next, LastSeq: last, HasMore: more,
	})
}

func (s *Server) handleHistory(ctx context.Context, user int64, reqID uint32, q *protocol.History, out []byte) []byte {
	if !s.member(user, q.Conv) {
		return appendError(out, reqID, protocol.CodeBadConv, "not a conversation of yours")
	}
	msgs, next, more, err := s.store.Before(ctx, user, q.Conv, q.BeforeSeq, s.limit(q.Limit))
	if err != nil {
		return s.storeError(out, reqID, "history", err)
	}
	if kept := fitReply(msgs); kept < len(msgs) {
		msgs, next, more = msgs[:kept], msgs[kept-1].Seq, true
	}
	return appendReply(out, protocol.TypeHistoryResult, reqID, &protocol.HistoryResult{
		Conv: q.Conv, Messages: nonNil(msgs), Next: next, HasMore: more,
	})
}

func (s *Server) handleDeleteHistory(ctx context.Context, user int64, reqID uint32, d *protocol.DeleteHistory, out []byte) []byte {
	if !s.member(user, d.Conv) {
		return appendError(out, reqID, protocol.CodeBadConv, "not a conversation of yours")
	}
	if len(d.Seqs) == 0 && d.UpTo == 0 {
		return appendError(out, reqID, protocol.CodeBadBody, "name seqs or up_to")
	}
	if len(d.Seqs) > s.cfg.MaxSyncLimit {
		return appendError(out, reqID, protocol.CodeBadBody, "too many seqs in one request")
	}
	if err := s.store.Hide(ctx, user, d.Conv, d.Seqs, d.UpTo); err != nil {
		return s.storeError(out, reqID, "delete history", err)
	}
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleConversations(ctx context.Context, user int64, reqID uint32, q *protocol.Conversations, out []byte) []byte {
	convs, err := s.store.Conversations(ctx, user, s.limit(q.Limit))
	if err != nil {
		return s.storeError(out, reqID, "conversations", err)
	}
	if convs == nil {
		convs = []protocol.Conversation{}
	}
	return appendReply(out, protocol.TypeConversationList, reqID, &protocol.ConversationList{Conversations: convs})
}

// maxReply bounds the frames the server sends; docs/protocol.md promises
// clients no frame above it.
const maxReply = 1 << 20

// fitReply returns how many of msgs fit in one reply frame (at least one:
// a message fits in a client frame, so it fits in a reply).
func fitReply(msgs []protocol.Message) int {
	const overhead = 160 // keys, ids and framing of one message, generously
	size := 256
	for i, m := range msgs {
		size += overhead + len(m.Body) + len(m.Conv) + len(m.ClientMsgID)
		if size > maxReply && i > 0 {
			return i
		}
	}
	return len(msgs)
}

// nonNil makes an empty result encode as an empty array, not nil.
func nonNil(m []protocol.Message) []protocol.Message {
	if m == nil {
		return []protocol.Message{}
	}
	return m
}
