package server_test

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
)

// scrape reads the metrics as name{labels} → value.
func scrape(t *testing.T, m *server.Metrics) map[string]float64 {
	t.Helper()
	var b bytes.Buffer
	m.WritePrometheus(&b)
	out := map[string]float64{}
	sc := bufio.NewScanner(&b)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// waitMetric polls until the metric has the value (figures of another
// goroutine land a moment after the client sees the reply).
func waitMetric(t *testing.T, m *server.Metrics, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, ok := scrape(t, m)[name]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v), want %v", name, got, ok, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestMetricsCountTheChokepoints(t *testing.T) {
	m := server.NewMetrics()
	srv := startServer(t, func(c *server.Config) { c.Metrics = m })

	a, b := dial(t, srv.Addr()), dial(t, srv.Addr())
	anon := dial(t, srv.Addr())
	anon.ping()
	waitMetric(t, m, `parley_connections{state="anonymous"}`, 3)

	alice := a.register(uniqueName("alice"))
	bob := b.register(uniqueName("bob"))
	waitMetric(t, m, `parley_connections{state="authed"}`, 2)
	waitMetric(t, m, `parley_connections{state="anonymous"}`, 1)
	waitMetric(t, m, `parley_connections_open`, 3)

	// Logins and their failures, by kind and reason.
	id := anon.send(protocol.TypeLogin, &protocol.Login{Username: "nobody-here", Password: "wrong password"})
	anon.expectError(id, protocol.CodeBadCredentials)
	id = anon.send(protocol.TypeLogin, &protocol.Login{Token: "not-a-token"})
	anon.expectError(id, protocol.CodeTokenInvalid)
	waitMetric(t, m, `parley_logins_total{kind="register",result="ok"}`, 2)
	waitMetric(t, m, `parley_logins_total{kind="password",result="BAD_CREDENTIALS"}`, 1)
	waitMetric(t, m, `parley_logins_total{kind="token",result="TOKEN_INVALID"}`, 1)
	_ = bob

	// A message: stored, acked (latency observed), pushed.
	a.sendText(bob.UserID, "m1", "hello")
	b.expectPush()
	waitMetric(t, m, `parley_messages_stored_total`, 1)
	waitMetric(t, m, `parley_send_ack_seconds_count`, 1)
	waitMetric(t, m, `parley_store_append_seconds_count`, 1)
	waitMetric(t, m, `parley_pushes_total`, 1)
	waitMetric(t, m, `parley_send_push_seconds_count`, 1)
	waitMetric(t, m, `parley_frames_in_total{type="Send"}`, 1)
	waitMetric(t, m, `parley_frames_out_total{type="SendAck"}`, 1)
	waitMetric(t, m, `parley_frames_out_total{type="Push"}`, 1)
	waitMetric(t, m, `parley_frames_in_total{type="Ping"}`, 1)
	waitMetric(t, m, `parley_frames_out_total{type="Pong"}`, 1)
	if s := scrape(t, m); s[`parley_store_commit_batch_messages_count`] < 1 {
		t.Fatalf("no commit batch observed")
	}
	// Every frame a worker ran waited for it: the logins, the Send.
	if s := scrape(t, m); s[`parley_frame_wait_seconds_count`] < 3 {
		t.Fatalf("frames' waits for a worker: %v observed, want at least 3", s[`parley_frame_wait_seconds_count`])
	}

	// Errors by code, hostile frame types under one bounded label.
	id = a.send(protocol.Type(0x7777), nil)
	a.expectError(id, protocol.CodeUnknownType)
	id = anon.send(protocol.TypeSync, &protocol.Sync{Conv: "x"})
	anon.expectError(id, protocol.CodeNotLoggedIn)
	waitMetric(t, m, `parley_frames_in_total{type="unknown"}`, 1)
	waitMetric(t, m, `parley_errors_total{code="UNKNOWN_TYPE"}`, 1)
	waitMetric(t, m, `parley_errors_total{code="NOT_LOGGED_IN"}`, 1)
	waitMetric(t, m, `parley_errors_total{code="BAD_CREDENTIALS"}`, 1)

	// Kicks by reason: a protocol error.
	anon.sendBytes([]byte{0, 0, 0, 2, 1, 0})
	anon.expectError(0, protocol.CodeBadFrame)
	anon.expectKick(protocol.KickProtocolError)
	waitMetric(t, m, `parley_kicks_total{reason="PROTOCOL_ERROR"}`, 1)
	waitMetric(t, m, `parley_connections_open`, 2)

	s := scrape(t, m)
	for _, name := range []string{
		`parley_connections_max`, `parley_workers`, `parley_worker_queue_sessions`, `parley_workers_busy`,
		`parley_inbox_frames`, `parley_outbound_queued_bytes`, `parley_bus_publish_seconds_count`,
		`go_goroutines`, `go_memstats_heap_alloc_bytes`, `process_resident_memory_bytes`, `process_open_fds`,
	} {
		if _, ok := s[name]; !ok {
			t.Errorf("no %s", name)
		}
	}
	// Bounded: no label holds a user, a name or a connection.
	for name := range s {
		if strings.Contains(name, alice.Username) || strings.Contains(name, "user=") || strings.Contains(name, "session=") {
			t.Errorf("a user in a label: %s", name)
		}
	}
	if len(s) > 1000 {
		t.Errorf("%d series", len(s))
	}
}

func TestMetricsServeOneServer(t *testing.T) {
	m := server.NewMetrics()
	startServer(t, func(c *server.Config) { c.Metrics = m })
	_, err := server.New(server.Config{Metrics: m, Addr: "127.0.0.1:1"}, nil)
	if err == nil || !strings.Contains(err.Error(), "one Metrics serves one Server") {
		t.Fatalf("a second server on the same Metrics: %v", err)
	}
}

// The hot path: a frame in, its reply out, and a send's latency. The
// figures say what metrics cost per frame; see docs/operations.md.
func BenchmarkMetricsPerFrame(b *testing.B) {
	m := server.NewMetrics()
	reply := protocol.MustFrame(protocol.TypeSendAck, 7, &protocol.SendAck{MsgID: 1, Conv: "d:1:2", Seq: 9})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			server.MetricsFrame(m, protocol.TypeSend, reply)
		}
	})
}
