package server

import (
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

// attemptLimiter counts failed logins per key (a username or an address) in
// fixed windows. Logins are rare next to messages, so one mutex is enough.
type attemptLimiter struct {
	mu     sync.Mutex
	window time.Duration
	m      map[string]*attempts
}

type attempts struct {
	n     int
	until time.Time // end of the window
}

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

func (l *attemptLimiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.m[key]
	if a == nil || now.After(a.until) {
		a = &attempts{until: now.Add(l.window)}
		l.m[key] = a
	}
	a.n++
}

func (l *attemptLimiter) reset(key string) {
	l.mu.Lock()
	delete(l.m, key)
	l.mu.Unlock()
}

// sweep forgets windows that have ended.
func (l *attemptLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, a := range l.m {
		if now.After(a.until) {
			delete(l.m, k)
		}
	}
}
