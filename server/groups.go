package server

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

const (
	maxGroupName    = 64
	maxCachedGroups = 1 << 16
)

// memberCache keeps the member ids of recently used groups, so that a group
// Send and its fan-out cost no storage read. Every membership change made
// through this server invalidates its group before the change is answered.
//
// A load that overlaps an invalidation of any group is not cached: epoch
// counts invalidations, and a load stores its result only if none happened
// since it started.
type memberCache struct {
	store   storage.Groups
	changed func(group int64) // tells the other nodes; nil on a single node
	mu      sync.Mutex
	epoch   uint64
	m       map[int64][]int64 // group → member ids, ascending
}

func newMemberCache(store storage.Groups) *memberCache {
	return &memberCache{store: store, m: make(map[int64][]int64)}
}

// get returns the ids of a group's members, ascending; storage.ErrNotFound
// if the group does not exist. The slice must not be modified.
func (c *memberCache) get(ctx context.Context, group int64) ([]int64, error) {
	c.mu.Lock()
	ids, ok := c.m[group]
	epoch := c.epoch
	c.mu.Unlock()
	if ok {
		return ids, nil
	}
	ids, err := c.store.MemberIDs(ctx, group)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.epoch == epoch {
		if len(c.m) >= maxCachedGroups {
			clear(c.m)
		}
		c.m[group] = ids
	}
	c.mu.Unlock()
	return ids, nil
}

// invalidate drops a group's members here and, in a cluster, on every node
// (groupChanged).
func (c *memberCache) invalidate(group int64) {
	c.drop(group)
	if c.changed != nil {
		c.changed(group)
	}
}

func (c *memberCache) drop(group int64) {
	c.mu.Lock()
	delete(c.m, group)
	c.epoch++
	c.mu.Unlock()
}

// groupMember checks that user is a member of group: 0 if so, or the code
// to answer.
func (s *Server) groupMember(ctx context.Context, group, user int64) (protocol.Code, error) {
	ids, err := s.members.get(ctx, group)
	if errors.Is(err, storage.ErrNotFound) {
		return protocol.CodeNoSuchGroup, nil
	}
	if err != nil {
		return 0, err
	}
	if _, ok := slices.BinarySearch(ids, user); !ok {
		return protocol.CodeNotMember, nil
	}
	return 0, nil
}

// pushGroup sends a frame to every logged-in session of the users but skip.
func (s *Server) pushGroup(users []int64, frame []byte, skip *session) {
	s.route(users, frame, skip)
}

func groupEvent(e *protocol.GroupEvent) []byte {
	return protocol.MustFrame(protocol.TypeGroupEvent, 0, e)
}

func groupInfo(g storage.Group) protocol.GroupInfo {
	return protocol.GroupInfo{
		GroupID: g.ID, Name: g.Name, Owner: g.Owner, Open: g.Open,
		Members: g.Members, Created: g.Created.UnixMilli(),
	}
}

func validGroupName(name string) bool { return name != "" && len(name) <= maxGroupName }

// groupErr answers the storage errors group requests share.
func (s *Server) groupErr(out []byte, reqID uint32, op string, err error) []byte {
	switch {
	case errors.Is(err, storage.ErrGroupFull):
		return appendError(out, reqID, protocol.CodeGroupFull, "the group would pass its maximum size")
	case errors.Is(err, storage.ErrNotMember):
		return appendError(out, reqID, protocol.CodeNotMember, "not a member of the group")
	case errors.Is(err, storage.ErrAlreadyMember):
		return appendError(out, reqID, protocol.CodeAlreadyMember, "already a member")
	}
	return s.storeError(out, reqID, op, err)
}

func (s *Server) handleGroupCreate(ctx context.Context, ss *session, user int64, reqID uint32, q *protocol.GroupCreate, out []byte) []byte {
	if !validGroupName(q.Name) {
		return appendError(out, reqID, protocol.CodeBadGroupName, "a group name must be 1-64 bytes")
	}
	if len(q.Members) >= s.cfg.MaxGroupSize*2 {
		return appendError(out, reqID, protocol.CodeGroupFull, "too many members")
	}
	g, err := s.store.CreateGroup(ctx, user, q.Name, q.Open, q.Members, s.cfg.MaxGroupSize, time.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return appendError(out, reqID, protocol.CodeNoSuchUser, "a member is not a user")
	}
	if err != nil {
		return s.groupErr(out, reqID, "group create", err)
	}
	ids, err := s.members.get(ctx, g.ID)
	if err != nil {
		s.log.Warn("group event not sent", "group", g.ID, "err", err)
	} else {
		s.pushGroup(ids, groupEvent(&protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupJoined, Actor: user, Users: ids}), ss)
	}
	info := groupInfo(g)
	return appendReply(out, protocol.TypeGroupInfo, reqID, &info)
}

