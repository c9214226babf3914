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

func (s *Server) handleUserSearch(c *call, q *protocol.UserSearch) (any, error) {
	ctx := c.ctx
	if q.Prefix == "" || len(q.Prefix) > maxSearchPrefix {
		return nil, refuse(protocol.CodeBadBody, "prefix must be 1-32 bytes")
	}
	limit := defaultSearch
	if q.Limit > 0 {
		limit = min(int(q.Limit), maxSearch)
	}
	found, err := s.store.SearchUsers(ctx, q.Prefix, q.After, limit)
	if err != nil {
		return nil, err
	}
	res := protocol.UserList{Users: make([]protocol.UserInfo, len(found))}
	on := s.whoIsOnline(ctx, found...)
	for i, p := range found {
		res.Users[i] = s.userInfo(p, on)
	}
	if len(found) == limit {
		res.Next = found[len(found)-1].Username
	}
	return &res, nil
}

func (s *Server) handleProfileGet(c *call, q *protocol.ProfileGet) (any, error) {
	ctx, user := c.ctx, c.user
	id := q.UserID
	if id == 0 {
		id = user
	}
	p, err := s.store.Profile(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, refuse(protocol.CodeNoSuchUser, "no such user")
	}
	if err != nil {
		return nil, err
	}
	info := s.userInfo(p, s.whoIsOnline(ctx, p))
	return &info, nil
}

func (s *Server) handleProfileUpdate(c *call, q *protocol.ProfileUpdate) (any, error) {
	ctx, user := c.ctx, c.user
	if len(q.DisplayName) > maxDisplayName || len(q.AvatarURL) > maxAvatarURL {
		return nil, refuse(protocol.CodeBadProfile, "display name above 64 bytes or avatar URL above 512")
	}
	p, err := s.store.SetProfile(ctx, user, q.DisplayName, q.AvatarURL)
	if err != nil {
		return nil, err
	}
	info := s.userInfo(p, nil)
	return &info, nil
}

