package router

import (
	"context"
	"errors"
	"time"
)

// ErrNoSnowflakeID is returned by ClaimID when all 1,024 ids are held.
var ErrNoSnowflakeID = errors.New("router: no free snowflake node id")

// NodeInfo describes a member.
type NodeInfo struct {
	Name      string `json:"name"`
	Addr      string `json:"addr"`      // clients' TCP address
	Snowflake int64  `json:"snowflake"` // its snowflake node id, 0-1023
	Started   int64  `json:"started"`   // Unix ms
}

// Membership is the shared state the nodes of a cluster coordinate
// through: who is a member and live, which snowflake ids are taken, who
// is the coordinator, and the slot table. Cluster runs on it; it holds no
// policy of its own.
//
// Liveness is by ttl: a member, an id claim and the lease each last the
// ttl given when last renewed and are gone after it, with no one cleaning
// up. A call whose ctx is done returns an error and may or may not have
// taken effect; after Close every method returns ErrClosed. Every method
// is safe for concurrent use, from any number of nodes.
//
// Implementations: MemoryMembership (the nodes of one process) and
// router/redis. Both pass the contract suite in router/membershiptest.
type Membership interface {
	// ClaimID claims a snowflake id (0-1023) that no other node holds, for
	// node, for ttl; Heartbeat renews it. ErrNoSnowflakeID when none is
	// free.
	ClaimID(ctx context.Context, node string, ttl time.Duration) (int64, error)
	// Heartbeat records info as a member, live for ttl from now, and
	// renews its claim of info.Snowflake.
	Heartbeat(ctx context.Context, info NodeInfo, ttl time.Duration) error
	// Live returns the members whose last Heartbeat has not lapsed, by
	// name.
	Live(ctx context.Context) (map[string]NodeInfo, error)
	// Lease takes the coordinator lease for node if no one holds it, or
	// renews it if node does, for ttl; it reports whether node holds it
	// now. At most one node holds it at a time.
	Lease(ctx context.Context, node string, ttl time.Duration) (bool, error)
	// Table returns the slot table last set; the zero Table before any.
	Table(ctx context.Context) (Table, error)
	// SetTable stores t as the slot table and tells the watchers.
	SetTable(ctx context.Context, t Table) error
	// Watch returns a channel that receives a value soon after each
	// SetTable (from any node), until ctx ends. Values may coalesce and,
	// while the store is unreachable, be missed: watchers also poll.
	Watch(ctx context.Context) <-chan struct{}
	// Leave removes info at once: the member, its liveness, its id claim
	// and the lease if it holds it.
	Leave(ctx context.Context, info NodeInfo) error
	// Close releases the implementation's resources.
	Close() error
}
