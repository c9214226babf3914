package protocol

import "github.com/vmihailenco/msgpack/v5"

// Hand-written encoders for the bodies every message passes through: each
// Send (clients and the load generator encode it), Push (a Message) and
// SendAck. They write exactly what msgpack's
// reflection writes for the struct (a map of the fields in declaration
// order, an omitempty field left out when zero, integers in their shortest
// form as every encoder of this package writes them), without its cost per
// call: reflection over every field, and a slice of the fields kept plus a
// boxed copy of each field to test it for zero, all garbage at once. That
// was 6 % of the server's CPU and a sixth of its allocations at half the
// flat-out p2p rate (docs/benchmarks.md). TestHandEncodersMatchReflection
// holds them to the reflection's bytes; decoding is unchanged.

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m Message) EncodeMsgpack(e *msgpack.Encoder) error {
	n := 6 // msg_id, conv, seq, from, body, server_time
	for _, set := range [...]bool{
		m.To != 0, m.GroupID != 0, m.ClientMsgID != "", m.ContentType != 0,
		m.Ref != 0, m.ReplyTo != 0, len(m.Mentions) != 0, m.MentionAll,
		m.Recalled, m.Edited != 0, m.EditedAt != 0, len(m.Reactions) != 0, m.ExpiresAt != 0,
	} {
		if set {
			n++
		}
	}
	w := fieldWriter{e: e}
	w.err = e.EncodeMapLen(n)
	w.putInt("msg_id", m.MsgID)
	w.putStr("conv", m.Conv)
	w.putUint("seq", m.Seq)
	w.putInt("from", m.From)
	if m.To != 0 {
		w.putInt("to", m.To)
	}
	if m.GroupID != 0 {
		w.putInt("group_id", m.GroupID)
	}
	if m.ClientMsgID != "" {
		w.putStr("client_msg_id", m.ClientMsgID)
	}
	if m.ContentType != 0 {
		w.putUint("content_type", uint64(m.ContentType))
	}
	if w.key("body") {
		w.err = e.EncodeBytes(m.Body) // nil: msgpack nil, as the reflection writes it
	}
	w.putInt("server_time", m.ServerTime)
	if m.Ref != 0 {
		w.putUint("ref", m.Ref)
	}
	if m.ReplyTo != 0 {
		w.putUint("reply_to", m.ReplyTo)
	}
	if len(m.Mentions) != 0 && w.key("mentions") {
		w.putInts(m.Mentions)
	}
	if m.MentionAll {
		w.putBool("mention_all", true)
	}
	if m.Recalled {
		w.putBool("recalled", true)
	}
	if m.Edited != 0 {
		w.putUint("edited", uint64(m.Edited))
	}
	if m.EditedAt != 0 {
		w.putInt("edited_at", m.EditedAt)
	}
	if len(m.Reactions) != 0 && w.key("reactions") {
		w.err = e.Encode(m.Reactions) // rare: the reflection's own encoding
	}
	if m.ExpiresAt != 0 {
		w.putInt("expires_at", m.ExpiresAt)
	}
	return w.err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (m Send) EncodeMsgpack(e *msgpack.Encoder) error {
	n := 2 // client_msg_id, body
	for _, set := range [...]bool{
		m.To != 0, m.GroupID != 0, m.ContentType != 0, m.Ref != 0, m.ReplyTo != 0, len(m.Mentions) != 0, m.MentionAll,
	} {
		if set {
			n++
		}
	}
	w := fieldWriter{e: e}
	w.err = e.EncodeMapLen(n)
	w.putStr("client_msg_id", m.ClientMsgID)
	if m.To != 0 {
		w.putInt("to", m.To)
	}
	if m.GroupID != 0 {
		w.putInt("group_id", m.GroupID)
	}
	if m.ContentType != 0 {
		w.putUint("content_type", uint64(m.ContentType))
	}
	if w.key("body") {
		w.err = e.EncodeBytes(m.Body)
	}
	if m.Ref != 0 {
		w.putUint("ref", m.Ref)
	}
	if m.ReplyTo != 0 {
		w.putUint("reply_to", m.ReplyTo)
	}
	if len(m.Mentions) != 0 && w.key("mentions") {
		w.putInts(m.Mentions)
	}
	if m.MentionAll {
		w.putBool("mention_all", true)
	}
	return w.err
}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (a SendAck) EncodeMsgpack(e *msgpack.Encoder) error {
	n := 4
	if a.Duplicate {
		n++
	}
	w := fieldWriter{e: e}
	w.err = e.EncodeMapLen(n)
	w.putInt("msg_id", a.MsgID)
	w.putStr("conv", a.Conv)
	w.putUint("seq", a.Seq)
	w.putInt("server_time", a.ServerTime)
	if a.Duplicate {
		w.putBool("duplicate", true)
	}
	return w.err
}

// fieldWriter writes a map's entries until the first error, which it keeps.
type fieldWriter struct {
	e   *msgpack.Encoder
	err error
}

// key writes name and reports whether the value may follow.
func (w *fieldWriter) key(name string) bool {
	if w.err == nil {
		w.err = w.e.EncodeString(name)
	}
	return w.err == nil
}

func (w *fieldWriter) putInt(name string, v int64) {
	if w.key(name) {
		w.err = w.e.EncodeInt(v)
	}
}

func (w *fieldWriter) putUint(name string, v uint64) {
	if w.key(name) {
		w.err = w.e.EncodeUint(v)
	}
}

func (w *fieldWriter) putStr(name, v string) {
	if w.key(name) {
		w.err = w.e.EncodeString(v)
	}
}

func (w *fieldWriter) putBool(name string, v bool) {
	if w.key(name) {
		w.err = w.e.EncodeBool(v)
	}
}

func (w *fieldWriter) putInts(vs []int64) {
	w.err = w.e.EncodeArrayLen(len(vs))
	for _, v := range vs {
		if w.err != nil {
			return
		}
		w.err = w.e.EncodeInt(v)
	}
}
