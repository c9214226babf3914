package protocol

import (
	"bytes"
	"errors"
	"testing"
)

func TestPeekBytes(t *testing.T) {
	m := Message{MsgID: 7, Conv: GroupConv(3), GroupID: 3, Seq: 42, From: 9, Body: []byte("stamp and payload"), ClientMsgID: "c-1"}
	frame := MustFrame(TypePush, 0, &m)
	body := frame[PrefixSize:]
	got, err := PeekBytes(body, "body")
	if err != nil || !bytes.Equal(got, m.Body) {
		t.Fatalf("body: %q, %v", got, err)
	}
	if got, err := PeekBytes(body, "client_msg_id"); err != nil || string(got) != "c-1" {
		t.Fatalf("client_msg_id: %q, %v", got, err)
	}
	if _, err := PeekBytes(body, "seq"); !errors.Is(err, ErrBadBody) {
		t.Fatalf("seq is an integer, not bytes: %v", err)
	}
	if _, err := PeekBytes(body, "nope"); !errors.Is(err, ErrBadBody) {
		t.Fatalf("a missing key: %v", err)
	}
	// Cut anywhere, it errs and never panics.
	for i := range len(body) {
		if _, err := PeekBytes(body[:i], "body"); !errors.Is(err, ErrBadBody) {
			t.Fatalf("cut at %d of %d: %v", i, len(body), err)
		}
	}
	if _, err := PeekBytes([]byte{0x93, 1, 2, 3}, "body"); !errors.Is(err, ErrBadBody) {
		t.Fatalf("an array: %v", err)
	}
}

func TestPeekUint(t *testing.T) {
	for _, seq := range []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<63 + 5} {
		body := MustFrame(TypePush, 0, &Message{Conv: "d:1:2", Seq: seq, MsgID: -3})[PrefixSize:]
		if got, err := PeekUint(body, "seq"); err != nil || got != seq {
			t.Fatalf("seq %d: %d, %v", seq, got, err)
		}
		if _, err := PeekUint(body, "msg_id"); !errors.Is(err, ErrBadBody) {
			t.Fatalf("a negative integer: %v", err)
		}
		if _, err := PeekUint(body, "conv"); !errors.Is(err, ErrBadBody) {
			t.Fatalf("a string: %v", err)
		}
		for i := range len(body) {
			if _, err := PeekUint(body[:i], "seq"); !errors.Is(err, ErrBadBody) {
				t.Fatalf("cut at %d of %d: %v", i, len(body), err)
			}
		}
	}
	// Signed encodings of non-negative values, as other encoders write them.
	for _, b := range [][]byte{
		{0x81, 0xa1, 'n', 0xd0, 0x05}, {0x81, 0xa1, 'n', 0xd1, 0, 5}, {0x81, 0xa1, 'n', 0xd2, 0, 0, 0, 5},
		{0x81, 0xa1, 'n', 0xd3, 0, 0, 0, 0, 0, 0, 0, 5}, {0x81, 0xa1, 'n', 0xcc, 5},
	} {
		if got, err := PeekUint(b, "n"); err != nil || got != 5 {
			t.Fatalf("%x: %d, %v", b, got, err)
		}
	}
	if _, err := PeekUint([]byte{0x81, 0xa1, 'n', 0xd0, 0xfb}, "n"); !errors.Is(err, ErrBadBody) {
		t.Fatalf("-5: %v", err)
	}
}
