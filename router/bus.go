package router

import (
	"context"
	"encoding/binary"
	"errors"
)

// Envelope kinds.
const (
	// EnvPush: push Frame to every logged-in session of Users on the
	// receiving node.
	EnvPush uint8 = 1
	// EnvGroupChanged: the members of Group changed; drop cached copies.
	EnvGroupChanged uint8 = 2
	// EnvFriendsChanged: the friendships of Users changed; drop cached
	// copies.
	EnvFriendsChanged uint8 = 3
	// EnvCatchUp: the sender's Outbox dropped envelopes for the receiving
	// node (its queue was full), the oldest posted at Group, in Unix ms
	// (the field is reused); the receiver catches its users up on what
	// the pushes among them carried. Outbox adds it; a node that does not
	// know the kind ignores it.
	EnvCatchUp uint8 = 4
)

// Envelope is what one node sends another.
type Envelope struct {
	Kind  uint8
	Users []int64
	Frame []byte // an encoded protocol frame
	Group int64
}

// ErrBadBatch is returned by DecodeBatch for bytes that are not a batch.
var ErrBadBatch = errors.New("router: malformed envelope batch")

// AppendBatch appends the wire form of envs, as one bus message, to b:
// per envelope its kind, group, users and frame, integers as varints.
func AppendBatch(b []byte, envs []Envelope) []byte {
	b = binary.AppendUvarint(b, uint64(len(envs)))
	for _, e := range envs {
		b = append(b, e.Kind)
		b = binary.AppendVarint(b, e.Group)
		b = binary.AppendUvarint(b, uint64(len(e.Users)))
		for _, u := range e.Users {
			b = binary.AppendVarint(b, u)
		}
		b = binary.AppendUvarint(b, uint64(len(e.Frame)))
		b = append(b, e.Frame...)
	}
	return b
}

// DecodeBatch is the inverse of AppendBatch. The envelopes' frames alias b.
func DecodeBatch(b []byte) ([]Envelope, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, ErrBadBatch
	}
	b = b[k:]
	envs := make([]Envelope, 0, n)
	for range n {
		if len(b) < 1 {
			return nil, ErrBadBatch
		}
		e := Envelope{Kind: b[0]}
		b = b[1:]
		if e.Group, k = binary.Varint(b); k <= 0 {
			return nil, ErrBadBatch
		}
		b = b[k:]
		nu, k := binary.Uvarint(b)
		if k <= 0 || nu > uint64(len(b)) {
			return nil, ErrBadBatch
		}
		b = b[k:]
		if nu > 0 {
			e.Users = make([]int64, nu)
		}
		for i := range e.Users {
			if e.Users[i], k = binary.Varint(b); k <= 0 {
				return nil, ErrBadBatch
			}
			b = b[k:]
		}
		nf, k := binary.Uvarint(b)
		if k <= 0 || nf > uint64(len(b)-k) {
			return nil, ErrBadBatch
		}
		b = b[k:]
		if nf > 0 {
			e.Frame = b[:nf:nf]
		}
		b = b[nf:]
		envs = append(envs, e)
	}
	if len(b) != 0 {
		return nil, ErrBadBatch
	}
	return envs, nil
}

// Bus carries batches of envelopes between the nodes of a cluster.
//
// Order: the batches one node sends another are numbered 1, 2, 3, … (by
// its Outbox) and handed to the receiver's handler in seq order, one batch
// at a time, each seq once, however they overtook each other on the way
// (Sends may run concurrently); a batch's envelopes keep their order. A
// missing seq is waited for (router.Sequencer says how long). Nothing is
// ordered across senders, and batches of different senders may be handled
// at once. Delivery is at least once: a Send that fails or times out may
// still arrive, and a retried batch may then come twice (the receiver
// drops the copy). A batch sent to a node that is not listening waits for
// it, as far as the implementation keeps messages (RocketMQ: its
// retention; in memory: until Close).
//
// Send blocks until the bus holds the batch (or ctx ends); callers that
// must not block use an Outbox. After Close every method returns
// ErrClosed. Every method is safe for concurrent use.
//
// Implementations: MemoryBus (the nodes of one process) and
// router/rocketmq. Both pass the contract suite in router/bustest.
type Bus interface {
	// Send sends envs, as one message numbered seq, to the node named
	// node.
	Send(ctx context.Context, node string, seq uint64, envs []Envelope) error
	// Listen starts handing the batches sent to this node to handle, from
	// the bus's goroutines (one at a time per sender). It is called once.
	Listen(handle func([]Envelope)) error
	// Close stops sending and listening.
	Close() error
}
