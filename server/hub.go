package server

import (
	"sync"
)

const hubShards = 64

// hub maps users to their logged-in sessions (every device), and keeps every
// open session for the idle sweep. Both maps are sharded so that logins on
// different event loops and workers rarely meet on one lock. Locks of
// different shards are never held at once.
type hub struct {
	users    [hubShards]userShard
	sessions [hubShards]sessionShard
}

// userShard maps its users to their sessions. Most users have one
// session on a node: they sit in one, a pointer per slot and no list; a
// user with two or more moves to more. A user is in one or more, not both.
type userShard struct {
	mu   sync.RWMutex
	one  map[int64]*session
	more map[int64][]*session
	// joining counts the logins of a user that passed the session cap
	// (reserve) and have not yet joined (login) or given up (unreserve).
	joining map[int64]int
}

type sessionShard struct {
	mu sync.Mutex
	m  map[uint64]*session
}

func newHub() *hub {
	h := &hub{}
	for i := range h.users {
		h.users[i].one = make(map[int64]*session)
		h.users[i].more = make(map[int64][]*session)
		h.users[i].joining = make(map[int64]int)
		h.sessions[i].m = make(map[uint64]*session)
	}
	return h
}

func (h *hub) open(s *session) {
	sh := &h.sessions[s.id%hubShards]
	sh.mu.Lock()
	sh.m[s.id] = s
	sh.mu.Unlock()
}

func (h *hub) close(s *session) {
	sh := &h.sessions[s.id%hubShards]
	sh.mu.Lock()
	delete(sh.m, s.id)
	sh.mu.Unlock()
}

// each calls fn for every open session, one shard at a time. fn must not
// call back into the hub.
func (h *hub) each(fn func(*session)) {
	for i := range h.sessions {
		sh := &h.sessions[i]
		sh.mu.Lock()
		for _, s := range sh.m {
			fn(s)
		}
		sh.mu.Unlock()
	}
}

// reserve holds a place for a login of user: it reports false when the
// user's sessions and the logins holding a place already number max (a
// negative max: no cap). A place is taken by login or given back by
// unreserve, so concurrent logins of one account never pass the cap.
func (h *hub) reserve(user int64, max int) bool {
	sh := &h.users[uint64(user)%hubShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := sh.joining[user]
	if max >= 0 && sh.count(user)+n >= max {
		return false
	}
	sh.joining[user] = n + 1
	return true
}

// unreserve gives back a place that reserve held.
func (h *hub) unreserve(user int64) {
	sh := &h.users[uint64(user)%hubShards]
	sh.mu.Lock()
	sh.release(user)
	sh.mu.Unlock()
}

// count returns the number of user's sessions. sh.mu is held.
func (sh *userShard) count(user int64) int {
	if _, ok := sh.one[user]; ok {
		return 1
	}
	return len(sh.more[user])
}

func (sh *userShard) release(user int64) {
	if n := sh.joining[user]; n > 1 {
		sh.joining[user] = n - 1
	} else {
		delete(sh.joining, user)
	}
}

// login adds a logged-in session of user in the place that reserve held,
// and reports whether it is the user's first.
func (h *hub) login(user int64, s *session) (first bool) {
	sh := &h.users[uint64(user)%hubShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.release(user)
	if s0, ok := sh.one[user]; ok {
		delete(sh.one, user)
		sh.more[user] = []*session{s0, s}
		return false
	}
	if list, ok := sh.more[user]; ok {
		sh.more[user] = append(list, s)
		return false
	}
	sh.one[user] = s
	return true
}

// logout removes a session of user and reports whether it was the last.
func (h *hub) logout(user int64, s *session) (last bool) {
	sh := &h.users[uint64(user)%hubShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s0, ok := sh.one[user]; ok {
		if s0 != s {
			return false
		}
		delete(sh.one, user)
		return true
	}
	list := sh.more[user]
	for i, x := range list {
		if x == s {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	switch len(list) {
	case 0:
		delete(sh.more, user)
		return true
	case 1:
		delete(sh.more, user)
		sh.one[user] = list[0]
	default:
		sh.more[user] = list
	}
	return false
}

// sessionsOf appends the logged-in sessions of user to dst.
func (h *hub) sessionsOf(dst []*session, user int64) []*session {
	sh := &h.users[uint64(user)%hubShards]
	sh.mu.RLock()
	if s0, ok := sh.one[user]; ok {
		dst = append(dst, s0)
	} else {
		dst = append(dst, sh.more[user]...)
	}
	sh.mu.RUnlock()
	return dst
}

// online reports whether user has a logged-in session here.
func (h *hub) online(user int64) bool {
	sh := &h.users[uint64(user)%hubShards]
	sh.mu.RLock()
	n := sh.count(user)
	sh.mu.RUnlock()
	return n > 0
}
