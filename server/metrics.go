package server

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/router"
	"github.com/parleyim/parley/server/files"
	"github.com/parleyim/parley/storage"
)

// Metrics are the server's Prometheus metrics (VictoriaMetrics/metrics: a
// pre-resolved counter is one atomic add, a histogram a short search and a
// short lock, no allocation; docs/operations.md has the comparison). The
// server calls them at a few chokepoints: a frame decoded, a frame written,
// a kick, a login decided, a send answered, a commit. Figures that are
// state, not events (connections by state, queue depths), are read when
// scraped. Labels are bounded: frame types, error codes and kick reasons of
// the protocol, never users or connections.
//
// A nil *Metrics records nothing: Config.Metrics nil turns metrics off.
// One Metrics serves one Server.
type Metrics struct {
	set *metrics.Set

	framesIn, framesOut [maxTypeLabel + 1]*metrics.Counter // by type; the last: unknown
	errors              map[protocol.Code]*metrics.Counter
	errorsOther         *metrics.Counter
	kicks               map[protocol.KickReason]*metrics.Counter
	kicksOther          *metrics.Counter
	logins              map[loginKey]*metrics.Counter
	loginsOther         *metrics.Counter

	messages    *metrics.Counter
	expired     *metrics.Counter
	acceptPause *metrics.Counter
	handshakes  *metrics.Counter
	pushes      *metrics.Counter
	caughtUpN   *metrics.Counter
	sendAck     *metrics.PrometheusHistogram
	sendPush    *metrics.PrometheusHistogram
	append      *metrics.PrometheusHistogram
	commitBatch *metrics.PrometheusHistogram
	busPublish  *metrics.PrometheusHistogram
	busConsume  *metrics.PrometheusHistogram
	busWait     *metrics.PrometheusHistogram
	frameWait   *metrics.PrometheusHistogram
	storeStages [storage.StageSync + 1]*metrics.PrometheusHistogram

	bound atomic.Bool
}

// maxTypeLabel bounds the frame types counted one by one; the protocol's
// are below it, others are "unknown".
const maxTypeLabel = 0xFF

// loginKey is a login outcome: the frame's kind and its result.
type loginKey struct {
	kind   string // register, password, token
	result string // ok, redirect, or an error code name
}

// Latency buckets, seconds: 100µs to ~13s.
var latencyBuckets = metrics.ExponentialBuckets(0.0001, 2, 18)

// NewMetrics returns the metrics of one server, all at zero.
func NewMetrics() *Metrics {
	set := metrics.NewSet()
	m := &Metrics{
		set:         set,
		errors:      map[protocol.Code]*metrics.Counter{},
		kicks:       map[protocol.KickReason]*metrics.Counter{},
		logins:      map[loginKey]*metrics.Counter{},
		messages:    set.NewCounter("parley_messages_stored_total"),
		expired:     set.NewCounter("parley_messages_expired_total"),
		handshakes:  set.NewCounter("parley_noise_handshakes_total"),
		pushes:      set.NewCounter("parley_pushes_total"),
		caughtUpN:   set.NewCounter("parley_cluster_catchup_pushes_total"),
		acceptPause: set.NewCounter("parley_accept_pauses_total"),
		sendAck:     set.NewPrometheusHistogramExt("parley_send_ack_seconds", latencyBuckets),
		sendPush:    set.NewPrometheusHistogramExt("parley_send_push_seconds", latencyBuckets),
		append:      set.NewPrometheusHistogramExt("parley_store_append_seconds", latencyBuckets),
		commitBatch: set.NewPrometheusHistogramExt("parley_store_commit_batch_messages", metrics.ExponentialBuckets(1, 2, 12)),
		busPublish:  set.NewPrometheusHistogramExt("parley_bus_publish_seconds", latencyBuckets),
		busConsume:  set.NewPrometheusHistogramExt("parley_bus_consume_lag_seconds", latencyBuckets),
		busWait:     set.NewPrometheusHistogramExt("parley_bus_outbox_wait_seconds", latencyBuckets),
		frameWait:   set.NewPrometheusHistogramExt("parley_frame_wait_seconds", latencyBuckets),
	}
	for st := range m.storeStages {
		m.storeStages[st] = set.NewPrometheusHistogramExt(fmt.Sprintf(`parley_store_stage_seconds{stage=%q}`, storage.Stage(st)), latencyBuckets)
	}
	for t := range protocol.Type(maxTypeLabel) {
		if t.Known() {
			m.framesIn[t] = set.NewCounter(fmt.Sprintf(`parley_frames_in_total{type=%q}`, t.String()))
			m.framesOut[t] = set.NewCounter(fmt.Sprintf(`parley_frames_out_total{type=%q}`, t.String()))
		}
	}
	m.framesIn[maxTypeLabel] = set.NewCounter(`parley_frames_in_total{type="unknown"}`)
	m.framesOut[maxTypeLabel] = set.NewCounter(`parley_frames_out_total{type="unknown"}`)
	for c := range protocol.Code(6000) {
		if name := c.String(); !strings.HasPrefix(name, "Code(") {
			m.errors[c] = set.NewCounter(fmt.Sprintf(`parley_errors_total{code=%q}`, name))
		}
	}
	m.errorsOther = set.NewCounter(`parley_errors_total{code="other"}`)
	for r := range protocol.KickReason(math.MaxUint8) {
		if !strings.HasPrefix(r.String(), "KickReason(") {
			m.kicks[r] = set.NewCounter(fmt.Sprintf(`parley_kicks_total{reason=%q}`, r.String()))
		}
	}
	m.kicksOther = set.NewCounter(`parley_kicks_total{reason="other"}`)
	for _, kind := range []string{"register", "password", "token"} {
		results := []string{"ok", "redirect"}
		for _, c := range []protocol.Code{
			protocol.CodeBadCredentials, protocol.CodeUsernameTaken, protocol.CodeInvalidUsername,
			protocol.CodeWeakPassword, protocol.CodeTokenInvalid, protocol.CodeTooManyAttempts,
			protocol.CodeBanned, protocol.CodeBadBody, protocol.CodeUnavailable, protocol.CodeTimeout,
			protocol.CodeShutdown, protocol.CodeBusy,
		} {
			results = append(results, c.String())
		}
		for _, r := range results {
			m.logins[loginKey{kind, r}] = set.NewCounter(fmt.Sprintf(`parley_logins_total{kind=%q,result=%q}`, kind, r))
		}
	}
	m.loginsOther = set.NewCounter(`parley_logins_total{kind="other",result="other"}`)
	return m
}

