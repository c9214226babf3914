package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// frame is a decoded frame whose body is a copy, so it outlives the buffer.
type frame struct {
	h    Header
	body []byte
}

// decodeChecked calls Decode and checks that what it reports agrees with the
// bytes: the size with the length prefix, the body with the frame's end, and
// each error with the condition it names.
func decodeChecked(tb testing.TB, buf []byte, maxFrame int) (Header, []byte, int, error) {
	tb.Helper()
	h, body, n, err := Decode(buf, maxFrame)
	limit := maxFrame
	if limit <= 0 {
		limit = DefaultMaxFrame
	}
	var length uint64
	if len(buf) >= LengthSize {
		length = uint64(binary.BigEndian.Uint32(buf))
	}
	switch {
	case err == nil, errors.Is(err, ErrVersion):
		if n != PeekSize(buf) || n != LengthSize+int(length) || n > len(buf) || n < PrefixSize {
			tb.Fatalf("Decode(% x): size %d, prefix says %d, buffer %d", head(buf), n, PeekSize(buf), len(buf))
		}
		if length > uint64(limit) {
			tb.Fatalf("Decode(% x): accepted length %d above the limit %d", head(buf), length, limit)
		}
		want := Header{
			Version:   buf[4],
			Flags:     buf[5],
			Type:      Type(binary.BigEndian.Uint16(buf[6:])),
			RequestID: binary.BigEndian.Uint32(buf[8:]),
		}
		if h != want {
			tb.Fatalf("Decode(% x): header %+v, want %+v", head(buf), h, want)
		}
		if err == nil {
			if h.Version != Version {
				tb.Fatalf("Decode(% x): accepted version %d", head(buf), h.Version)
			}
			if len(body) != n-PrefixSize || (len(body) > 0 && &body[0] != &buf[PrefixSize]) {
				tb.Fatalf("Decode(% x): body is not buf[%d:%d]", head(buf), PrefixSize, n)
			}
		} else if h.Version == Version || body != nil {
			tb.Fatalf("Decode(% x): ErrVersion for version %d, body %v", head(buf), h.Version, body)
		}
	case errors.Is(err, ErrIncomplete):
		if n != 0 || (len(buf) >= LengthSize && PeekSize(buf) <= len(buf)) {
			tb.Fatalf("Decode(% x): ErrIncomplete with n %d and %d of %d bytes", head(buf), n, len(buf), PeekSize(buf))
		}
	case errors.Is(err, ErrTooLarge):
		if n != 0 || len(buf) < LengthSize || length <= uint64(limit) {
			tb.Fatalf("Decode(% x): ErrTooLarge for length %d, limit %d", head(buf), length, limit)
		}
	case errors.Is(err, ErrShort):
		if n != 0 || len(buf) < LengthSize || length >= HeaderSize {
			tb.Fatalf("Decode(% x): ErrShort for length %d", head(buf), length)
		}
	default:
		tb.Fatalf("Decode(% x): unexpected error %v", head(buf), err)
	}
	return h, body, n, err
}

func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

// parser reads a stream the way the server's OnTraffic does: it buffers what
// arrives, decodes every whole frame and keeps the rest for the next read.
type parser struct {
	tb       testing.TB
	maxFrame int
	buf      []byte // bytes not yet consumed by a frame
	frames   []frame
	err      error // the error that stopped the stream
}

func (p *parser) feed(data []byte) {
	p.tb.Helper()
	p.buf = append(p.buf, data...)
	if p.err != nil {
		return
	}
	for {
		h, body, n, err := decodeChecked(p.tb, p.buf, p.maxFrame)
		if errors.Is(err, ErrIncomplete) {
			return
		}
		if err != nil {
			p.err = err
			return
		}
		p.frames = append(p.frames, frame{h: h, body: bytes.Clone(body)})
		p.buf = p.buf[n:]
	}
}

func parseAll(tb testing.TB, stream []byte, maxFrame int) *parser {
	p := &parser{tb: tb, maxFrame: maxFrame}
	p.feed(stream)
	return p
}

