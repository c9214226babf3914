package router

import (
	"context"
	"encoding/json"
)

// Envelope kinds.
const (
	// EnvPush: push Frame to every logged-in session of Users on the
	// receiving node.
	EnvPush uint8 = 1
	// EnvGroupChanged: the members of Group changed; drop cached copies.
	EnvGroupChanged uint8 = 2
)

// Envelope is what one node sends another.
type Envelope struct {
	Kind  uint8   `json:"k"`
	Users []int64 `json:"u,omitempty"`
	Frame []byte  `json:"f,omitempty"` // an encoded protocol frame
	Group int64   `json:"g,omitempty"`
}

func (e Envelope) encode() ([]byte, error) { return json.Marshal(e) }

func decodeEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	err := json.Unmarshal(b, &e)
	return e, err
}

// Bus carries envelopes between the nodes of a cluster. Delivery is at
// least once and unordered: an envelope may come twice or be lost with a
// node, and the protocol makes up for it (clients drop duplicate pushes by
// msg_id and sync when they see a gap).
type Bus interface {
	// Send sends env to the node named node.
	Send(ctx context.Context, node string, env Envelope) error
	// Broadcast sends env to every node in nodes.
	Broadcast(ctx context.Context, nodes []string, env Envelope) error
	// Listen starts delivering the envelopes sent to this node to handle,
	// from the bus's goroutines.
	Listen(handle func(Envelope)) error
	// Close stops sending and listening.
	Close() error
}