func (s *Server) handleGroupJoin(ctx context.Context, ss *session, user int64, reqID uint32, q *protocol.GroupJoin, out []byte) []byte {
	g, err := s.store.Group(ctx, q.GroupID)
	if errors.Is(err, storage.ErrNotFound) {
		return appendError(out, reqID, protocol.CodeNoSuchGroup, "no such group")
	}
	if err != nil {
		return s.storeError(out, reqID, "group join", err)
	}
	if !g.Open {
		return appendError(out, reqID, protocol.CodeGroupClosed, "the group is not open; ask a member for an invitation")
	}
	added, err := s.store.AddMembers(ctx, g.ID, []int64{user}, s.cfg.MaxGroupSize, time.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return appendError(out, reqID, protocol.CodeNoSuchGroup, "no such group")
	}
	if err != nil {
		return s.groupErr(out, reqID, "group join", err)
	}
	if len(added) == 0 {
		return appendError(out, reqID, protocol.CodeAlreadyMember, "already a member")
	}
	s.members.invalidate(g.ID)
	s.announce(ctx, g.ID, ss, &protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupJoined, Actor: user, Users: added})
	if g, err = s.store.Group(ctx, g.ID); err != nil {
		return s.storeError(out, reqID, "group join", err)
	}
	info := groupInfo(g)
	return appendReply(out, protocol.TypeGroupInfo, reqID, &info)
}

// announce pushes a group event to the group's current members but skip.
func (s *Server) announce(ctx context.Context, group int64, skip *session, e *protocol.GroupEvent) {
	ids, err := s.members.get(ctx, group)
	if err != nil {
		s.log.Warn("group event not sent", "group", group, "kind", e.Kind, "err", err)
		return
	}
	s.pushGroup(ids, groupEvent(e), skip)
}

func (s *Server) handleGroupInvite(ctx context.Context, ss *session, user int64, reqID uint32, q *protocol.GroupInvite, out []byte) []byte {
	if len(q.Users) == 0 {
		return appendError(out, reqID, protocol.CodeBadBody, "name the users to invite")
	}
	if len(q.Users) >= s.cfg.MaxGroupSize*2 {
		return appendError(out, reqID, protocol.CodeGroupFull, "too many users")
	}
	if code, err := s.groupMember(ctx, q.GroupID, user); err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "group invite", err)
	}
	added, err := s.store.AddMembers(ctx, q.GroupID, q.Users, s.cfg.MaxGroupSize, time.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return appendError(out, reqID, protocol.CodeNoSuchUser, "an invited id is not a user")
	}
	if err != nil {
		return s.groupErr(out, reqID, "group invite", err)
	}
	if len(added) > 0 {
		s.members.invalidate(q.GroupID)
		s.announce(ctx, q.GroupID, ss, &protocol.GroupEvent{GroupID: q.GroupID, Kind: protocol.GroupJoined, Actor: user, Users: added})
	}
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleGroupLeave(ctx context.Context, ss *session, user int64, reqID uint32, q *protocol.GroupLeave, out []byte) []byte {
	g, code, err := s.groupOf(ctx, q.GroupID, user)
	if err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "group leave", err)
	}
	if g.Owner == user {
		return appendError(out, reqID, protocol.CodeOwnerCannotLeave, "the owner must transfer the group or disband it")
	}
	if err := s.store.RemoveMember(ctx, g.ID, user); err != nil {
		return s.groupErr(out, reqID, "group leave", err)
	}
	s.members.invalidate(g.ID)
	e := &protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupLeft, Actor: user, Users: []int64{user}}
	s.announce(ctx, g.ID, ss, e)
	s.pushUser(user, groupEvent(e), ss)
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

// groupOf loads a group that user is a member of: the group, or the code
// to answer.
func (s *Server) groupOf(ctx context.Context, group, user int64) (storage.Group, protocol.Code, error) {
	g, err := s.store.Group(ctx, group)
	if errors.Is(err, storage.ErrNotFound) {
		return g, protocol.CodeNoSuchGroup, nil
	}
	if err != nil {
		return g, 0, err
	}
	code, err := s.groupMember(ctx, group, user)
	return g, code, err
}

// owned loads a group that user owns: the group, or the code to answer.
func (s *Server) owned(ctx context.Context, group, user int64) (storage.Group, protocol.Code, error) {
	g, code, err := s.groupOf(ctx, group, user)
	if err == nil && code == 0 && g.Owner != user {
		code = protocol.CodeNotOwner
	}
	return g, code, err
}

