package pebble

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// A group is a g key; each member a G key (group, user) holding the join
// time, an M key (user, group) for the user's list, and the user's cursor
// row in the group's conversation.

// groupRec is the value of a g key.
type groupRec struct {
	name    string
	owner   int64
	open    bool
	created int64 // Unix ms
}

func (r groupRec) value() []byte {
	var open uint64
	if r.open {
		open = 1
	}
	return enc(nil).str(r.name).i64(r.owner).u64(open).i64(r.created)
}

func parseGroup(v []byte) (groupRec, error) {
	d := dec{b: v}
	r := groupRec{name: d.str(), owner: d.i64(), open: d.u64() == 1, created: d.i64()}
	return r, d.err()
}

func (r groupRec) group(id int64, members int) storage.Group {
	return storage.Group{ID: id, Name: r.name, Owner: r.owner, Open: r.open, Members: members, Created: time.UnixMilli(r.created)}
}

func (t *txn) groupRec(id int64) (groupRec, bool, error) {
	v, found, err := t.get(key(tGroup, id))
	if err != nil || !found {
		return groupRec{}, false, err
	}
	r, err := parseGroup(v)
	return r, true, err
}

// memberIDs lists a group's members as the txn sees them, ascending.
func (t *txn) memberIDs(group int64) ([]int64, error) {
	return idsFrom(t.reader(), key(tMember, group))
}

// join makes user a member of group: its cursors in the group's
// conversation start at the conversation's last seq.
func (t *txn) join(group, user int64, now time.Time) error {
	conv := protocol.GroupConv(group)
	last, err := t.lastSeq(conv)
	if err != nil {
		return err
	}
	if err := t.set(key(tMember, group, user), enc(nil).i64(now.UnixMilli())); err != nil {
		return err
	}
	if err := t.set(key(tMemberOf, user, group), nil); err != nil {
		return err
	}
	if err := t.delPrefix(hiddenPrefix(user, conv)); err != nil {
		return err
	}
	return t.setCursor(user, conv, cursorRow{ack: last, cleared: last})
}

// drop removes user's membership keys of group, its cursors and hidden keys.
func (t *txn) drop(group, user int64) error {
	conv := protocol.GroupConv(group)
	for _, k := range [][]byte{key(tMember, group, user), key(tMemberOf, user, group), cursorKey(user, conv)} {
		if err := t.del(k); err != nil {
			return err
		}
	}
	return t.delPrefix(hiddenPrefix(user, conv))
}

