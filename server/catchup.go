package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
)

// Catch-up after the loss of a node or of pushes.
//
// A node that crashes takes with it the pushes its outbox still held: the
// messages are stored and acked, but their recipients on other nodes were
// never told. A client finds such a gap only when a later message of the
// conversation reaches it, or at its next login. So every node watches the
// membership: when another node leaves it (its heartbeats lapsed, or it
// left) or comes back as a new process (a restart under its name within the
// ttl), the node catches its own users up. For each user logged in here it
// reads the user's conversations newest first (the read of a client's
// Conversations, a page at a time), down to the first that did not change
// within catchUpWindow, and pushes again the newest message of each that
// did (at most catchUpMaxConvs a user). A client that had it drops the repeat;
// one that lacked it, or an earlier one, sees the gap and syncs
// (docs/protocol.md, "Delivery"). Nothing here is per message: the
// cost is one read per user logged in here (one more per catchUpPage
// changed conversations), catchUpWorkers at a time, only when the
// membership loses a node.
//
// The same catch-up runs when another node's outbox had to drop envelopes
// for this node (its queue was full while the bus was down or slow): its
// next batch here starts with an EnvCatchUp that says when the oldest
// dropped one was posted (router.Outbox), and the catch-up looks back to
// then. Requests that come while one runs wait for the next tick and are
// merged (the earliest wins), so catch-ups run one at a time, at most one
// a second.

const (
	// catchUpEvery is how often the members are compared.
	catchUpEvery = time.Second
	// catchUpWindow is how far back a catch-up looks, from the moment the
	// loss is noticed: the ttl it took to notice, the outbox's retries
	// before the crash, and a margin.
	catchUpWindow = time.Minute
	// catchUpPage is how many of a user's conversations one read takes.
	catchUpPage = 50
	// catchUpMaxConvs bounds the conversations one user's catch-up pushes
	// (and reads): a user in more that changed within the window gets the
	// most recent; the rest show their gap with their next message.
	catchUpMaxConvs = 1000
	// catchUpWorkers bounds the reads in flight.
	catchUpWorkers = 4
	// catchUpRead bounds one user's read.
	catchUpRead = 5 * time.Second
	// catchUpSkew is how much earlier than another node's EnvCatchUp says
	// a catch-up looks (the two clocks may differ a little).
	catchUpSkew = time.Second
)

// catchUpRequests holds the earliest time (Unix ms) that EnvCatchUps
// asked a catch-up to look back to; 0: none asked.
type catchUpRequests struct {
	mu    sync.Mutex
	since int64
}

func (r *catchUpRequests) ask(since int64) {
	r.mu.Lock()
	if r.since == 0 || since < r.since {
		r.since = max(since, 1)
	}
	r.mu.Unlock()
}

// take returns and clears the earliest time asked for.
func (r *catchUpRequests) take() (since int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	since, r.since = r.since, 0
	return since, since != 0
}

// lostMembers returns the members of prev (by name, their process's start)
// that next lacks or names with another start, self excepted.
func lostMembers(prev map[string]int64, next []router.NodeInfo, self string) []string {
	now := make(map[string]int64, len(next))
	for _, n := range next {
		now[n.Name] = n.Started
	}
	var lost []string
	for name, started := range prev {
		if name == self {
			continue
		}
		if s, ok := now[name]; !ok || s != started {
			lost = append(lost, name)
		}
	}
	return lost
}

// memberStarts maps the members' names to their processes' start times.
func memberStarts(ns []router.NodeInfo) map[string]int64 {
	m := make(map[string]int64, len(ns))
	for _, n := range ns {
		m[n.Name] = n.Started
	}
	return m
}

