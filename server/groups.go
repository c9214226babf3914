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

// dropAll forgets every group's members.
func (c *memberCache) dropAll() {
	c.mu.Lock()
	clear(c.m)
	c.epoch++
	c.mu.Unlock()
}

func (c *memberCache) drop(group int64) {
	c.mu.Lock()
	delete(c.m, group)
	c.epoch++
	c.mu.Unlock()
}

// groupMember checks that user is a member of group: nil if so, or the
// refusal (NO_SUCH_GROUP, NOT_MEMBER).
func (s *Server) groupMember(ctx context.Context, group, user int64) error {
	ids, err := s.members.get(ctx, group)
	if errors.Is(err, storage.ErrNotFound) {
		return refuseCode(protocol.CodeNoSuchGroup)
	}
	if err != nil {
		return err
	}
	if _, ok := slices.BinarySearch(ids, user); !ok {
		return refuseCode(protocol.CodeNotMember)
	}
	return nil
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

// mayAdd is the consent rule of groups: under the friends-only direct
// message policy a user may put only friends in a group (GroupCreate,
// GroupInvite), so that nobody can be messaged in a group by someone they
// never accepted; anyone may still join an open group by themselves.
// Under DMAnyone anyone may be added.
func (s *Server) mayAdd(ctx context.Context, user int64, ids []int64) error {
	if s.cfg.DMPolicy == DMAnyone {
		return nil
	}
	for _, id := range ids {
		if id == user {
			continue
		}
		ok, err := s.friends.friends(ctx, user, id)
		if err != nil {
			return err
		}
		if !ok {
			return refuse(protocol.CodeNotFriends, "only friends may be added to a group (dm policy friends)")
		}
	}
	return nil
}

func (s *Server) handleGroupCreate(c *call, q *protocol.GroupCreate) (any, error) {
	ctx, user, ss := c.ctx, c.user, c.ss
	if !validGroupName(q.Name) {
		return nil, refuse(protocol.CodeBadGroupName, badGroupName)
	}
	if len(q.Members) >= s.cfg.MaxGroupSize*2 {
		return nil, refuse(protocol.CodeGroupFull, "too many members")
	}
	if err := s.mayAdd(ctx, user, q.Members); err != nil {
		return nil, err
	}
	g, err := s.store.CreateGroup(ctx, user, q.Name, q.Open, q.Members, s.cfg.MaxGroupSize, time.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, refuse(protocol.CodeNoSuchUser, "a member is not a user")
	}
	if err != nil {
		return nil, err
	}
	ids, err := s.members.get(ctx, g.ID)
	if err != nil {
		s.log.Warn("group event not sent", "group", g.ID, "err", err)
	} else {
		s.pushGroup(ids, groupEvent(&protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupJoined, Actor: user, Users: ids}), ss)
	}
	info := groupInfo(g)
	return &info, nil
}

func (s *Server) handleGroupJoin(c *call, q *protocol.GroupJoin) (any, error) {
	ctx, user, ss := c.ctx, c.user, c.ss
	g, err := s.store.Group(ctx, q.GroupID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, refuse(protocol.CodeNoSuchGroup, "no such group")
	}
	if err != nil {
		return nil, err
	}
	if !g.Open {
		return nil, refuse(protocol.CodeGroupClosed, "the group is not open; ask a member for an invitation")
	}
	added, err := s.store.AddMembers(ctx, g.ID, []int64{user}, s.cfg.MaxGroupSize, time.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, refuse(protocol.CodeNoSuchGroup, "no such group")
	}
	if err != nil {
		return nil, err
	}
	if len(added) == 0 {
		return nil, refuse(protocol.CodeAlreadyMember, "already a member")
	}
	s.members.invalidate(g.ID)
	s.announce(ctx, g.ID, ss, &protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupJoined, Actor: user, Users: added})
	if g, err = s.store.Group(ctx, g.ID); err != nil {
		return nil, err
	}
	info := groupInfo(g)
	return &info, nil
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

func (s *Server) handleGroupInvite(c *call, q *protocol.GroupInvite) (any, error) {
	ctx, user, ss := c.ctx, c.user, c.ss
	if len(q.Users) == 0 {
		return nil, refuse(protocol.CodeBadBody, "name the users to invite")
	}
	if len(q.Users) >= s.cfg.MaxGroupSize*2 {
		return nil, refuse(protocol.CodeGroupFull, "too many users")
	}
	if err := s.groupMember(ctx, q.GroupID, user); err != nil {
		return nil, err
	}
	if err := s.mayAdd(ctx, user, q.Users); err != nil {
		return nil, err
	}
	added, err := s.store.AddMembers(ctx, q.GroupID, q.Users, s.cfg.MaxGroupSize, time.Now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, refuse(protocol.CodeNoSuchUser, "an invited id is not a user")
	}
	if err != nil {
		return nil, err
	}
	if len(added) > 0 {
		s.members.invalidate(q.GroupID)
		s.announce(ctx, q.GroupID, ss, &protocol.GroupEvent{GroupID: q.GroupID, Kind: protocol.GroupJoined, Actor: user, Users: added})
	}
	return &protocol.OK{}, nil
}