// CreateGroup implements storage.Groups.
func (s *Store) CreateGroup(ctx context.Context, owner int64, name string, open bool, members []int64, max int, now time.Time) (storage.Group, error) {
	all := dedupe(append([]int64{owner}, members...))
	rec := groupRec{name: name, owner: owner, open: open, created: now.UnixMilli()}
	var id int64
	err := s.write(ctx, "create group", func(t *txn) (error, error) {
		if len(all) > max {
			return storage.ErrGroupFull, nil
		}
		for _, u := range all {
			if ok, err := t.userExists(u); err != nil || !ok {
				return storage.ErrNotFound, err
			}
		}
		id = t.w.lastGroup + 1
		if err := t.set(key(tGroup, id), rec.value()); err != nil {
			return nil, err
		}
		if err := t.indexOpen(id, rec); err != nil {
			return nil, err
		}
		if err := t.set(keyLastGroup, appendID(nil, id)); err != nil {
			return nil, err
		}
		t.w.lastGroup = id
		for _, u := range all {
			if err := t.join(id, u, now); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return storage.Group{}, err
	}
	return rec.group(id, len(all)), nil
}

// dedupe returns ids sorted, each once.
func dedupe(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// group reads a group and counts its members in one view.
func (v view) group(id int64) (storage.Group, bool, error) {
	val, found, err := getFrom(v.snap, key(tGroup, id))
	if err != nil || !found {
		return storage.Group{}, false, err
	}
	r, err := parseGroup(val)
	if err != nil {
		return storage.Group{}, false, err
	}
	n := 0
	err = scanFrom(v.snap, key(tMember, id), func(_, _ []byte) error { n++; return nil })
	return r.group(id, n), true, err
}

// Group implements storage.Groups.
func (s *Store) Group(ctx context.Context, id int64) (storage.Group, error) {
	if err := s.begin(ctx); err != nil {
		return storage.Group{}, err
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	g, found, err := v.group(id)
	switch {
	case err != nil:
		return storage.Group{}, s.readErr("group", err)
	case !found:
		return storage.Group{}, storage.ErrNotFound
	}
	return g, nil
}

// AddMembers implements storage.Groups.
func (s *Store) AddMembers(ctx context.Context, group int64, users []int64, max int, now time.Time) ([]int64, error) {
	var added []int64
	err := s.write(ctx, "add members", func(t *txn) (error, error) {
		added = added[:0]
		if ok, err := t.has(key(tGroup, group)); err != nil || !ok {
			return storage.ErrNotFound, err
		}
		current, err := t.memberIDs(group)
		if err != nil {
			return nil, err
		}
		for _, u := range dedupe(users) {
			if ok, err := t.userExists(u); err != nil || !ok {
				return storage.ErrNotFound, err
			}
			if _, member := slices.BinarySearch(current, u); !member {
				added = append(added, u)
			}
		}
		if len(current)+len(added) > max {
			return storage.ErrGroupFull, nil
		}
		for _, u := range added {
			if err := t.join(group, u, now); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	return added, nil
}

// RemoveMember implements storage.Groups.
func (s *Store) RemoveMember(ctx context.Context, group, user int64) error {
	return s.write(ctx, "remove member", func(t *txn) (error, error) {
		if ok, err := t.has(key(tMember, group, user)); err != nil || !ok {
			return storage.ErrNotMember, err
		}
		return nil, t.drop(group, user)
	})
}

// RenameGroup implements storage.Groups.
func (s *Store) RenameGroup(ctx context.Context, group int64, name string) error {
	return s.write(ctx, "rename group", func(t *txn) (error, error) {
		r, found, err := t.groupRec(group)
		if err != nil || !found {
			return storage.ErrNotFound, err
		}
		if r.open {
			if err := t.del(openKey(r.name, group)); err != nil {
				return nil, err
			}
		}
		r.name = name
		if err := t.set(key(tGroup, group), r.value()); err != nil {
			return nil, err
		}
		return nil, t.indexOpen(group, r)
	})
}

// SetGroupOwner implements storage.Groups.
func (s *Store) SetGroupOwner(ctx context.Context, group, owner int64) error {
	return s.write(ctx, "set group owner", func(t *txn) (error, error) {
		r, found, err := t.groupRec(group)
		if err != nil || !found {
			return storage.ErrNotFound, err
		}
		if ok, err := t.has(key(tMember, group, owner)); err != nil || !ok {
			return storage.ErrNotMember, err
		}
		r.owner = owner
		return nil, t.set(key(tGroup, group), r.value())
	})
}

// DeleteGroup implements storage.Groups. The members' cursors go with their
// memberships; the messages stay.
func (s *Store) DeleteGroup(ctx context.Context, group int64) error {
	return s.write(ctx, "delete group", func(t *txn) (error, error) {
		r, found, err := t.groupRec(group)
		if err != nil || !found {
			return storage.ErrNotFound, err
		}
		if err := t.del(openKey(r.name, group)); err != nil {
			return nil, err
		}
		ids, err := t.memberIDs(group)
		if err != nil {
			return nil, err
		}
		for _, u := range ids {
			if err := t.drop(group, u); err != nil {
				return nil, err
			}
		}
		return nil, t.del(key(tGroup, group))
	})
}

// GroupsOf implements storage.Groups.
func (s *Store) GroupsOf(ctx context.Context, user int64) ([]storage.Group, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	ids, err := idsFrom(v.snap, key(tMemberOf, user))
	if err != nil {
		return nil, s.readErr("groups of user", err)
	}
	var out []storage.Group
	for _, id := range ids {
		g, found, err := v.group(id)
		if err != nil {
			return nil, s.readErr("groups of user", err)
		}
		if found {
			out = append(out, g)
		}
	}
	return out, nil
}

// Members implements storage.Groups. It reads one snapshot, so a group
// deleted meanwhile is ErrNotFound rather than a group of no one.
func (s *Store) Members(ctx context.Context, group int64) ([]storage.Member, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	if _, found, err := getFrom(v.snap, key(tGroup, group)); err != nil {
		return nil, s.readErr("members", err)
	} else if !found {
		return nil, storage.ErrNotFound
	}
	var out []storage.Member
	err := scanFrom(v.snap, key(tMember, group), func(k, val []byte) error {
		d := dec{b: val}
		out = append(out, storage.Member{Profile: storage.Profile{ID: idAt(k, 9)}, Joined: time.UnixMilli(d.i64())})
		return d.err()
	})
	if err != nil {
		return nil, s.readErr("members", err)
	}
	for i := range out {
		ps, err := v.profiles([]int64{out[i].ID})
		if err != nil {
			return nil, s.readErr("members", err)
		}
		if len(ps) == 1 {
			out[i].Profile = ps[0]
		}
	}
	slices.SortStableFunc(out, func(a, b storage.Member) int {
		return cmp.Or(a.Joined.Compare(b.Joined), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// MemberIDs implements storage.Groups.
func (s *Store) MemberIDs(ctx context.Context, group int64) ([]int64, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	if _, found, err := getFrom(v.snap, key(tGroup, group)); err != nil {
		return nil, s.readErr("member ids", err)
	} else if !found {
		return nil, storage.ErrNotFound
	}
	ids, err := idsFrom(v.snap, key(tMember, group))
	if err != nil {
		return nil, s.readErr("member ids", err)
	}
	return ids, nil
}

// IsMember implements storage.Groups.
func (s *Store) IsMember(ctx context.Context, group, user int64) (bool, error) {
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	defer s.exit()
	_, found, err := getFrom(s.db, key(tMember, group, user))
	if err != nil {
		return false, s.readErr("is member", err)
	}
	return found, nil
}
