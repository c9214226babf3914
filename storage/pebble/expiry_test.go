package pebble

import (
	"slices"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage/storetest"
)

// The timer and the timing wheel are in the database: after a reopen, a
// message is stamped from the timer set before, and the messages stored
// before expire.
func TestExpiryReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, Config{Dir: dir})
	a, b := int64(1), int64(2)
	conv := protocol.DirectConv(a, b)
	now := time.Now().UnixMilli()
	msg := func(ct uint16, body string, at int64) *protocol.Message {
		return &protocol.Message{MsgID: now + at, Conv: conv, From: a, To: b, ContentType: ct, Body: []byte(body), ServerTime: at}
	}
	for _, m := range []*protocol.Message{
		msg(protocol.ContentTimer, "2", now),
		msg(0, "soon", now),
		msg(0, "sooner", now-1000),
	} {
		if _, _, err := s.Append(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, Config{Dir: dir})
	m := msg(0, "after the reopen", now)
	stored, _, err := s.Append(t.Context(), m)
	if err != nil || stored.ExpiresAt != now+2000 {
		t.Fatalf("after reopen: expires_at %d, %v; want %d", stored.ExpiresAt, err, now+2000)
	}
	gone, err := s.Expire(t.Context(), now+1000, 10)
	if err != nil || len(gone) != 1 || string(gone[0].Body) != "sooner" {
		t.Fatalf("Expire after reopen: %+v, %v", gone, err)
	}
	gone, err = s.Expire(t.Context(), now+2000, 10)
	if err != nil || !slices.Equal(seqs(gone), []uint64{2, 4}) {
		t.Fatalf("Expire: %v, %v", seqs(gone), err)
	}
}

func seqs(msgs []protocol.Message) []uint64 {
	var out []uint64
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

// BenchmarkExpiry is the shared expiry benchmark (storetest.BenchExpiry).
func BenchmarkExpiry(b *testing.B) {
	storetest.BenchExpiry(b, openBench, true)
}
