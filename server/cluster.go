package server

import (
	"context"
	"slices"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
)

// The cluster: each user belongs to the node that owns its slot
// (router.Table). A login on another node is redirected there; when a slot
// moves, its users' sessions on this node are moved there with a Redirect
// once their sends in flight are answered (slotsChanged).
// Frames for users of other nodes travel over the Bus, one envelope per
// node however many of its users it is for, posted to an Outbox: nothing
// on the send path waits for the broker, and what the broker refuses is
// retried, in order, until it takes it (docs/cluster.md). Without
// Config.Cluster every user is local.

// Cluster is the membership the server needs: router.Cluster, on Redis or
// in memory.
type Cluster interface {
	// Self is this node.
	Self() router.NodeInfo
	// Owner is the member that owns user's slot, and whether there is one.
	Owner(user int64) (router.NodeInfo, bool)
	// Members lists the live members.
	Members() []router.NodeInfo
	// Table is the newest slot table this node has seen.
	Table() router.Table
	// OnChange sets the function called with each newer slot table.
	OnChange(fn func(old, next router.Table))
	// Leave removes this node from the cluster at once.
	Leave(ctx context.Context) error
}

var _ Cluster = (*router.Cluster)(nil)

// drainer is a Cluster that can hand its slots over before it leaves
// (router.Cluster.Drain).
type drainer interface {
	Drain(ctx context.Context) error
}

// handoverWait bounds how long a stopping node waits for the others to
// take its slots.
const handoverWait = 10 * time.Second

// handOver gives a stopping node's slots to the other members before its
// clients are let go: the node leaves the membership, the coordinator
// moves its slots, and slotsChanged moves their users' sessions to the new
// owners (a Redirect once their sends in flight are answered). So a
// rolling restart costs each client one reconnect, and the pushes that the
// outbox still holds leave before the bus closes (stopOutbox).
func (s *Server) handOver(ctx context.Context) {
	d, ok := s.cfg.Cluster.(drainer)
	if !ok || !s.started.Load() {
		return
	}
	self := s.cfg.Cluster.Self().Name
	if err := d.Drain(ctx); err != nil {
		s.log.Warn("cluster: no handover", "err", err)
		return
	}
	start := time.Now()
	waitUntil(ctx, handoverWait, func() bool {
		others := false
		for _, n := range s.cfg.Cluster.Members() {
			others = others || n.Name != self
		}
		tab := s.cfg.Cluster.Table()
		return !others || !slices.Contains(tab.Owners, self)
	})
	// The moved clients leave for their new nodes (a move waits up to
	// moveWait for its sends).
	waitUntil(ctx, moveWait+time.Second, func() bool { return s.conns.Load() == 0 })
	s.log.Info("cluster: slots handed over", "took", time.Since(start), "left", s.conns.Load())
}

// outboxFlush bounds how long a stopping node tries to hand what its
// outbox holds to the bus.
const outboxFlush = 5 * time.Second

// remoteOwner returns the node that owns user when it is another node.
func (s *Server) remoteOwner(user int64) (router.NodeInfo, bool) {
	if s.cfg.Cluster == nil {
		return router.NodeInfo{}, false
	}
	n, ok := s.cfg.Cluster.Owner(user)
	if !ok || n.Name == s.cfg.Cluster.Self().Name {
		return router.NodeInfo{}, false
	}
	return n, true
}

// route pushes frame to the sessions of users on this node (but skip) and
// sends it to the nodes that own the others.
func (s *Server) route(users []int64, frame []byte, skip *session) {
	var remote []int64
	for _, u := range users {
		s.pushLocal(u, frame, skip)
		if _, ok := s.remoteOwner(u); ok {
			remote = append(remote, u)
		}
	}
	if len(remote) > 0 {
		s.routeRemote(remote, frame)
	}
}

// routeRemote sends frame to the nodes that own users, one envelope per
// node with the list of its users.
func (s *Server) routeRemote(users []int64, frame []byte) {
	byNode := make(map[string][]int64)
	for _, u := range users {
		if n, ok := s.remoteOwner(u); ok {
			byNode[n.Name] = append(byNode[n.Name], u)
		}
	}
	for node, us := range byNode {
		s.outbox.Post(node, router.Envelope{Kind: router.EnvPush, Users: us, Frame: frame})
	}
}

