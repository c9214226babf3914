// Package router is what makes several Parley nodes one service: the
// directory of which node holds each user's connections (Presence), the
// membership and slot table (Membership, Cluster, Table), and cross-node
// delivery (Bus, Outbox). It holds the interfaces and their in-memory
// implementations, with which a cluster of nodes runs inside one process;
// router/redis and router/rocketmq are the real ones, and each passes the
// same contract suite (router/presencetest, router/membershiptest,
// router/bustest).
package router

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrClosed is returned by a Presence after Close, by every method
	// including a second Close.
	ErrClosed = errors.New("router: closed")
	// ErrTTL is returned by Heartbeat for a ttl under a millisecond.
	ErrTTL = errors.New("router: heartbeat ttl under 1ms")
)

// Presence is the directory of which nodes hold each user's connections.
//
// A node counts only while it is live: it called Heartbeat within the ttl
// it gave. So when a node dies its users go offline within the ttl, with
// no one cleaning up after it. The connections it had are kept, not
// forgotten: a node that heartbeats again after its ttl ran out is live
// again with all of them (a long pause is not a crash). A node that starts
// under the name of one that may have crashed therefore calls DropNode on
// its own name before its first Heartbeat.
//
// Connect and Disconnect are atomic for one user across all nodes: of many
// concurrent calls for a user, exactly one Connect reports first when the
// user comes online, and exactly one Disconnect reports last when it goes
// offline. Nodes is a snapshot per user, not across users.
//
// A call whose ctx is done returns an error (ctx.Err(), or wrapping it)
// and may or may not have taken effect, like any failed call; after Close
// every call returns ErrClosed. Every method is safe for concurrent use.
//
// Implementations: MemoryPresence (one node, in process) and router/redis
// (a cluster). Both pass the contract suite in router/presencetest.
type Presence interface {
	// Connect records one more connection of user on node. first reports
	// that the user had no connection on any live node before: it just
	// came online. A connection on a node that is not live is recorded
	// but counts for nothing until the node heartbeats.
	Connect(ctx context.Context, user int64, node string) (first bool, err error)
	// Disconnect records one connection fewer of user on node; with none
	// left there it is a no-op that reports false. last reports that the
	// user now has no connection on any live node: it just went offline.
	Disconnect(ctx context.Context, user int64, node string) (last bool, err error)
	// Nodes returns, for each of users with a connection on a live node,
	// those nodes, sorted. Users who are offline are absent, so Nodes is
	// also the online check: _, online := m[user].
	Nodes(ctx context.Context, users []int64) (map[int64][]string, error)
	// Heartbeat marks node live for ttl from now, replacing the ttl of the
	// previous heartbeat. A ttl under a millisecond is ErrTTL.
	Heartbeat(ctx context.Context, node string, ttl time.Duration) error
	// DropNode forgets every connection of node and marks it dead until
	// its next Heartbeat. A node calls it when it stops, and before its
	// first Heartbeat when it starts; a node that finds another one dead
	// may call it too. It is not atomic with a concurrent Connect on the
	// same node, which therefore must not happen.
	DropNode(ctx context.Context, node string) error
	// Close releases the implementation's resources.
	Close() error
}
