package client

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/parleyim/parley/protocol"
)

// Expiring messages (protocol/expiry.go). SetTimer sets a conversation's
// timer with a timer message in its sequence; the server stamps later
// messages with ExpiresAt. An application drops a message at its ExpiresAt
// by its own clock (Expired reports whether that time has come) and on an
// Expired notice, whichever comes first.

// SetTimer sets the disappearing-messages timer of conv (0: off), rounded
// down to whole seconds. In a group only its owner may. Errors as Send's:
// a *SendError with BAD_TIMER, NOT_OWNER or RATE_LIMITED.
func (c *Client) SetTimer(ctx context.Context, conv string, d time.Duration) (protocol.SendAck, error) {
	if d < 0 || d > protocol.MaxTimer*time.Second {
		return protocol.SendAck{}, errors.New("client: a timer is 0 (off) up to a year")
	}
	return c.PostTo(ctx, conv, Post{ContentType: protocol.ContentTimer, Body: protocol.TimerBody(uint32(d / time.Second))})
}

// Expired reports whether m has expired at now.
func Expired(m *protocol.Message, now time.Time) bool {
	return m.ExpiresAt != 0 && m.ExpiresAt <= now.UnixMilli()
}

// ParseTimer reads a timer as people write it: "off" or "0", or a number
// with a unit of s, m, h, d or w ("30s", "5m", "1h", "7d", "1w"); a bare
// number is seconds.
func ParseTimer(s string) (time.Duration, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "off" || s == "0" {
		return 0, nil
	}
	unit := time.Second
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 's':
			s = s[:n-1]
		case 'm':
			unit, s = time.Minute, s[:n-1]
		case 'h':
			unit, s = time.Hour, s[:n-1]
		case 'd':
			unit, s = 24*time.Hour, s[:n-1]
		case 'w':
			unit, s = 7*24*time.Hour, s[:n-1]
		}
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, errors.New("a timer is off, or a number with s, m, h, d or w (30s, 5m, 1h, 7d)")
	}
	d := time.Duration(n) * unit
	if d > protocol.MaxTimer*time.Second || d/unit != time.Duration(n) {
		return 0, errors.New("a timer is at most a year")
	}
	return d, nil
}

// TimerText writes a timer in seconds the short way: "off", "30s", "5m",
// "1h", "7d", or mixed units when it is not whole ("1h30m").
func TimerText(secs uint32) string {
	if secs == 0 {
		return "off"
	}
	units := []struct {
		n    uint32
		name string
	}{{7 * 86400, "w"}, {86400, "d"}, {3600, "h"}, {60, "m"}, {1, "s"}}
	var b strings.Builder
	for _, u := range units {
		if secs >= u.n {
			b.WriteString(strconv.FormatUint(uint64(secs/u.n), 10))
			b.WriteString(u.name)
			secs %= u.n
		}
	}
	return b.String()
}
