package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzBodyAttachment decodes arbitrary bytes as the body of an attachment
// message: nothing may panic, every error must be ErrBadAttachment, and an
// attachment that decodes is valid and survives encoding and decoding
// again unchanged. Seeds: the document's attachment vectors.
func FuzzBodyAttachment(f *testing.F) {
	for _, v := range readVectors(f) {
		if v.attachment {
			f.Add(v.frame)
		}
	}
	f.Add([]byte("hello"))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := DecodeAttachment(body)
		if err != nil {
			if !errors.Is(err, ErrBadAttachment) {
				t.Fatalf("error %v is not ErrBadAttachment", err)
			}
			return
		}
		if err := a.Check(); err != nil {
			t.Fatalf("decoded an invalid attachment: %v", err)
		}
		enc, err := EncodeAttachment(&a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := DecodeAttachment(enc)
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip: %+v → %+v, %v", a, b, err)
		}
	})
}

func TestValidFileName(t *testing.T) {
	for _, ok := range []string{"a", "cat.png", "報告 2026.pdf", "..hidden", "a b", strings.Repeat("n", MaxFileName), "émoji 😀.txt"} {
		if !ValidFileName(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", `a\b`, "/etc/passwd", "../x", "nul\x00", "tab\t", "del\x7f", "c1\u0085",
		" lead", "trail ", strings.Repeat("n", MaxFileName+1), "bad\xff", "\ufffd"} {
		if ValidFileName(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestDecodeAttachmentRefuses(t *testing.T) {
	good := Attachment{Name: "x", MIME: "text/plain", Size: 1, SHA256: bytes.Repeat([]byte{1}, 32)}
	good.URL = FilePath(good.SHA256)
	body, _ := EncodeAttachment(&good)
	if _, err := DecodeAttachment(body); err != nil {
		t.Fatal(err)
	}
	for what, b := range map[string][]byte{
		"empty":           nil,
		"text":            []byte("hello"),
		"an array":        {0x91, 0x01},
		"trailing bytes":  append(append([]byte(nil), body...), 0xc0),
		"a size too wide": bytes.Replace(body, []byte{0xa4, 's', 'i', 'z', 'e', 0x01}, []byte{0xa4, 's', 'i', 'z', 'e', 0xa1, '1'}, 1),
	} {
		if _, err := DecodeAttachment(b); !errors.Is(err, ErrBadAttachment) {
			t.Errorf("%s: %v, want ErrBadAttachment", what, err)
		}
	}
}
