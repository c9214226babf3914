// Package redis holds the Redis implementations of the router's
// interfaces: Presence and Membership, shared by the nodes of a cluster.
package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/router"
)

// Presence is router.Presence in Redis, shared by the nodes of a cluster.
//
// Keys, under a configurable prefix P:
//
//	P:presence:{user}     hash    node → connections of user on node
//	P:node:{node}:alive   string  set with the node's heartbeat ttl; gone = dead
//	P:node:{node}:users   set     users with a connection on node, for DropNode
//
// One key per node is refreshed by Heartbeat, however many users the node
// holds. Connect and Disconnect are Lua scripts, so first and last are
// decided atomically across nodes; they read the alive keys of the nodes
// in the user's hash, keys they cannot declare, so they suit a single
// Redis (with replicas), not a Redis Cluster. Nodes reads the hashes, then
// the alive keys of the nodes they name: two round trips, however many
// users.
type Presence struct {
	rdb    goredis.UniversalClient
	prefix string
	closed atomic.Bool
}

var _ router.Presence = (*Presence)(nil)

// NewPresence uses rdb under the key prefix (default "parley").
// Close closes rdb.
func NewPresence(rdb goredis.UniversalClient, prefix string) *Presence {
	if prefix == "" {
		prefix = "parley"
	}
	return &Presence{rdb: rdb, prefix: prefix}
}

// The pieces of the keys; the scripts get them as arguments, so the layout
// is written down once, here.
const (
	userPart  = ":presence:"
	nodePart  = ":node:"
	aliveTail = ":alive"
	usersTail = ":users"
)

func (p *Presence) userKey(user int64) string {
	return p.prefix + userPart + strconv.FormatInt(user, 10)
}
func (p *Presence) aliveKey(node string) string { return p.prefix + nodePart + node + aliveTail }
func (p *Presence) usersKey(node string) string { return p.prefix + nodePart + node + usersTail }

// onlineLua defines online(fields, skip): how many nodes but skip in a
// user's HGETALL reply hold a connection and are alive. ARGV[2] and
// ARGV[3] are the alive key's head (P:node:) and tail (:alive).
const onlineLua = `
local function online(fields, skip)
  local n = 0
  for i = 1, #fields, 2 do
    local node = fields[i]
    if node ~= skip and tonumber(fields[i + 1]) > 0
       and redis.call('EXISTS', ARGV[2] .. node .. ARGV[3]) == 1 then
      n = n + 1
    end
  end
  return n
end
`

// KEYS: the user's hash, the node's user set. ARGV: node, alive key head,
// alive key tail, user. Returns 1 if the user came online.
var connectScript = goredis.NewScript(onlineLua + `
local others = online(redis.call('HGETALL', KEYS[1]), ARGV[1])
local alive = redis.call('EXISTS', ARGV[2] .. ARGV[1] .. ARGV[3])
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[4])
if others == 0 and (mine == 1 or alive == 0) then return 1 end
return 0
`)

// KEYS and ARGV as connectScript's. Returns 1 if the user went offline.
var disconnectScript = goredis.NewScript(onlineLua + `
local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if mine <= 0 then return 0 end
mine = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if mine <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[4])
end
if online(redis.call('HGETALL', KEYS[1]), '') == 0 then return 1 end
return 0
`)

// dropChunk is how many users one run of dropScript forgets, so that a
// node with 100k users does not hold Redis for one long script.
const dropChunk = 512

// KEYS: the node's user set. ARGV: node, user key head (P:presence:),
// count. Pops up to count users off the set and removes node from their
// hashes; returns how many it popped.
var dropScript = goredis.NewScript(`
local users = redis.call('SPOP', KEYS[1], ARGV[3])
for _, u in ipairs(users) do
  redis.call('HDEL', ARGV[2] .. u, ARGV[1])
end
return #users
`)