// sampleFrames is a stream of frames of several types and sizes: an empty
// body, small bodies, a 16 KiB message.
func sampleFrames(tb testing.TB) ([]frame, []byte) {
	tb.Helper()
	bodies := []struct {
		t    Type
		rid  uint32
		body any
	}{
		{TypePing, 1, nil},
		{TypeLogin, 2, &Login{Username: "alice", Password: "correct horse battery"}},
		{TypeLoginOK, 2, &LoginOK{UserID: 1001, Username: "alice", Token: "tok", Heartbeat: 30000}},
		{TypeSend, 3, &Send{ClientMsgID: "c1", To: 1002, Body: bytes.Repeat([]byte{'x'}, 16<<10)}},
		{TypePush, 0, &Message{MsgID: 1 << 60, Conv: "d:1001:1002", Seq: 7, From: 1002, To: 1001, Body: []byte("hi")}},
		{TypeOK, 4, &OK{}},
		{TypeKick, 0, &Kick{Reason: KickIdle}},
	}
	var (
		want   []frame
		stream []byte
	)
	for _, b := range bodies {
		start := len(stream)
		var err error
		stream, err = AppendFrame(stream, b.t, b.rid, b.body)
		if err != nil {
			tb.Fatal(err)
		}
		want = append(want, frame{
			h:    Header{Version: Version, Type: b.t, RequestID: b.rid},
			body: bytes.Clone(stream[start+PrefixSize:]),
		})
	}
	return want, stream
}

func sameFrames(tb testing.TB, got, want []frame) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].h != want[i].h || !bytes.Equal(got[i].body, want[i].body) {
			tb.Fatalf("frame %d: %+v (%d bytes of body), want %+v (%d bytes)",
				i, got[i].h, len(got[i].body), want[i].h, len(want[i].body))
		}
	}
}

func TestParseWhole(t *testing.T) {
	want, stream := sampleFrames(t)
	for _, w := range want {
		b, err := AppendFrame(nil, w.h.Type, w.h.RequestID, nil)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, w.body...)
		finishFrame(b)
		p := parseAll(t, b, 0)
		if p.err != nil || len(p.buf) != 0 {
			t.Fatalf("%s: err %v, %d bytes left", w.h.Type, p.err, len(p.buf))
		}
		sameFrames(t, p.frames, []frame{w})
	}
	p := parseAll(t, stream, 0)
	if p.err != nil || len(p.buf) != 0 {
		t.Fatalf("err %v, %d bytes left", p.err, len(p.buf))
	}
	sameFrames(t, p.frames, want)
}

func TestParseByteByByte(t *testing.T) {
	want, stream := sampleFrames(t)
	p := &parser{tb: t}
	for i := range stream {
		p.feed(stream[i : i+1])
	}
	if p.err != nil || len(p.buf) != 0 {
		t.Fatalf("err %v, %d bytes left", p.err, len(p.buf))
	}
	sameFrames(t, p.frames, want)
}

func TestParseSplitEverywhere(t *testing.T) {
	want, stream := sampleFrames(t)
	for i := 0; i <= len(stream); i++ {
		p := &parser{tb: t}
		p.feed(stream[:i])
		p.feed(stream[i:])
		if p.err != nil || len(p.buf) != 0 {
			t.Fatalf("split at %d: err %v, %d bytes left", i, p.err, len(p.buf))
		}
		sameFrames(t, p.frames, want)
	}
}

// TestDecodeEveryPrefix checks that no strict prefix of a frame decodes.
func TestDecodeEveryPrefix(t *testing.T) {
	frame := MustFrame(TypeSend, 9, &Send{ClientMsgID: "c", To: 2, Body: []byte("hello")})
	for i := range frame {
		h, body, n, err := decodeChecked(t, frame[:i], 0)
		if !errors.Is(err, ErrIncomplete) || n != 0 || body != nil || h != (Header{}) {
			t.Fatalf("prefix of %d bytes: %+v, %v, %d, %v", i, h, body, n, err)
		}
	}
}

