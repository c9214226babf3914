// Package server is Parley's connection node: a gnet event-loop server whose
// connections each run an inbound pipeline of small stages, modelled on
// Netty's ChannelPipeline:
//
//	event loop:  frame decode → body decode → idle/heartbeat → auth gate → rate limit → dispatch
//	worker:      auth re-check → handler (handler.go's table) → replies
//	store:       commit → commit hook (delivery) and Send answers (session.sendDone)
//
// Stages up to dispatch run on the connection's event loop and never block;
// dispatch queues the frame on the connection's inbox and a bounded worker
// pool runs the handlers, one connection's frames in order. A Send is handed
// to the store without waiting; frames behind it wait, off the worker, until
// it is answered. docs/server.md follows a frame through every hand-off.
// Outbound frames are encoded by the handler and written with gnet's
// AsyncWrite, bounded per connection.
//
// Lock order: session.mu is a leaf. A session's out.mu before a hub users
// shard lock (a login joins the hub under it, session.writeWith); a hub
// sessions shard lock before out.mu (hub.each). A users shard lock is held
// while taking no other lock, and no two hub shard locks are held at once.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/snowflake"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/protocol/secure"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/server/files"
	"github.com/parleyim/parley/storage"
)

// Server errors.
var (
	ErrStarted       = errors.New("server: already started")
	ErrStopped       = errors.New("server: stopped")
	ErrEngineStopped = errors.New("server: the network engine stopped without Stop")
)

// OpenStore opens the server's store, giving it the hook through which the
// store hands newly committed messages to delivery.
type OpenStore func(hook storage.CommitHook) (storage.Store, error)

// Server is one Parley node.
type Server struct {
	gnet.BuiltinEventEngine

	cfg   Config
	log   *slog.Logger
	m     *Metrics // nil: off
	store storage.Store
	dir   router.Presence
	// outbox posts to the other nodes of a cluster (server/cluster.go).
	outbox *router.Outbox
	ids    *snowflake.Node

	hub            *hub
	flushers       loopFlushers // each event loop's list of sessions to flush (outbound.go)
	pool           *workerPool
	searches       *searchGate
	delivery       *delivery
	members        *memberCache
	users          *userCache
	friends        *friendCache
	presence       *presence
	state          storage.ConvState  // nil: the store has none (receipts.go)
	delivered      storage.Deliveries // nil: the store keeps no delivery cursors (receipts.go)
	settings       *settingsCache
	reads          *groupReads
	logins         *attemptLimiter
	auths          *authLimiter  // admission of Register and password Login
	dirs           *authLimiter  // admission of GroupSearch and GroupJoin
	addrs          *connLimiter  // connections per address
	hashSem        chan struct{} // bounds concurrent password hashing
	hashWaiting    atomic.Int64  // hashes waiting for hashSem (HashQueue)
	dummyHash      []byte        // an equal-cost hash for unknown usernames
	known          *knownAddrs   // addresses accounts logged in from
	noiseKeys      NoiseKeys
	shakes         *handshakes           // Noise handshake workers (noise.go)
	handshakeAdmit *authLimiter          // handshakes per address and over the server
	quit           chan struct{}         // closed when Stop begins
	unindex        chan protocol.Message // recalled messages to take out of the search index (events.go)
	timers         *authLimiter          // admission of timer changes, per user (expiry.go)
	catchUps       catchUpRequests       // asked by other nodes (catchup.go)

	ln          net.Listener  // the server's own (accept.go)
	cli         *gnet.Client  // the event loops that serve the accepted connections
	accepted    chan struct{} // closed when the accept loop has returned
	done        chan struct{} // closed when the server has stopped serving
	engineErr   error         // why it stopped; set before done closes
	failOnce    sync.Once     // closes done
	started     atomic.Bool
	stopping    atomic.Bool
	stopOnce    sync.Once
	bansDone    chan struct{}
	bansStopped chan struct{}
	beatStopped chan struct{}
	nextID      atomic.Uint64
	conns       atomic.Int64
	others      atomic.Int64 // connections of the listeners Listener wraps
	startedAt   time.Time
	lastSweep   time.Time // OnTick only

	// The file endpoint (attach.go); nil without FilesAddr.
	files     *files.Service
	filesHTTP *http.Server
	filesAddr string
	filesURL  string
	collector *files.Collector // of unreferenced files (filegc.go); nil without Blobs

	// loginQueued, set by tests only, runs on the worker once a LoginOK
	// is queued to its connection, before the login's follow-up.
	loginQueued func()
	// searching, set by tests only, runs on the worker once a search has
	// entered the gate, before it searches.
	searching func()
}

