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
