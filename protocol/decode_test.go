package protocol

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// compareSend decodes body both ways: whatever decodeSend accepts, the
// general way accepts too, with the same Send.
func compareSend(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	var a, b Send
	errGeneral := decodeGeneral(body, &a)
	if !decodeSend(body, &b) {
		if !reflect.DeepEqual(b, Send{}) {
			t.Fatalf("decodeSend refused % x but wrote %+v", body, b)
		}
		return false
	}
	if errGeneral != nil {
		t.Fatalf("decodeSend accepted % x as %+v; the general way: %v", body, b, errGeneral)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("% x: decodeSend %#v, the general way %#v", body, b, a)
	}
	return true
}

// mpw writes msgpack by hand, in chosen encodings.
type mpw []byte

func (m mpw) fixmap(n int) mpw { return append(m, 0x80|byte(n)) }
func (m mpw) map16(n int) mpw  { return binary.BigEndian.AppendUint16(append(m, 0xde), uint16(n)) }
func (m mpw) map32(n int) mpw  { return binary.BigEndian.AppendUint32(append(m, 0xdf), uint32(n)) }

// raw writes p as a str or a bin of the encoding code names (0xa0: fixstr).
func (m mpw) raw(p []byte, code byte) mpw {
	switch code {
	case 0xa0:
		m = append(m, 0xa0|byte(len(p)))
	case 0xc4, 0xd9:
		m = append(m, code, byte(len(p)))
	case 0xc5, 0xda:
		m = binary.BigEndian.AppendUint16(append(m, code), uint16(len(p)))
	case 0xc6, 0xdb:
		m = binary.BigEndian.AppendUint32(append(m, code), uint32(len(p)))
	}
	return append(m, p...)
}

func (m mpw) str(s string, code byte) mpw { return m.raw([]byte(s), code) }

// int writes v with code: 0 for the shortest (fixint where it fits), or
// one of the eight sized encodings, cut to its width.
func (m mpw) int(v int64, code byte) mpw {
	if code == 0 {
		if v >= -32 && v <= 127 {
			return append(m, byte(v))
		}
		code = 0xd3
	}
	m = append(m, code)
	switch (code - 0xcc) % 4 { // 0xcc-0xcf and 0xd0-0xd3: 1, 2, 4 and 8 bytes
	case 0:
		return append(m, byte(v))
	case 1:
		return binary.BigEndian.AppendUint16(m, uint16(v))
	case 2:
		return binary.BigEndian.AppendUint32(m, uint32(v))
	}
	return binary.BigEndian.AppendUint64(m, uint64(v))
}

var intCodes = []byte{0, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3}

// Every Send the hand-written encoder writes takes the fast way, and every
// body it accepts, of many encodings and many wrong ones, decodes as the
// general way decodes it.
func TestDecodeSendMatchesReflection(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 3000 {
		m := randomMessage(r)
		s := Send{ClientMsgID: m.ClientMsgID, To: m.To, GroupID: m.GroupID, ContentType: m.ContentType, Body: m.Body,
			Ref: m.Ref, ReplyTo: m.ReplyTo, Mentions: m.Mentions, MentionAll: m.MentionAll}
		if i%7 == 0 {
			s.Body, s.Mentions = []byte{}, []int64{}
		}
		body := MustFrame(TypeSend, 1, &s)[PrefixSize:]
		if !compareSend(t, body) {
			t.Fatalf("case %d: the hand-written encoder's % x did not take the fast way", i, body)
		}
		// Cut at every offset, and one byte too many.
		for n := range len(body) {
			compareSend(t, body[:n])
		}
		compareSend(t, append(body[:len(body):len(body)], 0xc0))
	}

	fields := []string{"client_msg_id", "to", "group_id", "content_type", "body", "ref", "reply_to", "mentions", "mention_all", "other"}
	fast := 0
	for range 200000 {
		n := r.IntN(6)
		var m mpw
		switch r.IntN(4) {
		case 0:
			m = m.map16(n)
		case 1:
			m = m.map32(n)
		default:
			m = m.fixmap(n)
		}
		for range n {
			k := fields[r.IntN(len(fields))]
			m = m.str(k, []byte{0xa0, 0xa0, 0xd9, 0xda, 0xdb, 0xc4}[r.IntN(6)])
			if r.IntN(20) == 0 {
				m = append(m, 0xc0) // nil
				continue
			}
			switch k {
			case "client_msg_id", "other":
				m = m.str(string(someBytes(r, 31)), []byte{0xa0, 0xd9, 0xda, 0xdb, 0xc4}[r.IntN(5)])
			case "body":
				m = m.raw(someBytes(r, 31), []byte{0xc4, 0xc5, 0xc6, 0xa0}[r.IntN(4)])
			case "mentions":
				k := r.IntN(4)
				if r.IntN(2) == 0 {
					m = append(m, 0x90|byte(k))
				} else {
					m = binary.BigEndian.AppendUint16(append(m, 0xdc), uint16(k))
				}
				for range k {
					m = m.int(randomEdgeInt(r), intCodes[r.IntN(len(intCodes))])
				}
			case "mention_all":
				m = append(m, []byte{0xc2, 0xc3, 0x01}[r.IntN(3)])
			default:
				m = m.int(randomEdgeInt(r), intCodes[r.IntN(len(intCodes))])
			}
		}
		if compareSend(t, m) {
			fast++
		}
	}
	t.Logf("%d of 200,000 hand-made bodies took the fast way", fast)
	if fast < 10000 {
		t.Errorf("only %d of the hand-made bodies took the fast way", fast)
	}
}

// randomEdgeInt is an integer near one of the bounds a field may have.
func randomEdgeInt(r *rand.Rand) int64 {
	edges := []int64{0, 1, -1, 127, 128, -32, -33, math.MaxUint16, math.MaxUint16 + 1, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64}
	return edges[r.IntN(len(edges))] + int64(r.IntN(3)) - 1
}

// someBytes is up to max random bytes.
func someBytes(r *rand.Rand, max int) []byte {
	b := make([]byte, r.IntN(max+1))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}
