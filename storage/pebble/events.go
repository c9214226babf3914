package pebble

import (
	"context"
	"fmt"
	"slices"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Conversation events (storage/events.go). A message's storage.Meta lives
// under a conv 0 seq, beside the message; appendOp.exec applies an event to
// its target's Meta in the event's batch (an indexed one, so two events on
// one message in one batch see each other).

var _ storage.Events = (*Store)(nil)

// metaKey is the key of the Meta of conv's message seq.
func metaKey(conv string, seq uint64) []byte { return convKey(tMeta, conv, seq) }

// getMeta reads a Meta from r (absent: empty).
func getMeta(r interface {
	get(k []byte) ([]byte, bool, error)
}, conv string, seq uint64) (storage.Meta, error) {
	v, _, err := r.get(metaKey(conv, seq))
	if err != nil {
		return storage.Meta{}, err
	}
	return storage.DecodeMeta(v)
}

// eventTarget checks event m (its Seq set) against its target and returns
// the target's new Meta; domain is the refusal, with nothing to write.
func (t *txn) eventTarget(m *protocol.Message) (mt storage.Meta, domain, err error) {
	if m.Ref == 0 || m.Ref >= m.Seq {
		return mt, storage.ErrNotTarget, nil
	}
	v, found, err := t.get(msgKey(m.Conv, m.Ref))
	if err != nil || !found {
		return mt, storage.ErrNotTarget, err
	}
	target, err := parseMessage(msgKey(m.Conv, m.Ref), v)
	if err != nil {
		return mt, nil, err
	}
	if storage.Expired(&target, m.ServerTime) {
		return mt, storage.ErrNotTarget, nil
	}
	m.ExpiresAt = storage.TargetExpiry(m.ExpiresAt, target.ExpiresAt)
	if mt, err = getMeta(t, m.Conv, m.Ref); err != nil {
		return mt, nil, err
	}
	return mt, mt.Apply(m, target.ContentType), nil
}

// writeEvent writes what event m does to its target, whose new Meta is mt.
func (t *txn) writeEvent(m *protocol.Message, mt *storage.Meta) error {
	if err := t.putMeta(m.Conv, m.Ref, mt); err != nil {
		return err
	}
	if m.ContentType != protocol.ContentRecall {
		return nil
	}
	// A recall takes the content of the message and of its edits.
	for _, seq := range append([]uint64{m.Ref}, mt.Edits...) {
		if err := t.blank(m.Conv, seq); err != nil {
			return err
		}
	}
	return nil
}

// putMeta writes mt as the Meta of conv's message seq.
func (t *txn) putMeta(conv string, seq uint64, mt *storage.Meta) error {
	if mt.Empty() {
		return nil
	}
	v, err := storage.EncodeMeta(mt)
	if err != nil {
		return err
	}
	return t.set(metaKey(conv, seq), v)
}

// blank empties the body of conv's message seq.
func (t *txn) blank(conv string, seq uint64) error {
	k := msgKey(conv, seq)
	v, found, err := t.get(k)
	if err != nil || !found {
		return err
	}
	m, err := parseMessage(k, v)
	if err != nil {
		return err
	}
	m.Body = nil
	return t.set(k, appendMsgValue(nil, &m))
}

// viewGetter reads from a view's snapshot.
type viewGetter struct{ v view }

func (g viewGetter) get(k []byte) ([]byte, bool, error) { return getFrom(g.v.snap, k) }

// fold folds the Metas of msgs (all of conv) into them.
func (v view) fold(conv string, msgs []protocol.Message, shown int) error {
	if len(msgs) == 0 {
		return nil
	}
	lo, hi := msgs[0].Seq, msgs[len(msgs)-1].Seq
	if lo > hi {
		lo, hi = hi, lo
	}
	metas := make(map[uint64][]byte)
	err := scanRange(v.snap, metaKey(conv, lo), metaKey(conv, hi+1), func(k, val []byte) error {
		metas[seqOfKey(k)] = append([]byte{}, val...)
		return nil
	})
	if err != nil {
		return err
	}
	if err := storage.FoldAll(msgs, metas, shown); err != nil {
		return fmt.Errorf("%w: meta: %v", errCorrupt, err)
	}
	return nil
}

// MessagesAt implements storage.Events.
func (s *Store) MessagesAt(ctx context.Context, conv string, seqs []uint64) ([]protocol.Message, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	g := viewGetter{v}
	var out []protocol.Message
	for _, seq := range sortedUnique(seqs) {
		k := msgKey(conv, seq)
		val, found, err := g.get(k)
		if err != nil {
			return nil, s.readErr("messages at", err)
		}
		if !found {
			continue
		}
		if msgGone(val, v.now) {
			continue
		}
		m, err := parseMessage(k, val)
		if err != nil {
			return nil, s.readErr("messages at", err)
		}
		mt, err := getMeta(g, conv, seq)
		if err != nil {
			return nil, s.readErr("messages at", err)
		}
		storage.Fold(&m, &mt, -1)
		out = append(out, m)
	}
	return out, nil
}

// EditHistory implements storage.Events.
func (s *Store) EditHistory(ctx context.Context, conv string, seq uint64) ([]protocol.EditVersion, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	g := viewGetter{v}
	mt, err := getMeta(g, conv, seq)
	if err != nil {
		return nil, s.readErr("edit history", err)
	}
	if mt.Recalled {
		return nil, storage.ErrRecalled
	}
	var out []protocol.EditVersion
	for i, at := range append([]uint64{seq}, mt.Edits...) {
		k := msgKey(conv, at)
		val, found, err := g.get(k)
		if err != nil {
			return nil, s.readErr("edit history", err)
		}
		if !found || msgGone(val, v.now) {
			if i == 0 {
				return nil, storage.ErrNotFound
			}
			continue // an edit that expired before its target (the timer was set between them)
		}
		m, err := parseMessage(k, val)
		if err != nil {
			return nil, s.readErr("edit history", err)
		}
		out = append(out, protocol.EditVersion{Seq: m.Seq, Body: m.Body, ServerTime: m.ServerTime})
	}
	return out, nil
}

// sortedUnique returns the distinct seqs, ascending.
func sortedUnique(seqs []uint64) []uint64 {
	out := slices.Clone(seqs)
	slices.Sort(out)
	return slices.Compact(out)
}
