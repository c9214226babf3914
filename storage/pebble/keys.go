package pebble

import (
	"encoding/binary"
	"errors"
)

// Key layout. Every key starts with one byte naming its table; ids are
// 8-byte big-endian, so they sort as numbers; a conversation id (which never
// holds a zero byte) ends with 0x00 where more key follows, so the keys of
// one conversation form one contiguous range.
//
//	m conv 0 seq          → message (msgValue); a conversation's messages in seq order
//	d sender clientMsgID  → conv 0 seq of the message it sent (dedupe)
//	p user conv           → the user's cursors in conv: ack, cleared (membership)
//	h user conv 0 seq     → "" : user hid that message
//	a conv 0 seq          → storage.Meta of the message: reply, mentions, event target, recall, edits, reactions
//	u id                  → account (userValue)
//	n FoldName(username)  → id (unique usernames)
//	l lower(username) 0 id → "" (SearchUsers order)
//	t hash                → user id, expiry
//	T user hash           → "" (a user's tokens)
//	f user friend         → created
//	r from to             → note, created (pending request)
//	R to from             → "" (incoming requests)
//	g id                  → group (groupValue)
//	G group user          → joined (members)
//	M user group          → "" (a user's groups)
//	b user                → until, reason, created (ban)
//	o lower(name) 0 id    → "" (open groups, the directory; groupdir.go)
//	q conv 0 bucket n     → segment of the text index: one pass's lists (segments.go)
//	s conv 0 bucket gram  → posting list of the text index (search.go)
//	S conv                → the seq up to which conv is indexed
//	F sum conv 0 seq      → "" : the message holds (or held) an attachment of file sum (search.go)
//	~g                    → the last group id handed out
//	~o                    → the open groups have their o keys
//	~F                    → the index records file references (F keys; search.go)
//	U user                → settings (state.go)
//	v user conv           → delivery cursor (delivered.go)
//	e expires_at conv 0 seq → "" : the timing wheel of expiring messages (expiry.go)
//	x conv                → the conversation's timer in seconds (expiry.go)
const (
	tMessage   = 'm'
	tDedupe    = 'd'
	tCursor    = 'p'
	tHidden    = 'h'
	tMeta      = 'a'
	tUser      = 'u'
	tName      = 'n'
	tLower     = 'l'
	tToken     = 't'
	tUserToken = 'T'
	tFriend    = 'f'
	tRequest   = 'r'
	tRequestTo = 'R'
	tGroup     = 'g'
	tMember    = 'G'
	tMemberOf  = 'M'
	tBan       = 'b'
	tPosting   = 's'
	tSegment   = 'q'
	tProgress  = 'S'
	tFileRef   = 'F'
	tExpiry    = 'e'
	tTimer     = 'x'
)

// keyLastGroup holds the last group id handed out, so a disbanded group's
// id (and conversation) is never reused.
var keyLastGroup = []byte("~g")

func appendID(b []byte, id int64) []byte { return binary.BigEndian.AppendUint64(b, uint64(id)) }

func key(table byte, ids ...int64) []byte {
	b := make([]byte, 1, 1+8*len(ids))
	b[0] = table
	for _, id := range ids {
		b = appendID(b, id)
	}
	return b
}

// convKey is "table conv 0 n", with room for another 8 bytes after it.
func convKey(table byte, conv string, n uint64) []byte {
	b := make([]byte, 0, 2+len(conv)+16)
	b = append(b, table)
	b = append(b, conv...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, n)
}

// msgPrefix is the start of conv's message keys; msgEnd is above them all.
func msgPrefix(conv string) []byte {
	b := make([]byte, 0, 2+len(conv)+8)
	b = append(b, tMessage)
	b = append(b, conv...)
	return append(b, 0)
}

func msgEnd(conv string) []byte {
	b := msgPrefix(conv)
	b[len(b)-1] = 1
	return b
}

func msgKey(conv string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(msgPrefix(conv), seq)
}

// seqOfKey reads the seq at the end of a message or hidden key.
func seqOfKey(k []byte) uint64 {
	return binary.BigEndian.Uint64(k[len(k)-8:])
}

func dedupeKey(sender int64, clientMsgID string) []byte {
	b := key(tDedupe, sender)
	return append(b, clientMsgID...)
}

func cursorKey(user int64, conv string) []byte {
	return append(key(tCursor, user), conv...)
}

func hiddenPrefix(user int64, conv string) []byte {
	b := append(key(tHidden, user), conv...)
	return append(b, 0)
}

func hiddenKey(user int64, conv string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(hiddenPrefix(user, conv), seq)
}

func nameKey(fold string) []byte { return append([]byte{tName}, fold...) }

func lowerKey(lower string, id int64) []byte {
	b := append([]byte{tLower}, lower...)
	return appendID(append(b, 0), id)
}

func tokenKey(hash []byte) []byte { return append([]byte{tToken}, hash...) }

func userTokenKey(user int64, hash []byte) []byte { return append(key(tUserToken, user), hash...) }

// prefixEnd returns the smallest key above every key that starts with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// errCorrupt is a value that does not decode.
var errCorrupt = errors.New("pebble: corrupt value")

// enc builds a value: fixed-width integers and length-prefixed byte strings.
type enc []byte

func (e enc) u64(v uint64) enc { return binary.BigEndian.AppendUint64(e, v) }
func (e enc) i64(v int64) enc  { return e.u64(uint64(v)) }
func (e enc) str(s string) enc {
	e = binary.AppendUvarint(e, uint64(len(s)))
	return append(e, s...)
}
func (e enc) bytes(b []byte) enc {
	e = binary.AppendUvarint(e, uint64(len(b)))
	return append(e, b...)
}

// dec reads a value built by enc; a short or malformed value sets bad.
type dec struct {
	b   []byte
	bad bool
}

func (d *dec) u64() uint64 {
	if len(d.b) < 8 {
		d.bad = true
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *dec) i64() int64 { return int64(d.u64()) }

func (d *dec) raw() []byte {
	n, k := binary.Uvarint(d.b)
	if k <= 0 || uint64(len(d.b)-k) < n {
		d.bad = true
		return nil
	}
	v := d.b[k : k+int(n)]
	d.b = d.b[k+int(n):]
	return v
}

func (d *dec) str() string   { return string(d.raw()) }
func (d *dec) bytes() []byte { return append([]byte{}, d.raw()...) }
func (d *dec) err() error {
	if d.bad {
		return errCorrupt
	}
	return nil
}