func TestParseCoalesced(t *testing.T) {
	var (
		stream []byte
		want   []frame
	)
	for i := range 100 {
		rid := uint32(i + 1)
		var body any
		switch i % 3 {
		case 0:
			body = &Ack{Conv: "d:1:2", Seq: uint64(i)}
		case 1:
			body = &Message{MsgID: int64(i), Conv: "d:1:2", Seq: uint64(i), Body: bytes.Repeat([]byte{byte(i)}, i)}
		case 2: // empty body
		}
		start := len(stream)
		stream = append(stream, MustFrame(TypeAck, rid, body)...)
		want = append(want, frame{h: Header{Version: Version, Type: TypeAck, RequestID: rid}, body: bytes.Clone(stream[start+PrefixSize:])})
	}
	p := parseAll(t, stream, 0)
	if p.err != nil || len(p.buf) != 0 {
		t.Fatalf("err %v, %d bytes left", p.err, len(p.buf))
	}
	sameFrames(t, p.frames, want)
}

// prefix builds a length prefix and header with arbitrary fields.
func prefix(length uint32, version, flags uint8, t Type, rid uint32) []byte {
	b := make([]byte, PrefixSize)
	binary.BigEndian.PutUint32(b, length)
	b[4], b[5] = version, flags
	binary.BigEndian.PutUint16(b[6:], uint16(t))
	binary.BigEndian.PutUint32(b[8:], rid)
	return b
}

func TestDecodeTooLarge(t *testing.T) {
	tests := []struct {
		name     string
		maxFrame int
		length   uint32
	}{
		{"default limit plus one", 0, DefaultMaxFrame + 1},
		{"negative limit means default", -1, DefaultMaxFrame + 1},
		{"largest length", 0, math.MaxUint32},
		{"custom limit", 100, 101},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := prefix(tt.length, Version, 0, TypeSend, 1)
			if _, _, _, err := decodeChecked(t, b[:LengthSize-1], tt.maxFrame); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("3 bytes: %v, want ErrIncomplete", err)
			}
			// Refused as soon as the length is readable, before the body.
			for _, n := range []int{LengthSize, PrefixSize} {
				if _, _, _, err := decodeChecked(t, b[:n], tt.maxFrame); !errors.Is(err, ErrTooLarge) {
					t.Fatalf("%d bytes: %v, want ErrTooLarge", n, err)
				}
			}
		})
	}
}

func TestDecodeAtTheLimit(t *testing.T) {
	for _, maxFrame := range []int{0, 100} {
		limit := maxFrame
		if limit == 0 {
			limit = DefaultMaxFrame
		}
		b := append(prefix(uint32(limit), Version, 0, TypeSend, 1), make([]byte, limit-HeaderSize)...)
		if _, _, _, err := decodeChecked(t, b[:len(b)-1], maxFrame); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("limit %d, one byte short: %v", limit, err)
		}
		if _, body, n, err := decodeChecked(t, b, maxFrame); err != nil || n != len(b) || len(body) != limit-HeaderSize {
			t.Fatalf("limit %d: n %d, body %d, %v", limit, n, len(body), err)
		}
	}
}

func TestDecodeShort(t *testing.T) {
	for length := range uint32(HeaderSize) {
		b := prefix(length, Version, 0, TypePing, 1)
		for _, n := range []int{LengthSize, PrefixSize} {
			if _, _, _, err := decodeChecked(t, b[:n], 0); !errors.Is(err, ErrShort) {
				t.Fatalf("length %d, %d bytes: %v, want ErrShort", length, n, err)
			}
		}
	}
}

func TestDecodeVersion(t *testing.T) {
	for _, v := range []uint8{0, 2, 0xff} {
		b := append(prefix(HeaderSize+1, v, 0, TypeSend, 77), 0x80)
		// The version is judged once the frame is whole, so that the
		// caller can answer it with the request id.
		if _, _, _, err := decodeChecked(t, b[:len(b)-1], 0); !errors.Is(err, ErrIncomplete) {
			t.Fatalf("version %d, incomplete: %v", v, err)
		}
		h, body, n, err := decodeChecked(t, b, 0)
		if !errors.Is(err, ErrVersion) || h.Version != v || h.RequestID != 77 || n != len(b) || body != nil {
			t.Fatalf("version %d: %+v, %v, %d, %v", v, h, body, n, err)
		}
	}
}

