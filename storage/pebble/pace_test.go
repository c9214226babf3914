package pebble

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parleyim/parley/protocol"
)

// recordingPacer is a pacer whose waits are recorded, not slept.
func recordingPacer(rate int64) (*pacer, *[]time.Duration) {
	var waits []time.Duration
	p := newPacer()
	p.sleep = func(d time.Duration) { waits = append(waits, d) }
	p.rate.Store(rate)
	return p, &waits
}

func TestPacerSpreadsWrites(t *testing.T) {
	p, waits := recordingPacer(1 << 20) // 1 MiB a second
	for range 256 {
		p.wait(4 << 10)
	}
	// 1 MiB at 1 MiB/s is due a second after the start, less the credit:
	// the last write waits about that long (nothing sleeps here).
	last := (*waits)[len(*waits)-1]
	if want := time.Second - paceCredit; last < want-10*time.Millisecond || last > want+10*time.Millisecond {
		t.Fatalf("last write waited %v, want about %v", last, want)
	}
	// The first writes go at once, within the credit.
	if n := len(*waits); n > 256-4 {
		t.Fatalf("%d of 256 writes waited; the first 20 ms' worth should not", n)
	}
}

func TestPacerOffLetsWritesThrough(t *testing.T) {
	p, waits := recordingPacer(0)
	for range 1000 {
		p.wait(1 << 20)
	}
	if len(*waits) != 0 {
		t.Fatalf("an unpaced pacer waited %d times", len(*waits))
	}
}

func TestPaceRates(t *testing.T) {
	pc := &pacing{memTableSize: 64 << 20, l0Threshold: 4}
	rate := int64(paceFactor * 10 << 20)
	for _, c := range []struct {
		name        string
		s           paceSample
		flush, comp int64
	}{
		{"idle: the floor", paceSample{}, paceFloor, paceFloor},
		{"from the intake", paceSample{intake: 10 << 20}, rate, rate},
		{"a flush on time", paceSample{intake: 10 << 20, flushing: true, sinceFlush: 8 << 20}, rate, rate},
		{"a flush late: its pace lifts", paceSample{intake: 10 << 20, flushing: true, sinceFlush: 16 << 20}, 0, rate},
		{"written since, no flush running", paceSample{intake: 10 << 20, sinceFlush: 60 << 20}, rate, rate},
		{"L0 at the threshold: both lift", paceSample{intake: 10 << 20, l0: 4}, 0, 0},
		{"compaction debt: both lift", paceSample{intake: 10 << 20, debt: paceMaxDebt + 1}, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, comp := pc.paceRates(c.s)
			if f != c.flush || comp != c.comp {
				t.Fatalf("rates %d, %d; want %d, %d", f, comp, c.flush, c.comp)
			}
		})
	}
}

func TestPacedFSPacesOnlyBackgroundWrites(t *testing.T) {
	pc := newPacing()
	flush, fw := recordingPacer(1)
	comp, cw := recordingPacer(1)
	pc.flush, pc.compaction = flush, comp
	fs := pacedFS{vfs.NewMem(), pc}
	for _, c := range []struct {
		category vfs.DiskWriteCategory
		waits    *[]time.Duration
		want     int
	}{
		{"pebble-wal", fw, 0},
		{vfs.WriteCategoryUnspecified, fw, 0},
		{categoryFlush, fw, 1},
		{categoryCompaction, cw, 1},
	} {
		f, err := fs.Create("f-"+string(c.category), c.category)
		if err != nil {
			t.Fatal(err)
		}
		before := len(*c.waits)
		// Past the credit: a paced write of 1 KiB at 1 B/s waits.
		if _, err := f.Write(make([]byte, 1<<10)); err != nil {
			t.Fatal(err)
		}
		if got := len(*c.waits) - before; got != c.want {
			t.Errorf("%s: %d paced writes, want %d", c.category, got, c.want)
		}
		_ = f.Close()
	}
}

// TestPacingFollowsTheEngine checks the wiring: a store that takes writes
// paces its flushes and compactions from its WAL's intake, flushes with
// the pace on and loses nothing, and lifts the pace when it closes.
func TestPacingFollowsTheEngine(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir(), MemTableSize: 1 << 20, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := make([]byte, 512)
	const n = 8000 // about 4 MiB: several 1 MiB memtables
	for i := range n {
		m := protocol.Message{Conv: protocol.DirectConv(1, 2), From: 1, ClientMsgID: fmt.Sprint(i), Body: body}
		if _, _, err := s.Append(ctx, &m); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.pacing.flush.rate.Load() == 0 || s.pacing.compaction.rate.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("paces %d and %d after writes", s.pacing.flush.rate.Load(), s.pacing.compaction.rate.Load())
		}
		time.Sleep(paceEvery)
	}
	if got := s.pacing.flushes.Load(); got < 2 {
		t.Fatalf("%d flushes began; want several", got)
	}
	if got := s.pacing.stalls.Load(); got != 0 {
		t.Fatalf("%d write stalls under the paces", got)
	}
	if err := s.db.Flush(); err != nil { // a flush under the pace
		t.Fatal(err)
	}
	msgs, _, last, _, err := s.After(ctx, 1, protocol.DirectConv(1, 2), n-2, 10)
	if err != nil || last != n || len(msgs) != 2 || msgs[1].Seq != n {
		t.Fatalf("after the flushes: last seq %d, %d messages, %v; want %d", last, len(msgs), err, n)
	}
	pc := s.pacing
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if pc.flush.rate.Load() != 0 || pc.compaction.rate.Load() != 0 {
		t.Fatal("the paces outlive the store")
	}
}
