package storage

import (
	"bytes"
	"context"
	"errors"
	"slices"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/parleyim/parley/protocol"
)

// Conversation events (protocol/events.go): recall, edit and reactions are
// messages appended like any other, whose Ref names an earlier message of
// the conversation (the target). Each backend keeps beside a message, under
// its (conv, seq), a Meta: the message's own extras (reply, mentions, the
// target of an event) and the state that later events gave it (recalled,
// edits, reactions). Append applies an event to its target's Meta in the
// same transaction that stores the event, with Meta.Apply, so both stores
// follow one set of rules; reads fold the Meta into the message (Fold).

// Domain errors of an event's Append; nothing is stored.
var (
	ErrRecalled      = errors.New("storage: the message was recalled")
	ErrEditLimit     = errors.New("storage: the message was edited MaxEdits times")
	ErrReactionLimit = errors.New("storage: too many reactions on the message")
	ErrNoChange      = errors.New("storage: the reaction is already there, or is not there")
	ErrNotTarget     = errors.New("storage: an event's ref names no message of the conversation, or an event")
)

// Bounds on the state one message collects.
const (
	MaxEdits            = 20 // edits of one message; its history holds MaxEdits+1 versions
	MaxEmoji            = 20 // distinct emoji on one message
	MaxReactionsPerUser = 3  // emoji one user has on one message
)

// Events is what a store offers beyond Messages for conversation events.
type Events interface {
	// MessagesAt returns the messages of conv at seqs that exist, ascending,
	// with their state folded in (every reactor listed). Hidden messages
	// are returned too: the caller checks authorization.
	MessagesAt(ctx context.Context, conv string, seqs []uint64) ([]protocol.Message, error)
	// EditHistory returns every version of the message at seq: the
	// original, then the body of each edit event, oldest first. A message
	// never edited has one version; a recalled one, none (ErrRecalled).
	// ErrNotFound when there is no such message.
	EditHistory(ctx context.Context, conv string, seq uint64) ([]protocol.EditVersion, error)
}

// Meta is what a store keeps beside a message: encoded by EncodeMeta, absent
// when empty.
type Meta struct {
	// The message's own extras, set when it is stored.
	ReplyTo    uint64  `msgpack:"r,omitempty"`
	Mentions   []int64 `msgpack:"m,omitempty"`
	MentionAll bool    `msgpack:"a,omitempty"`
	Ref        uint64  `msgpack:"f,omitempty"`
	EditNo     uint32  `msgpack:"n,omitempty"` // an edit event: which edit of its target it is

	// State from later events.
	Recalled  bool           `msgpack:"x,omitempty"`
	Edits     []uint64       `msgpack:"e,omitempty"` // seqs of the edit events, oldest first
	Body      []byte         `msgpack:"b,omitempty"` // the body after the last edit
	EditedAt  int64          `msgpack:"t,omitempty"`
	Reactions []MetaReaction `msgpack:"k,omitempty"`
}

// MetaReaction is one emoji on a message and its users in reaction order.
type MetaReaction struct {
	Emoji string  `msgpack:"e"`
	Users []int64 `msgpack:"u"`
}

// OwnMeta returns the extras of a message being stored.
func OwnMeta(m *protocol.Message) Meta {
	return Meta{ReplyTo: m.ReplyTo, Mentions: m.Mentions, MentionAll: m.MentionAll, Ref: m.Ref, EditNo: m.Edited}
}

// Empty reports whether there is nothing to store.
func (mt *Meta) Empty() bool {
	return mt.ReplyTo == 0 && len(mt.Mentions) == 0 && !mt.MentionAll && mt.Ref == 0 && mt.EditNo == 0 &&
		!mt.Recalled && len(mt.Edits) == 0 && len(mt.Body) == 0 && mt.EditedAt == 0 && len(mt.Reactions) == 0
}

// EncodeMeta encodes mt for a store, integers in their shortest form.
func EncodeMeta(mt *Meta) ([]byte, error) {
	var b bytes.Buffer
	enc := msgpack.NewEncoder(&b)
	enc.UseCompactInts(true)
	err := enc.Encode(mt)
	return b.Bytes(), err
}

// DecodeMeta decodes a value of EncodeMeta; an empty value is an empty Meta.
func DecodeMeta(b []byte) (Meta, error) {
	var mt Meta
	if len(b) == 0 {
		return mt, nil
	}
	err := msgpack.Unmarshal(b, &mt)
	return mt, err
}

