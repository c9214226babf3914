package pebble

import (
	"context"
	"time"

	"github.com/parleyim/parley/storage"
)

// A ban is a b key: until, reason, created.

type banRec struct {
	until, created int64 // Unix ms
	reason         string
}

func (r banRec) value() []byte { return enc(nil).i64(r.until).str(r.reason).i64(r.created) }

func parseBan(v []byte) (banRec, error) {
	d := dec{b: v}
	r := banRec{until: d.i64(), reason: d.str(), created: d.i64()}
	return r, d.err()
}

// BanUser implements storage.Bans.
func (s *Store) BanUser(ctx context.Context, user int64, until time.Time, reason string, now time.Time) error {
	rec := banRec{until: until.UnixMilli(), reason: reason, created: now.UnixMilli()}
	return s.write(ctx, "ban", func(t *txn) (error, error) {
		if ok, err := t.userExists(user); err != nil || !ok {
			return storage.ErrNotFound, err
		}
		return nil, t.set(key(tBan, user), rec.value())
	})
}

// UnbanUser implements storage.Bans.
func (s *Store) UnbanUser(ctx context.Context, user int64) error {
	return s.write(ctx, "unban", func(t *txn) (error, error) {
		return nil, t.del(key(tBan, user))
	})
}

// BannedUntil implements storage.Bans.
func (s *Store) BannedUntil(ctx context.Context, user int64, now time.Time) (time.Time, error) {
	if err := s.begin(ctx); err != nil {
		return time.Time{}, err
	}
	defer s.exit()
	v, found, err := getFrom(s.db, key(tBan, user))
	if err != nil {
		return time.Time{}, s.readErr("banned until", err)
	}
	if !found {
		return time.Time{}, nil
	}
	r, err := parseBan(v)
	if err != nil {
		return time.Time{}, s.readErr("banned until", err)
	}
	if r.until <= now.UnixMilli() {
		return time.Time{}, nil
	}
	return time.UnixMilli(r.until), nil
}

// ActiveBans implements storage.Bans.
func (s *Store) ActiveBans(ctx context.Context, now time.Time) ([]storage.Ban, error) {
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	defer s.exit()
	v := s.readView()
	defer v.done()
	var out []storage.Ban
	ms := now.UnixMilli()
	err := scanFrom(v.snap, []byte{tBan}, func(k, val []byte) error {
		r, err := parseBan(val)
		if err != nil || r.until <= ms {
			return err
		}
		out = append(out, storage.Ban{UserID: idAt(k, 1), Until: time.UnixMilli(r.until), Reason: r.reason, Created: time.UnixMilli(r.created)})
		return nil
	})
	if err != nil {
		return nil, s.readErr("active bans", err)
	}
	for i := range out {
		ps, err := v.profiles([]int64{out[i].UserID})
		if err != nil {
			return nil, s.readErr("active bans", err)
		}
		if len(ps) == 1 {
			out[i].Username = ps[0].Username
		}
	}
	return out, nil
}
