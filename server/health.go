package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
)

// Health: what /healthz and /readyz answer. Neither trusts Ping, which the
// event loop answers ahead of every queue: a frame must make the round trip
// through the worker pool, as real requests do.

// ProbeTimeouts of Live and Ready: how long the worker-pool probe may take.
// Live tolerates a burst that Ready already reports.
const (
	LiveProbeTimeout  = 5 * time.Second
	ReadyProbeTimeout = time.Second
)

// Live reports whether the server is alive: its event-loop engine runs and
// a probe frame made the round trip through the worker pool. The error says
// what failed, in words.
func (s *Server) Live(ctx context.Context) error {
	return s.live(ctx, LiveProbeTimeout)
}

func (s *Server) live(ctx context.Context, probeTimeout time.Duration) error {
	if !s.started.Load() {
		return errors.New("the server has not started")
	}
	select {
	case <-s.done:
		why := "stopped"
		if err := s.Err(); err != nil {
			why = err.Error()
		}
		return fmt.Errorf("the event-loop engine is dead (%s): no connection is served", why)
	default:
	}
	return s.probePool(ctx, probeTimeout)
}

// probePool queues a probe frame through a session's inbox to the worker
// pool, and waits for a worker to take it.
func (s *Server) probePool(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := &session{srv: s}
	taken := make(probe, 1)
	start := time.Now()
	p.enqueue(inbound{typ: protocol.TypePing, body: taken})
	select {
	case <-taken:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the worker pool did not take a probe frame within %v: %d sessions wait for one of %d workers",
			time.Since(start).Round(time.Millisecond), s.pool.queued(), s.cfg.Workers)
	}
}

// probe is the body of a health probe's frame (probePool): the worker
// that takes it signals it instead of handling the frame. No client frame
// decodes to it.
type probe chan struct{}

// Ready reports whether the server should get traffic: it is live (with
// the stricter ReadyProbeTimeout), not shutting down, its store accepts a
// write, and, in a cluster, the node is a live member holding slots and
// reaches Redis; then Config.ReadyChecks. The error lists every check that
// failed, in words.
func (s *Server) Ready(ctx context.Context) error {
	var fails []string
	if s.stopping.Load() {
		fails = append(fails, "the server is shutting down")
	}
	if err := s.live(ctx, ReadyProbeTimeout); err != nil {
		fails = append(fails, err.Error())
	}
	if err := s.checkStore(ctx); err != nil {
		fails = append(fails, err.Error())
	}
	if err := s.checkCluster(ctx); err != nil {
		fails = append(fails, err.Error())
	}
	for name, check := range s.cfg.ReadyChecks {
		if err := check(ctx); err != nil {
			fails = append(fails, name+": "+err.Error())
		}
	}
	if len(fails) == 0 {
		return nil
	}
	return errors.New(strings.Join(fails, "; "))
}

// probeToken is the token hash the store check deletes: no token has it,
// so the write changes nothing a user sees.
var probeToken = []byte("parley readiness probe: not a token")

// checkStore asks the store for a write: deleting a token that does not
// exist goes through the store's write path without changing anything.
func (s *Server) checkStore(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyProbeTimeout)
	defer cancel()
	start := time.Now()
	if err := s.store.DeleteToken(ctx, probeToken); err != nil {
		return fmt.Errorf("the store did not take a write within %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	return nil
}

// checkCluster checks a cluster node's membership, slots and Redis.
func (s *Server) checkCluster(ctx context.Context) error {
	c := s.cfg.Cluster
	if c == nil {
		return nil
	}
	var fails []string
	self := c.Self().Name
	member := false
	for _, n := range c.Members() {
		member = member || n.Name == self
	}
	if !member {
		fails = append(fails, "this node is not a live member of the cluster")
	}
	held := 0
	for slot := range int64(router.Slots) { // user ids 0..Slots-1 fall in slots 0..Slots-1
		if n, ok := c.Owner(slot); ok && n.Name == self {
			held++
		}
	}
	if held == 0 {
		fails = append(fails, "this node holds no slots")
	}
	ctx, cancel := context.WithTimeout(ctx, ReadyProbeTimeout)
	defer cancel()
	if _, err := s.dir.Nodes(ctx, []int64{0}); err != nil {
		fails = append(fails, fmt.Sprintf("the presence directory (Redis) does not answer: %v", err))
	}
	if len(fails) == 0 {
		return nil
	}
	return errors.New(strings.Join(fails, "; "))
}
