package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/parleyim/parley/router"
)

// Membership is router.Membership in Redis. Keys, under a prefix P:
//
//	P:members               hash  node name → NodeInfo (JSON)
//	P:member:{name}:live    string with the heartbeat ttl; gone = dead
//	P:snowflake:{id}        string, the name of the node holding snowflake id
//	P:snowflake:next        counter, where the next id search starts
//	P:coordinator           string with a ttl: the lease of the coordinator
//	P:slots                 the slot Table (JSON)
//	P:slots:changed         pub/sub channel; a message means "reload"
type Membership struct {
	rdb    goredis.UniversalClient
	prefix string
	closed atomic.Bool
}

var _ router.Membership = (*Membership)(nil)

// NewMembership uses rdb under the key prefix (default "parley"). Close
// closes rdb.
func NewMembership(rdb goredis.UniversalClient, prefix string) *Membership {
	if prefix == "" {
		prefix = "parley"
	}
	return &Membership{rdb: rdb, prefix: prefix}
}

func (m *Membership) key(parts ...string) string {
	k := m.prefix
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

func (m *Membership) fail(op string, err error) error {
	if m.closed.Load() || errors.Is(err, goredis.ErrClosed) {
		return router.ErrClosed
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

// renewScript extends a key's ttl if it still holds our value.
var renewScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// releaseScript deletes a key if it still holds our value.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// ClaimID implements router.Membership: SET NX on the ids from a shared
// counter on.
func (m *Membership) ClaimID(ctx context.Context, node string, ttl time.Duration) (int64, error) {
	if m.closed.Load() {
		return 0, router.ErrClosed
	}
	for range 1024 {
		n, err := m.rdb.Incr(ctx, m.key("snowflake", "next")).Result()
		if err != nil {
			return 0, m.fail("snowflake id", err)
		}
		id := n % 1024
		ok, err := m.rdb.SetNX(ctx, m.key("snowflake", strconv.FormatInt(id, 10)), node, ttl).Result()
		if err != nil {
			return 0, m.fail("snowflake id", err)
		}
		if ok {
			return id, nil
		}
	}
	return 0, router.ErrNoSnowflakeID
}

// Heartbeat implements router.Membership: one transaction.
func (m *Membership) Heartbeat(ctx context.Context, info router.NodeInfo, ttl time.Duration) error {
	if m.closed.Load() {
		return router.ErrClosed
	}
	raw, _ := json.Marshal(info)
	pipe := m.rdb.TxPipeline()
	pipe.HSet(ctx, m.key("members"), info.Name, raw)
	pipe.Set(ctx, m.key("member", info.Name, "live"), info.Started, ttl)
	pipe.Set(ctx, m.key("snowflake", strconv.FormatInt(info.Snowflake, 10)), info.Name, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return m.fail("heartbeat", err)
	}
	return nil
}

// Live implements router.Membership: the hash, then one pipeline of
// EXISTS on the live keys.
func (m *Membership) Live(ctx context.Context) (map[string]router.NodeInfo, error) {
	if m.closed.Load() {
		return nil, router.ErrClosed
	}
	all, err := m.rdb.HGetAll(ctx, m.key("members")).Result()
	if err != nil {
		return nil, m.fail("members", err)
	}
	pipe := m.rdb.Pipeline()
	live := map[string]*goredis.IntCmd{}
	for name := range all {
		live[name] = pipe.Exists(ctx, m.key("member", name, "live"))
	}
	if len(live) > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, m.fail("members", err)
		}
	}
	out := map[string]router.NodeInfo{}
	for name, raw := range all {
		if live[name].Val() != 1 {
			continue
		}
		var n router.NodeInfo
		if json.Unmarshal([]byte(raw), &n) == nil {
			out[name] = n
		}
	}
	return out, nil
}

// Lease implements router.Membership: SET NX, or a compare-and-extend
// script for the holder.
func (m *Membership) Lease(ctx context.Context, node string, ttl time.Duration) (bool, error) {
	if m.closed.Load() {
		return false, router.ErrClosed
	}
	lease := m.key("coordinator")
	ok, err := m.rdb.SetNX(ctx, lease, node, ttl).Result()
	if err == nil && !ok {
		var n int64
		n, err = renewScript.Run(ctx, m.rdb, []string{lease}, node, ttl.Milliseconds()).Int64()
		ok = n == 1
	}
	if err != nil {
		return false, m.fail("lease", err)
	}
	return ok, nil
}

// Table implements router.Membership.
func (m *Membership) Table(ctx context.Context) (router.Table, error) {
	var t router.Table
	if m.closed.Load() {
		return t, router.ErrClosed
	}
	raw, err := m.rdb.Get(ctx, m.key("slots")).Bytes()
	if errors.Is(err, goredis.Nil) {
		return t, nil
	}
	if err != nil {
		return t, m.fail("slot table", err)
	}
	if err := json.Unmarshal(raw, &t); err != nil {
		return t, fmt.Errorf("redis: slot table: %w", err)
	}
	return t, nil
}

// SetTable implements router.Membership: SET, then PUBLISH the epoch.
func (m *Membership) SetTable(ctx context.Context, t router.Table) error {
	if m.closed.Load() {
		return router.ErrClosed
	}
	raw, _ := json.Marshal(t)
	if err := m.rdb.Set(ctx, m.key("slots"), raw, 0).Err(); err != nil {
		return m.fail("slot table", err)
	}
	if err := m.rdb.Publish(ctx, m.key("slots", "changed"), t.Epoch).Err(); err != nil {
		return m.fail("slot table", err)
	}
	return nil
}

// Watch implements router.Membership: a subscription to P:slots:changed,
// which the client renews after Redis comes back.
func (m *Membership) Watch(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	sub := m.rdb.Subscribe(ctx, m.key("slots", "changed"))
	go func() {
		defer sub.Close()
		ch := sub.Channel()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out
}

// Leave implements router.Membership.
func (m *Membership) Leave(ctx context.Context, info router.NodeInfo) error {
	if m.closed.Load() {
		return router.ErrClosed
	}
	pipe := m.rdb.TxPipeline()
	pipe.HDel(ctx, m.key("members"), info.Name)
	pipe.Del(ctx, m.key("member", info.Name, "live"))
	if _, err := pipe.Exec(ctx); err != nil {
		return m.fail("leave", err)
	}
	sf := m.key("snowflake", strconv.FormatInt(info.Snowflake, 10))
	if err := releaseScript.Run(ctx, m.rdb, []string{sf}, info.Name).Err(); err != nil {
		return m.fail("leave", err)
	}
	if err := releaseScript.Run(ctx, m.rdb, []string{m.key("coordinator")}, info.Name).Err(); err != nil {
		return m.fail("leave", err)
	}
	return nil
}

// Close implements router.Membership: it closes the Redis client.
func (m *Membership) Close() error {
	if m.closed.Swap(true) {
		return router.ErrClosed
	}
	return m.rdb.Close()
}