// fail wraps an error of Redis, or reports router.ErrClosed.
func (p *Presence) fail(op string, err error) error {
	if errors.Is(err, goredis.ErrClosed) {
		return router.ErrClosed
	}
	return fmt.Errorf("router: redis presence %s: %w", op, err)
}

func (p *Presence) run(ctx context.Context, s *goredis.Script, user int64, node string) (bool, error) {
	if p.closed.Load() {
		return false, router.ErrClosed
	}
	keys := []string{p.userKey(user), p.usersKey(node)}
	r, err := s.Run(ctx, p.rdb, keys, node, p.prefix+nodePart, aliveTail, user).Int()
	return r == 1, err
}

// Connect implements Presence: one script run.
func (p *Presence) Connect(ctx context.Context, user int64, node string) (bool, error) {
	first, err := p.run(ctx, connectScript, user, node)
	if err != nil {
		return false, p.fail("connect", err)
	}
	return first, nil
}

// Disconnect implements Presence: one script run.
func (p *Presence) Disconnect(ctx context.Context, user int64, node string) (bool, error) {
	last, err := p.run(ctx, disconnectScript, user, node)
	if err != nil {
		return false, p.fail("disconnect", err)
	}
	return last, nil
}

// Nodes implements Presence: one pipeline for the users' hashes, one for
// the alive keys of the nodes they name.
func (p *Presence) Nodes(ctx context.Context, users []int64) (map[int64][]string, error) {
	if p.closed.Load() {
		return nil, router.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[int64][]string)
	if len(users) == 0 {
		return out, nil
	}
	pipe := p.rdb.Pipeline()
	hashes := make([]*goredis.MapStringStringCmd, len(users))
	for i, u := range users {
		hashes[i] = pipe.HGetAll(ctx, p.userKey(u))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, p.fail("nodes", err)
	}
	alive := map[string]*goredis.IntCmd{}
	pipe = p.rdb.Pipeline()
	for _, h := range hashes {
		for n := range h.Val() {
			if _, ok := alive[n]; !ok {
				alive[n] = pipe.Exists(ctx, p.aliveKey(n))
			}
		}
	}
	if len(alive) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, p.fail("nodes", err)
	}
	for i, h := range hashes {
		u := users[i]
		if _, seen := out[u]; seen {
			continue // asked twice
		}
		for n, count := range h.Val() {
			if c, _ := strconv.Atoi(count); c > 0 && alive[n].Val() == 1 {
				out[u] = append(out[u], n)
			}
		}
		slices.Sort(out[u])
	}
	return out, nil
}

// Heartbeat implements Presence: one SET with the ttl, in milliseconds.
func (p *Presence) Heartbeat(ctx context.Context, node string, ttl time.Duration) error {
	if p.closed.Load() {
		return router.ErrClosed
	}
	if ttl < time.Millisecond {
		return router.ErrTTL
	}
	if err := p.rdb.Set(ctx, p.aliveKey(node), time.Now().UnixMilli(), ttl).Err(); err != nil {
		return p.fail("heartbeat", err)
	}
	return nil
}

// DropNode implements Presence. It deletes the node's alive key first, so
// readers stop counting the node at once, then forgets its users in
// chunks of dropChunk, one script run each. If it fails part way, the
// rest stays behind the missing alive key and a later DropNode finishes.
func (p *Presence) DropNode(ctx context.Context, node string) error {
	if p.closed.Load() {
		return router.ErrClosed
	}
	if err := p.rdb.Del(ctx, p.aliveKey(node)).Err(); err != nil {
		return p.fail("drop node", err)
	}
	keys := []string{p.usersKey(node)}
	for {
		n, err := dropScript.Run(ctx, p.rdb, keys, node, p.prefix+userPart, dropChunk).Int()
		if err != nil {
			return p.fail("drop node", err)
		}
		if n < dropChunk {
			return nil
		}
	}
}

// Close implements Presence: it closes the Redis client.
func (p *Presence) Close() error {
	if p.closed.Swap(true) {
		return router.ErrClosed
	}
	return p.rdb.Close()
}
