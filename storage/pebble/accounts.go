package pebble

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"time"

	"github.com/parleyim/parley/storage"
)

// Accounts and resume tokens.

// userRec is the value of a u key.
type userRec struct {
	username    string
	passHash    []byte
	created     int64 // Unix ms
	displayName string
	avatarURL   string
}

func (r userRec) value() []byte {
	return enc(nil).str(r.username).bytes(r.passHash).i64(r.created).str(r.displayName).str(r.avatarURL)
}

func parseUser(v []byte) (userRec, error) {
	d := dec{b: v}
	r := userRec{username: d.str(), passHash: d.bytes(), created: d.i64(), displayName: d.str(), avatarURL: d.str()}
	return r, d.err()
}

func (r userRec) user(id int64) storage.User {
	return storage.User{ID: id, Username: r.username, PassHash: r.passHash, Created: time.UnixMilli(r.created)}
}

func (r userRec) profile(id int64) storage.Profile {
	return storage.Profile{ID: id, Username: r.username, DisplayName: r.displayName, AvatarURL: r.avatarURL}
}

// searchName is the form of a username SearchUsers orders and matches by.
func searchName(username string) string { return strings.ToLower(username) }

// CreateUser implements storage.Users.
func (s *Store) CreateUser(ctx context.Context, username string, passHash []byte) (storage.User, error) {
	rec := userRec{username: username, passHash: bytes.Clone(passHash), created: time.Now().UnixMilli()}
	if rec.passHash == nil {
		rec.passHash = []byte{}
	}
	fold := storage.FoldName(username)
	var id int64
	err := s.write(ctx, "create user", func(t *txn) (error, error) {
		taken, err := t.has(nameKey(fold))
		if err != nil || taken {
			return storage.ErrUsernameTaken, err
		}
		id = t.w.lastUser + 1
		for _, kv := range [][2][]byte{
			{key(tUser, id), rec.value()},
			{nameKey(fold), appendID(nil, id)},
			{lowerKey(searchName(username), id), nil},
		} {
			if err := t.set(kv[0], kv[1]); err != nil {
				return nil, err
			}
		}
		t.w.lastUser = id
		return nil, nil
	})
	if err != nil {
		return storage.User{}, err
	}
	return rec.user(id), nil
}

// UserByName implements storage.Users.
func (s *Store) UserByName(ctx context.Context, username string) (storage.User, error) {
	if !s.enter() {
		return storage.User{}, storage.ErrClosed
	}
	defer s.exit()
	v, found, err := getFrom(s.db, nameKey(storage.FoldName(username)))
	switch {
	case err != nil:
		return storage.User{}, s.readErr("read user", err)
	case !found:
		return storage.User{}, storage.ErrNotFound
	case len(v) != 8:
		return storage.User{}, s.readErr("read user", errCorrupt)
	}
	return s.userByID(int64(binary.BigEndian.Uint64(v)))
}

// UserByID implements storage.Users.
func (s *Store) UserByID(ctx context.Context, id int64) (storage.User, error) {
	if !s.enter() {
		return storage.User{}, storage.ErrClosed
	}
	defer s.exit()
	return s.userByID(id)
}

func (s *Store) userByID(id int64) (storage.User, error) {
	r, found, err := s.userRec(id)
	switch {
	case err != nil:
		return storage.User{}, s.readErr("read user", err)
	case !found:
		return storage.User{}, storage.ErrNotFound
	}
	return r.user(id), nil
}

func (s *Store) userRec(id int64) (userRec, bool, error) {
	v, found, err := getFrom(s.db, key(tUser, id))
	if err != nil || !found {
		return userRec{}, false, err
	}
	r, err := parseUser(v)
	return r, true, err
}

// txn reads of users, seeing the batch.

func (t *txn) userRec(id int64) (userRec, bool, error) {
	v, found, err := t.get(key(tUser, id))
	if err != nil || !found {
		return userRec{}, false, err
	}
	r, err := parseUser(v)
	return r, true, err
}

func (t *txn) userExists(id int64) (bool, error) { return t.has(key(tUser, id)) }

// A token value: user id, expiry in Unix ms.
func tokenValue(user, expires int64) []byte { return enc(nil).i64(user).i64(expires) }

// CreateToken implements storage.Tokens. Expiry is kept to the millisecond.
func (s *Store) CreateToken(ctx context.Context, hash []byte, userID int64, expires time.Time) error {
	hash = bytes.Clone(hash)
	exp := expires.UnixMilli()
	return s.write(ctx, "create token", func(t *txn) (error, error) {
		if prev, found, err := t.get(tokenKey(hash)); err != nil {
			return nil, err
		} else if found && len(prev) == 16 {
			if err := t.del(userTokenKey(int64(binary.BigEndian.Uint64(prev)), hash)); err != nil {
				return nil, err
			}
		}
		if err := t.set(tokenKey(hash), tokenValue(userID, exp)); err != nil {
			return nil, err
		}
		return nil, t.set(userTokenKey(userID, hash), nil)
	})
}

// TokenUser implements storage.Tokens. A token expires at its expiry
// millisecond: it is found while now is before it.
func (s *Store) TokenUser(ctx context.Context, hash []byte, now time.Time) (int64, time.Time, error) {
	if !s.enter() {
		return 0, time.Time{}, storage.ErrClosed
	}
	defer s.exit()
	v, found, err := getFrom(s.db, tokenKey(hash))
	switch {
	case err != nil:
		return 0, time.Time{}, s.readErr("read token", err)
	case !found:
		return 0, time.Time{}, storage.ErrNotFound
	}
	d := dec{b: v}
	user, exp := d.i64(), d.i64()
	if err := d.err(); err != nil {
		return 0, time.Time{}, s.readErr("read token", err)
	}
	if exp <= now.UnixMilli() {
		return 0, time.Time{}, storage.ErrNotFound
	}
	return user, time.UnixMilli(exp), nil
}

// DeleteToken implements storage.Tokens.
func (s *Store) DeleteToken(ctx context.Context, hash []byte) error {
	hash = bytes.Clone(hash)
	return s.write(ctx, "delete token", func(t *txn) (error, error) {
		v, found, err := t.get(tokenKey(hash))
		if err != nil || !found {
			return nil, err
		}
		if len(v) == 16 {
			if err := t.del(userTokenKey(int64(binary.BigEndian.Uint64(v)), hash)); err != nil {
				return nil, err
			}
		}
		return nil, t.del(tokenKey(hash))
	})
}

// DeleteUserTokens implements storage.Tokens.
func (s *Store) DeleteUserTokens(ctx context.Context, userID int64) error {
	return s.write(ctx, "delete user tokens", func(t *txn) (error, error) {
		p := key(tUserToken, userID)
		var hashes [][]byte
		err := t.scan(p, func(k, _ []byte) error {
			hashes = append(hashes, bytes.Clone(k[len(p):]))
			return nil
		})
		if err != nil {
			return nil, err
		}
		for _, h := range hashes {
			if err := t.del(tokenKey(h)); err != nil {
				return nil, err
			}
		}
		return nil, t.delPrefix(p)
	})
}
