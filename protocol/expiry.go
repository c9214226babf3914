package protocol

import "strconv"

// Expiring messages (issue 16). A conversation's timer is set by a message
// in its sequence, ContentTimer, whose body is the timer in seconds as
// decimal digits ("0": off). The store stamps every later message of the
// conversation with ExpiresAt = ServerTime + timer; a message sent before
// the timer was set keeps no expiry, and changing the timer rewrites no
// stored message. Past ExpiresAt a message is gone from every read (Sync,
// History, Search, Conversations) and the server deletes it; online members
// get an Expired frame, and a client also drops it on its own clock.

// Content types of expiring messages (0x0300-0x030F). Others of the range
// are reserved; a Send with one is refused BAD_MESSAGE.
const (
	ContentTimer     uint16 = 0x0300 // the conversation's timer: seconds, decimal ("0": off); no Ref
	contentExpiryLow uint16 = 0x0300
	contentExpiryTop uint16 = 0x030F
)

// IsExpiryContent reports whether content type ct is in the range of
// expiring messages (0x0300-0x030F).
func IsExpiryContent(ct uint16) bool { return ct >= contentExpiryLow && ct <= contentExpiryTop }

// MaxTimer is the longest timer, in seconds: one year. A server may refuse
// timers below its minimum (5 s unless configured).
const MaxTimer = 365 * 24 * 3600

// ParseTimer reads the body of a ContentTimer message: 1-8 decimal digits
// without a leading zero (but "0"), at most MaxTimer.
func ParseTimer(body []byte) (secs uint32, ok bool) {
	if len(body) == 0 || len(body) > 8 || (body[0] == '0' && len(body) > 1) {
		return 0, false
	}
	var n uint64
	for _, c := range body {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > MaxTimer {
		return 0, false
	}
	return uint32(n), true
}

// TimerBody is the body of a ContentTimer message setting secs.
func TimerBody(secs uint32) []byte { return strconv.AppendUint(nil, uint64(secs), 10) }

// Frame types of expiring messages (0x00C2-0x00CF).
const (
	TypeExpired Type = 0x00C2 // Expired, S→C: messages of a conversation expired
)

// Expired tells a member that the messages at Seqs of Conv expired: the
// server deleted them, and the client drops them from its screen and its
// cache. A client may drop them earlier, at their ExpiresAt.
type Expired struct {
	Conv string   `msgpack:"conv"`
	Seqs []uint64 `msgpack:"seqs"`
}
