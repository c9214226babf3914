package server

import (
	"context"
	"errors"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// drain is the worker half of the pipeline: it handles a session's queued
// frames in order and writes their replies in one batch.
func (s *Server) drain(ss *session, frames []inbound) {
	var out []byte
	for _, f := range frames {
		out = s.dispatch(ss, f, out)
	}
	ss.write(out)
}

// dispatch re-checks the auth gate in the connection's order and runs the
// frame type's handler, appending its reply to out.
func (s *Server) dispatch(ss *session, f inbound, out []byte) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	authed := ss.state.Load() == stateAuthed
	switch b := f.body.(type) {
	case *protocol.Register:
		if authed {
			return appendError(out, f.reqID, protocol.CodeAlreadyLogged, "already logged in")
		}
		return s.handleRegister(ctx, ss, f.reqID, b, out)
	case *protocol.Login:
		if authed {
			return appendError(out, f.reqID, protocol.CodeAlreadyLogged, "already logged in")
		}
		return s.handleLogin(ctx, ss, f.reqID, b, out)
	}
	if !authed {
		return appendError(out, f.reqID, protocol.CodeNotLoggedIn, f.typ.String()+" needs a login")
	}
	user := ss.user.Load()
	switch b := f.body.(type) {
	case *protocol.Logout:
		return s.handleLogout(ctx, ss, f.reqID, out)
	case *protocol.Send:
		return s.handleSend(ctx, ss, user, f.reqID, b, out)
	case *protocol.Ack:
		return s.handleAck(ctx, user, f.reqID, b, out)
	case *protocol.Sync:
		return s.handleSync(ctx, user, f.reqID, b, out)
	case *protocol.History:
		return s.handleHistory(ctx, user, f.reqID, b, out)
	case *protocol.DeleteHistory:
		return s.handleDeleteHistory(ctx, user, f.reqID, b, out)
	case *protocol.Conversations:
		return s.handleConversations(ctx, user, f.reqID, b, out)

	case *protocol.UserSearch:
		return s.handleUserSearch(ctx, f.reqID, b, out)
	case *protocol.ProfileGet:
		return s.handleProfileGet(ctx, user, f.reqID, b, out)
	case *protocol.ProfileUpdate:
		return s.handleProfileUpdate(ctx, user, f.reqID, b, out)
	case *protocol.FriendRequest:
		return s.handleFriendRequest(ctx, ss, user, f.reqID, b, out)
	case *protocol.FriendRequests:
		return s.handleFriendRequests(ctx, user, f.reqID, out)
	case *protocol.FriendAnswer:
		return s.handleFriendAnswer(ctx, user, f.reqID, b, out)
	case *protocol.FriendDelete:
		return s.handleFriendDelete(ctx, user, f.reqID, b, out)
	case *protocol.Friends:
		return s.handleFriends(ctx, user, f.reqID, out)

	case *protocol.GroupCreate:
		return s.handleGroupCreate(ctx, ss, user, f.reqID, b, out)
	case *protocol.GroupJoin:
		return s.handleGroupJoin(ctx, ss, user, f.reqID, b, out)
	case *protocol.GroupInvite:
		return s.handleGroupInvite(ctx, ss, user, f.reqID, b, out)
	case *protocol.GroupLeave:
		return s.handleGroupLeave(ctx, ss, user, f.reqID, b, out)
	case *protocol.GroupRename:
		return s.handleGroupRename(ctx, ss, user, f.reqID, b, out)
	case *protocol.GroupRemove:
		return s.handleGroupRemove(ctx, ss, user, f.reqID, b, out)
	case *protocol.GroupTransfer:
		return s.handleGroupTransfer(ctx, ss, user, f.reqID, b, out)
	case *protocol.GroupDisband:
		return s.handleGroupDisband(ctx, ss, user, f.reqID, b, out)
	case *protocol.Groups:
		return s.handleGroups(ctx, user, f.reqID, out)
	case *protocol.GroupMembers:
		return s.handleGroupMembers(ctx, user, f.reqID, b, out)
	}
	return appendError(out, f.reqID, protocol.CodeUnknownType, "no handler for "+f.typ.String())
}

// storeError answers a storage failure the handler did not expect: the
// service is down or slow, and nothing was done.
func (s *Server) storeError(out []byte, reqID uint32, op string, err error) []byte {
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("storage timeout", "op", op, "err", err)
		return appendError(out, reqID, protocol.CodeTimeout, op+" timed out; retry")
	}
	if errors.Is(err, storage.ErrClosed) {
		return appendError(out, reqID, protocol.CodeShutdown, "server shutting down")
	}
	s.log.Error("storage failure", "op", op, "err", err)
	return appendError(out, reqID, protocol.CodeUnavailable, "storage unavailable; retry")
}

// limit clamps a client's page size.
func (s *Server) limit(n uint32) int {
	switch {
	case n == 0:
		return s.cfg.SyncLimit
	case int(n) > s.cfg.MaxSyncLimit:
		return s.cfg.MaxSyncLimit
	}
	return int(n)
}
