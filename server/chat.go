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
	case m.To == user:
		return appendError(out, reqID, protocol.CodeSelfMessage, "cannot message yourself")
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
		if code, err := s.groupMember(ctx, m.GroupID, user); err != nil || code != 0 {
			return s.codeOr(out, reqID, code, "send", err)
		}
		msg.Conv, msg.GroupID = protocol.GroupConv(m.GroupID), m.GroupID
	} else {
		if _, err := s.store.UserByID(ctx, m.To); errors.Is(err, storage.ErrNotFound) {
			return appendError(out, reqID, protocol.CodeNoSuchUser, "no such user")
		} else if err != nil {
			return s.storeError(out, reqID, "send", err)
		}
		if code, err := s.mayMessage(ctx, user, m.To); err != nil || code != 0 {
			return s.codeOr(out, reqID, code, "send", err)
		}
		msg.Conv, msg.To = protocol.DirectConv(user, m.To), m.To
	}
	s.delivery.origin(msg.MsgID, ss)
	stored, dup, err := s.store.Append(ctx, &msg)
	if err != nil || dup {
		s.delivery.forget(msg.MsgID)
	}
	if err != nil {
		return s.storeError(out, reqID, "send", err)
	}
	if !dup {
		s.stats.messages.Add(1)
	}
	return appendReply(out, protocol.TypeSendAck, reqID, &protocol.SendAck{
		MsgID:      stored.MsgID,
		Conv:       stored.Conv,
		Seq:        stored.Seq,
		ServerTime: stored.ServerTime,
		Duplicate:  dup,
	})
}

// member checks that user may read conv: 0 if so, or the code to answer.
func (s *Server) member(ctx context.Context, user int64, conv string) (protocol.Code, error) {
	p, ok := protocol.ParseConv(conv)
	switch {
	case !ok:
		return protocol.CodeBadConv, nil
	case p.Kind == protocol.ConvGroup:
		return s.groupMember(ctx, p.Group, user)
	case !p.Has(user):
		return protocol.CodeBadConv, nil
	}
	return 0, nil
}

func (s *Server) handleAck(ctx context.Context, user int64, reqID uint32, a *protocol.Ack, out []byte) []byte {
	if code, err := s.member(ctx, user, a.Conv); err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "read", err)
	}
	if err := s.store.Ack(ctx, user, a.Conv, a.Seq); err != nil {
		return s.storeError(out, reqID, "ack", err)
	}
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleSync(ctx context.Context, user int64, reqID uint32, q *protocol.Sync, out []byte) []byte {
	if code, err := s.member(ctx, user, q.Conv); err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "read", err)
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
	if code, err := s.member(ctx, user, q.Conv); err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "read", err)
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
	if code, err := s.member(ctx, user, d.Conv); err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "read", err)
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
