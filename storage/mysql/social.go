package mysql

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Profiles, friends, groups and bans: each write is a short transaction;
// a domain error rolls it back.

const profileCols = `u.id, u.username, u.display_name, u.avatar_url`

func scanProfile(r scanner, extra ...any) (storage.Profile, error) {
	var p storage.Profile
	err := r.Scan(append([]any{&p.ID, &p.Username, &p.DisplayName, &p.AvatarURL}, extra...)...)
	return p, err
}

func (s *Store) profiles(ctx context.Context, what, query string, args ...any) ([]storage.Profile, error) {
	var out []storage.Profile
	err := s.each(ctx, s.db, what, func(r *sql.Rows) error {
		p, err := scanProfile(r)
		out = append(out, p)
		return err
	}, query, args...)
	return out, err
}

// Profile implements storage.Profiles.
func (s *Store) Profile(ctx context.Context, user int64) (storage.Profile, error) {
	ps, err := s.profiles(ctx, "profile", `SELECT `+profileCols+` FROM users u WHERE u.id = ?`, user)
	if err == nil && len(ps) == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Profile{}, err
	}
	return ps[0], nil
}

// SetProfile implements storage.Profiles.
func (s *Store) SetProfile(ctx context.Context, user int64, displayName, avatarURL string) (storage.Profile, error) {
	err := s.tx(ctx, "set profile", func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM users WHERE id = ? FOR UPDATE`, user); err != nil || !ok {
			return orNotFound(err)
		}
		_, err := tx.ExecContext(ctx, `UPDATE users SET display_name = ?, avatar_url = ? WHERE id = ?`, displayName, avatarURL, user)
		return err
	})
	if err != nil {
		return storage.Profile{}, err
	}
	return s.Profile(ctx, user)
}

// orNotFound is err, or ErrNotFound when the lookup simply found nothing.
func orNotFound(err error) error {
	if err != nil {
		return err
	}
	return storage.ErrNotFound
}

// SearchUsers implements storage.Profiles.
func (s *Store) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]storage.Profile, error) {
	if limit < 1 {
		return nil, nil
	}
	lo := strings.ToLower(prefix)
	return s.profiles(ctx, "search users", `SELECT `+profileCols+` FROM users u
		WHERE u.lower_name >= ? AND u.lower_name < ? AND u.lower_name > ?
		ORDER BY u.lower_name LIMIT ?`, lo, lo+"\U0010FFFF", strings.ToLower(after), limit)
}

// RequestFriend implements storage.Friends.
func (s *Store) RequestFriend(ctx context.Context, from, to int64, note string, now time.Time) (mutual bool, err error) {
	err = s.tx(ctx, "friend request", func(tx *sql.Tx) error {
		mutual = false
		// Lock both users' rows in id order, so that crossed requests
		// (from two nodes at once) serialize: the second sees the first's
		// request and makes the two friends.
		found := false
		err := s.each(ctx, tx, "friend request", func(r *sql.Rows) error {
			var id int64
			err := r.Scan(&id)
			found = found || id == to
			return err
		}, `SELECT id FROM users WHERE id IN (?, ?) ORDER BY id FOR UPDATE`, from, to)
		if err != nil {
			return err
		}
		if !found {
			return storage.ErrNotFound
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM friends WHERE user_id = ? AND friend_id = ?`, from, to); err != nil || ok {
			return orDomain(err, storage.ErrAlreadyFriends)
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM friend_requests WHERE from_id = ? AND to_id = ?`, from, to); err != nil || ok {
			return orDomain(err, storage.ErrRequestExists)
		}
		// The crossed request is looked for with a plain read first: a
		// DELETE that finds no row takes a gap lock, and two such gaps
		// and inserts into them deadlock requests of unrelated pairs. A
		// crossed request cannot appear after this read (it would need
		// the users' rows locked above); one answered meanwhile makes
		// the DELETE find nothing, and this request is recorded instead.
		crossed, err := exists(ctx, tx, `SELECT 1 FROM friend_requests WHERE from_id = ? AND to_id = ?`, to, from)
		if err != nil {
			return err
		}
		if crossed {
			res, err := tx.ExecContext(ctx, `DELETE FROM friend_requests WHERE from_id = ? AND to_id = ?`, to, from)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n > 0 {
				mutual = true
				return befriend(ctx, tx, from, to, now)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO friend_requests (from_id, to_id, note, created) VALUES (?, ?, ?, ?)`,
			from, to, note, now.UnixMilli())
		return err
	})
	return mutual, err
}

// orDomain is err, or the domain error when the check simply matched.
func orDomain(err, domain error) error {
	if err != nil {
		return err
	}
	return domain
}

