package server

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/parleyim/parley/protocol"
)

// The server accepts its connections itself and hands each to gnet's event
// loops (gnet.Client.EnrollContext). gnet v2.10.0, accepting on its own
// listeners, treats every accept error but EAGAIN, EINTR, ECONNRESET and
// ECONNABORTED as fatal: its poller returns ErrAcceptSocket and the whole
// engine shuts down, dropping every client (acceptor_unix.go, and the
// pollers' Polling). Descriptor exhaustion (EMFILE, ENFILE) is not a fault
// of the listener, and can come from anywhere in the process: a burst of
// store files, another listener, a leak. Here it pauses accepting, with a
// back-off, while the connections already open go on being served; the
// waiting connections stay in the kernel's backlog until descriptors are
// free again.
//
// The accept loop also enforces MaxConns, counting the connections of every
// listener of the process that Listener wraps (the admin endpoint, ...), so
// that FDReserve is left for the process's own files; a connection past it
// gets Kick TOO_MANY_CONNECTIONS without reaching an event loop.

const (
	acceptPauseMin = 5 * time.Millisecond
	acceptPauseMax = time.Second
)

// listen opens the server's listener. Its connections have no TCP
// keepalive (Go's default is 15s): the protocol's heartbeat finds dead
// peers, and a million idle sockets would otherwise send tens of thousands
// of probes a second.
func listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", addr)
}

// exhausted reports whether err says the process or the system is out of
// descriptors, socket buffers or memory for a new socket: a state that
// passes, not a fault of the listener.
func exhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// sockets is the number of connections of all the process's listeners
// that the cap counts: the server's and those of Listener.
func (s *Server) sockets() int64 { return s.conns.Load() + s.others.Load() }

// acceptLoop accepts until the listener is closed (Stop) or fails for a
// reason other than exhaustion; it closes s.accepted when it returns.
func (s *Server) acceptLoop(ln net.Listener, cli *gnet.Client) {
	defer close(s.accepted)
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.stopping.Load() {
				return
			}
			var ne net.Error
			if exhausted(err) || (errors.As(err, &ne) && ne.Timeout()) {
				pause = s.acceptPaused(pause, err)
				continue
			}
			// Anything else is the listener's fault: the node can no longer
			// take connections. Done says so (cmd/parleyd exits).
			s.engineFailed(err)
			return
		}
		pause = 0
		if s.sockets() >= int64(s.cfg.MaxConns) {
			s.turnAway(c)
			continue
		}
		if _, err := cli.EnrollContext(c, nil); err != nil {
			// EnrollContext closed c. Its dup can meet exhaustion too.
			if exhausted(err) {
				pause = s.acceptPaused(pause, err)
				continue
			}
			if s.stopping.Load() {
				return
			}
			s.log.Warn("accept: handing a connection to an event loop", "err", err)
		}
	}
}

// acceptPaused waits before the next accept, twice as long as the last
// pause (5ms to 1s), and counts the pause.
func (s *Server) acceptPaused(last time.Duration, err error) time.Duration {
	pause := min(max(2*last, acceptPauseMin), acceptPauseMax)
	s.m.acceptPaused()
	if last == 0 {
		s.log.Warn("accept paused: out of descriptors; the open connections are served, new ones wait",
			"err", err, "sockets", s.sockets(), "max_conns", s.cfg.MaxConns)
	}
	select {
	case <-time.After(pause):
	case <-s.quit:
	}
	return pause
}

// turnAway answers a connection past MaxConns with a Kick and closes it,
// on the accept goroutine: a fresh socket's buffer takes the short frame
// at once.
func (s *Server) turnAway(c net.Conn) {
	frame := protocol.MustFrame(protocol.TypeKick, 0, &protocol.Kick{
		Reason: protocol.KickTooManyConns, Message: "server at its connection limit"})
	s.m.framesOutOf(frame)
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = c.Write(frame)
	_ = c.Close()
}

// engineFailed records why the node stopped serving and closes Done.
func (s *Server) engineFailed(err error) {
	s.failOnce.Do(func() {
		s.log.Error("the server stopped accepting connections", "err", err)
		s.engineErr = err
		close(s.done)
	})
}

// Listener wraps l, another listener of this process (the admin endpoint's,
// say), so that its connections count against MaxConns together with the
// server's own: the cap then holds every socket the process accepts, and
// FDReserve stays free for the process's files. A connection that l accepts
// past the cap is closed at once. Accept errors of l are returned as they
// are; net/http's Server backs off on descriptor exhaustion by itself.
func (s *Server) Listener(l net.Listener) net.Listener { return &countedListener{Listener: l, s: s} }

type countedListener struct {
	net.Listener
	s *Server
}

func (l *countedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.s.sockets() >= int64(l.s.cfg.MaxConns) {
			_ = c.Close()
			continue
		}
		l.s.others.Add(1)
		return &countedConn{Conn: c, s: l.s}, nil
	}
}

type countedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.s.others.Add(-1) })
	return c.Conn.Close()
}
