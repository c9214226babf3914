package router

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrBusDown is returned by a MemoryBus's Send while its network is down.
var ErrBusDown = errors.New("router: bus down")

// MemoryNetwork is the broker of the MemoryBuses of one process: a queue
// per node name that outlives the bus listening on it, as a RocketMQ
// consumer group outlives its consumer, so a node restarted under its
// name gets what was sent to it meanwhile. SetDown makes it refuse sends,
// as a broker that is down does.
type MemoryNetwork struct {
	mu     sync.Mutex
	queues map[string]*memoryQueue
	down   bool
}

// NewMemoryNetwork returns a network with no nodes.
func NewMemoryNetwork() *MemoryNetwork {
	return &MemoryNetwork{queues: make(map[string]*memoryQueue)}
}

// SetDown makes every Send fail with ErrBusDown (down) or work again.
// Batches already queued are still delivered.
func (n *MemoryNetwork) SetDown(down bool) {
	n.mu.Lock()
	n.down = down
	n.mu.Unlock()
}

func (n *MemoryNetwork) queue(node string) *memoryQueue {
	n.mu.Lock()
	defer n.mu.Unlock()
	q := n.queues[node]
	if q == nil {
		q = &memoryQueue{}
		q.cond = sync.NewCond(&q.mu)
		n.queues[node] = q
	}
	return q
}

// Bus returns the bus of the node named node.
func (n *MemoryNetwork) Bus(node string) *MemoryBus {
	return &MemoryBus{net: n, node: node, inc: memoryIncs.Add(1)}
}

// memoryQueue holds the batches sent to one node, in order.
type memoryQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond
	batches []memoryBatch
	owner   *MemoryBus // the bus listening, if any
}

type memoryBatch struct {
	from     string
	inc, seq uint64
	envs     []Envelope
}

var memoryIncs atomic.Uint64

// MemoryBus is a Bus between the nodes of one process, on a MemoryNetwork.
// Batches are copied on Send, so the sender may reuse its slices.
type MemoryBus struct {
	net  *MemoryNetwork
	node string
	inc  uint64 // this bus's incarnation
	seqr *Sequencer

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

var _ Bus = (*MemoryBus)(nil)

// Send implements Bus.
func (b *MemoryBus) Send(ctx context.Context, node string, seq uint64, envs []Envelope) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return ErrClosed
	}
	b.net.mu.Lock()
	down := b.net.down
	b.net.mu.Unlock()
	if down {
		return ErrBusDown
	}
	// Copy as the wire would.
	cp, err := DecodeBatch(AppendBatch(nil, envs))
	if err != nil {
		return err
	}
	q := b.net.queue(node)
	q.mu.Lock()
	q.batches = append(q.batches, memoryBatch{b.node, b.inc, seq, cp})
	q.cond.Signal()
	q.mu.Unlock()
	return nil
}

// Listen implements Bus.
func (b *MemoryBus) Listen(handle func([]Envelope)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	q := b.net.queue(b.node)
	q.mu.Lock()
	q.owner = b
	q.mu.Unlock()
	b.seqr = NewSequencer(0, handle)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			q.mu.Lock()
			for len(q.batches) == 0 && q.owner == b {
				q.cond.Wait()
			}
			if q.owner != b {
				q.mu.Unlock()
				return
			}
			batch := q.batches[0]
			q.batches[0] = memoryBatch{}
			q.batches = q.batches[1:]
			q.mu.Unlock()
			b.seqr.Add(batch.from, batch.inc, batch.seq, batch.envs)
		}
	}()
	return nil
}

// Close implements Bus. Batches sent to this node after Close wait for
// the next bus of its name.
func (b *MemoryBus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.closed = true
	b.mu.Unlock()
	q := b.net.queue(b.node)
	q.mu.Lock()
	if q.owner == b {
		q.owner = nil
		q.cond.Broadcast()
	}
	q.mu.Unlock()
	b.wg.Wait()
	if b.seqr != nil {
		b.seqr.Close()
	}
	return nil
}
