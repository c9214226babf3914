package pebble

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// The store paces its background writes: a memtable flush or a compaction
// writes its tables at most at a rate set from what the WAL takes in, so
// that it spreads over time instead of taking a core in a burst while sends
// wait for theirs. Flushes and compactions have a pace each, so that a
// compaction never slows a flush. A pace is lifted whenever the engine
// could fall behind, so that it never brings on a write stall: a flush's
// while the memtable after it is (by the WAL's estimate) half full, both
// while L0 is at the engine's compaction threshold or compactions owe
// paceMaxDebt. docs/storage.md, "Background writes".
const (
	// paceFactor is each background write rate as a multiple of the WAL's
	// intake over the last second. A memtable's tables are at most about
	// its WAL bytes, so a flush at this pace ends before the next memtable
	// is two thirds full.
	paceFactor = 1.5
	// paceFloor is the least background write rate, bytes a second.
	paceFloor = 4 << 20
	// paceEvery is how often the paces are set again from the engine's
	// metrics; paceWindow of those make the intake's second.
	paceEvery  = 100 * time.Millisecond
	paceWindow = 10
	// paceCredit is how far behind its pace a writer may fall and then
	// write at once (one burst of that much time's worth).
	paceCredit = 20 * time.Millisecond
	// paceMaxDebt is the compaction debt past which both paces are lifted.
	paceMaxDebt = 256 << 20
	// memPerWAL is what a byte of WAL takes in a memtable, at most about:
	// the skiplist node and the key's trailer beside the key and value.
	memPerWAL = 2
)

// pacer spreads writes to a rate; a rate of 0 lets them through.
type pacer struct {
	rate atomic.Int64 // bytes a second
	mu   sync.Mutex
	next time.Time // when the writes so far are due, at rate
	// sleep waits; a test may record instead.
	sleep func(time.Duration)
}

func newPacer() *pacer { return &pacer{sleep: time.Sleep} }

// wait holds a write of n bytes until it is due.
func (p *pacer) wait(n int) {
	rate := p.rate.Load()
	if rate <= 0 || n <= 0 {
		return
	}
	p.mu.Lock()
	now := time.Now()
	if earliest := now.Add(-paceCredit); p.next.Before(earliest) {
		p.next = earliest
	}
	p.next = p.next.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
	d := p.next.Sub(now)
	p.mu.Unlock()
	if d > 0 {
		p.sleep(d)
	}
}

// pacing is the store's two pacers and what sets them.
type pacing struct {
	flush, compaction *pacer
	// flushes counts the flushes begun; flushing is set while one runs.
	// The engine's event listener sets both.
	flushes  atomic.Uint64
	flushing atomic.Int32
	// stalls counts the engine's write stalls.
	stalls atomic.Uint64

	memTableSize uint64
	l0Threshold  int
}

func newPacing() *pacing { return &pacing{flush: newPacer(), compaction: newPacer()} }

// listen makes l tell pc when flushes begin and end, and log each write
// stall (the engine holding writes until a flush or a compaction catches
// up), which the paces are lifted to avoid.
func (pc *pacing) listen(l *pebble.EventListener, log *slog.Logger) {
	var stallAt atomic.Int64
	l.WriteStallBegin = func(info pebble.WriteStallBeginInfo) {
		pc.stalls.Add(1)
		stallAt.Store(time.Now().UnixNano())
		log.Warn("pebble: writes stalled", "reason", info.Reason,
			"flush_pace", pc.flush.rate.Load(), "compaction_pace", pc.compaction.rate.Load())
	}
	l.WriteStallEnd = func() {
		log.Warn("pebble: writes go on", "stalled", time.Since(time.Unix(0, stallAt.Load())))
	}
	begin, end := l.FlushBegin, l.FlushEnd
	l.FlushBegin = func(info pebble.FlushInfo) {
		pc.flushes.Add(1)
		pc.flushing.Add(1)
		if begin != nil {
			begin(info)
		}
	}
	l.FlushEnd = func(info pebble.FlushInfo) {
		pc.flushing.Add(-1)
		if end != nil {
			end(info)
		}
	}
}

// paceSample is what the paces are set from.
type paceSample struct {
	intake     float64 // bytes a second the WAL took in over the last second
	sinceFlush uint64  // WAL bytes taken in since the flush running began
	flushing   bool
	l0         int32  // L0 sublevels
	debt       uint64 // estimated compaction debt, bytes
}

// paceRates are the flush and compaction rates for s: 0 where a pace is
// lifted.
func (pc *pacing) paceRates(s paceSample) (flush, compaction int64) {
	rate := max(paceFloor, int64(paceFactor*s.intake))
	if int(s.l0) >= pc.l0Threshold || s.debt > paceMaxDebt {
		return 0, 0
	}
	flush, compaction = rate, rate
	if s.flushing && memPerWAL*s.sinceFlush >= pc.memTableSize/2 {
		flush = 0
	}
	return flush, compaction
}

// run sets the paces from db's metrics every paceEvery until quit closes.
func (pc *pacing) run(db *pebble.DB, quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(paceEvery)
	defer t.Stop()
	var ring [paceWindow]struct {
		at    time.Time
		walIn uint64
	}
	n := 0
	var seenFlushes, flushStart, prevWALIn uint64
	for {
		select {
		case <-quit:
			pc.flush.rate.Store(0)
			pc.compaction.rate.Store(0)
			return
		case now := <-t.C:
			m := db.Metrics()
			walIn := m.WAL.BytesIn
			if f := pc.flushes.Load(); f != seenFlushes {
				// A flush began since the last tick: count from then.
				seenFlushes, flushStart = f, prevWALIn
			}
			prevWALIn = walIn
			oldest := ring[0]
			if n >= paceWindow {
				oldest = ring[n%paceWindow]
			}
			ring[n%paceWindow].at, ring[n%paceWindow].walIn = now, walIn
			n++
			window := now.Sub(oldest.at)
			if n == 1 || window <= 0 {
				continue // no window yet
			}
			s := paceSample{
				intake:     float64(walIn-oldest.walIn) / window.Seconds(),
				sinceFlush: walIn - flushStart,
				flushing:   pc.flushing.Load() > 0,
				l0:         m.Levels[0].Sublevels,
				debt:       m.Compact.EstimatedDebt,
			}
			f, c := pc.paceRates(s)
			pc.flush.rate.Store(f)
			pc.compaction.rate.Store(c)
		}
	}
}

// pacedFS paces the writes of the files flushes and compactions create.
type pacedFS struct {
	vfs.FS
	pc *pacing
}

// Categories Pebble gives the files of flushes and compactions.
const (
	categoryFlush      vfs.DiskWriteCategory = "pebble-memtable-flush"
	categoryCompaction vfs.DiskWriteCategory = "pebble-compaction"
)

func (fs pacedFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil {
		return f, err
	}
	switch category {
	case categoryFlush:
		return pacedFile{f, fs.pc.flush}, nil
	case categoryCompaction:
		return pacedFile{f, fs.pc.compaction}, nil
	}
	return f, nil
}

type pacedFile struct {
	vfs.File
	p *pacer
}

func (f pacedFile) Write(b []byte) (int, error) {
	f.p.wait(len(b))
	return f.File.Write(b)
}
