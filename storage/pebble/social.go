package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"

	"github.com/parleyim/parley/storage"
)

// Profiles, and what friends.go, groups.go and bans.go share. Their writes
// are rare next to messages: each runs as a txOp in the writer's batch,
// reading through the batch, and checks everything before it writes, so a
// domain error leaves nothing behind. Their reads run on the caller's
// goroutine.

// begin starts a read: ErrClosed after Close, ctx.Err() once ctx is done.
// A nil error is paired with s.exit().
func (s *Store) begin(ctx context.Context) error {
	if !s.enter() {
		return storage.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		s.exit()
		return err
	}
	return nil
}

// profiles reads the profiles of ids, in their order; missing users are
// left out.
func (v view) profiles(ids []int64) ([]storage.Profile, error) {
	out := make([]storage.Profile, 0, len(ids))
	for _, id := range ids {
		val, found, err := getFrom(v.snap, key(tUser, id))
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		r, err := parseUser(val)
		if err != nil {
			return nil, err
		}
		out = append(out, r.profile(id))
	}
	return out, nil
}

// Profile implements storage.Profiles.
func (s *Store) Profile(ctx context.Context, user int64) (storage.Profile, error) {
	if err := s.begin(ctx); err != nil {
		return storage.Profile{}, err
	}
	defer s.exit()
	r, found, err := s.userRec(user)
	switch {
	case err != nil:
		return storage.Profile{}, s.readErr("profile", err)
	case !found:
		return storage.Profile{}, storage.ErrNotFound
	}
	return r.profile(user), nil
}

// SetProfile implements storage.Profiles. The profile returned is the one
// the write stored.
func (s *Store) SetProfile(ctx context.Context, user int64, displayName, avatarURL string) (storage.Profile, error) {
	var p storage.Profile
	err := s.write(ctx, "set profile", func(t *txn) (error, error) {
		r, found, err := t.userRec(user)
		if err != nil || !found {
			return storage.ErrNotFound, err
		}
		r.displayName, r.avatarURL = displayName, avatarURL
		p = r.profile(user)
		return nil, t.set(key(tUser, user), r.value())
	})
	if err != nil {
		return storage.Profile{}, err
	}
	return p, nil
}

// SearchUsers implements storage.Profiles: a range of the l keys, ordered by
// the lower-cased username (the server admits ASCII usernames only). The
// prefix is literal: '%' and '_' in it are plain characters.
func (s *Store) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]storage.Profile, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	if limit < 1 {
		return nil, nil
	}
	p := append([]byte{tLower}, searchName(prefix)...)
	start := p
	if after != "" {
		// Past every key of the lower-cased after: lower 0 id < lower 1.
		a := append(append([]byte{tLower}, searchName(after)...), 1)
		if bytes.Compare(a, start) > 0 {
			start = a
		}
	}
	v := s.readView()
	defer v.done()
	var ids []int64
	err := scanRange(v.snap, start, prefixEnd(p), func(k, _ []byte) error {
		if len(ids) == limit {
			return errStop
		}
		if len(k) >= 9 {
			ids = append(ids, int64(binary.BigEndian.Uint64(k[len(k)-8:])))
		}
		return nil
	})
	if err != nil {
		return nil, s.readErr("search users", err)
	}
	out, err := v.profiles(ids)
	if err != nil {
		return nil, s.readErr("search users", err)
	}
	return out, nil
}

// lowerOf is for sorting profiles as SearchUsers and FriendsOf order them.
func lowerOf(p storage.Profile) string { return strings.ToLower(p.Username) }
