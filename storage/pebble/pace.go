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
	rate  atomic.Int64  // bytes a second
	waits atomic.Uint64 // writes held back
	mu    sync.Mutex
	next  time.Time // when the writes so far are due, at rate
	// now and sleep are the clock; a test may stop it.
	now   func() time.Time
	sleep func(time.Duration)
}

func newPacer() *pacer { return &pacer{now: time.Now, sleep: time.Sleep} }

// wait holds a write of n bytes until it is due.
func (p *pacer) wait(n int) {
	rate := p.rate.Load()
	if rate <= 0 || n <= 0 {
		return
	}
	p.mu.Lock()
	now := p.now()
	if earliest := now.Add(-paceCredit); p.next.Before(earliest) {
		p.next = earliest
	}
	p.next = p.next.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
	d := p.next.Sub(now)
	p.mu.Unlock()
	if d > 0 {
		p.waits.Add(1)
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
	// stalls and stallsEnded count the engine's write stalls begun and
	// ended, stallsPaced those begun while flushes were paced;
	// stallReason is the last one's reason.
	stalls, stallsEnded, stallsPaced atomic.Uint64
	stallReason                      atomic.Pointer[string]
	log                              *slog.Logger

	memTableSize uint64
	l0Threshold  int
}

func newPacing(log *slog.Logger) *pacing {
	return &pacing{flush: newPacer(), compaction: newPacer(), log: log}
}

// listen sets l's hooks (l is the store's own: nothing else listens) to tell pc when
// flushes begin and end and when the engine stalls writes (holding them
// until a flush or a compaction catches up, which the paces are lifted to
// avoid). The engine calls them under its lock: they only count; run logs.
func (pc *pacing) listen(l *pebble.EventListener) {
	l.WriteStallBegin = func(info pebble.WriteStallBeginInfo) {
		pc.stallReason.Store(&info.Reason)
		pc.stalls.Add(1)
		if pc.flush.rate.Load() > 0 {
			pc.stallsPaced.Add(1) // the flush's pace was not lifted in time
		}
	}
	l.WriteStallEnd = func() { pc.stallsEnded.Add(1) }
	l.FlushBegin = func(pebble.FlushInfo) {
		pc.flushes.Add(1)
		pc.flushing.Add(1)
	}
	l.FlushEnd = func(pebble.FlushInfo) { pc.flushing.Add(-1) }
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

// intakeWindow measures the WAL's intake over the last paceWindow samples.
type intakeWindow struct {
	ring [paceWindow]struct {
		at    time.Time
		walIn uint64
	}
	n int
}

// add records the WAL's total intake at a time and returns its rate over
// the window (bytes a second), or false before there are two samples.
func (w *intakeWindow) add(at time.Time, walIn uint64) (float64, bool) {
	oldest := w.ring[0]
	if w.n >= paceWindow {
		oldest = w.ring[w.n%paceWindow]
	}
	w.ring[w.n%paceWindow].at, w.ring[w.n%paceWindow].walIn = at, walIn
	w.n++
	span := at.Sub(oldest.at)
	if w.n == 1 || span <= 0 {
		return 0, false
	}
	return float64(walIn-oldest.walIn) / span.Seconds(), true
}

// run sets the paces from db's metrics every paceEvery until quit closes.
func (pc *pacing) run(db *pebble.DB, quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(paceEvery)
	defer t.Stop()
	var intake intakeWindow
	var seenFlushes, flushStart, prevWALIn, seenStalls, seenEnded uint64
	for {
		select {
		case <-quit:
			pc.flush.rate.Store(0)
			pc.compaction.rate.Store(0)
			return
		case now := <-t.C:
			if n, e := pc.stalls.Load(), pc.stallsEnded.Load(); n != seenStalls || e != seenEnded {
				reason := ""
				if r := pc.stallReason.Load(); r != nil {
					reason = *r
				}
				pc.log.Warn("pebble: writes stalled", "stalls", n, "ended", e, "paced", pc.stallsPaced.Load(), "reason", reason,
					"flush_pace", pc.flush.rate.Load(), "compaction_pace", pc.compaction.rate.Load())
				seenStalls, seenEnded = n, e
			}
			m := db.Metrics()
			walIn := m.WAL.BytesIn
			if f := pc.flushes.Load(); f != seenFlushes {
				// A flush began since the last tick: count from then.
				seenFlushes, flushStart = f, prevWALIn
			}
			prevWALIn = walIn
			rate, ok := intake.add(now, walIn)
			if !ok {
				continue
			}
			f, c := pc.paceRates(paceSample{
				intake:     rate,
				sinceFlush: walIn - flushStart,
				flushing:   pc.flushing.Load() > 0,
				l0:         m.Levels[0].Sublevels,
				debt:       m.Compact.EstimatedDebt,
			})
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
