package pebble

import (
	"cmp"
	"context"
	"encoding/binary"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleyim/parley/storage"
)

// A friendship is two f keys, one per direction; a pending request an r key
// (from, to) with an R key (to, from) beside it for the incoming list.

// requestValue is a request's note and creation time.
func requestValue(note string, created time.Time) []byte {
	return enc(nil).str(note).i64(created.UnixMilli())
}

func idAt(k []byte, off int) int64 { return int64(binary.BigEndian.Uint64(k[off:])) }

// idsFrom lists, in key order, the second ids of the keys under p (a type
// byte and an id, then the id it lists: at offset 9).
func idsFrom(r pebble.Reader, p []byte) ([]int64, error) {
	var ids []int64
	err := scanFrom(r, p, func(k, _ []byte) error {
		ids = append(ids, idAt(k, 9))
		return nil
	})
	return ids, err
}

// RequestFriend implements storage.Friends.
func (s *Store) RequestFriend(ctx context.Context, from, to int64, note string, now time.Time) (mutual bool, err error) {
	err = s.write(ctx, "friend request", func(t *txn) (error, error) {
		mutual = false
		if ok, err := t.userExists(to); err != nil || !ok {
			return storage.ErrNotFound, err
		}
		if ok, err := t.has(key(tFriend, from, to)); err != nil || ok {
			return storage.ErrAlreadyFriends, err
		}
		if ok, err := t.has(key(tRequest, from, to)); err != nil || ok {
			return storage.ErrRequestExists, err
		}
		asked, err := t.has(key(tRequest, to, from))
		if err != nil {
			return nil, err
		}
		if asked {
			mutual = true
			if err := t.dropRequest(to, from); err != nil {
				return nil, err
			}
			return nil, t.befriend(from, to, now)
		}
		if err := t.set(key(tRequest, from, to), requestValue(note, now)); err != nil {
			return nil, err
		}
		return nil, t.set(key(tRequestTo, to, from), nil)
	})
	return mutual, err
}

func (t *txn) dropRequest(from, to int64) error {
	if err := t.del(key(tRequest, from, to)); err != nil {
		return err
	}
	return t.del(key(tRequestTo, to, from))
}

func (t *txn) befriend(a, c int64, now time.Time) error {
	v := enc(nil).i64(now.UnixMilli())
	if err := t.set(key(tFriend, a, c), v); err != nil {
		return err
	}
	return t.set(key(tFriend, c, a), v)
}

// FriendRequests implements storage.Friends.
func (s *Store) FriendRequests(ctx context.Context, user int64) (incoming, outgoing []storage.FriendRequest, err error) {
	if err := s.begin(ctx); err != nil {
		return nil, nil, err
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	type req struct {
		from, to int64
		note     string
		created  int64
	}
	var all []req
	read := func(from, to int64) error {
		val, found, err := getFrom(v.snap, key(tRequest, from, to))
		if err != nil || !found {
			return err
		}
		d := dec{b: val}
		r := req{from: from, to: to, note: d.str(), created: d.i64()}
		all = append(all, r)
		return d.err()
	}
	froms, err := idsFrom(v.snap, key(tRequestTo, user))
	for _, f := range froms {
		err = cmpErr(err, read(f, user))
	}
	err = cmpErr(err, scanFrom(v.snap, key(tRequest, user), func(k, val []byte) error {
		d := dec{b: val}
		all = append(all, req{from: user, to: idAt(k, 9), note: d.str(), created: d.i64()})
		return d.err()
	}))
	if err != nil {
		return nil, nil, s.readErr("friend requests", err)
	}
	slices.SortFunc(all, func(a, b req) int {
		return cmp.Or(cmp.Compare(b.created, a.created), cmp.Compare(b.from, a.from), cmp.Compare(b.to, a.to))
	})
	for _, r := range all {
		ps, err := v.profiles([]int64{r.from, r.to})
		if err != nil {
			return nil, nil, s.readErr("friend requests", err)
		}
		if len(ps) != 2 {
			continue // a user is gone
		}
		fr := storage.FriendRequest{From: ps[0], To: ps[1], Note: r.note, Created: time.UnixMilli(r.created)}
		if r.to == user {
			incoming = append(incoming, fr)
		} else {
			outgoing = append(outgoing, fr)
		}
	}
	return incoming, outgoing, nil
}

// cmpErr keeps the first error.
func cmpErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

// AnswerFriend implements storage.Friends.
func (s *Store) AnswerFriend(ctx context.Context, from, user int64, accept bool, now time.Time) error {
	return s.write(ctx, "friend answer", func(t *txn) (error, error) {
		if ok, err := t.has(key(tRequest, from, user)); err != nil || !ok {
			return storage.ErrNotFound, err
		}
		if err := t.dropRequest(from, user); err != nil {
			return nil, err
		}
		if accept {
			return nil, t.befriend(from, user, now)
		}
		return nil, nil
	})
}

// Unfriend implements storage.Friends.
func (s *Store) Unfriend(ctx context.Context, a, c int64) error {
	return s.write(ctx, "unfriend", func(t *txn) (error, error) {
		if ok, err := t.has(key(tFriend, a, c)); err != nil || !ok {
			return storage.ErrNotFriends, err
		}
		if err := t.del(key(tFriend, a, c)); err != nil {
			return nil, err
		}
		return nil, t.del(key(tFriend, c, a))
	})
}

// FriendsOf implements storage.Friends.
func (s *Store) FriendsOf(ctx context.Context, user int64) ([]storage.Profile, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	ids, err := idsFrom(v.snap, key(tFriend, user))
	if err != nil {
		return nil, s.readErr("friends", err)
	}
	out, err := v.profiles(ids)
	if err != nil {
		return nil, s.readErr("friends", err)
	}
	slices.SortFunc(out, func(a, b storage.Profile) int {
		return cmp.Or(cmp.Compare(lowerOf(a), lowerOf(b)), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// AreFriends implements storage.Friends.
func (s *Store) AreFriends(ctx context.Context, a, c int64) (bool, error) {
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	defer s.exit()
	_, found, err := getFrom(s.db, key(tFriend, a, c))
	if err != nil {
		return false, s.readErr("are friends", err)
	}
	return found, nil
}
