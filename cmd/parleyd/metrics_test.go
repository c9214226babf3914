package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
	"github.com/parleyim/parley/storage"
	"github.com/parleyim/parley/storage/mysql"
	"github.com/parleyim/parley/storage/mysql/mysqltest"
	"github.com/parleyim/parley/storage/pebble"
)

func TestMetricsEndpoint(t *testing.T) {
	m := server.NewMetrics()
	srv := servertest.Start(t, func(c *server.Config) { c.Metrics = m })
	addr := servertest.FreeAddr(t)
	stop, err := serveMetrics(addr, m, srv, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, path := range []string{"/metrics", "/metrics?gc=1"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("%s: %s %s", path, resp.Status, resp.Header.Get("Content-Type"))
		}
		for _, want := range []string{"\nparley_build_info{version=", "\nparley_connections_open 0\n", "\nprocess_resident_memory_bytes ", "\ngo_goroutines "} {
			if !strings.Contains("\n"+string(body), want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok\n" {
			t.Fatalf("%s: %s %q", path, resp.Status, body)
		}
	}
	servertest.Stop(t, srv)
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not ok: the server is shutting down") {
		t.Fatalf("/readyz after stop: %s %q", resp.Status, body)
	}
}

// A MySQL store's group commits are counted by how each was stored, the
// embedded store's engine by its fsyncs, flushes and stalls; each has the
// text index's counters and neither the other's.
func TestStoreGauges(t *testing.T) {
	st, err := mysql.Open(mysql.Config{DSN: mysqltest.DSN(t), Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	a, b := annAndBob(t, st)
	for i, ct := range []uint16{protocol.ContentText, protocol.ContentText, protocol.ContentTimer} {
		m := &protocol.Message{MsgID: time.Now().UnixNano(), Conv: protocol.DirectConv(a.ID, b.ID), From: a.ID, To: b.ID,
			ClientMsgID: string(rune('a' + i)), ContentType: ct, Body: []byte("hi"), ServerTime: time.Now().UnixMilli()}
		if ct == protocol.ContentTimer {
			m.Body = protocol.TimerBody(60)
		}
		if _, _, err := st.Append(ctx, m); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
	}
	m := server.NewMetrics()
	storeGauges(m, st)
	var out bytes.Buffer
	m.WritePrometheus(&out)
	for _, want := range []string{
		"\nparley_mysql_batches_total{path=\"one_trip\"} 2\n",
		"\nparley_mysql_batches_total{path=\"fell_back\"} 0\n",
		"\nparley_mysql_batches_total{path=\"general\"} 1\n",
		"\nparley_index_messages_total ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(out.String(), "parley_pebble_") {
		t.Error("a MySQL store has the embedded engine's metrics")
	}

	pst, err := pebble.Open(pebble.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer pst.Close()
	embedded := server.NewMetrics()
	storeGauges(embedded, pst)
	out.Reset()
	embedded.WritePrometheus(&out)
	if strings.Contains(out.String(), "parley_mysql_") {
		t.Error("the embedded store has MySQL metrics")
	}
	for _, want := range []string{
		"\nparley_pebble_wal_sync_seconds_bucket{le=\"0.0005\"} ",
		"\nparley_pebble_wal_sync_seconds_bucket{le=\"0.009299\"} ",
		"\nparley_pebble_wal_sync_seconds_bucket{le=\"+Inf\"} ",
		"\nparley_pebble_wal_sync_seconds_count ",
		"\nparley_pebble_flushes_total 0\n",
		"\nparley_pebble_write_stalls_total 0\n",
		"\nparley_index_messages_total 0\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("embedded store metrics lack %q:\n%s", want, out.String())
		}
	}
}

// Each store, opened as parleyd opens it, tells the metrics how long its
// Appends spent in each stage of the group commit: every Append once in
// the queue and in its batch's writes, and on the embedded store in the
// wait for its fsync too (MySQL's is inside the COMMIT).
func TestStoreStages(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  storeOptions
		syncs float64
	}{
		{"pebble", storeOptions{kind: "pebble", dataDir: t.TempDir()}, 3},
		{"mysql", storeOptions{kind: "mysql", mysqlDSN: mysqltest.DSN(t), shards: 2, lanes: 1, interval: -1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := server.NewMetrics()
			st, err := tc.opts.open(nil, m.ObserveStoreStage, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := context.Background()
			a, b := annAndBob(t, st)
			for i := range 3 {
				msg := &protocol.Message{MsgID: time.Now().UnixNano(), Conv: protocol.DirectConv(a.ID, b.ID), From: a.ID, To: b.ID,
					ClientMsgID: string(rune('a' + i)), ContentType: protocol.ContentText, Body: []byte("hi"), ServerTime: time.Now().UnixMilli()}
				if _, _, err := st.Append(ctx, msg); err != nil {
					t.Fatalf("Append %d: %v", i, err)
				}
			}
			var out bytes.Buffer
			m.WritePrometheus(&out)
			for stage, want := range map[string]float64{"queue": 3, "write": 3, "sync": tc.syncs} {
				line := "\nparley_store_stage_seconds_count{stage=\"" + stage + "\"} "
				i := strings.Index(out.String(), line)
				if i < 0 {
					t.Fatalf("metrics lack %q", line)
				}
				var got float64
				if _, err := fmt.Sscan(out.String()[i+len(line):], &got); err != nil || got != want {
					t.Errorf("stage %s: count %v (%v), want %v", stage, got, err, want)
				}
			}
		})
	}
}

// annAndBob creates the users ann and bob in st.
func annAndBob(t *testing.T, st storage.Store) (storage.User, storage.User) {
	t.Helper()
	var users [2]storage.User
	for i, name := range []string{"ann", "bob"} {
		u, err := st.CreateUser(context.Background(), name, []byte("hash"))
		if err != nil {
			t.Fatal(err)
		}
		users[i] = u
	}
	return users[0], users[1]
}