// New builds a server on the store that open returns. It does not listen
// until Start.
func New(cfg Config, open OpenStore) (*Server, error) {
	cfg.fill()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ids, err := snowflake.NewNode(cfg.NodeID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if cfg.HashWorkers+cfg.HashQueue >= cfg.Workers {
		// A login waits for its hash on a worker: a flood of logins could
		// then hold every worker, and logged-in users' frames would wait
		// for hashes.
		cfg.Logger.Warn("a flood of logins can hold every worker: keep hash workers + hash queue below workers",
			"hash_workers", cfg.HashWorkers, "hash_queue", cfg.HashQueue, "workers", cfg.Workers)
	}
	s := &Server{
		cfg:         cfg,
		log:         cfg.Logger,
		ids:         ids,
		hub:         newHub(),
		logins:      newAttemptLimiter(cfg.LoginWindow),
		auths:       newAuthLimiter(cfg.AuthRatePerAddr, cfg.AuthBurstPerAddr, cfg.AuthRate, cfg.AuthBurst),
		dirs:        newAuthLimiter(cfg.DirRatePerAddr, cfg.DirBurstPerAddr, cfg.DirRate, cfg.DirBurst),
		timers:      newAuthLimiter(cfg.TimerRate, cfg.TimerBurst, -1, 0),
		addrs:       newConnLimiter(cfg.MaxConnsPerAddr),
		known:       newKnownAddrs(),
		quit:        make(chan struct{}),
		unindex:     make(chan protocol.Message, unindexQueue),
		hashSem:     make(chan struct{}, cfg.HashWorkers),
		accepted:    make(chan struct{}),
		bansDone:    make(chan struct{}),
		bansStopped: make(chan struct{}),
		beatStopped: make(chan struct{}),
		dir:         cfg.Presence,
		filesURL:    cfg.FilesURL,
		done:        make(chan struct{}),
	}
	if cfg.Blobs != nil && cfg.FilesGC.Grace >= 0 {
		gc := cfg.FilesGC
		gc.Store, gc.Refs, gc.Logger = cfg.Blobs, fileAccess{s}, cfg.Logger
		if s.collector, err = files.NewCollector(gc); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.bind(s); err != nil {
			return nil, err
		}
		s.m = cfg.Metrics
	}
	// A wrong username costs what a wrong password does: the same bcrypt
	// cost.
	if s.dummyHash, err = bcrypt.GenerateFromPassword(prehash("parley-no-such-user"), cfg.BcryptCost); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if cfg.NoiseKeys != nil {
		s.noiseKeys = *cfg.NoiseKeys
	} else if s.noiseKeys.Static, err = secure.NewKey(nil); err != nil {
		return nil, fmt.Errorf("%w: noise key: %v", ErrConfig, err)
	}
	s.handshakeAdmit = newAuthLimiter(cfg.HandshakeRatePerAddr, cfg.HandshakeBurstPerAddr, cfg.HandshakeRate, cfg.HandshakeBurst)
	s.delivery = newDelivery(s)
	store, err := open(s.delivery.committed)
	if err != nil {
		s.delivery.stop()
		return nil, err
	}
	s.store = store
	s.members = newMemberCache(store)
	s.users, s.friends = newUserCache(store), newFriendCache(store)
	if cfg.Cluster != nil {
		s.outbox = router.NewOutbox(router.OutboxConfig{Bus: s.m.timeBus(cfg.Bus), MaxBytes: cfg.OutboxBytes,
			Waited: s.m.outboxWaited(), Logger: cfg.Logger})
		s.members.changed = s.groupChanged
	}
	s.presence = newPresence(s, cfg.PresenceGrace)
	s.state, _ = store.(storage.ConvState)
	s.delivered, _ = store.(storage.Deliveries)
	s.settings = &settingsCache{store: s.state, m: make(map[int64]settingsEntry)}
	s.reads = newGroupReads(s)
	s.searches = newSearchGate(cfg.SearchConcurrency)
	s.pool = newWorkerPool(cfg.Workers, s.drain)
	s.shakes = newHandshakes(s, cfg.HandshakeWorkers, cfg.HandshakeQueue)
	return s, nil
}

// Done is closed when the server has stopped serving: after Stop, or on
// its own when its listener fails (descriptor exhaustion only pauses it,
// accept.go), in which case the node takes no new connection and its
// process should exit so that a supervisor restarts it.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err says why the engine stopped once Done is closed: nil after Stop.
func (s *Server) Err() error {
	select {
	case <-s.done:
		if s.stopping.Load() {
			return nil
		}
		return s.engineErr
	default:
		return nil
	}
}

// Addr is the address the server listens on (once started, the bound
// one: Config.Addr may name port 0).
func (s *Server) Addr() string { return s.cfg.Addr }

// Store is the server's store, for the operator's admin endpoint.
func (s *Server) Store() storage.Store { return s.store }

// MaxConns is the connection cap in force.
func (s *Server) MaxConns() int { return s.cfg.MaxConns }

// Conns is the number of open connections.
func (s *Server) Conns() int64 { return s.conns.Load() }

// Start listens and serves in the background. It returns once the server
// accepts connections, or with the error that stopped it from starting.
func (s *Server) Start() error {
	if s.started.Load() {
		return ErrStarted
	}
	if s.cfg.Cluster != nil {
		if err := s.cfg.Bus.Listen(s.receive); err != nil {
			return err
		}
		s.cfg.Cluster.OnChange(s.slotsChanged)
	}
	if !s.started.CompareAndSwap(false, true) {
		return ErrStarted
	}
	s.startedAt = time.Now()
	// A node that restarts under its old name forgets what its previous
	// life left in the presence directory: those connections are gone.
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := s.dir.DropNode(dctx, s.cfg.NodeName); err != nil {
		s.log.Warn("presence: drop stale entries", "err", err)
	}
	cancel()
	ln, err := listen(s.cfg.Addr)
	if err != nil {
		s.started.Store(false)
		return fmt.Errorf("server: listen %s: %w", s.cfg.Addr, err)
	}
	// The event loops serve connections that the accept loop hands them
	// (accept.go); gnet's client engine has no listener of its own.
	// Accepted TCP sockets already have TCP_NODELAY (Go's default), and
	// the descriptor gnet takes is a dup of the same socket.
	cli, err := gnet.NewClient(s,
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(s.cfg.EventLoops),
		gnet.WithTicker(true),
		gnet.WithLogger(gnetLogger{s.log}),
	)
	if err == nil {
		err = cli.Start()
	}
	if err != nil {
		_ = ln.Close()
		s.started.Store(false)
		return fmt.Errorf("server: event loops: %w", err)
	}
	s.ln, s.cli = ln, cli
	s.cfg.Addr = ln.Addr().String()
	go s.watchBans(s.bansDone)
	go s.beat(s.bansDone)
	go s.acceptLoop(ln, cli)
	go s.unindexRecalled()
	if s.collector != nil {
		go s.collector.Loop(s.quit)
	}
	go s.sweepExpired()
	if s.cfg.Cluster != nil {
		go s.watchMembers(s.quit)
	}
	return s.startFiles()
}

// Stop shuts the server down: it stops accepting, kicks every client with
// SHUTDOWN, lets the workers finish the frames they hold, delivers what was
// committed and closes the store, flushing it.
func (s *Server) Stop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		if s.cfg.Cluster != nil {
			s.handOver(ctx)
		}
		s.stopping.Store(true)
		close(s.quit)
		s.stopFiles(ctx)
		if s.started.Load() {
			_ = s.ln.Close()
			<-s.accepted
			s.hub.each(func(ss *session) { ss.kickWith(s.shutdownKick()) })
			// Give the kicks a moment to reach the sockets before the engine
			// closes them.
			waitUntil(ctx, 2*time.Second, func() bool { return s.conns.Load() == 0 })
			if e := s.cli.Stop(); e != nil {
				err = e
			}
			s.failOnce.Do(func() { close(s.done) })
			close(s.bansDone)
			<-s.bansStopped
			<-s.beatStopped
		}
		if s.cfg.Cluster != nil {
			lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if e := s.cfg.Cluster.Leave(lctx); e != nil {
				s.log.Warn("leaving the cluster", "err", e)
			}
			cancel()
		}
		s.pool.stop()
		s.shakes.stop()
		s.presence.stop()
		s.reads.stop()
		if e := s.dir.Close(); e != nil && err == nil {
			err = e
		}
		if e := s.store.Close(); e != nil && err == nil {
			err = e
		}
		s.delivery.stop()
		s.stopOutbox()
	})
	return err
}

