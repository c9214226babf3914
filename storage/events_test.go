package storage

import (
	"reflect"
	"testing"
)

// Every field of a Meta survives EncodeMeta and the hand-written decoder.
func TestMetaRoundTrip(t *testing.T) {
	in := Meta{ReplyTo: 7, Mentions: []int64{3, 1 << 40}, MentionAll: true, Ref: 9, EditNo: 2, Recalled: true,
		Edits: []uint64{10, 12}, Body: []byte("v2"), EditedAt: 1772442930123,
		Reactions: []MetaReaction{{Emoji: "👍", Users: []int64{5, 6}}, {Emoji: "❤", Users: []int64{-1}}}}
	b, err := EncodeMeta(&in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeMeta(b)
	if err != nil || !reflect.DeepEqual(in, out) {
		t.Fatalf("decoded %+v, %v; want %+v", out, err, in)
	}
	if empty, err := DecodeMeta(nil); err != nil || !empty.Empty() {
		t.Fatalf("empty value: %+v %v", empty, err)
	}
	if _, err := DecodeMeta(b[:len(b)-3]); err == nil {
		t.Fatal("a cut value decodes")
	}
}
