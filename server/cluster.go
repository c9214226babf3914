package server

import (
	"context"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
)

// The cluster: each user belongs to the node that owns its slot
// (router.Table). A login on another node is redirected there; when a slot
// moves, its users on this node are kicked with SLOT_MOVED and reconnect.
// Frames for users of other nodes travel over the Bus, one envelope per
// node however many of its users it is for. Without Config.Cluster every
// user is local.

// busTimeout bounds one Bus send.
const busTimeout = 5 * time.Second

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
		ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
		if err := s.cfg.Bus.Send(ctx, node, router.Envelope{Kind: router.EnvPush, Users: us, Frame: frame}); err != nil {
			// The users sync what they missed.
			s.log.Warn("cross-node push failed", "node", node, "users", len(us), "err", err)
		}
		cancel()
	}
}

// receive handles an envelope from another node.
func (s *Server) receive(env router.Envelope) {
	switch env.Kind {
	case router.EnvPush:
		for _, u := range env.Users {
			s.pushLocal(u, env.Frame, nil)
		}
		s.stats.pushes.Add(uint64(len(env.Users)))
	case router.EnvGroupChanged:
		s.members.drop(env.Group)
	}
}

// groupChanged tells every other node that a group's members changed.
func (s *Server) groupChanged(group int64) {
	var nodes []string
	self := s.cfg.Cluster.Self().Name
	for _, n := range s.cfg.Cluster.Members() {
		if n.Name != self {
			nodes = append(nodes, n.Name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	if err := s.cfg.Bus.Broadcast(ctx, nodes, router.Envelope{Kind: router.EnvGroupChanged, Group: group}); err != nil {
		s.log.Warn("group change not broadcast", "group", group, "err", err)
	}
}

// slotsChanged kicks the users of slots this node no longer owns; they
// reconnect and are redirected to the new owner.
func (s *Server) slotsChanged(old, next router.Table) {
	self := s.cfg.Cluster.Self().Name
	moved := 0
	s.hub.each(func(ss *session) {
		u := ss.authedUser()
		if u == 0 {
			return
		}
		if owner := next.Owner(u); owner != "" && owner != self {
			ss.kick(protocol.KickSlotMoved, "your account moved to another node; reconnect")
			moved++
		}
	})
	s.log.Info("slot table changed", "epoch", next.Epoch, "kicked", moved)
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
