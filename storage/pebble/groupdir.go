package pebble

import (
	"bytes"
	"context"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/storage"
)

// The directory of open groups: an o key per open group, written in the
// same batch as the group's g key, so the two never disagree.
//
//	o DirectoryName(name) 0 id → ""
//
// Group names hold no zero byte (the server refuses control characters),
// so the keys sort by (name, id).
const tOpen = 'o'

// keyOpenIndexed marks a store whose open groups all have their o key:
// stores made before the directory get them once, at Open.
var keyOpenIndexed = []byte("~o")

func openKey(name string, id int64) []byte {
	b := append([]byte{tOpen}, storage.DirectoryName(name)...)
	return appendID(append(b, 0), id)
}

// indexOpen writes or deletes the o key of a group as its record says.
func (t *txn) indexOpen(id int64, r groupRec) error {
	if r.open {
		return t.set(openKey(r.name, id), nil)
	}
	return t.del(openKey(r.name, id))
}

// SetGroupOpen implements storage.Groups.
func (s *Store) SetGroupOpen(ctx context.Context, group int64, open bool) error {
	return s.write(ctx, "set group open", func(t *txn) (error, error) {
		r, found, err := t.groupRec(group)
		if err != nil || !found {
			return storage.ErrNotFound, err
		}
		r.open = open
		if err := t.set(key(tGroup, group), r.value()); err != nil {
			return nil, err
		}
		return nil, t.indexOpen(group, r)
	})
}

// OpenGroups implements storage.Groups.
func (s *Store) OpenGroups(ctx context.Context, prefix, afterName string, afterID int64, limit int) ([]storage.Group, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	if limit < 1 {
		return nil, nil
	}
	p := append([]byte{tOpen}, storage.DirectoryName(prefix)...)
	start := p
	if afterName != "" || afterID != 0 {
		// The smallest key above the after group's.
		if a := append(openKey(afterName, afterID), 0); bytes.Compare(a, start) > 0 {
			start = a
		}
	}
	v := s.readView()
	defer v.done()
	var out []storage.Group
	err := scanRange(v.snap, start, prefixEnd(p), func(k, _ []byte) error {
		if len(out) == limit {
			return errStop
		}
		if len(k) < 10 {
			return errCorrupt
		}
		g, found, err := v.group(idAt(k, len(k)-8))
		if err != nil {
			return err
		}
		if found && g.Open {
			out = append(out, g)
		}
		return nil
	})
	if err != nil {
		return nil, s.readErr("open groups", err)
	}
	return out, nil
}

// indexOpenGroups gives the open groups of a store made before the
// directory their o keys, once.
func (s *Store) indexOpenGroups() error {
	if _, found, err := getFrom(s.db, keyOpenIndexed); err != nil || found {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	err := scanFrom(s.db, []byte{tGroup}, func(k, v []byte) error {
		if len(k) != 9 {
			return nil
		}
		r, err := parseGroup(v)
		if err != nil {
			return err
		}
		if r.open {
			return b.Set(openKey(r.name, idAt(k, 1)), nil, nil)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := b.Set(keyOpenIndexed, []byte{1}, nil); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}