func TestDecodeFlagsAndUnknownTypes(t *testing.T) {
	b := append(prefix(HeaderSize+1, Version, 0xff, 0x7777, 5), 0x80)
	h, body, _, err := decodeChecked(t, b, 0)
	if err != nil || h.Flags != 0xff || h.Type != 0x7777 || !bytes.Equal(body, []byte{0x80}) {
		t.Fatalf("%+v, % x, %v", h, body, err)
	}
	if h.Type.Known() || h.Type.String() != "Type(0x7777)" {
		t.Fatalf("Type 0x7777: Known %v, String %q", h.Type.Known(), h.Type)
	}
	for _, typ := range knownTypes() {
		if !typ.Known() || strings.HasPrefix(typ.String(), "Type(") {
			t.Errorf("%s: Known %v", typ, typ.Known())
		}
	}
}

func TestPeekSize(t *testing.T) {
	frame := MustFrame(TypeAck, 1, &Ack{Conv: "d:1:2", Seq: 3})
	for i := range LengthSize {
		if n := PeekSize(frame[:i]); n != 0 {
			t.Fatalf("%d bytes: PeekSize %d, want 0", i, n)
		}
	}
	for i := LengthSize; i <= len(frame); i++ {
		if n := PeekSize(frame[:i]); n != len(frame) {
			t.Fatalf("%d bytes: PeekSize %d, want %d", i, n, len(frame))
		}
	}
}

func TestAppendFrame(t *testing.T) {
	dst := []byte("keep")
	dst, err := AppendFrame(dst, TypeAck, 0xdeadbeef, &Ack{Conv: "d:1:2", Seq: 3})
	if err != nil {
		t.Fatal(err)
	}
	if string(dst[:4]) != "keep" {
		t.Fatalf("AppendFrame changed the bytes before it: %q", dst[:4])
	}
	h, body, n, err := decodeChecked(t, dst[4:], 0)
	if err != nil || n != len(dst)-4 || h != (Header{Version: Version, Type: TypeAck, RequestID: 0xdeadbeef}) {
		t.Fatalf("%+v, %d, %v", h, n, err)
	}
	var a Ack
	if err := DecodeBody(body, &a); err != nil || a != (Ack{Conv: "d:1:2", Seq: 3}) {
		t.Fatalf("%+v, %v", a, err)
	}

	empty, err := AppendFrame(nil, TypePing, 1, nil)
	if err != nil || !bytes.Equal(empty, prefix(HeaderSize, Version, 0, TypePing, 1)) {
		t.Fatalf("nil body: % x, %v", empty, err)
	}

	// A value msgpack cannot encode leaves dst as it was.
	before := bytes.Clone(dst)
	out, err := AppendFrame(dst, TypeAck, 1, make(chan int))
	if !errors.Is(err, ErrEncode) || !bytes.Equal(out, before) {
		t.Fatalf("unencodable body: %v, % x", err, out)
	}
}

func TestDecodeBodyEmpty(t *testing.T) {
	for _, typ := range knownTypes() {
		v := newBody(typ)
		if err := DecodeBody(nil, v); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if !reflect.ValueOf(v).Elem().IsZero() {
			t.Fatalf("%s: empty body gave %+v", typ, v)
		}
	}
}

func TestDecodeBodyErrors(t *testing.T) {
	ack := []byte{0x82, 0xa4, 'c', 'o', 'n', 'v', 0xa1, 'c', 0xa3, 's', 'e', 'q', 0x05}
	tests := []struct {
		name string
		body []byte
	}{
		{"unused code", []byte{0xc1}},
		{"truncated map", ack[:len(ack)-1]},
		{"truncated key", []byte{0x81, 0xa3, 's', 'e'}},
		{"truncated uint 64", []byte{0x81, 0xa3, 's', 'e', 'q', 0xcf, 0, 0, 0}},
		{"map of one key without value", []byte{0x81, 0xa3, 's', 'e', 'q'}},
		{"trailing byte", append(bytes.Clone(ack), 0x00)},
		{"two maps", append(bytes.Clone(ack), ack...)},
		{"int key", []byte{0x81, 0x01, 0x05}},
		{"str for an int", []byte{0x81, 0xa3, 's', 'e', 'q', 0xa1, '5'}},
		{"float for an int", []byte{0x81, 0xa3, 's', 'e', 'q', 0xca, 0x3f, 0x80, 0, 0}},
		{"int for a str", []byte{0x81, 0xa4, 'c', 'o', 'n', 'v', 0x05}},
		{"map for a str", []byte{0x81, 0xa4, 'c', 'o', 'n', 'v', 0x80}},
		{"int for the body", []byte{0x05}},
		{"str for the body", []byte{0xa1, 'x'}},
		{"garbage", []byte("GET / HTTP/1.1\r\n")},
	}
	for _, tt := range tests {
		var a Ack
		if err := DecodeBody(tt.body, &a); !errors.Is(err, ErrBadBody) {
			t.Errorf("%s (% x): %v, want ErrBadBody", tt.name, tt.body, err)
		}
	}
}

