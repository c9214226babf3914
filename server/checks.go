package server

import (
	"context"
	"errors"
	"sync"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// The checks of the send path answered from memory: does the recipient
// exist, are two users friends (groups: memberCache in groups.go). Every
// change made through this node drops what it changes before it is
// answered; in a cluster the node that made it tells the others over the
// bus (friendsChanged, receive), and they drop it too.
//
// A load that overlaps an invalidation of its shard is not cached: each
// shard counts its invalidations (epoch), and a load stores its result only
// if none happened since it started.

const (
	checkShards   = 64
	maxShardUsers = 1 << 12 // per shard; past it the shard is emptied
	maxShardPairs = 1 << 12
)

// userCache remembers users known to exist. Accounts are never deleted, so
// a user seen once exists for good; users not found are not remembered (one
// may be created at any time, on any node).
type userCache struct {
	store  storage.Users
	shards [checkShards]struct {
		mu sync.RWMutex
		m  map[int64]struct{}
	}
}

func newUserCache(store storage.Users) *userCache {
	c := &userCache{store: store}
	for i := range c.shards {
		c.shards[i].m = make(map[int64]struct{})
	}
	return c
}

// exists reports whether user is an account.
func (c *userCache) exists(ctx context.Context, user int64) (bool, error) {
	sh := &c.shards[uint64(user)%checkShards]
	sh.mu.RLock()
	_, ok := sh.m[user]
	sh.mu.RUnlock()
	if ok {
		return true, nil
	}
	_, err := c.store.UserByID(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	c.add(user)
	return true, nil
}

// add records that user exists.
func (c *userCache) add(user int64) {
	sh := &c.shards[uint64(user)%checkShards]
	sh.mu.Lock()
	if len(sh.m) >= maxShardUsers {
		clear(sh.m)
	}
	sh.m[user] = struct{}{}
	sh.mu.Unlock()
}

// pair is two users, the smaller id first.
type pair struct{ a, b int64 }

func pairOf(a, b int64) pair {
	if a > b {
		a, b = b, a
	}
	return pair{a, b}
}

// friendCache remembers whether pairs of users are friends, both ways.
type friendCache struct {
	store  storage.Friends
	shards [checkShards]struct {
		mu    sync.RWMutex
		epoch uint64
		m     map[pair]bool
	}
}

func newFriendCache(store storage.Friends) *friendCache {
	c := &friendCache{store: store}
	for i := range c.shards {
		c.shards[i].m = make(map[pair]bool)
	}
	return c
}

func (c *friendCache) shard(p pair) int {
	return int((uint64(p.a) ^ uint64(p.b)*0x9E3779B97F4A7C15) % checkShards)
}

// friends reports whether a and b are friends.
func (c *friendCache) friends(ctx context.Context, a, b int64) (bool, error) {
	p := pairOf(a, b)
	sh := &c.shards[c.shard(p)]
	sh.mu.RLock()
	ok, hit := sh.m[p]
	epoch := sh.epoch
	sh.mu.RUnlock()
	if hit {
		return ok, nil
	}
	ok, err := c.store.AreFriends(ctx, a, b)
	if err != nil {
		return false, err
	}
	sh.mu.Lock()
	if sh.epoch == epoch {
		if len(sh.m) >= maxShardPairs {
			clear(sh.m)
		}
		sh.m[p] = ok
	}
	sh.mu.Unlock()
	return ok, nil
}

// drop forgets whether a and b are friends.
func (c *friendCache) drop(a, b int64) {
	p := pairOf(a, b)
	sh := &c.shards[c.shard(p)]
	sh.mu.Lock()
	delete(sh.m, p)
	sh.epoch++
	sh.mu.Unlock()
}

// dropAll forgets every pair.
func (c *friendCache) dropAll() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.epoch++
		sh.mu.Unlock()
	}
}

// recipient checks that user may send a direct message to peer: nil, or
// the refusal (NO_SUCH_USER, NOT_FRIENDS).
func (s *Server) recipient(ctx context.Context, user, peer int64) error {
	// A user logged in here exists; the cache is for the others (it is not
	// filled at login, so an online user costs it nothing).
	ok := s.hub.online(peer)
	if !ok {
		var err error
		if ok, err = s.users.exists(ctx, peer); err != nil {
			return err
		}
	}
	if !ok {
		return refuseCode(protocol.CodeNoSuchUser)
	}
	return s.mayMessage(ctx, user, peer)
}

// friendsChanged drops the cached friendship of a and b here and, in a
// cluster, on the other nodes. Call it after the store changed it and
// before answering.
func (s *Server) friendsChanged(a, b int64) {
	s.InvalidateFriends(a, b)
	if s.cfg.Cluster != nil {
		s.broadcastFriendsChanged(a, b)
	}
}

// InvalidateFriends drops what this node has cached about the friendships
// among users (two users: that pair; any other number: every pair). The
// cluster calls it when another node reports a change (EnvFriendsChanged).
func (s *Server) InvalidateFriends(users ...int64) {
	if len(users) == 2 {
		s.friends.drop(users[0], users[1])
		return
	}
	s.friends.dropAll()
}

// InvalidateGroup drops this node's cached members of group. The cluster
// calls it when another node reports a change (EnvGroupChanged).
func (s *Server) InvalidateGroup(group int64) { s.members.drop(group) }