func befriend(ctx context.Context, tx *sql.Tx, a, b int64, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT IGNORE INTO friends (user_id, friend_id, created) VALUES (?, ?, ?), (?, ?, ?)`,
		a, b, now.UnixMilli(), b, a, now.UnixMilli())
	return err
}

// FriendRequests implements storage.Friends.
func (s *Store) FriendRequests(ctx context.Context, user int64) (incoming, outgoing []storage.FriendRequest, err error) {
	err = s.each(ctx, s.db, "friend requests", func(r *sql.Rows) error {
		var (
			fr      storage.FriendRequest
			created int64
		)
		err := r.Scan(&fr.From.ID, &fr.From.Username, &fr.From.DisplayName, &fr.From.AvatarURL,
			&fr.To.ID, &fr.To.Username, &fr.To.DisplayName, &fr.To.AvatarURL, &fr.Note, &created)
		fr.Created = time.UnixMilli(created)
		if fr.To.ID == user {
			incoming = append(incoming, fr)
		} else {
			outgoing = append(outgoing, fr)
		}
		return err
	}, `SELECT f.id, f.username, f.display_name, f.avatar_url,
			t.id, t.username, t.display_name, t.avatar_url, r.note, r.created
		FROM friend_requests r JOIN users f ON f.id = r.from_id JOIN users t ON t.id = r.to_id
		WHERE r.to_id = ? OR r.from_id = ?
		ORDER BY r.created DESC, r.from_id DESC, r.to_id DESC`, user, user)
	return incoming, outgoing, err
}

// AnswerFriend implements storage.Friends.
func (s *Store) AnswerFriend(ctx context.Context, from, user int64, accept bool, now time.Time) error {
	return s.tx(ctx, "friend answer", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM friend_requests WHERE from_id = ? AND to_id = ?`, from, user)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		if accept {
			return befriend(ctx, tx, from, user, now)
		}
		return nil
	})
}

// Unfriend implements storage.Friends.
func (s *Store) Unfriend(ctx context.Context, a, b int64) error {
	return s.tx(ctx, "unfriend", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM friends WHERE (user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)`, a, b, b, a)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFriends
		}
		return nil
	})
}

// FriendsOf implements storage.Friends.
func (s *Store) FriendsOf(ctx context.Context, user int64) ([]storage.Profile, error) {
	return s.profiles(ctx, "friends", `SELECT `+profileCols+` FROM friends f JOIN users u ON u.id = f.friend_id
		WHERE f.user_id = ? ORDER BY u.lower_name, u.id`, user)
}

// AreFriends implements storage.Friends.
func (s *Store) AreFriends(ctx context.Context, a, b int64) (bool, error) {
	ok, err := exists(ctx, s.db, `SELECT 1 FROM friends WHERE user_id = ? AND friend_id = ?`, a, b)
	if err != nil {
		return false, s.fail("are friends", err)
	}
	return ok, nil
}

// join makes user a member of group, its cursors at the conversation's
// last seq. The conversation row is locked so that no Append slips a
// message in between.
func join(ctx context.Context, tx *sql.Tx, group, user int64, now time.Time) error {
	conv := protocol.GroupConv(group)
	var last uint64
	err := tx.QueryRowContext(ctx, `SELECT last_seq FROM conversations WHERE conv = ? FOR UPDATE`, conv).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO group_members (group_id, user_id, joined) VALUES (?, ?, ?)`, group, user, now.UnixMilli()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM hidden WHERE user_id = ? AND conv = ?`, user, conv); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO user_convs (user_id, conv, ack_seq, cleared_seq) VALUES (?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE ack_seq = VALUES(ack_seq), cleared_seq = VALUES(cleared_seq)`, user, conv, last, last)
	return err
}

