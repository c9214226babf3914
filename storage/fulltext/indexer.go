package fulltext

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyim/parley/protocol"
)

// ListKey names one posting list of a conversation.
type ListKey struct {
	Bucket uint64
	Gram   Gram
}

// Pending is a conversation with messages not yet indexed up to Last.
type Pending struct {
	Conv string
	Last uint64
}

// Lists is a store's side of the indexer: where the posting lists and each
// conversation's progress (the seq up to which its messages are indexed)
// live.
type Lists interface {
	// Progress returns the seq up to which conv is indexed (0 for none).
	Progress(ctx context.Context, conv string) (uint64, error)
	// Behind lists the conversations whose newest message is above their
	// progress. It may read every conversation: the indexer calls it when
	// it starts and after its queue overflowed, not per message.
	Behind(ctx context.Context) ([]Pending, error)
	// Load returns conv's messages with seq above after, ascending, at most
	// n, as they were stored (not folded: an edited message has its first
	// body), an event with its Ref set (the seq of the message it acts on).
	Load(ctx context.Context, conv string, after uint64, n int) ([]protocol.Message, error)
	// Versions returns the versions of conv's message seq, oldest first:
	// the message as first stored, then one copy of it per edit with the
	// edit event's seq and body. None when the message was recalled or
	// does not exist.
	Versions(ctx context.Context, conv string, seq uint64) ([]protocol.Message, error)
	// Add appends postings to conv's lists, records refs (file references
	// of conv's messages; one already recorded is kept) and sets conv's
	// progress to progress (never lowering it), in one atomic write.
	Add(ctx context.Context, conv string, postings map[ListKey][]byte, refs []FileRef, progress uint64) error
	// Remove takes offsets out of conv's lists, in one atomic write.
	Remove(ctx context.Context, conv string, offs map[ListKey]map[uint64]bool) error
}

// Write is one conversation's postings, file references and progress:
// what one Lists.Add takes.
type Write struct {
	Conv     string
	Postings map[ListKey][]byte
	Refs     []FileRef
	Progress uint64
}

// BatchLists is the optional ability of Lists to write several
// conversations in one atomic write (MySQL: one transaction for many
// conversations of a pass instead of one each). AddBatch does Add for each
// of ws, all in one atomic write; ws holds a conversation at most once.
type BatchLists interface {
	AddBatch(ctx context.Context, ws []Write) error
}

// batchConvs is how many conversations one AddBatch covers at most.
const batchConvs = 64

// FileRef says that conv's message Seq holds (or held: a recall, an edit or
// an expiry leaves it) an attachment of the file Sum. The indexer records
// one for every attachment it reads, and every version an edit gives one,
// with the progress: every message indexed has its references recorded.
type FileRef struct {
	Sum [32]byte
	Seq uint64
}

// AttachmentSum returns the SHA-256 of the file m's attachment names.
func AttachmentSum(m *protocol.Message) (sum [32]byte, ok bool) {
	if m.ContentType != protocol.ContentAttachment || len(m.Body) == 0 {
		return sum, false
	}
	a, err := protocol.DecodeAttachment(m.Body)
	if err != nil || len(a.SHA256) != len(sum) {
		return sum, false
	}
	copy(sum[:], a.SHA256)
	return sum, true
}

// IndexerConfig configures NewIndexer; zero values are documented per field.
type IndexerConfig struct {
	Lists Lists
	// Queue bounds the conversations with notes waiting for the indexer
	// (the notes of one conversation merge into one); 0 means 4096. A note
	// of a further conversation is dropped and the indexer catches up from
	// Behind.
	Queue int
	// Chunk is how many messages one Add covers; 0 means 256.
	Chunk int
	// Delay is how long the indexer gathers notes before it indexes them,
	// counted from the start of the pass before when the Lists do not
	// batch (a pass rests between its pieces meanwhile: paceRatio), from
	// the end of the pass before when they do; 0 means DefaultIndexDelay,
	// negative none. Each pass appends one piece
	// to each list it touches, and a list read before the store compacts
	// it costs a step per piece: gathering keeps them few (a message is
	// searchable about Delay after its commit).
	Delay time.Duration
	// Recent bounds the committed messages the indexer holds (bodies plus
	// a fixed overhead each, in bytes) to index them without reading them
	// back from the store; 0 means DefaultRecentBytes, negative none.
	// Past it, messages are read back from the store.
	Recent int64
	Logger *slog.Logger // nil means discard
}