// codeOr answers a failed check: its code, or the storage error.
func (s *Server) codeOr(out []byte, reqID uint32, code protocol.Code, op string, err error) []byte {
	if err != nil {
		return s.storeError(out, reqID, op, err)
	}
	var msg string
	switch code {
	case protocol.CodeNoSuchGroup:
		msg = "no such group"
	case protocol.CodeNotMember:
		msg = "not a member of the group"
	case protocol.CodeNotOwner:
		msg = "only the group's owner may do this"
	case protocol.CodeNotFriends:
		msg = "only friends may message each other"
	case protocol.CodeBadConv:
		msg = "not a conversation of yours"
	}
	return appendError(out, reqID, code, msg)
}

func (s *Server) handleGroupRename(ctx context.Context, ss *session, user int64, reqID uint32, q *protocol.GroupRename, out []byte) []byte {
	if !validGroupName(q.Name) {
		return appendError(out, reqID, protocol.CodeBadGroupName, "a group name must be 1-64 bytes")
	}
	g, code, err := s.owned(ctx, q.GroupID, user)
	if err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "group rename", err)
	}
	if err := s.store.RenameGroup(ctx, g.ID, q.Name); err != nil {
		return s.groupErr(out, reqID, "group rename", err)
	}
	s.announce(ctx, g.ID, ss, &protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupRenamed, Actor: user, Name: q.Name})
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleGroupRemove(ctx context.Context, ss *session, user int64, reqID uint32, q *protocol.GroupRemove, out []byte) []byte {
	g, code, err := s.owned(ctx, q.GroupID, user)
	if err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "group remove", err)
	}
	if q.UserID == user {
		return appendError(out, reqID, protocol.CodeOwnerCannotLeave, "the owner must transfer the group or disband it")
	}
	if err := s.store.RemoveMember(ctx, g.ID, q.UserID); err != nil {
		return s.groupErr(out, reqID, "group remove", err)
	}
	s.members.invalidate(g.ID)
	e := &protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupRemoved, Actor: user, Users: []int64{q.UserID}}
	s.announce(ctx, g.ID, ss, e)
	s.pushUser(q.UserID, groupEvent(e), nil)
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleGroupTransfer(ctx context.Context, ss *session, user int64, reqID uint32, q *protocol.GroupTransfer, out []byte) []byte {
	g, code, err := s.owned(ctx, q.GroupID, user)
	if err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "group transfer", err)
	}
	if q.UserID == user {
		return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
	}
	if err := s.store.SetGroupOwner(ctx, g.ID, q.UserID); err != nil {
		return s.groupErr(out, reqID, "group transfer", err)
	}
	s.announce(ctx, g.ID, ss, &protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupOwner, Actor: user, Users: []int64{q.UserID}})
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleGroupDisband(ctx context.Context, ss *session, user int64, reqID uint32, q *protocol.GroupDisband, out []byte) []byte {
	g, code, err := s.owned(ctx, q.GroupID, user)
	if err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "group disband", err)
	}
	former, err := s.members.get(ctx, g.ID)
	if err != nil {
		return s.storeError(out, reqID, "group disband", err)
	}
	if err := s.store.DeleteGroup(ctx, g.ID); err != nil {
		return s.storeError(out, reqID, "group disband", err)
	}
	s.members.invalidate(g.ID)
	s.pushGroup(former, groupEvent(&protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupDisbanded, Actor: user}), ss)
	return appendReply(out, protocol.TypeOK, reqID, &protocol.OK{})
}

func (s *Server) handleGroups(ctx context.Context, user int64, reqID uint32, out []byte) []byte {
	groups, err := s.store.GroupsOf(ctx, user)
	if err != nil {
		return s.storeError(out, reqID, "groups", err)
	}
	res := protocol.GroupList{Groups: make([]protocol.GroupInfo, len(groups))}
	for i, g := range groups {
		res.Groups[i] = groupInfo(g)
	}
	return appendReply(out, protocol.TypeGroupList, reqID, &res)
}

func (s *Server) handleGroupMembers(ctx context.Context, user int64, reqID uint32, q *protocol.GroupMembers, out []byte) []byte {
	g, code, err := s.groupOf(ctx, q.GroupID, user)
	if err != nil || code != 0 {
		return s.codeOr(out, reqID, code, "group members", err)
	}
	members, err := s.store.Members(ctx, g.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return appendError(out, reqID, protocol.CodeNoSuchGroup, "no such group")
	}
	if err != nil {
		return s.storeError(out, reqID, "group members", err)
	}
	res := protocol.MemberList{GroupID: g.ID, Members: make([]protocol.Member, len(members))}
	ps := make([]storage.Profile, len(members))
	for i, m := range members {
		ps[i] = m.Profile
	}
	on := s.whoIsOnline(ctx, ps...)
	for i, m := range members {
		res.Members[i] = protocol.Member{UserInfo: s.userInfo(m.Profile, on), Owner: m.ID == g.Owner, Joined: m.Joined.UnixMilli()}
	}
	return appendReply(out, protocol.TypeMemberList, reqID, &res)
}
