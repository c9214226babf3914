package router

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisPresence is Presence in Redis, shared by the nodes of a cluster.
//
// Keys, under a configurable prefix P:
//
//	P:u:{user}       hash  node → connections of user on node
//	P:n:{node}:live  string, with the node's heartbeat ttl; gone = dead
//	P:n:{node}:users set   users with a connection on node, for DropNode
//
// One key per node is refreshed by Heartbeat, however many users the node
// holds. Connect and Disconnect are Lua scripts, so first/last are decided
// atomically across nodes; they read the live keys of the nodes in the
// user's hash, so they suit a single Redis (or keys of one hash slot), not
// a Redis Cluster.
type RedisPresence struct {
	rdb    redis.UniversalClient
	prefix string
}

var _ Presence = (*RedisPresence)(nil)

// NewRedisPresence uses rdb under the key prefix (default "parley").
// Close closes rdb.
func NewRedisPresence(rdb redis.UniversalClient, prefix string) *RedisPresence {
	if prefix == "" {
		prefix = "parley"
	}
	return &RedisPresence{rdb: rdb, prefix: prefix}
}

func (p *RedisPresence) userKey(user int64) string {
	return p.prefix + ":u:" + strconv.FormatInt(user, 10)
}
func (p *RedisPresence) liveKey(node string) string { return p.prefix + ":n:" + node + ":live" }
func (p *RedisPresence) usersKey(node string) string {
	return p.prefix + ":n:" + node + ":users"
}

// onlineLua (a Lua function) counts the live nodes in a user hash with
// connections, skipping one node.
const onlineLua = `
local function online(fields, skip, prefix)
  local n = 0
  for i = 1, #fields, 2 do
    local node = fields[i]
    if node ~= skip and tonumber(fields[i + 1]) > 0
       and redis.call('EXISTS', prefix .. ':n:' .. node .. ':live') == 1 then
      n = n + 1
    end
  end
  return n
end
`

// KEYS: user hash, node's user set. ARGV: node, prefix, user.
var connectScript = redis.NewScript(onlineLua + `
local others = online(redis.call('HGETALL', KEYS[1]), ARGV[1], ARGV[2])
local live = redis.call('EXISTS', ARGV[2] .. ':n:' .. ARGV[1] .. ':live')
local mine = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[3])
if others == 0 and (mine == 1 or live == 0) then return 1 end
return 0
`)

// KEYS: user hash, node's user set. ARGV: node, prefix, user.
var disconnectScript = redis.NewScript(onlineLua + `
local mine = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if mine <= 0 then return 0 end
mine = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if mine <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[3])
end
if online(redis.call('HGETALL', KEYS[1]), '', ARGV[2]) == 0 then return 1 end
return 0
`)

func (p *RedisPresence) wrap(op string, err error) error {
	return fmt.Errorf("router: redis presence %s: %w", op, err)
}

// Connect implements Presence.
func (p *RedisPresence) Connect(ctx context.Context, user int64, node string) (bool, error) {
	r, err := connectScript.Run(ctx, p.rdb, []string{p.userKey(user), p.usersKey(node)}, node, p.prefix, user).Int()
	if err != nil {
		return false, p.wrap("connect", err)
	}
	return r == 1, nil
}

// Disconnect implements Presence.
func (p *RedisPresence) Disconnect(ctx context.Context, user int64, node string) (bool, error) {
	r, err := disconnectScript.Run(ctx, p.rdb, []string{p.userKey(user), p.usersKey(node)}, node, p.prefix, user).Int()
	if err != nil {
		return false, p.wrap("disconnect", err)
	}
	return r == 1, nil
}

// Nodes implements Presence: one pipeline for the users' hashes, one for
// the liveness of the nodes they name.
func (p *RedisPresence) Nodes(ctx context.Context, users []int64) (map[int64][]string, error) {
	out := make(map[int64][]string)
	if len(users) == 0 {
		return out, nil
	}
	pipe := p.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(users))
	for i, u := range users {
		cmds[i] = pipe.HGetAll(ctx, p.userKey(u))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, p.wrap("nodes", err)
	}
	live := map[string]*redis.IntCmd{}
	pipe = p.rdb.Pipeline()
	for _, c := range cmds {
		for n := range c.Val() {
			if _, ok := live[n]; !ok {
				live[n] = pipe.Exists(ctx, p.liveKey(n))
			}
		}
	}
	if len(live) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, p.wrap("nodes", err)
	}
	for i, c := range cmds {
		for n, count := range c.Val() {
			if k, _ := strconv.Atoi(count); k > 0 && live[n].Val() == 1 {
				out[users[i]] = append(out[users[i]], n)
			}
		}
		slices.Sort(out[users[i]])
	}
	return out, nil
}

// Heartbeat implements Presence.
func (p *RedisPresence) Heartbeat(ctx context.Context, node string, ttl time.Duration) error {
	if err := p.rdb.Set(ctx, p.liveKey(node), time.Now().UnixMilli(), ttl).Err(); err != nil {
		return p.wrap("heartbeat", err)
	}
	return nil
}

// DropNode implements Presence.
func (p *RedisPresence) DropNode(ctx context.Context, node string) error {
	if err := p.rdb.Del(ctx, p.liveKey(node)).Err(); err != nil {
		return p.wrap("drop node", err)
	}
	iter := p.rdb.SScan(ctx, p.usersKey(node), 0, "", 512).Iterator()
	pipe := p.rdb.Pipeline()
	for iter.Next(ctx) {
		u, err := strconv.ParseInt(iter.Val(), 10, 64)
		if err != nil {
			continue
		}
		pipe.HDel(ctx, p.userKey(u), node)
		if pipe.Len() >= 512 {
			if _, err := pipe.Exec(ctx); err != nil {
				return p.wrap("drop node", err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		return p.wrap("drop node", err)
	}
	pipe.Del(ctx, p.usersKey(node))
	if _, err := pipe.Exec(ctx); err != nil {
		return p.wrap("drop node", err)
	}
	return nil
}

// Close implements Presence.
func (p *RedisPresence) Close() error { return p.rdb.Close() }
