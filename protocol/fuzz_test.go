package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary bytes as a stream, split in two reads at a
// fuzzer-chosen offset, and decodes every body it finds, and the input
// itself, as every frame type's body. Nothing may panic; sizes must agree
// with the length prefix; the split must not change the frames; and a body
// that decodes must survive encoding and decoding again unchanged.
func FuzzDecode(f *testing.F) {
	var all []byte
	for _, v := range readVectors(f) {
		f.Add(v.frame, uint16(len(v.frame)/2))
		f.Add(v.frame[PrefixSize:], uint16(0))
		all = append(all, v.frame...)
	}
	f.Add(all, uint16(len(all)/3))
	f.Add(prefix(DefaultMaxFrame+1, Version, 0, TypeSend, 1), uint16(2))
	f.Add(prefix(3, Version, 0, TypeSend, 1), uint16(0))
	f.Add(append(prefix(HeaderSize+1, 2, 0, TypeSend, 1), 0x80), uint16(5))
	f.Add([]byte{0x81, 0xa4, 's', 'e', 'q', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}, uint16(0))
	f.Add([]byte{0x81, 0xa4, 'b', 'o', 'd', 'y', 0xc6, 0xff, 0xff, 0xff, 0xff}, uint16(0))

	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		whole := parseAll(t, data, 0)

		cut := int(split) % (len(data) + 1)
		parts := &parser{tb: t}
		parts.feed(data[:cut])
		parts.feed(data[cut:])
		sameFrames(t, parts.frames, whole.frames)
		if !errors.Is(parts.err, whole.err) || !bytes.Equal(parts.buf, whole.buf) {
			t.Fatalf("split at %d: err %v and %d bytes left; whole: err %v and %d bytes left",
				cut, parts.err, len(parts.buf), whole.err, len(whole.buf))
		}

		for _, fr := range whole.frames {
			checkBodies(t, fr.body)
		}
		checkBodies(t, data)
	})
}

// checkBodies decodes body as the body of every frame type. An error must be
// ErrBadBody; a success must encode, and the encoding must decode to the same
// value and encode to the same bytes again.
func checkBodies(t *testing.T, body []byte) {
	t.Helper()
	for _, typ := range knownTypes() {
		v := newBody(typ)
		if err := DecodeBody(body, v); err != nil {
			if !errors.Is(err, ErrBadBody) {
				t.Fatalf("%s: DecodeBody error %v does not wrap ErrBadBody", typ, err)
			}
			continue
		}
		enc, again := reencode(t, typ, v)
		enc2, err := AppendFrame(nil, typ, 1, again)
		if err != nil || !bytes.Equal(enc, enc2) {
			t.Fatalf("%s: encodings differ: % x, % x (%v)", typ, enc, enc2, err)
		}
	}
}

// reencode encodes v, a decoded body of typ, and decodes that again: the
// value must come back the same. It returns the encoding and the value
// decoded from it.
func reencode(t *testing.T, typ Type, v any) ([]byte, any) {
	t.Helper()
	enc, err := AppendFrame(nil, typ, 1, v)
	if err != nil {
		t.Fatalf("%s: cannot encode decoded %+v: %v", typ, v, err)
	}
	again := newBody(typ)
	if err := DecodeBody(enc[PrefixSize:], again); err != nil {
		t.Fatalf("%s: cannot decode re-encoded % x: %v", typ, enc, err)
	}
	if !sameValue(reflect.ValueOf(v), reflect.ValueOf(again)) {
		t.Fatalf("%s: %+v became %+v", typ, v, again)
	}
	return enc, again
}

// sameValue is reflect.DeepEqual but for slices, where nil and empty are the
// same: an empty omitempty field is left out and decodes as nil.
func sameValue(a, b reflect.Value) bool {
	if a.Kind() != b.Kind() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	}
	return a.Equal(b)
}

// fuzzBody is the fuzz target of one body type (fuzzbody_test.go).
func fuzzBody(f *testing.F, typ Type) {
	for _, v := range readVectors(f) {
		if v.name == typ.String() {
			f.Add(v.frame[PrefixSize:])
		}
	}
	if enc, err := AppendFrame(nil, typ, 1, NewBody(typ)); err == nil {
		f.Add(enc[PrefixSize:])
	}
	f.Add([]byte{0x80})
	f.Add([]byte{0x93, 0xa1, 'a', 0xa1, 'b', 0x01})
	f.Fuzz(func(t *testing.T, body []byte) {
		checkBody1(t, typ, body)
		if typ == TypeSend {
			compareSend(t, body) // the fast way decodes as the general way (decode.go)
		}
	})
}

// checkBody1 is checkBodies for one type.
func checkBody1(t *testing.T, typ Type, body []byte) {
	t.Helper()
	v := newBody(typ)
	if err := DecodeBody(body, v); err != nil {
		if !errors.Is(err, ErrBadBody) {
			t.Fatalf("%s: DecodeBody error %v does not wrap ErrBadBody", typ, err)
		}
		return
	}
	if len(body) > 0 {
		if _, _, ok := mapHeader(body, 0); !ok {
			t.Fatalf("%s: accepted a body that is not a map: % x", typ, body)
		}
	}
	reencode(t, typ, v)
}
