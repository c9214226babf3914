package bench

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage/fulltext"
)

// A text body keeps its send time and gives the text index words: tens of
// grams where a stamped body of zeros gives next to none.
func TestTextBodies(t *testing.T) {
	at := time.Unix(1_700_000_000, 123)
	r := rand.New(rand.NewPCG(7, 0))
	var grams, zeroGrams int
	for range 100 {
		b := body(64, at, r)
		if len(b) != 64 {
			t.Fatalf("body of %d bytes; want 64", len(b))
		}
		if got := time.Unix(0, int64(binary.BigEndian.Uint64(b))); !got.Equal(at) {
			t.Fatalf("send time %v; want %v", got, at)
		}
		if bytes.Count(b[8:], []byte{0}) != 0 {
			t.Fatalf("zeros left in %q", b[8:])
		}
		grams += len(fulltext.Grams(fulltext.Text(&protocol.Message{Body: b})))
		zeroGrams += len(fulltext.Grams(fulltext.Text(&protocol.Message{Body: body(64, at, nil)})))
	}
	if grams < 100*20 {
		t.Errorf("%.1f grams a text body; want at least 20", float64(grams)/100)
	}
	if zeroGrams > 100*3 {
		t.Errorf("%.1f grams a stamped body; want few", float64(zeroGrams)/100)
	}
	// The same pair draws the same words in every run.
	a, b := body(64, at, rand.New(rand.NewPCG(3, 0))), body(64, at, rand.New(rand.NewPCG(3, 0)))
	if !bytes.Equal(a, b) {
		t.Fatalf("two runs differ: %q, %q", a, b)
	}
}