func (s *Server) handleFriendRequest(c *call, q *protocol.FriendRequest) (any, error) {
	ctx, user := c.ctx, c.user
	switch {
	case q.To == user:
		return nil, refuse(protocol.CodeSelfFriend, "cannot befriend yourself")
	case len(q.Note) > maxFriendNote:
		return nil, refuse(protocol.CodeBadBody, "note above 256 bytes")
	}
	mutual, err := s.store.RequestFriend(ctx, user, q.To, q.Note, time.Now())
	if mutual || err != nil && !isDomainErr(err) {
		s.friendsChanged(user, q.To) // they may have become friends
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, refuse(protocol.CodeNoSuchUser, "no such user")
	case errors.Is(err, storage.ErrAlreadyFriends):
		return nil, refuse(protocol.CodeAlreadyFriends, "already friends")
	case errors.Is(err, storage.ErrRequestExists):
		return nil, refuse(protocol.CodeRequestExists, "a request to this user is pending")
	case err != nil:
		return nil, err
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
	return &protocol.OK{}, nil
}

func (s *Server) handleFriendRequests(c *call, q *protocol.FriendRequests) (any, error) {
	ctx, user := c.ctx, c.user
	in, outgoing, err := s.store.FriendRequests(ctx, user)
	if err != nil {
		return nil, err
	}
	// One page: the same stretch of each list (newest first), as long as
	// each fits in half a reply. Strangers may send requests, so the
	// incoming list is as long as they make it.
	in, outgoing = skip(in, q.Offset), skip(outgoing, q.Offset)
	size := func(reqs []storage.FriendRequest) func(int) int {
		return func(i int) int {
			return 64 + len(reqs[i].Note) + profileSize(&reqs[i].From) + profileSize(&reqs[i].To)
		}
	}
	k := max(len(in), len(outgoing))
	if len(in) > 0 {
		k = min(k, fitCount(len(in), maxReply/2, size(in)))
	}
	if len(outgoing) > 0 {
		k = min(k, fitCount(len(outgoing), maxReply/2, size(outgoing)))
	}
	more := len(in) > k || len(outgoing) > k
	return &protocol.FriendRequestList{
		Incoming: s.pending(ctx, in[:min(k, len(in))]), Outgoing: s.pending(ctx, outgoing[:min(k, len(outgoing))]),
		HasMore: more,
	}, nil
}

// skip returns list past its first offset elements.
func skip[T any](list []T, offset uint32) []T {
	if uint64(offset) >= uint64(len(list)) {
		return nil
	}
	return list[offset:]
}

// fitCount returns how many of n entries, the ith taking at most size(i)
// bytes encoded, fit in budget bytes of a reply (at least one, which is
// always small enough).
func fitCount(n, budget int, size func(i int) int) int {
	used := 256
	for i := range n {
		used += size(i)
		if used > budget && i > 0 {
			return i
		}
	}
	return n
}

// profileSize is at least what a profile takes encoded as a UserInfo.
func profileSize(p *storage.Profile) int {
	return 96 + len(p.Username) + len(p.DisplayName) + len(p.AvatarURL)
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

func (s *Server) handleFriendAnswer(c *call, q *protocol.FriendAnswer) (any, error) {
	ctx, user := c.ctx, c.user
	err := s.store.AnswerFriend(ctx, q.From, user, q.Accept, time.Now())
	if q.Accept && !errors.Is(err, storage.ErrNotFound) {
		s.friendsChanged(q.From, user) // they may have become friends
	}
	if errors.Is(err, storage.ErrNotFound) {
		return nil, refuse(protocol.CodeNoSuchRequest, "no pending request from this user")
	}
	if err != nil {
		return nil, err
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
	return &protocol.OK{}, nil
}

func (s *Server) handleFriendDelete(c *call, q *protocol.FriendDelete) (any, error) {
	ctx, user := c.ctx, c.user
	err := s.store.Unfriend(ctx, user, q.UserID)
	if !errors.Is(err, storage.ErrNotFriends) {
		s.friendsChanged(user, q.UserID) // they may no longer be friends
	}
	if errors.Is(err, storage.ErrNotFriends) {
		return nil, refuse(protocol.CodeNotAFriend, "not friends")
	}
	if err != nil {
		return nil, err
	}
	if me, err := s.store.Profile(ctx, user); err == nil {
		s.pushUser(q.UserID, friendEvent(protocol.FriendRemoved, s.userInfo(me, nil), ""), nil)
	} else {
		s.log.Warn("friend event not sent", "err", err)
	}
	return &protocol.OK{}, nil
}

func (s *Server) handleFriends(c *call, q *protocol.Friends) (any, error) {
	ctx, user := c.ctx, c.user
	friends, err := s.store.FriendsOf(ctx, user)
	if err != nil {
		return nil, err
	}
	friends = skip(friends, q.Offset)
	n := fitCount(len(friends), maxReply, func(i int) int { return profileSize(&friends[i]) })
	more := n < len(friends)
	friends = friends[:n]
	res := protocol.FriendList{Friends: make([]protocol.UserInfo, len(friends)), HasMore: more}
	on := s.whoIsOnline(ctx, friends...)
	for i, p := range friends {
		res.Friends[i] = s.userInfo(p, on)
	}
	return &res, nil
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

// mayMessage applies the direct-message policy: nil when user may send to
// peer, or the refusal.
func (s *Server) mayMessage(ctx context.Context, user, peer int64) error {
	if s.cfg.DMPolicy == DMAnyone {
		return nil
	}
	ok, err := s.friends.friends(ctx, user, peer)
	if err != nil || ok {
		return err
	}
	return refuseCode(protocol.CodeNotFriends)
}

// isDomainErr reports whether err is one of the store's answers that say
// nothing was changed (as opposed to a failure, after which the change may
// or may not have happened).
func isDomainErr(err error) bool {
	return errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrAlreadyFriends) ||
		errors.Is(err, storage.ErrRequestExists) || errors.Is(err, storage.ErrNotFriends)
}
