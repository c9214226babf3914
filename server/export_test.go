package server

import (
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