// DefaultIndexDelay is IndexerConfig.Delay when zero.
const DefaultIndexDelay = 100 * time.Millisecond

// Indexer keeps a store's text index up to date, off the send path: the
// store's writer notes each committed batch (Note, which never blocks) and
// the indexer's goroutine indexes the new messages afterwards. It keeps
// copies of the noted messages up to a bound in bytes (IndexerConfig.Recent)
// and indexes those without reading them back; the others (past the bound,
// after a queue overflow, a recall or an edit in their conversation) it
// reads back from the store. What it has indexed is recorded per
// conversation with the postings, so after a crash it catches up from the
// store alone.
//
// An edit (content type protocol.ContentEdit) is indexed under the seq of
// the message it edits: the grams of the new text are added there, and the
// grams only earlier versions had are removed, so a message is found by its
// latest text and not by text an edit took out. (A search checks every
// candidate against the stored text folded with its edits in any case;
// the removal keeps stale candidates from costing reads.)
type Indexer struct {
	lists    Lists
	batch    BatchLists // nil when lists cannot batch
	recent   *recent
	chunk    int
	delay    time.Duration
	log      *slog.Logger
	overflow atomic.Bool
	wake     chan struct{} // a note arrived (capacity 1)
	flushes  chan chan struct{}
	quit     chan struct{}
	done     chan struct{}

	// notesMu guards notes, the newest noted seq per conversation not yet
	// taken by the indexer, at most maxNotes conversations. It is held only
	// to merge a batch's notes into the map or to swap the map out, never
	// with mu.
	notesMu  sync.Mutex
	notes    map[string]uint64
	maxNotes int

	// mu is held while a chunk is read and indexed and while postings are
	// removed, so a removal never interleaves with an Add of the same text.
	// cutter, the indexing's gram cutter, is used under it.
	mu     sync.Mutex
	cutter cutter
	// taken holds, under mu, the messages prepare takes from recent: one
	// array reused chunk after chunk (nothing prepare returns refers to it).
	taken []protocol.Message
	// building is prepare's index of a chunk's lists, kept under mu from one
	// chunk to the next (a map and two slices made a chunk were a tenth of
	// what a message allocates).
	building chunkLists

	messages, bytes, busy, loaded, rested atomic.Int64
}

// Stats counts an indexer's work since it started.
type Stats struct {
	Messages int64         // messages indexed
	Loaded   int64         // of those, read back from the store (the others were noted and held)
	Bytes    int64         // posting bytes written (values; keys and engine overhead apart)
	Busy     time.Duration // time spent indexing: reading the messages, cutting grams, writing
	Rested   time.Duration // rests the passes took between their pieces (paceRatio)
}

// Stats returns the indexer's counters.
func (x *Indexer) Stats() Stats {
	return Stats{x.messages.Load(), x.loaded.Load(), x.bytes.Load(), time.Duration(x.busy.Load()), time.Duration(x.rested.Load())}
}