// WritePrometheus writes the metrics in the Prometheus text format, then
// the Go runtime's and the process's (go_*, process_*).
func (m *Metrics) WritePrometheus(w io.Writer) {
	m.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
	metrics.WriteFDMetrics(w)
}

// Gauge adds a gauge read when scraped, e.g. parley_build_info{version="v1"}.
func (m *Metrics) Gauge(name string, read func() float64) { m.set.NewGauge(name, read) }

// ObserveBusPublish records how long publishing one envelope to the
// cluster's bus took. For router's bus implementations.
func (m *Metrics) ObserveBusPublish(d time.Duration) {
	if m != nil {
		m.busPublish.Update(d.Seconds())
	}
}

// ObserveBusConsumeLag records how long an envelope took from its publish
// to its consumption on this node. For router's bus implementations.
func (m *Metrics) ObserveBusConsumeLag(d time.Duration) {
	if m != nil {
		m.busConsume.Update(max(d, 0).Seconds())
	}
}

// outboxWaited returns the Outbox's Waited: how long the oldest envelope
// of each batch waited in the outbox (parley_bus_outbox_wait_seconds).
func (m *Metrics) outboxWaited() func(time.Duration) {
	if m == nil {
		return nil
	}
	return func(d time.Duration) { m.busWait.Update(d.Seconds()) }
}

// timeBus returns bus, timing its sends (parley_bus_publish_seconds) when
// metrics are on.
func (m *Metrics) timeBus(bus router.Bus) router.Bus {
	if m == nil || bus == nil {
		return bus
	}
	return timedBus{Bus: bus, m: m}
}

type timedBus struct {
	router.Bus
	m *Metrics
}

func (b timedBus) Send(ctx context.Context, node string, batch uint64, envs []router.Envelope) error {
	start := time.Now()
	err := b.Bus.Send(ctx, node, batch, envs)
	if err == nil {
		b.m.ObserveBusPublish(time.Since(start))
	}
	return err
}