// TestDecodeBodyLenient pins down what a receiver accepts: nil for any
// field, unknown keys of any shape, any integer width, keys in any order.
func TestDecodeBodyLenient(t *testing.T) {
	want := Ack{Conv: "c", Seq: 5}
	tests := []struct {
		name string
		body []byte
	}{
		{"uint 64 for a small int", []byte{0x82, 0xa4, 'c', 'o', 'n', 'v', 0xa1, 'c', 0xa3, 's', 'e', 'q', 0xcf, 0, 0, 0, 0, 0, 0, 0, 5}},
		{"int 8", []byte{0x82, 0xa4, 'c', 'o', 'n', 'v', 0xa1, 'c', 0xa3, 's', 'e', 'q', 0xd0, 5}},
		{"keys reversed", []byte{0x82, 0xa3, 's', 'e', 'q', 0x05, 0xa4, 'c', 'o', 'n', 'v', 0xa1, 'c'}},
		{"map 16 and str 8", []byte{0xde, 0, 2, 0xd9, 4, 'c', 'o', 'n', 'v', 0xd9, 1, 'c', 0xa3, 's', 'e', 'q', 0x05}},
		{"unknown keys", []byte{0x84, 0xa1, 'x', 0x92, 0x81, 0xa1, 'y', 0xc0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0,
			0xa4, 'c', 'o', 'n', 'v', 0xa1, 'c', 0xa3, 'e', 'x', 't', 0xd4, 1, 2, 0xa3, 's', 'e', 'q', 0x05}},
	}
	for _, tt := range tests {
		var a Ack
		if err := DecodeBody(tt.body, &a); err != nil || a != want {
			t.Errorf("%s: %+v, %v", tt.name, a, err)
		}
	}
	var m Message
	if err := DecodeBody([]byte{0x83, 0xa4, 'c', 'o', 'n', 'v', 0xc0, 0xa3, 's', 'e', 'q', 0xc0, 0xa4, 'b', 'o', 'd', 'y', 0xc0}, &m); err != nil || !reflect.ValueOf(m).IsZero() {
		t.Errorf("nil fields: %+v, %v", m, err)
	}
}

// TestDecodeBodyHostileLengths feeds bodies whose length headers announce far
// more than they hold. msgpack allocates what a header announces, so these
// must be refused before decoding, without allocating.
func TestDecodeBodyHostileLengths(t *testing.T) {
	key := func(k string) []byte { return append([]byte{0xa0 | byte(len(k))}, k...) }
	field := func(k string, v ...byte) []byte { return append(append([]byte{0x81}, key(k)...), v...) }
	max32 := []byte{0xff, 0xff, 0xff, 0xff}
	tests := []struct {
		name string
		body []byte
		v    any
	}{
		{"array 32 of seqs", field("seqs", append([]byte{0xdd}, max32...)...), &DeleteHistory{}},
		{"array 32 of messages", field("messages", append(append([]byte{0xdd}, max32...), 0x80)...), &SyncResult{}},
		{"array 32 of conversations", field("conversations", append([]byte{0xdd}, max32...)...), &ConversationList{}},
		{"bin 32 body", field("body", append([]byte{0xc6}, max32...)...), &Send{}},
		{"str 32 conv", field("conv", append([]byte{0xdb}, max32...)...), &Ack{}},
		{"str 32 key", append([]byte{0x81, 0xdb}, max32...), &Ack{}},
		{"map 32 body", append([]byte{0xdf}, max32...), &Ack{}},
		{"map 32 in an unknown key", field("x", append([]byte{0xdf}, max32...)...), &Ack{}},
		{"ext 32 in an unknown key", field("x", append([]byte{0xc9}, max32...)...), &Ack{}},
		{"array 16 past the end", field("seqs", 0xdc, 0xff, 0xff, 1, 2, 3), &DeleteHistory{}},
		{"array 32 of 2^27 nils", field("seqs", append([]byte{0xdd, 0x08, 0, 0, 0}, bytes.Repeat([]byte{0xc0}, 64)...)...), &DeleteHistory{}},
	}
	for _, tt := range tests {
		allocated := bytesAllocated(func() {
			if err := DecodeBody(tt.body, tt.v); !errors.Is(err, ErrBadBody) {
				t.Errorf("%s: %v, want ErrBadBody", tt.name, err)
			}
		})
		if allocated > 64<<10 {
			t.Errorf("%s: decoding a %d-byte body allocated %d bytes", tt.name, len(tt.body), allocated)
		}
	}
}

