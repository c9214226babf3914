package server

import (
	"context"
	"sync"
	"time"

	"github.com/parleyim/parley/protocol"
)

const (
	// maxPendingGroups bounds the groups with reads waiting for the next
	// flush; the reads of more groups are dropped and counted, and their
	// senders see the counts when they ask (Receipts).
	maxPendingGroups = 1 << 12
	// maxReadWindow is how many of a group's newest messages read since
	// the last flush get new counts pushed; older ones are asked for.
	maxReadWindow = 200
)

// groupReads aggregates the read receipts of groups. An Ack that moves a
// member's cursor adds the seqs it covers to its group's pending range,
// under mu, without blocking; every Config.ReceiptInterval one goroutine
// takes every pending range, reads each group's cursors once and pushes
// one GroupReadEvent per sender of the messages read with their counts.
//
// The cost per message of a group of N members all reading: instead of
// N-1 events to each of N members ((N-1)² frames), its sender gets at most
// one event per interval during which someone read it — ⌈T/interval⌉+1
// for reads spread over T, per node that handled some of the reads — and
// the store one read of N cursors per group and interval.
type groupReads struct {
	srv *Server

	mu      sync.Mutex
	pending map[string]seqRange // group conv → seqs whose counts changed
	dropped uint64

	done    chan struct{}
	stopped chan struct{}
}

// seqRange is the seqs lo..hi, both included.
type seqRange struct{ lo, hi uint64 }

func newGroupReads(srv *Server) *groupReads {
	g := &groupReads{
		srv:     srv,
		pending: make(map[string]seqRange),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go g.run()
	return g
}

// add records that the read counts of seqs lo..hi of conv changed.
func (g *groupReads) add(conv string, lo, hi uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.pending[conv]
	if !ok {
		if len(g.pending) >= maxPendingGroups {
			g.dropped++
			return
		}
		g.pending[conv] = seqRange{lo, hi}
		return
	}
	g.pending[conv] = seqRange{min(r.lo, lo), max(r.hi, hi)}
}

func (g *groupReads) run() {
	defer close(g.stopped)
	tick := time.NewTicker(g.srv.cfg.ReceiptInterval)
	defer tick.Stop()
	batch := make(map[string]seqRange)
	for {
		select {
		case <-g.done:
			return
		case <-tick.C:
		}
		g.mu.Lock()
		batch, g.pending = g.pending, batch
		g.mu.Unlock()
		for conv, r := range batch {
			g.flush(conv, r)
		}
		clear(batch)
	}
}

// flush pushes the new counts of the messages of conv in r to their senders.
func (g *groupReads) flush(conv string, r seqRange) {
	s := g.srv
	p, ok := protocol.ParseConv(conv)
	if !ok || p.Kind != protocol.ConvGroup {
		return
	}
	if r.hi-r.lo >= maxReadWindow {
		r.lo = r.hi - maxReadWindow + 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	counts, err := s.readCounts(ctx, p.Group, conv, r.lo, r.hi)
	if err != nil {
		s.log.Warn("group read counts not sent", "conv", conv, "err", err)
		return
	}
	bySender := make(map[int64][]protocol.ReadCount)
	for seq := r.lo; seq <= r.hi; seq++ {
		if c, ok := counts[seq]; ok {
			bySender[c.from] = append(bySender[c.from], protocol.ReadCount{Seq: seq, Count: c.count})
		}
	}
	for from, reads := range bySender {
		s.route([]int64{from}, protocol.MustFrame(protocol.TypeGroupReadEvent, 0,
			&protocol.GroupReadEvent{Conv: conv, Reads: reads}), nil)
	}
}

func (g *groupReads) stop() {
	close(g.done)
	<-g.stopped
}