// bind adds the gauges read from the server when scraped.
func (m *Metrics) bind(s *Server) error {
	if !m.bound.CompareAndSwap(false, true) {
		return fmt.Errorf("%w: one Metrics serves one Server", ErrConfig)
	}
	var (
		mu    atomic.Pointer[sessionCounts]
		stamp atomic.Int64
	)
	// One walk over the sessions serves the gauges of one scrape.
	counts := func() *sessionCounts {
		now := time.Now().UnixNano()
		if c := mu.Load(); c != nil && now-stamp.Load() < int64(100*time.Millisecond) {
			return c
		}
		c := s.countSessions()
		mu.Store(c)
		stamp.Store(now)
		return c
	}
	m.set.NewGauge(`parley_connections{state="anonymous"}`, func() float64 { return float64(counts().anonymous) })
	m.set.NewGauge(`parley_connections{state="logging_in"}`, func() float64 { return float64(counts().loggingIn) })
	m.set.NewGauge(`parley_connections{state="authed"}`, func() float64 { return float64(counts().authed) })
	m.set.NewGauge(`parley_connections_open`, func() float64 { return float64(s.conns.Load()) })
	m.set.NewGauge(`parley_connections_other_listeners`, func() float64 { return float64(s.others.Load()) })
	m.set.NewGauge(`parley_connections_max`, func() float64 { return float64(s.cfg.MaxConns) })
	m.set.NewGauge(`parley_inbox_frames`, func() float64 { return float64(counts().inbox) })
	m.set.NewGauge(`parley_outbound_queued_bytes`, func() float64 { return float64(counts().outbound) })
	m.set.NewGauge(`parley_worker_queue_sessions`, func() float64 { return float64(s.pool.queued()) })
	m.set.NewGauge(`parley_workers_busy`, func() float64 { return float64(counts().running) })
	m.set.NewGauge(`parley_sends_in_flight`, func() float64 { return float64(counts().pending) })
	m.set.NewGauge(`parley_workers`, func() float64 { return float64(s.cfg.Workers) })
	m.set.NewGauge(`parley_started_seconds`, func() float64 { return float64(s.startedAt.Unix()) })
	if s.collector != nil {
		// The collector of files (filegc.go): counters read when scraped.
		gc := func(f func(files.GCStats) int64) func() float64 {
			return func() float64 { return float64(f(s.collector.Stats())) }
		}
		m.set.NewGauge(`parley_files_gc_runs_total`, gc(func(st files.GCStats) int64 { return st.Runs }))
		m.set.NewGauge(`parley_files_gc_failed_runs_total`, gc(func(st files.GCStats) int64 { return st.Errors }))
		m.set.NewGauge(`parley_files_gc_examined_total`, gc(func(st files.GCStats) int64 { return st.Examined }))
		m.set.NewGauge(`parley_files_gc_held_total`, gc(func(st files.GCStats) int64 { return st.Held }))
		m.set.NewGauge(`parley_files_gc_kept_total`, gc(func(st files.GCStats) int64 { return st.Kept }))
		m.set.NewGauge(`parley_files_gc_removed_total`, gc(func(st files.GCStats) int64 { return st.Removed }))
		m.set.NewGauge(`parley_files_gc_removed_bytes_total`, gc(func(st files.GCStats) int64 { return st.RemovedBytes }))
	}
	if s.cfg.Bus != nil {
		// The outbox's figures: envelopes handed to the bus, dropped past
		// its bound, failed attempts (batches), envelopes and bytes
		// waiting or in flight.
		outbox := func(i int) func() float64 {
			return func() float64 {
				if s.outbox == nil {
					return 0
				}
				if i == 4 {
					return float64(s.outbox.QueuedBytes())
				}
				sent, dropped, failures, queued := s.outbox.Stats()
				return float64([]uint64{sent, dropped, failures, uint64(queued)}[i])
			}
		}
		m.set.NewGauge(`parley_bus_sent_total`, outbox(0))
		m.set.NewGauge(`parley_bus_dropped_total`, outbox(1))
		m.set.NewGauge(`parley_bus_send_failures_total`, outbox(2))
		m.set.NewGauge(`parley_bus_queued_envelopes`, outbox(3))
		m.set.NewGauge(`parley_bus_queued_bytes`, outbox(4))
	}
	return nil
}

// sessionCounts are the figures of one walk over the sessions.
type sessionCounts struct {
	anonymous, loggingIn, authed int
	running                      int   // being handled by a worker
	pending                      int   // sends handed to the store, not yet answered
	inbox                        int   // frames waiting for a worker
	outbound                     int64 // bytes handed to the socket and not yet written
}

func (s *Server) countSessions() *sessionCounts {
	c := &sessionCounts{}
	s.hub.each(func(ss *session) {
		switch ss.state.Load() {
		case stateAnonymous:
			c.anonymous++
		case stateLoggingIn:
			c.loggingIn++
		default:
			c.authed++
		}
		c.outbound += ss.queued.Load()
		ss.mu.Lock()
		c.inbox += len(ss.inbox)
		c.pending += int(ss.pending)
		if ss.running {
			c.running++
		}
		ss.mu.Unlock()
	})
	return c
}

// acceptPaused counts a pause of the accept loop on descriptor exhaustion.
func (m *Metrics) acceptPaused() {
	if m != nil {
		m.acceptPause.Inc()
	}
}

// frameIn counts a frame decoded from a client.
func (m *Metrics) frameIn(t protocol.Type) {
	if m == nil {
		return
	}
	m.framesIn[min(int(t), maxTypeLabel)].Inc()
}

