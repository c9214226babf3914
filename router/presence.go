// Package router is what makes several Parley nodes one service: the
// directory of which node holds each user's connections (Presence), and,
// with the cluster, the slot table and cross-node delivery.
package router

import (
	"context"
	"errors"
	"time"
)

// ErrClosed is returned by a Presence after Close.
var ErrClosed = errors.New("router: closed")

// Presence is the directory of which nodes hold each user's connections.
// A node counts only while it is live: it called Heartbeat within the ttl
// it gave. So when a node dies its users go offline within the ttl, with
// no one cleaning up after it.
//
// Implementations: MemoryPresence (one node, in process) and RedisPresence
// (a cluster). Both pass the contract suite in router/presencetest.
type Presence interface {
	// Connect records one more connection of user on node. first reports
	// that the user had no connection on any live node before: it just
	// came online.
	Connect(ctx context.Context, user int64, node string) (first bool, err error)
	// Disconnect records one connection fewer of user on node (none left
	// is a no-op). last reports that the user now has no connection on any
	// live node: it just went offline.
	Disconnect(ctx context.Context, user int64, node string) (last bool, err error)
	// Nodes returns, for each of users with a connection on a live node,
	// those nodes, sorted. Users who are offline are absent.
	Nodes(ctx context.Context, users []int64) (map[int64][]string, error)
	// Heartbeat marks node live for ttl from now.
	Heartbeat(ctx context.Context, node string, ttl time.Duration) error
	// DropNode forgets every connection of node and marks it dead: a node
	// calls it when it stops.
	DropNode(ctx context.Context, node string) error
	// Close releases the implementation's resources.
	Close() error
}