// NewIndexer starts an indexer; it first catches up on what the store holds
// unindexed.
func NewIndexer(cfg IndexerConfig) *Indexer {
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.Chunk <= 0 {
		cfg.Chunk = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Recent == 0 {
		cfg.Recent = DefaultRecentBytes
	}
	switch {
	case cfg.Delay == 0:
		cfg.Delay = DefaultIndexDelay
	case cfg.Delay < 0:
		cfg.Delay = 0
	}
	x := &Indexer{
		lists: cfg.Lists, recent: newRecent(cfg.Recent), chunk: cfg.Chunk, log: cfg.Logger, delay: cfg.Delay,
		wake:  make(chan struct{}, 1),
		notes: make(map[string]uint64), maxNotes: cfg.Queue,
		flushes: make(chan chan struct{}),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	x.batch, _ = cfg.Lists.(BatchLists)
	x.overflow.Store(true) // catch up first
	go x.run()
	return x
}

// Note tells the indexer that msgs were committed, in commit order. It
// keeps their bodies, which must not change (storage.CommitHook), but not
// msgs, which the caller may reuse. It never blocks (it never waits for
// the indexer): a conversation's notes merge into one until the indexer
// takes them, and when IndexerConfig.Queue conversations wait the note of a
// further one is dropped and the indexer catches up from the store.
func (x *Indexer) Note(msgs []protocol.Message) {
	x.recent.add(msgs)
	x.notesMu.Lock()
	for i := range msgs {
		// Only the last message of a run of one conversation matters.
		if i+1 < len(msgs) && msgs[i+1].Conv == msgs[i].Conv {
			continue
		}
		conv, seq := msgs[i].Conv, msgs[i].Seq
		if last, ok := x.notes[conv]; ok {
			x.notes[conv] = max(last, seq)
		} else if len(x.notes) < x.maxNotes {
			x.notes[conv] = seq
		} else {
			x.overflow.Store(true)
		}
	}
	x.notesMu.Unlock()
	select {
	case x.wake <- struct{}{}:
	default: // the indexer is woken already
	}
}

// takeNotes hands the waiting notes to note and empties them; spare is an
// empty map to swap in, and the map taken out is returned emptied for the
// next call.
func (x *Indexer) takeNotes(spare map[string]uint64, note func(Pending)) map[string]uint64 {
	x.notesMu.Lock()
	taken := x.notes
	x.notes = spare
	x.notesMu.Unlock()
	for conv, last := range taken {
		note(Pending{conv, last})
	}
	clear(taken)
	return taken
}

// notesWaiting reports whether notes wait to be taken.
func (x *Indexer) notesWaiting() bool {
	x.notesMu.Lock()
	defer x.notesMu.Unlock()
	return len(x.notes) > 0
}

// Flush waits until every message noted before the call is indexed, or ctx
// ends.
func (x *Indexer) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case x.flushes <- ch:
	case <-ctx.Done():
		return ctx.Err()
	case <-x.done:
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-x.done:
		return nil
	}
}