func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) {
	deadline := time.Now().Add(limit)
	for !cond() && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

// shutdownKick is the Kick SHUTDOWN of a stopping server, with the retry
// hint: until is a moment to reconnect at, ShutdownRetry from now plus up
// to as much again at random, so that the clients of a restarting node do
// not all come back in the same instant.
func (s *Server) shutdownKick() protocol.Kick {
	wait := s.cfg.ShutdownRetry + time.Duration(rand.Int64N(int64(s.cfg.ShutdownRetry)+1))
	return protocol.Kick{
		Reason:  protocol.KickShutdown,
		Message: "server shutting down; reconnect after until",
		Until:   time.Now().Add(wait).UnixMilli(),
	}
}

func ptr[T any](v T) *T { return &v }

// refuse answers a connection that is not taken with a Kick.
func (s *Server) refuse(reason protocol.KickReason, msg string) ([]byte, gnet.Action) {
	frame := protocol.MustFrame(protocol.TypeKick, 0, &protocol.Kick{Reason: reason, Message: msg})
	s.m.framesOutOf(frame)
	return frame, gnet.Close
}

// OnOpen implements gnet.EventHandler: it refuses connections past the
// cap of their address with a Kick (the accept loop enforces MaxConns).
func (s *Server) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	if s.stopping.Load() {
		frame := protocol.MustFrame(protocol.TypeKick, 0, ptr(s.shutdownKick()))
		s.m.framesOutOf(frame)
		return frame, gnet.Close
	}
	var ip net.IP
	if addr, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip = addr.IP
	}
	key := addrKey(ip)
	proxied := s.trustedProxy(ip)
	// A proxy's connections count against the cap of the client's address
	// once its PROXY header names it (proxyproto.go).
	if !proxied && !s.addrs.open(key) {
		return s.refuse(protocol.KickTooManyConns, "too many connections from this address")
	}
	s.conns.Add(1)
	now := time.Now().UnixMilli()
	ss := &session{id: s.nextID.Add(1), srv: s, c: c, opened: now, addr: key, addrOpen: !proxied, proxied: proxied}
	ss.lastSeen.Store(now)
	c.SetContext(ss)
	s.hub.open(ss)
	return nil, gnet.None
}

