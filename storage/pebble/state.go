package pebble

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/storage"
)

// Per-user conversation state (storage.ConvState). The flags of a
// conversation live in the user's cursor row (cursorRow.flags); the user's
// settings in an S key:
//
//	U user → one byte: settingReceiptsOff

var _ storage.ConvState = (*Store)(nil)

const tSettings = 'U'

const settingReceiptsOff = 1 << 0

// ReadCursors implements storage.ConvState: one scan of the settings of
// users who have any (few), then one iterator over the cursor table that
// seeks each user's row in key order, with the pending (not yet written)
// Acks on top.
func (s *Store) ReadCursors(ctx context.Context, conv string, users []int64) ([]uint64, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	off := make(map[int64]bool)
	err := scanFrom(v.snap, []byte{tSettings}, func(k, val []byte) error {
		if len(k) == 9 && len(val) > 0 && val[0]&settingReceiptsOff != 0 {
			off[int64(binary.BigEndian.Uint64(k[1:]))] = true
		}
		return nil
	})
	if err != nil {
		return nil, s.readErr("read cursors", err)
	}
	order := make([]int, len(users))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(users[a], users[b]) })
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: []byte{tCursor}, UpperBound: []byte{tCursor + 1}})
	if err != nil {
		return nil, s.readErr("read cursors", err)
	}
	defer it.Close()
	out := make([]uint64, len(users))
	pending := s.cursors.ofConv(conv, users)
	for _, i := range order {
		u := users[i]
		if off[u] || u < 0 {
			continue
		}
		k := cursorKey(u, conv)
		if !it.SeekGE(k) || !bytes.Equal(it.Key(), k) {
			if err := it.Error(); err != nil {
				return nil, s.readErr("read cursors", err)
			}
			continue
		}
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, s.readErr("read cursors", err)
		}
		row, err := parseCursor(val)
		if err != nil {
			return nil, s.readErr("read cursors", err)
		}
		out[i] = max(row.ack, pending[u])
	}
	return out, nil
}

// SetConvFlags implements storage.ConvState.
func (s *Store) SetConvFlags(ctx context.Context, user int64, conv string, f storage.ConvFlags) error {
	return s.write(ctx, "conv flags", func(t *txn) (error, error) {
		row, found, err := t.cursor(user, conv)
		if err != nil {
			return nil, err
		}
		if !found && !canJoin(user, conv) {
			return storage.ErrNotMember, nil
		}
		row.flags = 0
		if f.Muted {
			row.flags |= flagMuted
		}
		if f.Pinned {
			row.flags |= flagPinned
		}
		return nil, t.setCursor(user, conv, row)
	})
}

// SetUserSettings implements storage.ConvState.
func (s *Store) SetUserSettings(ctx context.Context, user int64, set storage.UserSettings) error {
	var b byte
	if set.ReceiptsOff {
		b |= settingReceiptsOff
	}
	return s.write(ctx, "settings", func(t *txn) (error, error) {
		if b == 0 {
			return nil, t.del(key(tSettings, user))
		}
		return nil, t.set(key(tSettings, user), []byte{b})
	})
}

// UserSettings implements storage.ConvState.
func (s *Store) UserSettings(ctx context.Context, user int64) (storage.UserSettings, error) {
	if err := s.begin(ctx); err != nil {
		return storage.UserSettings{}, err
	}
	defer s.exit()
	v, found, err := getFrom(s.db, key(tSettings, user))
	if err != nil {
		return storage.UserSettings{}, s.readErr("settings", err)
	}
	return storage.UserSettings{ReceiptsOff: found && len(v) > 0 && v[0]&settingReceiptsOff != 0}, nil
}
