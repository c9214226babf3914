package server

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
)

// presence keeps the presence directory (Config.Presence) told of the users
// on this node, and tells a user's friends when the user comes online (its
// first connection on any node logs in) and goes offline (its last
// connection anywhere closed and it did not come back within the grace
// period).
//
// Logins and closes only record what happened, under mu: a close may come
// from an event loop, which must not block. One goroutine takes what
// happened in batches and, for each user of a batch (up to
// announceParallel at once), tells the directory, reads the friends from
// storage and pushes. An offline that is
// cancelled by a login within the grace period does nothing; otherwise
// offline and the next online leave the goroutine in the order they
// happened. If the directory fails, this node's own view decides.
type presence struct {
	srv   *Server
	grace time.Duration

	mu      sync.Mutex
	pending map[int64]time.Time // user → when its offline becomes final
	online  []int64             // users come online, to announce
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}
}

func newPresence(srv *Server, grace time.Duration) *presence {
	p := &presence{
		srv:     srv,
		grace:   grace,
		pending: make(map[int64]time.Time),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go p.run()
	return p
}

// loggedIn records a user's first connection logging in.
func (p *presence) loggedIn(user int64) {
	p.mu.Lock()
	if _, ok := p.pending[user]; ok {
		delete(p.pending, user) // came back within the grace period
		p.mu.Unlock()
		return
	}
	p.online = append(p.online, user)
	p.mu.Unlock()
	p.signal()
}

// loggedOut records a user's last connection closing. Called on event loops.
func (p *presence) loggedOut(user int64) {
	p.mu.Lock()
	p.pending[user] = time.Now().Add(p.grace)
	p.mu.Unlock()
}

func (p *presence) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *presence) run() {
	defer close(p.stopped)
	tick := time.NewTicker(max(p.grace/10, 10*time.Millisecond))
	defer tick.Stop()
	var online, offline []int64
	for {
		select {
		case <-p.done:
			return
		case <-p.wake:
		case <-tick.C:
		}
		now := time.Now()
		p.mu.Lock()
		online, p.online = p.online, online[:0]
		offline = offline[:0]
		for user, at := range p.pending {
			if !now.Before(at) {
				offline = append(offline, user)
				delete(p.pending, user)
			}
		}
		p.mu.Unlock()
		// Offline first: an offline that became final before a login was
		// recorded happened before it.
		p.announceAll(offline, false)
		p.announceAll(online, true)
	}
}

// announceParallel bounds the announcements in progress at once. Each is
// a few round trips to the directory (Redis in a cluster) and a read of
// the store, independent of the others: done one after another, 15,000
// users coming back after a node restart took ~10 s with Redis on the
// test machine, ~4.5 s now (docs/benchmarks.md, BenchmarkPresenceAnnounce).
const announceParallel = 16

// announceAll announces users' change, up to announceParallel at once, and
// returns once every one is done. A user listed twice is announced once:
// both entries say the same.
func (p *presence) announceAll(users []int64, online bool) {
	if len(users) > 1 {
		slices.Sort(users)
		users = slices.Compact(users)
	}
	if len(users) <= 1 {
		for _, u := range users {
			p.announce(u, online)
		}
		return
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range min(announceParallel, len(users)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(users)); i = next.Add(1) - 1 {
				p.announce(users[i], online)
			}
		}()
	}
	wg.Wait()
}

// announce tells the directory of a user's change on this node and, if the
// user's state changed for the whole cluster, pushes it to its logged-in
// friends.
func (p *presence) announce(user int64, online bool) {
	ctx, cancel := context.WithTimeout(context.Background(), p.srv.cfg.RequestTimeout)
	defer cancel()
	var (
		changed bool
		err     error
	)
	if online {
		changed, err = p.srv.dir.Connect(ctx, user, p.srv.cfg.NodeName)
	} else {
		changed, err = p.srv.dir.Disconnect(ctx, user, p.srv.cfg.NodeName)
	}
	if err != nil {
		p.srv.log.Warn("presence directory unavailable", "user", user, "online", online, "err", err)
		changed = true
	}
	if !changed {
		return
	}
	friends, err := p.srv.store.FriendsOf(ctx, user)
	if err != nil {
		p.srv.log.Warn("presence not sent", "user", user, "online", online, "err", err)
		return
	}
	ids := make([]int64, len(friends))
	for i, f := range friends {
		ids[i] = f.ID
	}
	nodes, err := p.srv.dir.Nodes(ctx, ids)
	if err != nil {
		p.srv.log.Warn("presence directory unavailable", "err", err)
	}
	reach := ids[:0]
	for _, id := range ids {
		if _, ok := nodes[id]; ok || p.srv.hub.online(id) {
			reach = append(reach, id)
		}
	}
	if len(reach) > 0 {
		p.srv.route(reach, protocol.MustFrame(protocol.TypePresence, 0, &protocol.Presence{UserID: user, Online: online, At: time.Now().UnixMilli()}), nil)
	}
}

func (p *presence) stop() {
	close(p.done)
	<-p.stopped
}

// beat keeps this node live in the presence directory until done closes,
// then drops it from the directory.
func (s *Server) beat(done <-chan struct{}) {
	defer close(s.beatStopped)
	tick := time.NewTicker(s.cfg.PresenceTTL / 3)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PresenceTTL/3)
		if err := s.dir.Heartbeat(ctx, s.cfg.NodeName, s.cfg.PresenceTTL); err != nil {
			s.log.Warn("presence heartbeat failed", "err", err)
		}
		cancel()
		select {
		case <-done:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.dir.DropNode(ctx, s.cfg.NodeName); err != nil {
				s.log.Warn("presence: drop node failed", "err", err)
			}
			cancel()
			return
		case <-tick.C:
		}
	}
}
