package server

import (
	"context"
	"slices"
	"time"

	"github.com/parleyim/parley/protocol"
)

// MetricsFrame is what the metrics cost one Send: the frame in, its
// handling with the send→ack latency, and the SendAck out.
func MetricsFrame(m *Metrics, t protocol.Type, reply []byte) {
	m.frameIn(t)
	m.handled(inbound{typ: t}, reply)
	m.sendAnswered(time.Now().UnixNano())
	m.framesOutOf(reply)
}

// KillEngine closes the listener under the server, as a listener that
// fails would, without stopping the server.
func KillEngine(s *Server) error { return s.ln.Close() }

// Announce runs the presence goroutine's work for one user's change.
func Announce(s *Server, user int64, online bool) { s.presence.announce(user, online) }

// AnnounceAll runs the presence goroutine's work for one batch of users.
func AnnounceAll(s *Server, users []int64, online bool) {
	s.presence.announceAll(slices.Clone(users), online)
}

// KnownAddr reports whether the account name logged in from addr (an
// addrKey), as the server recorded it.
func KnownAddr(s *Server, name, addr string) bool { return s.known.has(name, addr) }

// OnLoginQueued has fn run on the worker once each LoginOK is queued to its
// connection, before the login's follow-up. Set it before the first login.
func OnLoginQueued(s *Server, fn func()) { s.loginQueued = fn }

// OnSearching has fn run on the worker once each search has entered the
// search gate, before it searches. Set it before the first search.
func OnSearching(s *Server, fn func()) { s.searching = fn }

// CatchUp runs a catch-up of the users logged in here back to since, as
// the loss of another node would (catchup.go).
func CatchUp(s *Server, since time.Time) (users, pushes int) {
	return s.catchUp(context.Background(), since)
}

// HashWaiting is how many password hashes wait for a slot (HashQueue).
func HashWaiting(s *Server) int64 { return s.hashWaiting.Load() }
