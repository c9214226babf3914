package server

import (
	"context"
	"errors"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Limits of the social frames (docs/protocol.md, "Limits").
const (
	maxDisplayName  = 64
	maxAvatarURL    = 512
	maxFriendNote   = 256
	maxSearchPrefix = 32 // a username is at most 32 bytes
	defaultSearch   = 20
	maxSearch       = 100
)

// userInfo is the wire form of a profile. online comes from on (see
// whoIsOnline) or, for users not in it, from this node's sessions.
func (s *Server) userInfo(p storage.Profile, on map[int64]bool) protocol.UserInfo {
	return protocol.UserInfo{
		UserID:      p.ID,
		Username:    p.Username,
		DisplayName: p.DisplayName,
		AvatarURL:   p.AvatarURL,
		Online:      on[p.ID] || s.hub.online(p.ID),
	}
}

// whoIsOnline asks the presence directory which of the profiles' users are
// online on any node. When it cannot answer, only this node's sessions
// count.
func (s *Server) whoIsOnline(ctx context.Context, ps ...storage.Profile) map[int64]bool {
	ids := make([]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	nodes, err := s.dir.Nodes(ctx, ids)
	if err != nil {
		s.log.Warn("presence directory unavailable", "err", err)
		return nil
	}
	on := make(map[int64]bool, len(nodes))
	for u := range nodes {
		on[u] = true
	}
	return on
}

// pushUser sends a frame to every logged-in session of user but skip, on
// this node and, in a cluster, on the node that owns the user.
func (s *Server) pushUser(user int64, frame []byte, skip *session) {
	s.route([]int64{user}, frame, skip)
}

// pushLocal sends a frame to the sessions of user on this node but skip.
func (s *Server) pushLocal(user int64, frame []byte, skip *session) {
	var buf [8]*session
	for _, ss := range s.hub.sessionsOf(buf[:0], user) {
		if ss != skip {
			ss.write(frame)
		}
	}
}

func (s *Server) handleUserSearch(ctx context.Context, reqID uint32, q *protocol.UserSearch, out []byte) []byte {
	if q.Prefix == "" || len(q.Prefix) > maxSearchPrefix {
		return appendError(out, reqID, protocol.CodeBadBody, "prefix must be 1-32 bytes")
	}
	limit := defaultSearch
	if q.Limit > 0 {
		limit = min(int(q.Limit), maxSearch)
	}
	found, err := s.store.SearchUsers(ctx, q.Prefix, q.After, limit)
	if err != nil {
		return s.storeError(out, reqID, "user search", err)
	}
	res := protocol.UserList{Users: make([]protocol.UserInfo, len(found))}
	on := s.whoIsOnline(ctx, found...)
	for i, p := range found {
		res.Users[i] = s.userInfo(p, on)
	}
	if len(found) == limit {
		res.Next = found[len(found)-1].Username
	}
	return appendReply(out, protocol.TypeUserList, reqID, &res)
}

func (s *Server) handleProfileGet(ctx context.Context, user int64, reqID uint32, q *protocol.ProfileGet, out []byte) []byte {
	id := q.UserID
	if id == 0 {
		id = user
	}
	p, err := s.store.Profile(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return appendError(out, reqID, protocol.CodeNoSuchUser, "no such user")
	}
	if err != nil {
		return s.storeError(out, reqID, "profile", err)
	}
	info := s.userInfo(p, s.whoIsOnline(ctx, p))
	return appendReply(out, protocol.TypeUserInfo, reqID, &info)
}

func (s *Server) handleProfileUpdate(ctx context.Context, user int64, reqID uint32, q *protocol.ProfileUpdate, out []byte) []byte {
	if len(q.DisplayName) > maxDisplayName || len(q.AvatarURL) > maxAvatarURL {
		return appendError(out, reqID, protocol.CodeBadProfile, "display name above 64 bytes or avatar URL above 512")
	}
	p, err := s.store.SetProfile(ctx, user, q.DisplayName, q.AvatarURL)
	if err != nil {
		return s.storeError(out, reqID, "profile update", err)
	}
	info := s.userInfo(p, nil)
	return appendReply(out, protocol.TypeUserInfo, reqID, &info)
}

func (s *Server) handleFriendRequest(ctx context.Context, ss *session, user int64, reqID uint32, q *protocol.FriendRequest, out []byte) []byte {
	switch {
	case q.To == user:
		return appendError(out, reqID, protocol.CodeSelfFriend, "cannot befriend yourself")
	case len(q.Note) > maxFriendNote:
		return appendError(out, reqID, protocol.CodeBadBody, "note above 256 bytes")
	}
	mutual, err := s.store.RequestFriend(ctx, user, q.To, q.Note, time.Now())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return appendError(out, reqID, protocol.CodeNoSuchUser, "no such user")
	case errors.Is(err, storage.ErrAlreadyFriends):
		return appendError(out, reqID, protocol.CodeAlreadyFriends, "already friends")
	case errors.Is(err, storage.ErrRequestExists):
		return appendError(out, reqID, protocol.CodeRequestExists, "a request to this user is pending")
	case err != nil:
		return s.storeError(out, reqID, "friend request", err)
	}
	me, other, err := s.profiles(ctx, user, q.To)
	if err != nil {
		s.log.Warn("friend event not sent", "err", err)
	} else if mutual {
		s.pushUser(q.To, friendEvent(protocol.FriendAccepted, s.userInfo(me, nil), ""), nil)
		s.pushUser(user, friendEvent(protocol.FriendAccepted, s.userInfo(other, nil), ""), nil)
	} else {
		s.pushUser(q.To, friendEvent(protocol.FriendRequested, s.userInfo(me, nil), q.Note), nil)
	}
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleFriendRequests(ctx context.Context, user int64, reqID uint32, out []byte) []byte {
	in, outgoing, err := s.store.FriendRequests(ctx, user)
	if err != nil {
		return s.storeError(out, reqID, "friend requests", err)
	}
	return appendReply(out, protocol.TypeFriendReqList, reqID, &protocol.FriendRequestList{
		Incoming: s.pending(ctx, in), Outgoing: s.pending(ctx, outgoing),
	})
}

func (s *Server) pending(ctx context.Context, reqs []storage.FriendRequest) []protocol.PendingRequest {
	res := make([]protocol.PendingRequest, len(reqs))
	ps := make([]storage.Profile, 0, 2*len(reqs))
	for _, r := range reqs {
		ps = append(ps, r.From, r.To)
	}
	on := s.whoIsOnline(ctx, ps...)
	for i, r := range reqs {
		res[i] = protocol.PendingRequest{
			From: s.userInfo(r.From, on), To: s.userInfo(r.To, on), Note: r.Note, Created: r.Created.UnixMilli(),
		}
	}
	return res
}

func (s *Server) handleFriendAnswer(ctx context.Context, user int64, reqID uint32, q *protocol.FriendAnswer, out []byte) []byte {
	err := s.store.AnswerFriend(ctx, q.From, user, q.Accept, time.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return appendError(out, reqID, protocol.CodeNoSuchRequest, "no pending request from this user")
	}
	if err != nil {
		return s.storeError(out, reqID, "friend answer", err)
	}
	kind := protocol.FriendDeclined
	if q.Accept {
		kind = protocol.FriendAccepted
	}
	if me, err := s.store.Profile(ctx, user); err == nil {
		s.pushUser(q.From, friendEvent(kind, s.userInfo(me, nil), ""), nil)
	} else {
		s.log.Warn("friend event not sent", "err", err)
	}
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleFriendDelete(ctx context.Context, user int64, reqID uint32, q *protocol.FriendDelete, out []byte) []byte {
	err := s.store.Unfriend(ctx, user, q.UserID)
	if errors.Is(err, storage.ErrNotFriends) {
		return appendError(out, reqID, protocol.CodeNotAFriend, "not friends")
	}
	if err != nil {
		return s.storeError(out, reqID, "friend delete", err)
	}
	if me, err := s.store.Profile(ctx, user); err == nil {
		s.pushUser(q.UserID, friendEvent(protocol.FriendRemoved, s.userInfo(me, nil), ""), nil)
	} else {
		s.log.Warn("friend event not sent", "err", err)
	}
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleFriends(ctx context.Context, user int64, reqID uint32, out []byte) []byte {
	friends, err := s.store.FriendsOf(ctx, user)
	if err != nil {
		return s.storeError(out, reqID, "friends", err)
	}
	res := protocol.FriendList{Friends: make([]protocol.UserInfo, len(friends))}
	on := s.whoIsOnline(ctx, friends...)
	for i, p := range friends {
		res.Friends[i] = s.userInfo(p, on)
	}
	return appendReply(out, protocol.TypeFriendList, reqID, &res)
}

// profiles loads two profiles.
func (s *Server) profiles(ctx context.Context, a, b int64) (pa, pb storage.Profile, err error) {
	if pa, err = s.store.Profile(ctx, a); err != nil {
		return pa, pb, err
	}
	pb, err = s.store.Profile(ctx, b)
	return pa, pb, err
}

func friendEvent(kind string, user protocol.UserInfo, note string) []byte {
	return protocol.MustFrame(protocol.TypeFriendEvent, 0, &protocol.FriendEvent{Kind: kind, User: user, Note: note})
}

// mayMessage applies the direct-message policy: it returns 0 when user may
// send to peer, or the error code.
func (s *Server) mayMessage(ctx context.Context, user, peer int64) (protocol.Code, error) {
	if s.cfg.DMPolicy == DMAnyone {
		return 0, nil
	}
	ok, err := s.store.AreFriends(ctx, user, peer)
	if err != nil || ok {
		return 0, err
	}
	return protocol.CodeNotFriends, nil
}