// TestDecodeBodyLargestArray checks that what may be allocated stays in
// proportion to the body: the most elements a 64 KiB frame can hold.
func TestDecodeBodyLargestArray(t *testing.T) {
	n := DefaultMaxFrame - HeaderSize - 16
	body := append(append([]byte{0x81, 0xa8}, "messages"...), 0xdc, byte(n>>8), byte(n))
	body = append(body, bytes.Repeat([]byte{0x80}, n)...)
	var r SyncResult
	allocated := bytesAllocated(func() {
		if err := DecodeBody(body, &r); err != nil {
			t.Fatal(err)
		}
	})
	if len(r.Messages) != n {
		t.Fatalf("%d messages, want %d", len(r.Messages), n)
	}
	perByte := float64(allocated) / float64(len(body))
	t.Logf("%d-byte body, %d empty messages: %d bytes allocated, %.0f per body byte", len(body), n, allocated, perByte)
	if limit := 3 * reflect.TypeFor[Message]().Size(); perByte > float64(limit) {
		t.Fatalf("allocated %.0f bytes per body byte, more than %d", perByte, limit)
	}
}

func TestDecodeBodyDepth(t *testing.T) {
	// {"x": [[...[]...]]}: the map is one level, each array one more.
	nested := func(arrays int) []byte {
		b := []byte{0x81, 0xa1, 'x'}
		for range arrays - 1 {
			b = append(b, 0x91)
		}
		return append(b, 0x90)
	}
	var a Ack
	if err := DecodeBody(nested(maxDepth-1), &a); err != nil {
		t.Fatalf("%d levels: %v", maxDepth, err)
	}
	if err := DecodeBody(nested(maxDepth), &a); !errors.Is(err, ErrBadBody) {
		t.Fatalf("%d levels: %v, want ErrBadBody", maxDepth+1, err)
	}
	deep := append(bytes.Repeat([]byte{0x91}, DefaultMaxFrame-HeaderSize-1), 0x90)
	if err := DecodeBody(deep, &a); !errors.Is(err, ErrBadBody) {
		t.Fatalf("%d levels: %v, want ErrBadBody", len(deep), err)
	}
}

// TestDecodeBodyOwnsMemory overwrites the input after decoding: the value
// must not change, so nothing in it refers to the input.
func TestDecodeBodyOwnsMemory(t *testing.T) {
	m := Message{MsgID: 1 << 40, Conv: "d:1001:1002", Seq: 9, From: 1001, To: 1002,
		ClientMsgID: "client-id", ContentType: 3, Body: []byte("payload bytes"), ServerTime: 1 << 41}
	bodies := []any{
		&m,
		&SyncResult{Conv: m.Conv, Messages: []Message{m, m}, Next: 9, LastSeq: 9},
		&ConversationList{Conversations: []Conversation{{Conv: m.Conv, LastSeq: 9, Last: &m}}},
		&DeleteHistory{Conv: m.Conv, Seqs: []uint64{1, 2, 3}},
		&LoginOK{UserID: 1, Username: "alice", Token: "token"},
	}
	for _, want := range bodies {
		frame := MustFrame(TypePush, 0, want)
		body := frame[PrefixSize:]
		got := reflect.New(reflect.TypeOf(want).Elem()).Interface()
		if err := DecodeBody(body, got); err != nil {
			t.Fatal(err)
		}
		for i := range body {
			body[i] = 0xAA
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%T changed with its input:\n got %+v\nwant %+v", want, got, want)
		}
	}
}

