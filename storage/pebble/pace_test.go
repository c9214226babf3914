package pebble

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parleyim/parley/protocol"
)

// recordingPacer is a pacer on a stopped clock whose waits are recorded,
// not slept.
func recordingPacer(rate int64) (*pacer, *[]time.Duration) {
	var waits []time.Duration
	p := newPacer()
	start := time.Now()
	p.now = func() time.Time { return start }
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
	// with the clock stopped, the last write waits exactly that.
	if last, want := (*waits)[len(*waits)-1], time.Second-paceCredit; last != want {
		t.Fatalf("last write waited %v, want %v", last, want)
	}
	// The first 20 ms' worth (five 4 KiB writes) go at once.
	if n := len(*waits); n != 256-5 || p.waits.Load() != 256-5 {
		t.Fatalf("%d (counted %d) of 256 writes waited; want %d", n, p.waits.Load(), 256-5)
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

func TestIntakeWindow(t *testing.T) {
	var w intakeWindow
	at := time.Unix(1000, 0)
	if _, ok := w.add(at, 0); ok {
		t.Fatal("a rate from one sample")
	}
	// 1 MB every 100 ms: 10 MB/s, over the samples so far and then over
	// the last second only.
	for i := 1; i <= 30; i++ {
		rate, ok := w.add(at.Add(time.Duration(i)*paceEvery), uint64(i)*1e6)
		if !ok || rate != 1e7 {
			t.Fatalf("sample %d: rate %v, %v; want 1e7", i, rate, ok)
		}
	}
	// The intake stops: the rate falls as the window moves past it.
	rate, _ := w.add(at.Add(31*paceEvery), 30e6)
	if rate != 9e6 {
		t.Fatalf("a tick without intake: rate %v, want 9e6 (9 MB in the last second)", rate)
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
	pc := newPacing(slog.New(slog.DiscardHandler))
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

// TestPacingFollowsTheEngine checks the wiring: a store taking writes
// sets paces, lifts the flushes' pace before the engine stalls writes,
// loses nothing, and lifts the paces when it closes. (Whether a write is
// held back at a given moment depends on the engine's state then;
// TestPacedFSPacesOnlyBackgroundWrites holds the files to their pace.)
func TestPacingFollowsTheEngine(t *testing.T) {
	s, err := Open(Config{Dir: t.TempDir(), MemTableSize: 4 << 20, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var top atomic.Int64 // the highest flush pace seen
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			top.Store(max(top.Load(), s.pacing.flush.rate.Load()))
			select {
			case <-stop:
				return
			case <-time.After(paceEvery / 2):
			}
		}
	}()
	// About 24 MiB of bodies that do not compress, 64 appends in flight,
	// a round. On a machine busy enough that compactions fall behind, the
	// store rightly lifts the flushes' pace at every tick of a round (L0
	// at its threshold): another round then comes, up to three.
	const n = 24 << 10
	rng := rand.New(rand.NewPCG(1, 2))
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	slots := make(chan struct{}, 64)
	rounds := 0
	for ; rounds < 3 && (rounds == 0 || top.Load() == 0); rounds++ {
		for i := range n {
			body := make([]byte, 1<<10)
			for j := 0; j < len(body); j += 8 {
				binary.LittleEndian.PutUint64(body[j:], rng.Uint64())
			}
			m := protocol.Message{Conv: protocol.DirectConv(1, int64(2+i%8)), From: 1, ClientMsgID: fmt.Sprint(rounds*n + i), Body: body}
			slots <- struct{}{}
			wg.Add(1)
			s.AppendAsync(ctx, &m, func(_ protocol.Message, _ bool, err error) {
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
				<-slots
				wg.Done()
			})
		}
		wg.Wait()
	}
	close(stop)
	<-watched
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if got := s.pacing.flushes.Load(); got < 4 {
		t.Fatalf("%d flushes began; want several", got)
	}
	if top.Load() == 0 {
		t.Fatal("no flush pace was ever set")
	}
	// Writes this fast may outrun flushes (the engine stalls them paced or
	// not), but never while a flush is still paced.
	if got := s.pacing.stallsPaced.Load(); got != 0 {
		t.Fatalf("%d of %d write stalls began with the flushes paced", got, s.pacing.stalls.Load())
	}
	if err := s.db.Flush(); err != nil { // a flush under the pace
		t.Fatal(err)
	}
	for peer := int64(2); peer < 10; peer++ {
		_, _, last, _, err := s.After(ctx, 1, protocol.DirectConv(1, peer), 0, 1)
		if err != nil || last != uint64(rounds*n/8) {
			t.Fatalf("conversation with %d: last seq %d, %v; want %d", peer, last, err, rounds*n/8)
		}
	}
	pc := s.pacing
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if pc.flush.rate.Load() != 0 || pc.compaction.rate.Load() != 0 {
		t.Fatal("the paces outlive the store")
	}
}