func (s *Server) handleGroupLeave(c *call, q *protocol.GroupLeave) (any, error) {
	ctx, user, ss := c.ctx, c.user, c.ss
	g, err := s.groupOf(ctx, q.GroupID, user)
	if err != nil {
		return nil, err
	}
	if g.Owner == user {
		return nil, refuse(protocol.CodeOwnerCannotLeave, "the owner must transfer the group or disband it")
	}
	if err := s.store.RemoveMember(ctx, g.ID, user); err != nil {
		return nil, err
	}
	s.members.invalidate(g.ID)
	e := &protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupLeft, Actor: user, Users: []int64{user}}
	s.announce(ctx, g.ID, ss, e)
	s.pushUser(user, groupEvent(e), ss)
	return &protocol.OK{}, nil
}

// groupOf loads a group that user is a member of: the group, or the
// refusal.
func (s *Server) groupOf(ctx context.Context, group, user int64) (storage.Group, error) {
	g, err := s.store.Group(ctx, group)
	if errors.Is(err, storage.ErrNotFound) {
		return g, refuseCode(protocol.CodeNoSuchGroup)
	}
	if err != nil {
		return g, err
	}
	return g, s.groupMember(ctx, group, user)
}

// owned loads a group that user owns: the group, or the refusal.
func (s *Server) owned(ctx context.Context, group, user int64) (storage.Group, error) {
	g, err := s.groupOf(ctx, group, user)
	if err == nil && g.Owner != user {
		err = refuseCode(protocol.CodeNotOwner)
	}
	return g, err
}

func (s *Server) handleGroupRename(c *call, q *protocol.GroupRename) (any, error) {
	ctx, user, ss := c.ctx, c.user, c.ss
	if !validGroupName(q.Name) {
		return nil, refuse(protocol.CodeBadGroupName, badGroupName)
	}
	g, err := s.owned(ctx, q.GroupID, user)
	if err != nil {
		return nil, err
	}
	if err := s.store.RenameGroup(ctx, g.ID, q.Name); err != nil {
		return nil, err
	}
	s.announce(ctx, g.ID, ss, &protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupRenamed, Actor: user, Name: q.Name})
	return &protocol.OK{}, nil
}

func (s *Server) handleGroupRemove(c *call, q *protocol.GroupRemove) (any, error) {
	ctx, user, ss := c.ctx, c.user, c.ss
	g, err := s.owned(ctx, q.GroupID, user)
	if err != nil {
		return nil, err
	}
	if q.UserID == user {
		return nil, refuse(protocol.CodeOwnerCannotLeave, "the owner must transfer the group or disband it")
	}
	if err := s.store.RemoveMember(ctx, g.ID, q.UserID); err != nil {
		return nil, err
	}
	s.members.invalidate(g.ID)
	e := &protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupRemoved, Actor: user, Users: []int64{q.UserID}}
	s.announce(ctx, g.ID, ss, e)
	s.pushUser(q.UserID, groupEvent(e), nil)
	return &protocol.OK{}, nil
}

func (s *Server) handleGroupTransfer(c *call, q *protocol.GroupTransfer) (any, error) {
	ctx, user, ss := c.ctx, c.user, c.ss
	g, err := s.owned(ctx, q.GroupID, user)
	if err != nil {
		return nil, err
	}
	if q.UserID == user {
		return &protocol.OK{}, nil
	}
	if err := s.store.SetGroupOwner(ctx, g.ID, q.UserID); err != nil {
		return nil, err
	}
	s.announce(ctx, g.ID, ss, &protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupOwner, Actor: user, Users: []int64{q.UserID}})
	return &protocol.OK{}, nil
}

func (s *Server) handleGroupDisband(c *call, q *protocol.GroupDisband) (any, error) {
	ctx, user, ss := c.ctx, c.user, c.ss
	g, err := s.owned(ctx, q.GroupID, user)
	if err != nil {
		return nil, err
	}
	former, err := s.members.get(ctx, g.ID)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteGroup(ctx, g.ID); err != nil {
		return nil, err
	}
	s.members.invalidate(g.ID)
	s.pushGroup(former, groupEvent(&protocol.GroupEvent{GroupID: g.ID, Kind: protocol.GroupDisbanded, Actor: user}), ss)
	return &protocol.OK{}, nil
}

func (s *Server) handleGroups(c *call, _ *protocol.Groups) (any, error) {
	ctx, user := c.ctx, c.user
	groups, err := s.store.GroupsOf(ctx, user)
	if err != nil {
		return nil, err
	}
	res := protocol.GroupList{Groups: make([]protocol.GroupInfo, len(groups))}
	for i, g := range groups {
		res.Groups[i] = groupInfo(g)
	}
	return &res, nil
}

func (s *Server) handleGroupMembers(c *call, q *protocol.GroupMembers) (any, error) {
	ctx, user := c.ctx, c.user
	g, err := s.groupOf(ctx, q.GroupID, user)
	if err != nil {
		return nil, err
	}
	members, err := s.store.Members(ctx, g.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, refuse(protocol.CodeNoSuchGroup, "no such group")
	}
	if err != nil {
		return nil, err
	}
	// One page: anyone may join an open group, so its list is as long as
	// they make it.
	members = skip(members, q.Offset)
	n := fitCount(len(members), maxReply, func(i int) int { return 32 + profileSize(&members[i].Profile) })
	more := n < len(members)
	members = members[:n]
	res := protocol.MemberList{GroupID: g.ID, Members: make([]protocol.Member, len(members)), HasMore: more}
	ps := make([]storage.Profile, len(members))
	for i, m := range members {
		ps[i] = m.Profile
	}
	on := s.whoIsOnline(ctx, ps...)
	for i, m := range members {
		res.Members[i] = protocol.Member{UserInfo: s.userInfo(m.Profile, on), Owner: m.ID == g.Owner, Joined: m.Joined.UnixMilli()}
	}
	return &res, nil
}