// OnClose implements gnet.EventHandler.
func (s *Server) OnClose(c gnet.Conn, _ error) gnet.Action {
	ss, ok := c.Context().(*session)
	if !ok {
		return gnet.None
	}
	ss.closed.Store(true)
	ss.out.mu.Lock()
	ss.out.pending = nil
	ss.out.mu.Unlock()
	s.conns.Add(-1)
	if ss.addrOpen {
		s.addrs.close(ss.addr)
	}
	s.hub.close(ss)
	if user := ss.user.Load(); user != 0 && ss.state.Load() == stateAuthed {
		s.logout(user, ss)
	}
	return gnet.None
}

// OnTick implements gnet.EventHandler: once a second it closes connections
// that have been silent for three heartbeat intervals, that have not
// logged in within that time, or whose unfinished frame is older than
// FrameTimeout, and wakes the kicked ones whose Kick waits for the client
// to read (their loop closes them once it is written or KickLinger is
// over). One sweep over every session replaces a timer per connection.
func (s *Server) OnTick() (time.Duration, gnet.Action) {
	now := time.Now()
	nowMs := now.UnixMilli()
	idle := 3 * s.cfg.Heartbeat.Milliseconds()
	frame := s.cfg.FrameTimeout.Milliseconds()
	s.hub.each(func(ss *session) {
		if ss.kicked.Load() {
			ss.wake()
			return
		}
		switch p := ss.partial.Load(); {
		case p != 0 && nowMs-p > frame:
			ss.kick(protocol.KickFrameTimeout, "frame not completed in time")
		case nowMs-ss.lastSeen.Load() > idle:
			ss.kick(protocol.KickIdle, "no heartbeat")
		case ss.state.Load() != stateAuthed && nowMs-ss.opened > idle:
			ss.kick(protocol.KickIdle, "no login")
		}
	})
	if now.Sub(s.lastSweep) > s.cfg.LoginWindow {
		s.logins.sweep(now)
		s.lastSweep = now
	}
	return time.Second, gnet.None
}

// gnetLogger sends gnet's own logs to slog.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) Debugf(f string, a ...any) { g.l.Debug(fmt.Sprintf(f, a...), "src", "gnet") }
func (g gnetLogger) Infof(f string, a ...any)  { g.l.Info(fmt.Sprintf(f, a...), "src", "gnet") }
func (g gnetLogger) Warnf(f string, a ...any)  { g.l.Warn(fmt.Sprintf(f, a...), "src", "gnet") }
func (g gnetLogger) Errorf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "src", "gnet") }
func (g gnetLogger) Fatalf(f string, a ...any) { g.l.Error(fmt.Sprintf(f, a...), "src", "gnet") }

// logout takes a closed session out of the hub; the user's last session
// going starts its offline grace period.
func (s *Server) logout(user int64, ss *session) {
	if s.hub.logout(user, ss) {
		s.presence.loggedOut(user)
	}
}
