package protocol

import (
	"encoding/binary"
	"math"
)

// A hand-written decoder for the body every message arrives in, as
// encode.go has hand-written encoders: DecodeBody checks a body's bounds,
// then its types against the Go type, then decodes it by reflection, three
// passes that were a twentieth of the server's CPU at 55,000 Sends a
// second, on the event loop. decodeSend reads a Send of the usual shape in
// one pass; anything else (a nil, an unknown key, a key twice, a string as
// bin or bytes as str, a value out of range, a cut or trailing byte) it
// leaves to DecodeBody's general way, which accepts or refuses it as
// before. What it accepts it decodes exactly as the general way would
// (TestDecodeSendMatchesReflection, FuzzBodySend).

// decodeSend decodes body into s and reports true, or reports false and
// leaves s alone.
func decodeSend(body []byte, s *Send) bool {
	r := fastReader{b: body, ok: true}
	n := r.mapLen()
	var v Send
	var seen uint16
	for range n {
		k := r.str()
		if !r.ok {
			return false
		}
		var bit uint16
		if r.i < len(r.b) && r.b[r.i] == 0xc0 {
			// nil: the field keeps its zero value, as msgpack leaves it.
			r.i++
			bit = sendFieldBit(k)
		} else {
			bit = r.sendField(k, &v)
		}
		if bit == 0 || seen&bit != 0 || !r.ok {
			return false
		}
		seen |= bit
	}
	if !r.ok || r.i != len(r.b) {
		return false
	}
	*s = v
	return true
}

// sendFields are a Send's keys; a field's bit is 1 << its index.
var sendFields = [...]string{"client_msg_id", "to", "group_id", "content_type", "body", "ref", "reply_to", "mentions", "mention_all"}

// sendFieldBit returns key's bit, or 0 for a key a Send does not have.
func sendFieldBit(key []byte) uint16 {
	for i, f := range sendFields {
		if string(key) == f {
			return 1 << i
		}
	}
	return 0
}

// sendField reads key's value into v and returns key's bit, or 0 for a key
// a Send does not have.
func (r *fastReader) sendField(key []byte, v *Send) uint16 {
	bit := sendFieldBit(key)
	switch bit {
	case 1 << 0:
		v.ClientMsgID = string(r.str())
	case 1 << 1:
		v.To = r.int64()
	case 1 << 2:
		v.GroupID = r.int64()
	case 1 << 3:
		v.ContentType = uint16(r.uint(math.MaxUint16))
	case 1 << 4:
		v.Body = r.bin()
	case 1 << 5:
		v.Ref = r.uint(math.MaxUint64)
	case 1 << 6:
		v.ReplyTo = r.uint(math.MaxUint64)
	case 1 << 7:
		v.Mentions = r.int64s()
	case 1 << 8:
		v.MentionAll = r.bool()
	}
	return bit
}

// fastReader reads msgpack values of a few exact kinds; the first other
// thing it meets, or a length past the end, clears ok, and from then on it
// reads zeros.
type fastReader struct {
	b  []byte
	i  int
	ok bool
}

// need reports whether n more bytes are there, clearing ok if not.
func (r *fastReader) need(n int) bool {
	if !r.ok || n < 0 || n > len(r.b)-r.i {
		r.ok = false
		return false
	}
	return true
}

// code returns the next byte, which starts a value.
func (r *fastReader) code() byte {
	if !r.need(1) {
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

// length reads a big-endian length of w bytes.
func (r *fastReader) length(w int) int {
	if !r.need(w) {
		return 0
	}
	n := readUint(r.b[r.i:], w)
	r.i += w
	return int(n)
}

// mapLen reads a map header.
func (r *fastReader) mapLen() int {
	switch c := r.code(); {
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f)
	case c == 0xde:
		return r.length(2)
	case c == 0xdf:
		return r.length(4)
	}
	r.ok = false
	return 0
}

// payload returns the next n bytes, aliasing the body.
func (r *fastReader) payload(n int) []byte {
	if !r.need(n) {
		return nil
	}
	p := r.b[r.i : r.i+n]
	r.i += n
	return p
}

// str reads a str value's bytes, aliasing the body.
func (r *fastReader) str() []byte {
	switch c := r.code(); {
	case c >= 0xa0 && c <= 0xbf:
		return r.payload(int(c & 0x1f))
	case c == 0xd9:
		return r.payload(r.length(1))
	case c == 0xda:
		return r.payload(r.length(2))
	case c == 0xdb:
		return r.payload(r.length(4))
	}
	r.ok = false
	return nil
}

// bin reads a bin value into a slice of its own.
func (r *fastReader) bin() []byte {
	var p []byte
	switch r.code() {
	case 0xc4:
		p = r.payload(r.length(1))
	case 0xc5:
		p = r.payload(r.length(2))
	case 0xc6:
		p = r.payload(r.length(4))
	default:
		r.ok = false
	}
	if !r.ok {
		return nil
	}
	return append([]byte{}, p...)
}

// integer reads an integer as its sign and magnitude: neg is set for a
// value below zero, whose magnitude is then -v.
func (r *fastReader) integer() (v uint64, neg bool) {
	c := r.code()
	switch {
	case c <= 0x7f:
		return uint64(c), false
	case c >= 0xe0:
		return uint64(-int64(int8(c))), true
	case c >= 0xcc && c <= 0xcf:
		w := 1 << (c - 0xcc)
		if !r.need(w) {
			return 0, false
		}
		v = readUint(r.b[r.i:], w)
		r.i += w
		return v, false
	case c >= 0xd0 && c <= 0xd3:
		w := 1 << (c - 0xd0)
		if !r.need(w) {
			return 0, false
		}
		x := readInt(r.b[r.i:], w)
		r.i += w
		if x < 0 {
			return uint64(-(x + 1)) + 1, true
		}
		return uint64(x), false
	}
	r.ok = false
	return 0, false
}

// int64 reads an integer within int64's range.
func (r *fastReader) int64() int64 {
	v, neg := r.integer()
	switch {
	case neg && v <= 1<<63:
		return int64(-v) // -(1<<63) wraps to itself
	case !neg && v <= math.MaxInt64:
		return int64(v)
	}
	r.ok = false
	return 0
}

// uint reads a non-negative integer at most max.
func (r *fastReader) uint(max uint64) uint64 {
	v, neg := r.integer()
	if neg || v > max {
		r.ok = false
		return 0
	}
	return v
}

// int64s reads an array of integers.
func (r *fastReader) int64s() []int64 {
	var n int
	switch c := r.code(); {
	case c >= 0x90 && c <= 0x9f:
		n = int(c & 0x0f)
	case c == 0xdc:
		n = r.length(2)
	case c == 0xdd:
		n = r.length(4)
	default:
		r.ok = false
	}
	if !r.need(n) { // each element takes a byte at least
		return nil
	}
	l := make([]int64, n)
	for j := range l {
		l[j] = r.int64()
	}
	return l
}

// bool reads a bool.
func (r *fastReader) bool() bool {
	switch r.code() {
	case 0xc2:
		return false
	case 0xc3:
		return true
	}
	r.ok = false
	return false
}

func readUint(b []byte, w int) uint64 {
	switch w {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	}
	return binary.BigEndian.Uint64(b)
}

func readInt(b []byte, w int) int64 {
	switch w {
	case 1:
		return int64(int8(b[0]))
	case 2:
		return int64(int16(binary.BigEndian.Uint16(b)))
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b)))
	}
	return int64(binary.BigEndian.Uint64(b))
}