func TestConvRoundTrip(t *testing.T) {
	for _, ids := range [][2]int64{{1, 2}, {2, 1}, {1001, 1002}, {9, 10}, {1, math.MaxInt64}} {
		id := DirectConv(ids[0], ids[1])
		if id != DirectConv(ids[1], ids[0]) {
			t.Fatalf("DirectConv(%d, %d) = %q, reversed %q", ids[0], ids[1], id, DirectConv(ids[1], ids[0]))
		}
		p, ok := ParseConv(id)
		lo, hi := min(ids[0], ids[1]), max(ids[0], ids[1])
		if !ok || p != (ParsedConv{Kind: ConvDirect, A: lo, B: hi}) {
			t.Fatalf("ParseConv(%q) = %+v, %v", id, p, ok)
		}
		if !p.Has(lo) || !p.Has(hi) || p.Has(hi+1) || p.Peer(lo) != hi || p.Peer(hi) != lo {
			t.Fatalf("%q: Has or Peer wrong", id)
		}
		if !DirectOf(lo, id) || !DirectOf(hi, id) || DirectOf(hi+1, id) {
			t.Fatalf("%q: DirectOf wrong", id)
		}
		if DirectConv(p.A, p.B) != id {
			t.Fatalf("%q does not format back", id)
		}
	}
	if id := DirectConv(1001, 1002); id != "d:1001:1002" {
		t.Fatalf("DirectConv(1001, 1002) = %q", id)
	}
	for _, g := range []int64{1, 42, math.MaxInt64} {
		id := GroupConv(g)
		p, ok := ParseConv(id)
		if !ok || p != (ParsedConv{Kind: ConvGroup, Group: g}) || GroupConv(p.Group) != id || p.Has(g) || DirectOf(g, id) {
			t.Fatalf("GroupConv(%d) = %q, parsed %+v, %v", g, id, p, ok)
		}
	}
}

func TestParseConvRejects(t *testing.T) {
	for _, s := range []string{
		"", "d", "d:", "d::", "d:1", "d:1:", "d::2", "d:1:2:", "d:1:2:3",
		"d:2:1", "d:5:5", "d:0:5", "d:01:2", "d:1:02", "d:00:1",
		"d:+1:2", "d:1:+2", "d:-1:2", "d:1:-2", "d: 1:2", "d:1:2 ", "d:1 :2",
		"d:1:9223372036854775808", "d:1:99999999999999999999", "d:1:2\x00",
		"D:1:2", "x:1:2", ":1:2", "d1:2", "dd:1:2",
		"g", "g:", "g:0", "g:007", "g:+7", "g:-7", "g:7:", "g:1:2", "g: 7", "G:7", "g:9223372036854775808", "g:0x10",
	} {
		if p, ok := ParseConv(s); ok {
			t.Errorf("ParseConv(%q) accepted: %+v", s, p)
		}
		if DirectOf(1, s) || DirectOf(2, s) {
			t.Errorf("DirectOf(_, %q) = true", s)
		}
	}
}

func TestNames(t *testing.T) {
	seen := make(map[string]Code)
	for c, name := range codeNames {
		if c.String() != name {
			t.Errorf("Code %d: String %q, want %q", c, c.String(), name)
		}
		if other, dup := seen[name]; dup {
			t.Errorf("codes %d and %d are both %s", c, other, name)
		}
		seen[name] = c
	}
	if s := Code(9999).String(); s != "Code(9999)" {
		t.Errorf("unknown code: %q", s)
	}
	if s := KickReason(200).String(); s != "KickReason(200)" {
		t.Errorf("unknown kick reason: %q", s)
	}
	e := &Error{Code: CodeBadConv, Message: "nope"}
	if e.Error() != "parley: BAD_CONV: nope" {
		t.Errorf("Error() = %q", e.Error())
	}
}

// bytesAllocated reports how many bytes of heap fn allocates.
func bytesAllocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}