// watchMembers catches this node's users up whenever another node is lost
// or asked for it, until done is closed.
func (s *Server) watchMembers(done <-chan struct{}) {
	// A catch-up under way stops with the server.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-done
		cancel()
	}()
	self := s.cfg.Cluster.Self().Name
	prev := memberStarts(s.cfg.Cluster.Members())
	tick := time.NewTicker(catchUpEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		start := time.Now()
		next := s.cfg.Cluster.Members()
		lost := lostMembers(prev, next, self)
		prev = memberStarts(next)
		asked, ok := s.catchUps.take()
		var since time.Time
		switch {
		case len(lost) > 0:
			since = start.Add(-catchUpWindow)
			if ok {
				since = time.UnixMilli(min(asked, since.UnixMilli()))
			}
		case ok:
			since = time.UnixMilli(asked)
		default:
			continue
		}
		users, pushes := s.catchUp(ctx, since)
		s.log.Info("cluster: caught users up", "lost", lost, "since", since, "users", users,
			"pushes", pushes, "took", time.Since(start))
	}
}

// catchUp pushes again, to every user logged in here, the newest message of
// each of their recent conversations that changed since. The lost
// envelopes may have said that group members or friendships changed, so
// the caches of both are dropped first. It returns the users read and the
// messages pushed; it stops early when ctx ends.
func (s *Server) catchUp(ctx context.Context, since time.Time) (users, pushes int) {
	s.members.dropAll()
	s.friends.dropAll()
	seen := map[int64]bool{}
	var todo []int64
	s.hub.each(func(ss *session) {
		if u := ss.authedUser(); u != 0 && !seen[u] {
			seen[u] = true
			todo = append(todo, u)
		}
	})
	after := since.UnixMilli()
	var (
		wg     sync.WaitGroup
		pushed atomic.Int64
		next   = make(chan int64)
	)
	for range min(catchUpWorkers, len(todo)) {
		wg.Go(func() {
			for u := range next {
				pushed.Add(int64(s.catchUpUser(ctx, u, after)))
			}
		})
	}
feed:
	for _, u := range todo {
		select {
		case next <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	s.m.caughtUp(int(pushed.Load()))
	return len(todo), int(pushed.Load())
}

// catchUpUser pushes the newest message of each of user's conversations
// that changed after (Unix ms) to its sessions here: the conversations come
// newest first, so the reads stop at the first that did not.
func (s *Server) catchUpUser(parent context.Context, user int64, after int64) int {
	ctx, cancel := context.WithTimeout(parent, catchUpRead)
	defer cancel()
	var (
		n         int
		read      int
		afterTime int64
		afterConv string
	)
	for read < catchUpMaxConvs {
		page, more, err := s.conversationsAfter(ctx, user, afterTime, afterConv, min(catchUpPage, catchUpMaxConvs-read))
		if err != nil {
			if parent.Err() == nil { // not stopping: a read that failed or took too long
				s.log.Warn("cluster: catch-up read failed", "user", user, "pushed", n, "err", err)
			}
			return n
		}
		for _, c := range page {
			if c.LastTime < after {
				return n
			}
			if c.Last == nil {
				continue
			}
			frame, err := protocol.AppendFrame(nil, protocol.TypePush, 0, c.Last)
			if err != nil {
				continue
			}
			s.pushLocal(user, frame, nil)
			n++
		}
		read += len(page)
		if !more || len(page) == 0 {
			return n
		}
		last := page[len(page)-1]
		afterTime, afterConv = last.LastTime, last.Conv
	}
	return n
}

// conversationsAfter is a page of user's conversations, newest first, after
// the one at (afterTime, afterConv) ("": from the start). A store without
// pages (no storage.ConvState) gives one page.
func (s *Server) conversationsAfter(ctx context.Context, user int64, afterTime int64, afterConv string, limit int) ([]protocol.Conversation, bool, error) {
	if s.state != nil {
		return s.state.ConversationsAfter(ctx, user, afterTime, afterConv, limit)
	}
	if afterConv != "" {
		return nil, false, nil
	}
	page, err := s.store.Conversations(ctx, user, limit)
	return page, false, err
}
