package server

import (
	"hash/maphash"
	"net"
	"slices"
	"sync"
	"time"
)

// tokenBucket limits one connection's frame rate. It is touched only by the
// connection's event loop, so it needs no lock.
type tokenBucket struct {
	tokens float64
	last   int64 // unix ms
}

// allow takes one token, refilling rate tokens a second up to burst.
func (b *tokenBucket) allow(now int64, rate float64, burst int) bool {
	if rate < 0 {
		return true
	}
	if b.last == 0 {
		b.tokens = float64(burst)
	} else if elapsed := now - b.last; elapsed > 0 {
		b.tokens += float64(elapsed) * rate / 1000
		if b.tokens > float64(burst) {
			b.tokens = float64(burst)
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// overdraw charges a frame that allow refused: the bucket goes into debt,
// which refills like tokens. It reports true once the debt passes limit:
// the client kept sending past the limit without reading its errors.
func (b *tokenBucket) overdraw(limit int) bool {
	b.tokens--
	return b.tokens < -float64(limit)
}

// attemptLimiter counts failed logins per key (an address, an account, an
// (account, address) pair) in windows. Logins are rare next to messages, so
// one mutex is enough. Its keys are bounded: maxLimiterKeys, each at most a
// valid username and an address long.
type attemptLimiter struct {
	mu     sync.Mutex
	window time.Duration
	m      map[string]*attempts
}

type attempts struct {
	n       int
	until   time.Time // end of the window
	strikes int       // windows in a row that ended blocked (failBackoff)
}

// maxBackoff caps a backed-off window.
const maxBackoff = 6 // window << 6: an hour for a minute's window

func newAttemptLimiter(window time.Duration) *attemptLimiter {
	return &attemptLimiter{window: window, m: make(map[string]*attempts)}
}

// blocked reports whether key has max or more failures in its current
// window, and when that window ends.
func (l *attemptLimiter) blocked(key string, max int, now time.Time) (bool, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.m[key]
	if a == nil || now.After(a.until) {
		return false, time.Time{}
	}
	return a.n >= max, a.until
}

func (l *attemptLimiter) fail(key string, now time.Time) { l.failBackoff(key, 0, now) }

// failBackoff counts a failure of key. With max > 0 a window that ended
// blocked (max failures) makes the next one twice as long, up to
// window << maxBackoff: an attacker who keeps going is slowed further.
func (l *attemptLimiter) failBackoff(key string, max int, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.m[key]
	if a == nil || now.After(a.until) {
		strikes := 0
		if a != nil && max > 0 && a.n >= max && now.Sub(a.until) < l.window {
			strikes = min(a.strikes+1, maxBackoff)
		}
		if a == nil && len(l.m) >= maxLimiterKeys {
			l.evict(now)
		}
		a = &attempts{until: now.Add(l.window << strikes), strikes: strikes}
		l.m[key] = a
	}
	a.n++
}

// evict drops ended windows, then arbitrary ones. l.mu is held.
func (l *attemptLimiter) evict(now time.Time) {
	for k, a := range l.m {
		if now.After(a.until) {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < maxLimiterKeys*3/4 {
			break
		}
		delete(l.m, k)
	}
}

func (l *attemptLimiter) reset(key string) {
	l.mu.Lock()
	delete(l.m, key)
	l.mu.Unlock()
}

// sweep forgets windows that have ended (a window past its end is kept one
// more window for the back-off).
func (l *attemptLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, a := range l.m {
		if now.Sub(a.until) > l.window {
			delete(l.m, k)
		}
	}
}

// knownAddrs remembers, per account (lowercased name), the last few
// addresses it logged in from, so that an account under a password attack
// from elsewhere still admits its owner. Bounded: maxLimiterKeys accounts,
// knownPerAccount addresses each.
//
// Every account that logs in has an entry, so an entry is kept small: names
// and addresses are kept as 64-bit fingerprints (maphash with a seed of
// this process, which a client cannot learn, so it cannot make its address
// collide with another's), and an account's only address, the common
// case, sits in the map itself, without a list.
type knownAddrs struct {
	mu   sync.Mutex
	seed maphash.Seed
	one  map[uint64]uint64   // account → its one known address
	more map[uint64][]uint64 // account → its addresses (2 or more), most recent first
}

const knownPerAccount = 8

func newKnownAddrs() *knownAddrs {
	return &knownAddrs{seed: maphash.MakeSeed(), one: make(map[uint64]uint64), more: make(map[uint64][]uint64)}
}

func (k *knownAddrs) add(name, addr string) {
	n, a := maphash.String(k.seed, name), maphash.String(k.seed, addr)
	k.mu.Lock()
	defer k.mu.Unlock()
	if list, ok := k.more[n]; ok {
		i := slices.Index(list, a)
		if i < 0 {
			if len(list) < knownPerAccount {
				list = append(list, 0)
			}
			i = len(list) - 1
		}
		copy(list[1:i+1], list[:i]) // most recent first
		list[0] = a
		k.more[n] = list
		return
	}
	if first, ok := k.one[n]; ok {
		if first != a {
			delete(k.one, n)
			k.more[n] = []uint64{a, first}
		}
		return
	}
	if len(k.one)+len(k.more) >= maxLimiterKeys {
		k.evict()
	}
	k.one[n] = a
}

// evict makes an arbitrary account forget its addresses. k.mu is held.
func (k *knownAddrs) evict() {
	for n := range k.one {
		delete(k.one, n)
		return
	}
	for n := range k.more {
		delete(k.more, n)
		return
	}
}

func (k *knownAddrs) has(name, addr string) bool {
	n, a := maphash.String(k.seed, name), maphash.String(k.seed, addr)
	k.mu.Lock()
	defer k.mu.Unlock()
	if first, ok := k.one[n]; ok {
		return first == a
	}
	return slices.Contains(k.more[n], a)
}

// maxLimiterKeys bounds the keys of every per-address or per-account table:
// at the bound, expired or refilled entries go first, then arbitrary ones.
// An evicted key starts again from a full bucket (or no failures); the
// global limits still hold.
const maxLimiterKeys = 1 << 16

// addrKey is the key of a remote address in the per-address limits: the
// address itself for IPv4, its /64 network for IPv6 (one subscriber's
// allocation), so that rotating through a prefix gains nothing.
func addrKey(ip net.IP) string {
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	if len(ip) == net.IPv6len {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// authLimiter admits the frames that cost a password hash (Register, Login
// by password): a token bucket per address and one for the whole server.
// It runs on the event loops under one mutex; these frames are rare.
type authLimiter struct {
	mu          sync.Mutex
	rate        float64 // per address, per second; < 0: off
	burst       int
	global      tokenBucket
	globalRate  float64
	globalBurst int
	m           map[string]*tokenBucket
}

func newAuthLimiter(rate float64, burst int, globalRate float64, globalBurst int) *authLimiter {
	return &authLimiter{rate: rate, burst: burst, globalRate: globalRate, globalBurst: globalBurst, m: make(map[string]*tokenBucket)}
}

// allow takes a token for addr and one from the global bucket. When it
// refuses, until is a time (unix ms) worth retrying at.
func (l *authLimiter) allow(addr string, now int64) (until int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate >= 0 {
		b := l.m[addr]
		if b == nil {
			if len(l.m) >= maxLimiterKeys {
				l.evict(now)
			}
			b = &tokenBucket{}
			l.m[addr] = b
		}
		if !b.allow(now, l.rate, l.burst) {
			return now + int64(1000/max(l.rate, 0.001)), false
		}
	}
	if !l.global.allow(now, l.globalRate, l.globalBurst) {
		return now + int64(1000/max(l.globalRate, 0.001)), false
	}
	return 0, true
}

// evict drops buckets that have refilled (they are the same as absent),
// and if none has, an arbitrary quarter of the table. l.mu is held.
func (l *authLimiter) evict(now int64) {
	for k, b := range l.m {
		if float64(now-b.last)*l.rate/1000+b.tokens >= float64(l.burst) {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < maxLimiterKeys*3/4 {
			break
		}
		delete(l.m, k)
	}
}

// connLimiter counts the open connections of each address against a cap.
// Without a cap it counts nothing: an entry per address would cost every
// connection its bytes for no bound.
type connLimiter struct {
	mu  sync.Mutex
	max int // < 0: no cap
	m   map[string]int
}

func newConnLimiter(max int) *connLimiter { return &connLimiter{max: max, m: make(map[string]int)} }

// open counts a connection of addr, or reports false at the cap.
func (l *connLimiter) open(addr string) bool {
	if l.max < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.m[addr]
	if n >= l.max {
		return false
	}
	l.m[addr] = n + 1
	return true
}

func (l *connLimiter) close(addr string) {
	if l.max < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := l.m[addr]; n > 1 {
		l.m[addr] = n - 1
	} else {
		delete(l.m, addr)
	}
}