func dedupe(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

func usersExist(ctx context.Context, tx *sql.Tx, ids []int64) (bool, error) {
	if len(ids) == 0 {
		return true, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	var n int
	err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE id IN (`+placeholders(len(ids), "?")+`)`, args...).Scan(&n)
	return n == len(ids), err
}

// CreateGroup implements storage.Groups.
func (s *Store) CreateGroup(ctx context.Context, owner int64, name string, open bool, members []int64, max int, now time.Time) (storage.Group, error) {
	all := dedupe(append([]int64{owner}, members...))
	now = now.Truncate(time.Millisecond)
	g := storage.Group{Name: name, Owner: owner, Open: open, Members: len(all), Created: now}
	err := s.tx(ctx, "create group", func(tx *sql.Tx) error {
		if len(all) > max {
			return storage.ErrGroupFull
		}
		if ok, err := usersExist(ctx, tx, all); err != nil || !ok {
			return orNotFound(err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO chat_groups (name, lower_name, owner, open, created) VALUES (?, ?, ?, ?, ?)`,
			name, storage.DirectoryName(name), owner, open, now.UnixMilli())
		if err != nil {
			return err
		}
		if g.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		for _, u := range all {
			if err := join(ctx, tx, g.ID, u, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return storage.Group{}, err
	}
	return g, nil
}

const groupCols = `g.id, g.name, g.owner, g.open, g.created,
	(SELECT COUNT(*) FROM group_members m WHERE m.group_id = g.id)`

func (s *Store) groups(ctx context.Context, what, query string, args ...any) ([]storage.Group, error) {
	var out []storage.Group
	err := s.each(ctx, s.db, what, func(r *sql.Rows) error {
		var (
			g       storage.Group
			created int64
		)
		err := r.Scan(&g.ID, &g.Name, &g.Owner, &g.Open, &created, &g.Members)
		g.Created = time.UnixMilli(created)
		out = append(out, g)
		return err
	}, query, args...)
	return out, err
}

// Group implements storage.Groups.
func (s *Store) Group(ctx context.Context, id int64) (storage.Group, error) {
	gs, err := s.groups(ctx, "group", `SELECT `+groupCols+` FROM chat_groups g WHERE g.id = ?`, id)
	if err == nil && len(gs) == 0 {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.Group{}, err
	}
	return gs[0], nil
}

// lockGroup locks a group's row, serializing its membership changes.
func lockGroup(ctx context.Context, tx *sql.Tx, group int64) (bool, error) {
	return exists(ctx, tx, `SELECT 1 FROM chat_groups WHERE id = ? FOR UPDATE`, group)
}

// AddMembers implements storage.Groups.
func (s *Store) AddMembers(ctx context.Context, group int64, users []int64, max int, now time.Time) ([]int64, error) {
	var added []int64
	err := s.tx(ctx, "add members", func(tx *sql.Tx) error {
		added = added[:0]
		if ok, err := lockGroup(ctx, tx, group); err != nil || !ok {
			return orNotFound(err)
		}
		want := dedupe(users)
		if ok, err := usersExist(ctx, tx, want); err != nil || !ok {
			return orNotFound(err)
		}
		current := map[int64]bool{}
		err := s.each(ctx, tx, "add members", func(r *sql.Rows) error {
			var id int64
			err := r.Scan(&id)
			current[id] = true
			return err
		}, `SELECT user_id FROM group_members WHERE group_id = ?`, group)
		if err != nil {
			return err
		}
		for _, u := range want {
			if !current[u] {
				added = append(added, u)
			}
		}
		if len(current)+len(added) > max {
			return storage.ErrGroupFull
		}
		for _, u := range added {
			if err := join(ctx, tx, group, u, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return added, nil
}

// RemoveMember implements storage.Groups.
func (s *Store) RemoveMember(ctx context.Context, group, user int64) error {
	conv := protocol.GroupConv(group)
	return s.tx(ctx, "remove member", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ? AND user_id = ?`, group, user)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotMember
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_convs WHERE user_id = ? AND conv = ?`, user, conv); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM hidden WHERE user_id = ? AND conv = ?`, user, conv)
		return err
	})
}

// RenameGroup implements storage.Groups.
func (s *Store) RenameGroup(ctx context.Context, group int64, name string) error {
	return s.tx(ctx, "rename group", func(tx *sql.Tx) error {
		if ok, err := lockGroup(ctx, tx, group); err != nil || !ok {
			return orNotFound(err)
		}
		_, err := tx.ExecContext(ctx, `UPDATE chat_groups SET name = ?, lower_name = ? WHERE id = ?`, name, storage.DirectoryName(name), group)
		return err
	})
}

// SetGroupOwner implements storage.Groups.
func (s *Store) SetGroupOwner(ctx context.Context, group, owner int64) error {
	return s.tx(ctx, "set group owner", func(tx *sql.Tx) error {
		if ok, err := lockGroup(ctx, tx, group); err != nil || !ok {
			return orNotFound(err)
		}
		if ok, err := exists(ctx, tx, `SELECT 1 FROM group_members WHERE group_id = ? AND user_id = ?`, group, owner); err != nil || !ok {
			return orDomain(err, storage.ErrNotMember)
		}
		_, err := tx.ExecContext(ctx, `UPDATE chat_groups SET owner = ? WHERE id = ?`, owner, group)
		return err
	})
}

// DeleteGroup implements storage.Groups.
func (s *Store) DeleteGroup(ctx context.Context, group int64) error {
	conv := protocol.GroupConv(group)
	return s.tx(ctx, "delete group", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM chat_groups WHERE id = ?`, group)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound
		}
		for _, q := range []struct {
			query string
			arg   any
		}{
			{`DELETE FROM group_members WHERE group_id = ?`, group},
			{`DELETE FROM user_convs WHERE conv = ?`, conv},
			{`DELETE FROM hidden WHERE conv = ?`, conv},
		} {
			if _, err := tx.ExecContext(ctx, q.query, q.arg); err != nil {
				return err
			}
		}
		return nil
	})
}

// GroupsOf implements storage.Groups.
func (s *Store) GroupsOf(ctx context.Context, user int64) ([]storage.Group, error) {
	return s.groups(ctx, "groups of user", `SELECT `+groupCols+` FROM group_members gm JOIN chat_groups g ON g.id = gm.group_id
		WHERE gm.user_id = ? ORDER BY g.id`, user)
}

// Members implements storage.Groups.
func (s *Store) Members(ctx context.Context, group int64) ([]storage.Member, error) {
	if _, err := s.Group(ctx, group); err != nil {
		return nil, err
	}
	var out []storage.Member
	err := s.each(ctx, s.db, "members", func(r *sql.Rows) error {
		var joined int64
		p, err := scanProfile(r, &joined)
		out = append(out, storage.Member{Profile: p, Joined: time.UnixMilli(joined)})
		return err
	}, `SELECT `+profileCols+`, gm.joined FROM group_members gm JOIN users u ON u.id = gm.user_id
		WHERE gm.group_id = ? ORDER BY gm.joined, gm.user_id`, group)
	return out, err
}

// MemberIDs implements storage.Groups.
func (s *Store) MemberIDs(ctx context.Context, group int64) ([]int64, error) {
	var (
		ids   []int64
		found bool
	)
	err := s.each(ctx, s.db, "member ids", func(r *sql.Rows) error {
		var id sql.NullInt64
		found = true
		err := r.Scan(&id)
		if id.Valid {
			ids = append(ids, id.Int64)
		}
		return err
	}, `SELECT gm.user_id FROM chat_groups g LEFT JOIN group_members gm ON gm.group_id = g.id
		WHERE g.id = ? ORDER BY gm.user_id`, group)
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	return ids, err
}

// IsMember implements storage.Groups.
func (s *Store) IsMember(ctx context.Context, group, user int64) (bool, error) {
	ok, err := exists(ctx, s.db, `SELECT 1 FROM group_members WHERE group_id = ? AND user_id = ?`, group, user)
	if err != nil {
		return false, s.fail("is member", err)
	}
	return ok, nil
}

// BanUser implements storage.Bans.
func (s *Store) BanUser(ctx context.Context, user int64, until time.Time, reason string, now time.Time) error {
	return s.tx(ctx, "ban", func(tx *sql.Tx) error {
		if ok, err := exists(ctx, tx, `SELECT 1 FROM users WHERE id = ?`, user); err != nil || !ok {
			return orNotFound(err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO bans (user_id, until, reason, created) VALUES (?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE until = VALUES(until), reason = VALUES(reason), created = VALUES(created)`,
			user, until.UnixMilli(), reason, now.UnixMilli())
		return err
	})
}

// UnbanUser implements storage.Bans.
func (s *Store) UnbanUser(ctx context.Context, user int64) error {
	return s.tx(ctx, "unban", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM bans WHERE user_id = ?`, user)
		return err
	})
}

// BannedUntil implements storage.Bans.
func (s *Store) BannedUntil(ctx context.Context, user int64, now time.Time) (time.Time, error) {
	var until time.Time
	err := s.each(ctx, s.db, "banned until", func(r *sql.Rows) error {
		var ms int64
		err := r.Scan(&ms)
		until = time.UnixMilli(ms)
		return err
	}, `SELECT until FROM bans WHERE user_id = ? AND until > ?`, user, now.UnixMilli())
	return until, err
}

// ActiveBans implements storage.Bans.
func (s *Store) ActiveBans(ctx context.Context, now time.Time) ([]storage.Ban, error) {
	var out []storage.Ban
	err := s.each(ctx, s.db, "active bans", func(r *sql.Rows) error {
		var (
			b              storage.Ban
			until, created int64
		)
		err := r.Scan(&b.UserID, &b.Username, &until, &b.Reason, &created)
		b.Until, b.Created = time.UnixMilli(until), time.UnixMilli(created)
		out = append(out, b)
		return err
	}, `SELECT b.user_id, u.username, b.until, b.reason, b.created FROM bans b JOIN users u ON u.id = b.user_id
		WHERE b.until > ? ORDER BY b.user_id`, now.UnixMilli())
	return out, err
}
