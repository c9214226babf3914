package client

import (
	"context"
	"sync"
	"time"

	"github.com/parleyim/parley/protocol"
)

// defaultSendWindow bounds the sends written on a connection and not
// answered yet when the server's LoginOK does not say (send_window 0: an
// older server, whose default it is); the sender waits for answers past
// the window, so the server never answers BUSY for it.
const defaultSendWindow = 256

// deadConnPoll is how often the sender looks again when the connection it
// was handed has died and the client has not replaced it yet.
const deadConnPoll = 5 * time.Millisecond

// sendOp is one Send in the client's queue.
type sendOp struct {
	s    protocol.Send
	done chan sendResult // cap 1: gets the one result
	// written is set, under sendQueue.mu, when the op was first handed to
	// a connection: from then on it may be stored, so a caller who gives up
	// no longer withdraws it, and it is written again after a reconnect.
	written bool
}

type sendResult struct {
	ack protocol.SendAck
	err error
}

// sendQueue is the client's first-in-first-out queue of Sends. One
// goroutine, the sender (Client.sendLoop), writes them in the order their
// SendRaw calls began, without waiting for each ack: the acks may come
// back in any order, and each answers its own op by request id. When the
// connection dies, the ops written on it and not answered go back to the
// head of the queue, in their order, and are written again on the next
// connection with the same client_msg_id, so the server stores each once,
// in call order, across disconnects, reconnects and redirects.
//
// Lock order: conn.mu before sendQueue.mu (answers arrive on the reader,
// under conn.mu); nothing is locked while sendQueue.mu is held.
type sendQueue struct {
	mu       sync.Mutex
	pending  []*sendOp // to write, in call order
	inflight []*sendOp // written on the sender's conn, unanswered, in write order
	closed   error     // set once the client closed: no more ops are taken
	enqueued uint64    // ops ever taken
	wake     chan struct{}
}

func newSendQueue() *sendQueue {
	return &sendQueue{wake: make(chan struct{}, 1)}
}

func (q *sendQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// enqueue puts op at the tail, or returns why the queue is closed.
func (q *sendQueue) enqueue(op *sendOp) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed != nil {
		return q.closed
	}
	q.pending = append(q.pending, op)
	q.enqueued++
	q.signal()
	return nil
}

// withdraw takes op out of the queue if it was never written, and reports
// whether it did.
func (q *sendQueue) withdraw(op *sendOp) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if op.written {
		return false
	}
	for i, p := range q.pending {
		if p == op {
			q.pending = append(q.pending[:i], q.pending[i+1:]...)
			return true
		}
	}
	return false // answered by close
}

// next moves the head of the queue to the inflight list and returns it;
// nil when nothing waits or window ops are in flight.
func (q *sendQueue) next(window int) *sendOp {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) == 0 || len(q.inflight) >= window || q.closed != nil {
		return nil
	}
	op := q.pending[0]
	q.pending[0] = nil
	q.pending = q.pending[1:]
	if len(q.pending) == 0 {
		q.pending = nil
	}
	op.written = true
	q.inflight = append(q.inflight, op)
	return op
}

// requeue puts every unanswered op back at the head of the queue, in the
// order they were written. Called once the conn they were written on is
// dead, so that no answer can come for them any more.
func (q *sendQueue) requeue() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.inflight) == 0 {
		return
	}
	q.pending = append(q.inflight, q.pending...)
	q.inflight = nil
	q.signal()
}

// answer completes op with its reply. Runs on the reader, under conn.mu.
func (q *sendQueue) answer(op *sendOp, r reply) {
	var ack protocol.SendAck
	err := decodeReply(r, &ack)
	q.finish(op, sendResult{ack: ack, err: err})
}

// finish takes op out of the inflight list and hands res to its caller.
func (q *sendQueue) finish(op *sendOp, res sendResult) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, p := range q.inflight {
		if p == op {
			q.inflight = append(q.inflight[:i], q.inflight[i+1:]...)
			op.done <- res
			q.signal()
			return
		}
	}
}

// close fails every op left with err and refuses new ones.
func (q *sendQueue) close(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed != nil {
		return
	}
	q.closed = err
	for _, op := range q.inflight {
		op.done <- sendResult{err: err}
	}
	for _, op := range q.pending {
		op.done <- sendResult{err: err}
	}
	q.inflight, q.pending = nil, nil
}

// sendLoop is the sender goroutine: it writes queued Sends on the client's
// connection in order, and when that connection changes, waits for the old
// one to be dead and puts its unanswered sends back first.
func (c *Client) sendLoop() {
	defer c.wg.Done()
	q := c.sq
	var on *conn // the conn the inflight ops were written on
	for {
		cn, err := c.acquire(c.ctx)
		if err != nil {
			q.close(err)
			return
		}
		if cn != on {
			if on != nil {
				select {
				case <-on.done:
				case <-c.ctx.Done():
					continue
				}
				q.requeue()
			}
			on = cn
		}
		select {
		case <-cn.done:
			// Dead, and the client has not replaced it yet.
			t := time.NewTimer(deadConnPoll)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
			}
			continue
		default:
		}
		op := q.next(cn.sendWindow())
		if op == nil {
			select {
			case <-q.wake:
			case <-cn.done:
			case <-c.ctx.Done():
			}
			continue
		}
		err = cn.start(protocol.TypeSend, &op.s, func(r reply) { q.answer(op, r) })
		if err != nil && cn.cause() == nil {
			// Not a socket error: the frame cannot be encoded, and never
			// will be.
			q.finish(op, sendResult{err: err})
		}
		// After a socket error cn is dead, and op goes back with the rest.
	}
}

// SendRaw sends s as given: a retry with the same ClientMsgID is stored
// once, and its ack has Duplicate set. Errors are *SendError.
//
// Sends of one client reach the server in the order their SendRaw (Send,
// SendGroup) calls began, whatever goroutines make them, also across
// reconnects and redirects: they wait in one queue while the client
// reconnects, and those written on a connection that died unanswered are
// written again first. A send whose ctx ends before it was written is
// withdrawn; one already written may still be stored (ErrTimeout).
func (c *Client) SendRaw(ctx context.Context, s protocol.Send) (protocol.SendAck, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	c.tmu.Lock()
	c.tr.sending(s.ClientMsgID)
	c.tmu.Unlock()
	op := &sendOp{s: s, done: make(chan sendResult, 1)}
	if err := c.sq.enqueue(op); err != nil {
		return protocol.SendAck{}, &SendError{Send: s, Err: err}
	}
	var res sendResult
	select {
	case res = <-op.done:
	case <-ctx.Done():
		if c.sq.withdraw(op) {
			return protocol.SendAck{}, &SendError{Send: s, Err: ctxErr(ctx)}
		}
		select {
		case res = <-op.done:
		default:
			return protocol.SendAck{}, &SendError{Send: s, Err: ctxErr(ctx)}
		}
	}
	if res.err != nil {
		return protocol.SendAck{}, &SendError{Send: s, Err: res.err}
	}
	return res.ack, nil
}
