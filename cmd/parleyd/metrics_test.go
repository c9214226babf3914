package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/parleyim/parley/server"
	"github.com/parleyim/parley/server/servertest"
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