// Remove takes msgs out of the index (a recall, an expiry). Their text must
// be the text that was indexed: for an edited message, pass one copy per
// version (or its latest version alone: what is left only takes space, a
// search never shows it); messages of other content types are skipped.
// A message not yet indexed is indexed later from whatever the store then
// holds, so a caller changes or deletes the stored message first.
func (x *Indexer) Remove(ctx context.Context, msgs []protocol.Message) error {
	byConv := make(map[string]map[ListKey]map[uint64]bool)
	for i := range msgs {
		m := &msgs[i]
		grams := Grams(Text(m))
		if len(grams) == 0 {
			continue
		}
		offs := byConv[m.Conv]
		if offs == nil {
			offs = make(map[ListKey]map[uint64]bool)
			byConv[m.Conv] = offs
		}
		for _, g := range grams {
			k := ListKey{Bucket(m.Seq), g}
			if offs[k] == nil {
				offs[k] = make(map[uint64]bool)
			}
			offs[k][Offset(m.Seq)] = true
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	// The messages held for these conversations may have the text removed.
	for i := range msgs {
		x.recent.drop(msgs[i].Conv, ^uint64(0))
	}
	for conv, offs := range byConv {
		if err := x.lists.Remove(ctx, conv, offs); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the indexer; what it has not indexed is caught up on at the
// next start.
func (x *Indexer) Close() {
	select {
	case <-x.quit:
	default:
		close(x.quit)
	}
	<-x.done
}

// maxProgress bounds the indexer's cache of progress per conversation.
const maxProgress = 1 << 16

func (x *Indexer) run() {
	defer close(x.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-x.quit:
			cancel()
		case <-x.done:
		}
	}()
	want := make(map[string]uint64)
	spare := make(map[string]uint64)
	progress := make(map[string]uint64)
	var flushes []chan struct{}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	failing, gathering, ready := false, false, false
	// The first gathering runs a delay from the start, as before passes
	// were paced.
	pace := &pacer{x: x, start: time.Now(), timer: time.NewTimer(time.Hour), flushes: &flushes}
	pace.timer.Stop()
	note := func(p Pending) {
		if p.Conv != "" {
			want[p.Conv] = max(want[p.Conv], p.Last)
		}
	}
	for {
		// Take every note waiting.
		spare = x.takeNotes(spare, note)
		due := ready || len(flushes) > 0 || x.delay == 0
		if !failing && due && x.overflow.Swap(false) {
			// A held message whose note was dropped is taken (or
			// dropped, when read back meanwhile) with the others.
			for _, p := range x.recent.pending() {
				note(p)
			}
			behind, err := x.lists.Behind(ctx)
			if err != nil {
				x.overflow.Store(true)
				failing = x.failed(ctx, "catch up", err, retry)
			}
			for _, p := range behind {
				note(p)
			}
		}
		if !failing && due && x.batch != nil {
			ready = false
			if err := x.indexBatched(ctx, want, progress); err != nil {
				failing = x.failed(ctx, "index", err, retry)
			}
		}
		if !failing && due && x.batch == nil {
			ready = false
			pace.start = time.Now()
			for conv, last := range want {
				t0 := time.Now()
				if err := x.index(ctx, conv, last, progress); err != nil {
					failing = x.failed(ctx, "index "+conv, err, retry)
					break
				}
				delete(want, conv)
				pace.after(t0)
			}
		}
		if len(progress) > maxProgress {
			clear(progress)
		}
		if len(want) == 0 && !x.overflow.Load() && !x.notesWaiting() {
			for _, f := range flushes {
				close(f)
			}
			flushes = flushes[:0]
		}
		if ctx.Err() != nil {
			return
		}
		if !failing && len(flushes) > 0 {
			continue // a Flush waits: no gathering
		}
		if !failing && !gathering && (len(want) > 0 || x.overflow.Load()) {
			// Paced, the delay runs from the start of the last pass: a
			// pass gathers the next one's notes while it rests, so the
			// passes come once a delay, not once a delay after each ended.
			wait := x.delay
			if x.batch == nil {
				wait = max(0, x.delay-time.Since(pace.start))
			}
			gather.Reset(wait)
			gathering = true
		}
		select {
		case <-x.wake:
			spare = x.takeNotes(spare, note)
		case f := <-x.flushes:
			flushes = append(flushes, f)
		case <-gather.C:
			gathering, ready = false, true
		case <-retry.C:
			failing = false
		case <-x.quit:
			return
		}
	}
}

// paceRatio is how long the indexer rests after each piece of a pass (a
// conversation's messages), as a multiple of the time the piece took: while a pass is younger than the gather delay
// it takes at most 1/(1+paceRatio) of a core. A pass holds everything the
// delay gathered, and run flat out it took one of the two cores for tens
// of milliseconds at a time (22 ms a pass at 40,000 msgs/s of text), long
// enough to hold the event loops and the writer behind it: the send→push
// p99 halved once the passes were spread (docs/benchmarks.md, "The text
// index in segments"). A pass still running when the delay is up goes
// flat out, so the indexer keeps up when it needs more than that share of
// a core, as it did before. Lists that batch (MySQL) are not paced: their
// pass is mostly the database's work, and more frequent passes would cost
// it a transaction each (the cluster's p99 rose in a first measurement).
const paceRatio = 3

// pacer spreads the passes of run.
type pacer struct {
	x       *Indexer
	start   time.Time // when the pass began
	timer   *time.Timer
	flushes *[]chan struct{} // run's: a Flush that arrives while pacing ends it
}

// rest is how long to rest after a piece of work that took work, sinceStart
// into a pass, with the given gather delay: paceRatio times the work, but
// not past the delay, and nothing once the pass is that old.
func rest(work, sinceStart, delay time.Duration) time.Duration {
	return max(0, min(paceRatio*work, delay-sinceStart))
}

// after rests after a piece of work begun at t0, unless a Flush waits; a
// Flush or Close during the rest ends it.
func (p *pacer) after(t0 time.Time) {
	if len(*p.flushes) > 0 || p.x.delay <= 0 {
		return
	}
	now := time.Now()
	d := rest(now.Sub(t0), now.Sub(p.start), p.x.delay)
	if d <= 0 {
		return
	}
	p.x.rested.Add(int64(d))
	p.timer.Reset(d)
	select {
	case <-p.timer.C:
	case f := <-p.x.flushes:
		*p.flushes = append(*p.flushes, f)
		p.timer.Stop()
	case <-p.x.quit:
		p.timer.Stop()
	}
}

// failed logs a failure and arms the retry.
func (x *Indexer) failed(ctx context.Context, what string, err error, retry *time.Timer) bool {
	if ctx.Err() == nil {
		x.log.Warn("fulltext: "+what+" failed; retrying in 1s", "err", err)
	}
	retry.Reset(time.Second)
	return true
}

// index indexes conv's messages up to last.
func (x *Indexer) index(ctx context.Context, conv string, last uint64, progress map[string]uint64) error {
	p, ok := progress[conv]
	if !ok {
		var err error
		if p, err = x.lists.Progress(ctx, conv); err != nil {
			return err
		}
	}
	for p < last {
		np, n, err := x.indexChunk(ctx, conv, p)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		p = np
	}
	x.recent.drop(conv, p) // held messages read back from the store meanwhile
	progress[conv] = p
	return nil
}

func (x *Indexer) indexChunk(ctx context.Context, conv string, after uint64) (uint64, int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	t0 := time.Now()
	defer func() { x.busy.Add(int64(time.Since(t0))) }()
	c, err := x.prepare(ctx, conv, after)
	if err != nil || c.n == 0 {
		return after, 0, err
	}
	if err := x.write(ctx, []cut{c}); err != nil {
		return after, 0, err
	}
	return c.w.Progress, c.n, nil
}

// indexBatched indexes every conversation of want up to its seq there, a
// chunk of each of up to batchConvs conversations per AddBatch, round after
// round, and takes each done out of want.
func (x *Indexer) indexBatched(ctx context.Context, want, progress map[string]uint64) error {
	for len(want) > 0 {
		convs := make([]string, 0, len(want))
		for conv := range want {
			convs = append(convs, conv)
		}
		for len(convs) > 0 {
			group := convs[:min(len(convs), batchConvs)]
			convs = convs[len(group):]
			if err := x.indexGroup(ctx, group, want, progress); err != nil {
				return err
			}
		}
	}
	return nil
}

// indexGroup indexes the next chunk of each conversation of group in one
// AddBatch; a conversation with nothing left leaves want.
func (x *Indexer) indexGroup(ctx context.Context, group []string, want, progress map[string]uint64) error {
	for _, conv := range group {
		if _, ok := progress[conv]; !ok {
			p, err := x.lists.Progress(ctx, conv)
			if err != nil {
				return err
			}
			progress[conv] = p
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	t0 := time.Now()
	defer func() { x.busy.Add(int64(time.Since(t0))) }()
	var chunks []cut
	for _, conv := range group {
		p := progress[conv]
		if p < want[conv] {
			c, err := x.prepare(ctx, conv, p)
			if err != nil {
				return err
			}
			if c.n > 0 {
				chunks = append(chunks, c)
				continue
			}
		}
		x.recent.drop(conv, p) // held messages read back from the store meanwhile
		delete(want, conv)
	}
	if len(chunks) == 0 {
		return nil
	}
	if err := x.write(ctx, chunks); err != nil {
		return err
	}
	for _, c := range chunks {
		progress[c.w.Conv] = c.w.Progress
	}
	return nil
}

// cut is a chunk of one conversation's messages, cut and ready to write.
type cut struct {
	w     Write
	stale map[ListKey]map[uint64]bool // grams earlier versions of edited messages had
	n     int                         // messages
	size  int64                       // posting bytes
}

// prepare takes (or reads back) conv's messages after after, at most a
// chunk, and cuts them; n is 0 when there are none. x.mu is held.
func (x *Indexer) prepare(ctx context.Context, conv string, after uint64) (cut, error) {
	x.taken = x.recent.take(x.taken[:0], conv, after, x.chunk)
	defer clear(x.taken) // let the bodies go
	msgs := x.taken
	if len(msgs) == 0 {
		var err error
		if msgs, err = x.lists.Load(ctx, conv, after, x.chunk); err != nil || len(msgs) == 0 {
			return cut{}, err
		}
		x.loaded.Add(int64(len(msgs)))
	}
	l := &x.building
	defer l.reset()
	var size int64
	post := func(seq uint64, grams []Gram) { size += l.post(seq, grams) }
	var refs []FileRef
	lastEdit := make(map[uint64]uint64) // target seq → seq of its last edit in the chunk
	for i := range msgs {
		m := &msgs[i]
		if m.ContentType == protocol.ContentEdit {
			if m.Ref != 0 && m.Ref < m.Seq {
				lastEdit[m.Ref] = m.Seq
			}
			continue
		}
		post(m.Seq, x.cutter.grams(textBytes(m)))
		if sum, ok := AttachmentSum(m); ok {
			refs = append(refs, FileRef{sum, m.Seq})
		}
	}
	stale, err := x.edits(ctx, conv, lastEdit, post, &refs)
	if err != nil {
		return cut{}, err
	}
	postings := make(map[ListKey][]byte, len(l.keys))
	for i, k := range l.keys {
		postings[k] = l.lists[i]
	}
	w := Write{Conv: conv, Postings: postings, Refs: refs, Progress: msgs[len(msgs)-1].Seq}
	return cut{w: w, stale: stale, n: len(msgs), size: size}, nil
}

// chunkLists are the posting lists of one chunk as prepare builds them:
// one map lookup a posting, the lists in a slice that go into the chunk's
// map once each (a lookup and an assignment per posting were a tenth of the
// server's CPU with text of tens of grams a message).
type chunkLists struct {
	index map[ListKey]int // → keys[i], lists[i]
	keys  []ListKey
	lists [][]byte
}

// maxKeptLists bounds the lists a chunkLists keeps room for between chunks:
// a map does not shrink, and a catch-up chunk may have many.
const maxKeptLists = 1 << 14

// post appends seq to the lists of its grams and returns the bytes added.
func (l *chunkLists) post(seq uint64, grams []Gram) int64 {
	if l.index == nil {
		l.index = make(map[ListKey]int)
	}
	var size int64
	for _, g := range grams {
		k := ListKey{Bucket(seq), g}
		i, ok := l.index[k]
		if !ok {
			i = len(l.lists)
			l.index[k] = i
			l.keys = append(l.keys, k)
			l.lists = append(l.lists, nil)
		}
		n := len(l.lists[i])
		l.lists[i] = AppendPosting(l.lists[i], seq)
		size += int64(len(l.lists[i]) - n)
	}
	return size
}

// reset empties l for the next chunk; the lists themselves went to the
// chunk's postings.
func (l *chunkLists) reset() {
	if len(l.keys) > maxKeptLists {
		*l = chunkLists{}
		return
	}
	clear(l.index)
	clear(l.lists)
	l.keys, l.lists = l.keys[:0], l.lists[:0]
}

// write writes chunks (of distinct conversations; more than one only when
// the lists can batch), then removes their stale grams. x.mu is held.
func (x *Indexer) write(ctx context.Context, chunks []cut) error {
	if len(chunks) == 1 {
		w := &chunks[0].w
		if err := x.lists.Add(ctx, w.Conv, w.Postings, w.Refs, w.Progress); err != nil {
			return err
		}
	} else {
		ws := make([]Write, len(chunks))
		for i := range chunks {
			ws[i] = chunks[i].w
		}
		if err := x.batch.AddBatch(ctx, ws); err != nil {
			return err
		}
	}
	// The stale grams go after the Add, which may have posted them (a
	// message and its edit in one chunk). A crash between the two leaves
	// them: a search's check filters them out.
	for i := range chunks {
		c := &chunks[i]
		if len(c.stale) > 0 {
			if err := x.lists.Remove(ctx, c.w.Conv, c.stale); err != nil {
				return err
			}
		}
		x.messages.Add(int64(c.n))
		x.bytes.Add(c.size)
	}
	return nil
}

// edits posts, for each target edited in a chunk, the grams of its version
// as of its last edit there (lastEdit: target → that edit's seq), and
// returns the grams earlier versions had and that version has not.
func (x *Indexer) edits(ctx context.Context, conv string, lastEdit map[uint64]uint64, post func(uint64, []Gram), refs *[]FileRef) (map[ListKey]map[uint64]bool, error) {
	stale := make(map[ListKey]map[uint64]bool)
	for target, edit := range lastEdit {
		vs, err := x.lists.Versions(ctx, conv, target)
		if err != nil {
			return nil, err
		}
		k := slices.IndexFunc(vs, func(v protocol.Message) bool { return v.Seq == edit })
		if k < 0 {
			continue // recalled (the recall unindexes it), or gone
		}
		vs[k].Seq = target
		for i := range vs[:k+1] { // every version: one indexed earlier may be gone with a crash
			if sum, ok := AttachmentSum(&vs[i]); ok {
				*refs = append(*refs, FileRef{sum, target})
			}
		}
		grams := Grams(Text(&vs[k]))
		post(target, grams)
		keep := make(map[Gram]bool, len(grams))
		for _, g := range grams {
			keep[g] = true
		}
		for i := range vs[:k] {
			for _, g := range Grams(Text(&vs[i])) {
				if keep[g] {
					continue
				}
				lk := ListKey{Bucket(target), g}
				if stale[lk] == nil {
					stale[lk] = make(map[uint64]bool)
				}
				stale[lk][Offset(target)] = true
			}
		}
	}
	return stale, nil
}
