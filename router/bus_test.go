package router_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/parleyim/parley/router"
)

func nameServer() string {
	if a := os.Getenv("PARLEY_MQ_NAMESRV"); a != "" {
		return a
	}
	return "127.0.0.1:9876"
}

func newBus(t *testing.T, topic, node string) *router.RocketMQBus {
	t.Helper()
	b, err := router.NewRocketMQBus(router.RocketMQConfig{NameServers: []string{nameServer()}, Topic: topic, Node: node})
	if err != nil {
		t.Fatalf("RocketMQ at %s: %v: run `make services`", nameServer(), err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Envelopes reach the node they are sent to, and only it.
func TestRocketMQBus(t *testing.T) {
	var r [4]byte
	_, _ = rand.Read(r[:])
	suffix := hex.EncodeToString(r[:])
	topic := "PARLEY_T_" + suffix
	a := newBus(t, topic, "a-"+suffix)
	b := newBus(t, topic, "b-"+suffix)
	var (
		mu         sync.Mutex
		gotA, gotB = map[int64]int{}, map[int64]int{}
		record     = func(m map[int64]int) func(router.Envelope) {
			return func(e router.Envelope) {
				mu.Lock()
				defer mu.Unlock()
				for _, u := range e.Users {
					m[u]++
				}
			}
		}
	)
	// The first send creates the topic, so the consumers find it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Send(ctx, "b-"+suffix, router.Envelope{Kind: router.EnvPush, Users: []int64{0}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Listen(record(gotA)); err != nil {
		t.Fatal(err)
	}
	if err := b.Listen(record(gotB)); err != nil {
		t.Fatal(err)
	}
	const n = 50
	start := time.Now()
	for i := int64(1); i <= n; i++ {
		if err := a.Send(ctx, "b-"+suffix, router.Envelope{Kind: router.EnvPush, Users: []int64{i}, Frame: []byte{1, 2, 3}}); err != nil {
			t.Fatal(err)
		}
	}
	for {
		mu.Lock()
		done := len(gotB) == n+1
		mu.Unlock()
		if done {
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("b got %d of %d envelopes", len(gotB), n+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d envelopes delivered in %v", n+1, time.Since(start))
	mu.Lock()
	defer mu.Unlock()
	if len(gotA) != 0 {
		t.Fatalf("a got envelopes meant for b: %v", gotA)
	}
}