// receive handles a batch of envelopes from another node.
func (s *Server) receive(envs []router.Envelope) {
	for _, env := range envs {
		switch env.Kind {
		case router.EnvPush:
			for _, u := range env.Users {
				s.pushLocal(u, env.Frame, nil)
			}
			s.m.pushed(len(env.Users), 0)
		case router.EnvGroupChanged:
			s.InvalidateGroup(env.Group)
		case router.EnvFriendsChanged:
			s.InvalidateFriends(env.Users...)
		case router.EnvCatchUp:
			// The sender dropped pushes for this node (catchup.go).
			s.catchUps.ask(env.Group - catchUpSkew.Milliseconds())
		}
	}
}

// broadcast posts env to every other live node.
func (s *Server) broadcast(env router.Envelope) {
	self := s.cfg.Cluster.Self().Name
	for _, n := range s.cfg.Cluster.Members() {
		if n.Name != self {
			s.outbox.Post(n.Name, env)
		}
	}
}

// broadcastFriendsChanged tells every other node that the friendship of a
// and b changed.
func (s *Server) broadcastFriendsChanged(a, b int64) {
	s.broadcast(router.Envelope{Kind: router.EnvFriendsChanged, Users: []int64{a, b}})
}

// groupChanged tells every other node that a group's members changed.
func (s *Server) groupChanged(group int64) {
	s.broadcast(router.Envelope{Kind: router.EnvGroupChanged, Group: group})
}

// stopOutbox hands what the outbox holds to the bus, for a while, and
// closes both.
func (s *Server) stopOutbox() {
	if s.outbox == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), outboxFlush)
	defer cancel()
	if err := s.outbox.Close(ctx); err != nil {
		_, dropped, _, queued := s.outbox.Stats()
		s.log.Warn("bus outbox not flushed", "queued", queued, "dropped", dropped, "err", err)
	}
	_ = s.cfg.Bus.Close()
}

// moveWait bounds how long a moving session waits for the answers of its
// sends in flight before it is redirected anyway.
const moveWait = 2 * time.Second

// slotsChanged moves the sessions of users whose slots this node no longer
// owns: each stops running frames, gets the answers of its sends in flight,
// and then a Redirect to the new owner (session.startMove), after which
// the connection closes. The client connects there and logs in with its
// token; what it sent after the move began it sends again there.
func (s *Server) slotsChanged(old, next router.Table) {
	self := s.cfg.Cluster.Self().Name
	moved := 0
	s.hub.each(func(ss *session) {
		u := ss.authedUser()
		if u == 0 {
			return
		}
		if owner := next.Owner(u); owner != "" && owner != self {
			ss.startMove()
			time.AfterFunc(moveWait, func() { s.redirectMoved(ss) })
			moved++
		}
	})
	s.log.Info("slot table changed", "epoch", next.Epoch, "moving", moved)
}

// redirectMoved sends a moving session its last frame: a Redirect to the
// node that owns its user now, or, if no other node does (the slot came
// back, or the owner is unknown), a Kick SLOT_MOVED, after which the
// client reconnects where it was and is redirected if need be.
func (s *Server) redirectMoved(ss *session) {
	if ss.kicked.Load() {
		return // moved already (or kicked), its last frame sent
	}
	if n, ok := s.remoteOwner(ss.authedUser()); ok && n.Addr != "" {
		ss.last(protocol.MustFrame(protocol.TypeRedirect, 0, &protocol.Redirect{Addr: n.Addr, NodeID: n.Snowflake}),
			"redirect", "slot moved", n.Name)
		return
	}
	ss.kick(protocol.KickSlotMoved, "your account moved to another node; reconnect")
}

// redirect answers a login of a user owned by another node with a
// Redirect to it; it returns nil when the user is this node's.
func (s *Server) redirect(ss *session, user int64) *otherFrame {
	n, ok := s.remoteOwner(user)
	if !ok {
		return nil
	}
	ss.state.CompareAndSwap(stateLoggingIn, stateAnonymous)
	// Redirect carries request id 0 (docs/protocol.md); it answers the
	// login that is waiting.
	return &otherFrame{typ: protocol.TypeRedirect, body: &protocol.Redirect{Addr: n.Addr, NodeID: n.Snowflake}}
}
