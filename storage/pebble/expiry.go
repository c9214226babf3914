package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Expiring messages (storage/expiry.go). The timing wheel is a key range
// beside the messages, written in the batch that stores each message:
//
//	e expires_at conv 0 seq → ""   (17 bytes + conv; about 30 bytes a message)
//	x conv                  → the timer in seconds (8 bytes)
//
// Expire runs as an op of the writer, so it is ordered with the appends: it
// walks the wheel from its start up to now and deletes each message with its
// Meta and dedupe key. Sequences are dense and a conversation's last seq is
// its newest message key (lastMessage), so the newest message is not deleted
// but blanked: its value keeps the header (its time orders the conversation
// list), loses body and client message id, and stays expired to every read.

var _ storage.Expirer = (*Store)(nil)

func expiryKey(at int64, conv string, seq uint64) []byte {
	b := make([]byte, 0, 1+8+len(conv)+1+8)
	b = append(b, tExpiry)
	b = binary.BigEndian.AppendUint64(b, uint64(at))
	b = append(b, conv...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, seq)
}

func timerKey(conv string) []byte { return append([]byte{tTimer}, conv...) }

// maxCachedTimers bounds the writer's conversation → timer cache.
const maxCachedTimers = 1 << 16

// timer returns conv's timer in seconds, from the writer's cache or the
// database (a conversation not in the cache has no timer event in this
// batch).
func (t *txn) timer(conv string) (uint32, error) {
	if secs, ok := t.w.timers[conv]; ok {
		return secs, nil
	}
	v, found, err := getFrom(t.w.db, timerKey(conv))
	if err != nil {
		return 0, fmt.Errorf("read timer: %w", err)
	}
	var secs uint32
	if found {
		if len(v) != 8 {
			return 0, errCorrupt
		}
		secs = uint32(binary.BigEndian.Uint64(v))
	}
	if len(t.w.timers) >= maxCachedTimers {
		clear(t.w.timers)
	}
	t.w.timers[conv] = secs
	return secs, nil
}

// stamp sets m's expiry from its conversation's timer, and a timer message's
// timer as the conversation's.
func (t *txn) stamp(m *protocol.Message) error {
	if secs, ok := storage.TimerSecs(m); ok {
		m.ExpiresAt = 0
		t.w.timers[m.Conv] = secs // forgotten if the batch fails (writer.commit)
		if secs == 0 {
			return t.del(timerKey(m.Conv))
		}
		return t.set(timerKey(m.Conv), binary.BigEndian.AppendUint64(nil, uint64(secs)))
	}
	secs, err := t.timer(m.Conv)
	if err != nil {
		return err
	}
	storage.Stamp(m, secs)
	return nil
}

// wheel puts an expiring message on the timing wheel.
func (t *txn) wheel(m *protocol.Message) error {
	if m.ExpiresAt == 0 {
		return nil
	}
	if t.w.sweptTo != nil {
		t.w.wheelLow = min(t.w.wheelLow, m.ExpiresAt)
	}
	return t.set(expiryKey(m.ExpiresAt, m.Conv, m.Seq), nil)
}

// sweepFrom is where Expire's scan starts. A sweep deletes the wheel's
// first keys in order, so below the last key it deleted (sweptTo) there
// are only the tombstones it left, which a scan would step over one by one
// (a profile of a sweep of 20,000 messages spent 40% there), and the keys
// written since, the lowest of which is at wheelLow.
func (w *writer) sweepFrom() []byte {
	lo := []byte{tExpiry}
	if w.sweptTo == nil {
		return lo
	}
	from := w.sweptTo
	if w.wheelLow != math.MaxInt64 {
		if low := binary.BigEndian.AppendUint64([]byte{tExpiry}, uint64(w.wheelLow)); bytes.Compare(low, from) < 0 {
			from = low
		}
	}
	return from
}

// Expire implements storage.Expirer.
func (s *Store) Expire(ctx context.Context, now int64, limit int) ([]protocol.Message, error) {
	if limit < 1 {
		return nil, nil
	}
	var out []protocol.Message
	err := s.write(ctx, "expire", func(t *txn) (error, error) {
		out = out[:0]
		type due struct {
			key  []byte
			conv string
			seq  uint64
		}
		var dues []due
		lo, hi := t.w.sweepFrom(), binary.BigEndian.AppendUint64([]byte{tExpiry}, uint64(now)+1)
		if bytes.Compare(lo, hi) >= 0 {
			return nil, nil
		}
		err := t.scanRange(lo, hi, func(k, _ []byte) error {
			if len(k) < 1+8+1+8 {
				return errCorrupt
			}
			dues = append(dues, due{key: append([]byte{}, k...), conv: string(k[9 : len(k)-9]), seq: seqOfKey(k)})
			if len(dues) == limit {
				return errStop
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if n := len(dues); n > 0 {
			t.w.sweptTo, t.w.wheelLow = dues[n-1].key, math.MaxInt64
		}
		for _, d := range dues {
			if err := t.del(d.key); err != nil {
				return nil, err
			}
			mk := msgKey(d.conv, d.seq)
			v, found, err := t.get(mk)
			if err != nil {
				return nil, err
			}
			if !found {
				continue
			}
			m, err := parseMessage(mk, v)
			if err != nil {
				return nil, err
			}
			mt, err := getMeta(t, d.conv, d.seq)
			if err != nil {
				return nil, err
			}
			shown := m
			storage.Fold(&shown, &mt, 0) // its latest text, which the index holds
			out = append(out, shown)
			if err := t.del(metaKey(d.conv, d.seq)); err != nil {
				return nil, err
			}
			if m.ClientMsgID != "" {
				if err := t.del(dedupeKey(m.From, m.ClientMsgID)); err != nil {
					return nil, err
				}
			}
			last, err := t.lastSeq(d.conv)
			if err != nil {
				return nil, err
			}
			if d.seq < last {
				err = t.del(mk)
			} else {
				stub := m
				stub.Body, stub.ClientMsgID = nil, ""
				err = t.set(mk, appendMsgValue(nil, &stub))
			}
			if err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanRange scans [lo, hi) as the txn sees it.
func (t *txn) scanRange(lo, hi []byte, fn func(k, v []byte) error) error {
	return scanRange(t.reader(), lo, hi, fn)
}

// convTimer reads conv's timer from a view.
func (v view) timer(conv string) (uint32, error) {
	val, found, err := getFrom(v.snap, timerKey(conv))
	if err != nil || !found {
		return 0, err
	}
	if len(val) != 8 {
		return 0, errCorrupt
	}
	return uint32(binary.BigEndian.Uint64(val)), nil
}
