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
	w.optInt("to", m.To)
	w.optInt("group_id", m.GroupID)
	w.optStr("client_msg_id", m.ClientMsgID)
	w.optUint("content_type", uint64(m.ContentType))
	w.putBytes("body", m.Body)
	w.putInt("server_time", m.ServerTime)
	w.optUint("ref", m.Ref)
	w.optUint("reply_to", m.ReplyTo)
	w.optInts("mentions", m.Mentions)
	w.optBool("mention_all", m.MentionAll)
	w.optBool("recalled", m.Recalled)
	w.optUint("edited", uint64(m.Edited))
	w.optInt("edited_at", m.EditedAt)
	if len(m.Reactions) != 0 && w.key("reactions") {
		w.err = e.Encode(m.Reactions) // rare: the reflection's own encoding
	}
	w.optInt("expires_at", m.ExpiresAt)
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
	w.optInt("to", m.To)
	w.optInt("group_id", m.GroupID)
	w.optUint("content_type", uint64(m.ContentType))
	w.putBytes("body", m.Body)
	w.optUint("ref", m.Ref)
	w.optUint("reply_to", m.ReplyTo)
	w.optInts("mentions", m.Mentions)
	w.optBool("mention_all", m.MentionAll)
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
	w.optBool("duplicate", a.Duplicate)
	return w.err
}

// fieldWriter writes a map's entries until the first error, which it keeps.
// put writes an entry; opt writes it unless the value is zero (omitempty).
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

// putBytes writes v as bin, nil as msgpack nil (as the reflection does).
func (w *fieldWriter) putBytes(name string, v []byte) {
	if w.key(name) {
		w.err = w.e.EncodeBytes(v)
	}
}

func (w *fieldWriter) optInt(name string, v int64) {
	if v != 0 {
		w.putInt(name, v)
	}
}

func (w *fieldWriter) optUint(name string, v uint64) {
	if v != 0 {
		w.putUint(name, v)
	}
}

func (w *fieldWriter) optStr(name, v string) {
	if v != "" {
		w.putStr(name, v)
	}
}

func (w *fieldWriter) optBool(name string, v bool) {
	if v && w.key(name) {
		w.err = w.e.EncodeBool(true)
	}
}

func (w *fieldWriter) optInts(name string, vs []int64) {
	if len(vs) == 0 || !w.key(name) {
		return
	}
	w.err = w.e.EncodeArrayLen(len(vs))
	for _, v := range vs {
		if w.err != nil {
			return
		}
		w.err = w.e.EncodeInt(v)
	}
}
