package protocol

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// The same structs without the hand-written encoders: msgpack encodes
// them by reflection.
type (
	reflMessage Message
	reflSendAck SendAck
	reflSend    Send
)

func encodeForTest(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	e := msgpack.NewEncoder(&b)
	e.UseCompactInts(true) // as codec.go's encoders
	if err := e.Encode(v); err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	return b.Bytes()
}

// randomInt is zero a third of the time, else small, negative or large.
func randomInt(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0, 1:
		return 0
	case 2:
		return r.Int64N(200)
	case 3:
		return -r.Int64N(1 << 40)
	default:
		return r.Int64()
	}
}

func randomBytes(r *rand.Rand) []byte {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return []byte{}
	default:
		b := make([]byte, r.IntN(300))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
}

func randomString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return ""
	}
	return string(randomBytes(r))
}

func randomInts(r *rand.Rand) []int64 {
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return []int64{}
	default:
		v := make([]int64, 1+r.IntN(5))
		for i := range v {
			v[i] = randomInt(r)
		}
		return v
	}
}

func randomMessage(r *rand.Rand) Message {
	m := Message{
		MsgID: randomInt(r), Conv: randomString(r), Seq: uint64(randomInt(r)), From: randomInt(r),
		To: randomInt(r), GroupID: randomInt(r), ClientMsgID: randomString(r), ContentType: uint16(randomInt(r)),
		Body: randomBytes(r), ServerTime: randomInt(r), Ref: uint64(randomInt(r)), ReplyTo: uint64(randomInt(r)),
		Mentions: randomInts(r), MentionAll: r.IntN(2) == 0, Recalled: r.IntN(2) == 0,
		Edited: uint32(randomInt(r)), EditedAt: randomInt(r), ExpiresAt: randomInt(r),
	}
	if r.IntN(3) == 0 {
		m.Reactions = []Reaction{}
		for range r.IntN(3) {
			m.Reactions = append(m.Reactions, Reaction{Emoji: randomString(r), Count: uint32(randomInt(r)), Users: randomInts(r)})
		}
	}
	return m
}

// The hand-written encoders write what msgpack's reflection writes, byte
// for byte, for every field zero or not; and the bodies decode back.
func TestHandEncodersMatchReflection(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []Message{{}, {Body: []byte{}}, {MsgID: -1, Seq: 1 << 63, Mentions: []int64{}}}
	for range 5000 {
		cases = append(cases, randomMessage(r))
	}
	for i, m := range cases {
		want := encodeForTest(t, reflMessage(m))
		for _, v := range []any{m, &m, []Message{m}} {
			got := encodeForTest(t, v)
			if _, ok := v.([]Message); ok {
				got = got[1:] // the array's header
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("case %d %T: %x, reflection wrote %x (%+v)", i, v, got, want, m)
			}
		}
		frame := MustFrame(TypePush, 7, &m)
		if _, body, _, err := Decode(frame, 0); err != nil || !bytes.Equal(body, want) {
			t.Fatalf("case %d: frame body %x (%v), reflection wrote %x", i, body, err, want)
		}
		var back reflMessage
		if err := msgpack.Unmarshal(want, &back); err != nil {
			t.Fatalf("case %d: decode: %v", i, err)
		}
		a := SendAck{MsgID: m.MsgID, Conv: m.Conv, Seq: m.Seq, ServerTime: m.ServerTime, Duplicate: m.Recalled}
		want = encodeForTest(t, reflSendAck(a))
		if got := encodeForTest(t, a); !bytes.Equal(got, want) {
			t.Fatalf("case %d SendAck: %x, reflection wrote %x", i, got, want)
		}
		if _, body, _, err := Decode(MustFrame(TypeSendAck, 7, &a), 0); err != nil || !bytes.Equal(body, want) {
			t.Fatalf("case %d: SendAck frame body %x (%v), reflection wrote %x", i, body, err, want)
		}
		if got, err := AppendSendAck([]byte("x"), 7, a); err != nil || !bytes.Equal(got, append([]byte("x"), MustFrame(TypeSendAck, 7, &a)...)) {
			t.Fatalf("case %d: AppendSendAck wrote %x (%v), AppendFrame %x", i, got, err, MustFrame(TypeSendAck, 7, &a))
		}
		snd := Send{ClientMsgID: m.ClientMsgID, To: m.To, GroupID: m.GroupID, ContentType: m.ContentType, Body: m.Body,
			Ref: m.Ref, ReplyTo: m.ReplyTo, Mentions: m.Mentions, MentionAll: m.MentionAll}
		want = encodeForTest(t, reflSend(snd))
		if got := encodeForTest(t, snd); !bytes.Equal(got, want) {
			t.Fatalf("case %d Send: %x, reflection wrote %x", i, got, want)
		}
		if _, body, _, err := Decode(MustFrame(TypeSend, 7, &snd), 0); err != nil || !bytes.Equal(body, want) {
			t.Fatalf("case %d: Send frame body %x (%v), reflection wrote %x", i, body, err, want)
		}
	}
}

// A Send, a Push and a SendAck encode with no allocation of their own; a nil one
// is msgpack nil, as before.
func TestHandEncodersDoNotAllocate(t *testing.T) {
	m := &Message{MsgID: 1, Conv: "d:1:2", Seq: 9, From: 1, To: 2, ClientMsgID: "c", Body: []byte("hello"), ServerTime: 1e12}
	a := &SendAck{MsgID: 1, Conv: "d:1:2", Seq: 9, ServerTime: 1e12}
	snd := &Send{ClientMsgID: "c", To: 2, Body: []byte("hello")}
	buf := make([]byte, 0, 512)
	// One encoder of AppendFrame's kind, not one from its pool: under the
	// race detector sync.Pool drops a quarter of what it is given, on
	// purpose, and a new encoder allocates.
	s := encoders.New().(*encoderState)
	for _, body := range []any{m, a, snd} {
		h := handEncoder(body)
		if n := testing.AllocsPerRun(100, func() {
			s.w.buf = buf[:0]
			if err := h.EncodeMsgpack(s.enc); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Fatalf("%T: %v allocations a frame", body, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := s.appendSendAck(buf[:0], 7, *a); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("AppendSendAck: %v allocations a frame", n)
	}
	for _, body := range []any{(*Message)(nil), (*SendAck)(nil), (*Send)(nil)} {
		_, b, _, err := Decode(MustFrame(TypePush, 0, body), 0)
		if err != nil || !bytes.Equal(b, []byte{0xc0}) {
			t.Fatalf("nil %T: body %x (%v)", body, b, err)
		}
	}
}