// framesOutOf counts the frames in b, which is going to a client: by type,
// Error frames also by code and Kicks by reason.
func (m *Metrics) framesOutOf(b []byte) {
	if m == nil {
		return
	}
	for len(b) > 0 {
		h, body, n, err := protocol.Decode(b, math.MaxInt32)
		if err != nil {
			return
		}
		b = b[n:]
		i := int(h.Type)
		if i > maxTypeLabel || m.framesOut[i] == nil {
			i = maxTypeLabel
		}
		m.framesOut[i].Inc()
		switch h.Type {
		case protocol.TypeError:
			var e protocol.Error
			_ = protocol.DecodeBody(body, &e)
			m.errorCode(e.Code)
		case protocol.TypeKick:
			var k protocol.Kick
			_ = protocol.DecodeBody(body, &k)
			if c := m.kicks[k.Reason]; c != nil {
				c.Inc()
			} else {
				m.kicksOther.Inc()
			}
		}
	}
}

func (m *Metrics) errorCode(code protocol.Code) {
	if c := m.errors[code]; c != nil {
		c.Inc()
	} else {
		m.errorsOther.Inc()
	}
}

// handled records what a worker did with one frame: reply holds the frames
// it appended.
func (m *Metrics) handled(f inbound, reply []byte) {
	if m == nil {
		return
	}
	switch f.typ {
	case protocol.TypeRegister, protocol.TypeLogin:
		kind := "register"
		if l, ok := f.body.(*protocol.Login); ok {
			kind = "password"
			if l.Token != "" {
				kind = "token"
			}
		}
		result := "other"
		if h, body, _, err := protocol.Decode(reply, math.MaxInt32); err == nil {
			switch h.Type {
			case protocol.TypeLoginOK:
				result = "ok"
			case protocol.TypeRedirect:
				result = "redirect"
			case protocol.TypeError:
				var e protocol.Error
				_ = protocol.DecodeBody(body, &e)
				result = e.Code.String()
			}
		}
		if c := m.logins[loginKey{kind, result}]; c != nil {
			c.Inc()
		} else {
			m.loginsOther.Inc()
		}
	}
}

// sendAnswered records the latency of a Send from its arrival (at, Unix
// ns) to its answer, SendAck or Error, being written.
func (m *Metrics) sendAnswered(at int64) {
	if m != nil && at != 0 {
		m.sendAck.Update(max(0, float64(time.Now().UnixNano()-at)/1e9))
	}
}

// ObserveStoreStage records that n Appends each spent d in a stage of the
// store's group commit (parley_store_stage_seconds): a store's
// storage.StageObserver.
func (m *Metrics) ObserveStoreStage(stage storage.Stage, d time.Duration, n int) {
	if m == nil || int(stage) >= len(m.storeStages) {
		return
	}
	h, v := m.storeStages[stage], max(0, d.Seconds())
	for range n {
		h.Update(v)
	}
}

// frameWaited records how long a frame that arrived at at (Unix ns) waited
// for a worker to run its handler (parley_frame_wait_seconds).
func (m *Metrics) frameWaited(at int64, now time.Time) {
	if m != nil && at != 0 {
		m.frameWait.Update(max(0, float64(now.UnixNano()-at)/1e9))
	}
}

// stored counts a message newly stored, and the Append's latency.
func (m *Metrics) stored(d time.Duration, dup bool) {
	if m == nil {
		return
	}
	m.append.Update(d.Seconds())
	if !dup {
		m.messages.Inc()
	}
}

// expiredN counts messages this node's sweeper deleted.
func (m *Metrics) expiredN(n int) {
	if m != nil {
		m.expired.Add(n)
	}
}

// committed records one commit handed to delivery.
func (m *Metrics) committed(n int) {
	if m != nil {
		m.commitBatch.Update(float64(n))
	}
}

// pushed counts n pushes of one message queued to connections; with the
// message's server time (Unix ms, set when its Send arrived) it also
// records the send→push latency, once per message.
func (m *Metrics) pushed(n int, serverTime int64) {
	if m == nil || n == 0 {
		return
	}
	m.pushes.Add(n)
	if serverTime > 0 {
		m.sendPush.Update(max(0, float64(time.Now().UnixMilli()-serverTime)/1e3))
	}
}

// caughtUp counts the messages a catch-up pushed again (catchup.go).
func (m *Metrics) caughtUp(n int) {
	if m != nil {
		m.caughtUpN.Add(n)
	}
}

// handshake counts a Noise handshake completed.
func (m *Metrics) handshake() {
	if m != nil {
		m.handshakes.Inc()
	}
}