// Apply applies event ev (its Seq set) to mt, the Meta of its target, whose
// content type is target: it returns the domain error that refuses ev and
// leaves mt alone, or changes mt. An edit event gets its ordinal in
// ev.Edited. After a recall the caller blanks the bodies of the target and
// of its edit events (mt.Edits), which Apply keeps for the purpose.
func (mt *Meta) Apply(ev *protocol.Message, target uint16) error {
	if protocol.IsEvent(target) {
		return ErrNotTarget
	}
	if mt.Recalled {
		return ErrRecalled
	}
	switch ev.ContentType {
	case protocol.ContentRecall:
		mt.Recalled, mt.Body, mt.Reactions = true, nil, nil
	case protocol.ContentEdit:
		if len(mt.Edits) >= MaxEdits {
			return ErrEditLimit
		}
		mt.Edits = append(mt.Edits, ev.Seq)
		mt.Body, mt.EditedAt = slices.Clone(ev.Body), ev.ServerTime
		if mt.Body == nil {
			mt.Body = []byte{}
		}
		ev.Edited = uint32(len(mt.Edits))
	case protocol.ContentReact:
		emoji := string(ev.Body)
		mine := 0
		at := -1
		for i, r := range mt.Reactions {
			if slices.Contains(r.Users, ev.From) {
				if r.Emoji == emoji {
					return ErrNoChange
				}
				mine++
			}
			if r.Emoji == emoji {
				at = i
			}
		}
		if mine >= MaxReactionsPerUser || (at < 0 && len(mt.Reactions) >= MaxEmoji) {
			return ErrReactionLimit
		}
		if at < 0 {
			mt.Reactions = append(mt.Reactions, MetaReaction{Emoji: emoji})
			at = len(mt.Reactions) - 1
		}
		mt.Reactions[at].Users = append(mt.Reactions[at].Users, ev.From)
	case protocol.ContentUnreact:
		emoji := string(ev.Body)
		i := slices.IndexFunc(mt.Reactions, func(r MetaReaction) bool { return r.Emoji == emoji })
		if i < 0 {
			return ErrNoChange
		}
		j := slices.Index(mt.Reactions[i].Users, ev.From)
		if j < 0 {
			return ErrNoChange
		}
		mt.Reactions[i].Users = slices.Delete(mt.Reactions[i].Users, j, j+1)
		if len(mt.Reactions[i].Users) == 0 {
			mt.Reactions = slices.Delete(mt.Reactions, i, i+1)
		}
	default:
		return ErrNotTarget
	}
	return nil
}

// FoldAll folds into each of msgs its encoded Meta in metas (by seq),
// listing at most shown users of each reaction; a message with none is
// left as it is. It returns the error of the first Meta that does not
// decode, as DecodeMeta gave it.
func FoldAll(msgs []protocol.Message, metas map[uint64][]byte, shown int) error {
	for i := range msgs {
		raw, ok := metas[msgs[i].Seq]
		if !ok {
			continue
		}
		mt, err := DecodeMeta(raw)
		if err != nil {
			return err
		}
		Fold(&msgs[i], &mt, shown)
	}
	return nil
}

// Fold sets m's event fields from its Meta, listing at most shown users of
// each reaction (all when shown < 0). A recalled message loses its body.
func Fold(m *protocol.Message, mt *Meta, shown int) {
	m.ReplyTo, m.Mentions, m.MentionAll, m.Ref = mt.ReplyTo, mt.Mentions, mt.MentionAll, mt.Ref
	m.Edited = mt.EditNo
	if mt.Recalled {
		m.Recalled, m.Body = true, []byte{}
		return
	}
	if len(mt.Edits) > 0 {
		m.Edited, m.EditedAt, m.Body = uint32(len(mt.Edits)), mt.EditedAt, mt.Body
	}
	m.Reactions = nil
	for _, r := range mt.Reactions {
		users := r.Users
		if shown >= 0 && len(users) > shown {
			users = users[:shown]
		}
		m.Reactions = append(m.Reactions, protocol.Reaction{Emoji: r.Emoji, Count: uint32(len(r.Users)), Users: slices.Clone(users)})
	}
}

// DecodeMsgpack decodes a Meta without reflection (msgpack.CustomDecoder):
// the same encoding, read key by key. A profile of reads of messages with
// events spent most of its time in msgpack's reflective slice decoding.
func (mt *Meta) DecodeMsgpack(d *msgpack.Decoder) error {
	*mt = Meta{}
	n, err := d.DecodeMapLen()
	if err != nil || n < 0 {
		return err
	}
	for range n {
		key, err := d.DecodeString()
		if err != nil {
			return err
		}
		switch key {
		case "r":
			mt.ReplyTo, err = d.DecodeUint64()
		case "m":
			mt.Mentions, err = decodeInts(d)
		case "a":
			mt.MentionAll, err = d.DecodeBool()
		case "f":
			mt.Ref, err = d.DecodeUint64()
		case "n":
			mt.EditNo, err = d.DecodeUint32()
		case "x":
			mt.Recalled, err = d.DecodeBool()
		case "e":
			var v []int64
			v, err = decodeInts(d)
			mt.Edits = make([]uint64, len(v))
			for i, x := range v {
				mt.Edits[i] = uint64(x)
			}
		case "b":
			mt.Body, err = d.DecodeBytes()
		case "t":
			mt.EditedAt, err = d.DecodeInt64()
		case "k":
			var k int
			if k, err = d.DecodeArrayLen(); err != nil || k < 0 {
				break
			}
			if k > maxDecoded {
				return errMetaSize
			}
			mt.Reactions = make([]MetaReaction, k)
			for i := range mt.Reactions {
				if err = mt.Reactions[i].decode(d); err != nil {
					break
				}
			}
		default:
			err = d.Skip()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *MetaReaction) decode(d *msgpack.Decoder) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return err
	}
	for range n {
		key, err := d.DecodeString()
		if err != nil {
			return err
		}
		switch key {
		case "e":
			r.Emoji, err = d.DecodeString()
		case "u":
			r.Users, err = decodeInts(d)
		default:
			err = d.Skip()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// maxDecoded bounds a list of a Meta, so that a corrupt value cannot make
// the decoder allocate without limit.
const maxDecoded = 1 << 20

var errMetaSize = errors.New("storage: a list of a message's meta is longer than any bound")

func decodeInts(d *msgpack.Decoder) ([]int64, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n <= 0 {
		return nil, err
	}
	if n > maxDecoded {
		return nil, errMetaSize
	}
	out := make([]int64, n)
	for i := range out {
		if out[i], err = d.DecodeInt64(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
