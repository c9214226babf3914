package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

// Profiles, friends, groups and bans. Their writes are rare next to
// messages: each runs as a txOp in the writer's batch, inside a savepoint,
// so a domain error (ErrGroupFull half-way through adding members) undoes
// that op alone. Their reads use plain queries on the read pool.

// txOp runs fn inside the batch transaction. fn returns a domain error to
// hand the caller (its writes are rolled back), or a failure (err) that
// fails the whole batch.
type txOp struct {
	opBase
	fn func(b *batch) (domain error, err error)
}

func (o *txOp) exec(b *batch) error {
	if _, err := b.tx.Exec(`SAVEPOINT op`); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	domain, err := o.fn(b)
	if err != nil {
		return err
	}
	if domain != nil {
		o.err = domain
		if _, err := b.tx.Exec(`ROLLBACK TO op`); err != nil {
			return fmt.Errorf("rollback to savepoint: %w", err)
		}
	}
	if _, err := b.tx.Exec(`RELEASE op`); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// write runs fn as one op of the writer.
func (s *Store) write(ctx context.Context, what string, fn func(b *batch) (error, error)) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	err := s.w.do(ctx, &txOp{fn: func(b *batch) (error, error) {
		domain, err := fn(b)
		if err != nil {
			err = fmt.Errorf("%s: %w", what, err)
		}
		return domain, err
	}})
	return err
}

// exists reports whether query, run in the batch, finds a row.
func (b *batch) exists(query string, args ...any) (bool, error) {
	var one int
	err := b.tx.QueryRow(query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (b *batch) userExists(id int64) (bool, error) {
	return b.exists(`SELECT 1 FROM users WHERE id = ?`, id)
}

// read runs a query on the read pool and calls scan for each row.
func (s *Store) read(ctx context.Context, what string, scan func(*sql.Rows) error, query string, args ...any) error {
	if s.closed.Load() {
		return storage.ErrClosed
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return s.readErr(what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return s.readErr(what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return s.readErr(what, err)
	}
	return nil
}

// profileCols are a user's public columns, for scanProfile, from users u.
const profileCols = `u.id, u.username, u.display_name, u.avatar_url`

func scanProfile(r scanner, extra ...any) (storage.Profile, error) {
	var p storage.Profile
	err := r.Scan(append([]any{&p.ID, &p.Username, &p.DisplayName, &p.AvatarURL}, extra...)...)
	return p, err
}

// Profile implements storage.Profiles.
func (s *Store) Profile(ctx context.Context, user int64) (storage.Profile, error) {
	var (
		p     storage.Profile
		found bool
	)
	err := s.read(ctx, "profile", func(r *sql.Rows) (err error) {
		p, err = scanProfile(r)
		found = true
		return err
	}, `SELECT `+profileCols+` FROM users u WHERE u.id = ?`, user)
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	return p, err
}

// SetProfile implements storage.Profiles.
func (s *Store) SetProfile(ctx context.Context, user int64, displayName, avatarURL string) (storage.Profile, error) {
	err := s.write(ctx, "set profile", func(b *batch) (error, error) {
		res, err := b.tx.Exec(`UPDATE users SET display_name = ?, avatar_url = ? WHERE id = ?`, displayName, avatarURL, user)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound, nil
		}
		return nil, nil
	})
	if err != nil {
		return storage.Profile{}, err
	}
	return s.Profile(ctx, user)
}

// prefixEnd is above every string that starts with the prefix it follows.
const prefixEnd = "\U0010FFFF"

// SearchUsers implements storage.Profiles. Usernames are ASCII, so SQL's
// lower() is the lower-cased username.
func (s *Store) SearchUsers(ctx context.Context, prefix, after string, limit int) ([]storage.Profile, error) {
	if limit < 1 {
		return nil, nil
	}
	lo := strings.ToLower(prefix)
	var out []storage.Profile
	err := s.read(ctx, "search users", func(r *sql.Rows) error {
		p, err := scanProfile(r)
		out = append(out, p)
		return err
	}, `SELECT `+profileCols+` FROM users u
		WHERE lower(u.username) >= ?1 AND lower(u.username) < ?2 AND lower(u.username) > ?3
		ORDER BY lower(u.username) LIMIT ?4`,
		lo, lo+prefixEnd, strings.ToLower(after), sqlLimit(limit)-1)
	return out, err
}

// RequestFriend implements storage.Friends.
func (s *Store) RequestFriend(ctx context.Context, from, to int64, note string, now time.Time) (mutual bool, err error) {
	err = s.write(ctx, "friend request", func(b *batch) (error, error) {
		mutual = false
		if ok, err := b.userExists(to); err != nil || !ok {
			return storage.ErrNotFound, err
		}
		if ok, err := b.exists(`SELECT 1 FROM friends WHERE user_id = ? AND friend_id = ?`, from, to); err != nil || ok {
			return storage.ErrAlreadyFriends, err
		}
		if ok, err := b.exists(`SELECT 1 FROM friend_requests WHERE from_id = ? AND to_id = ?`, from, to); err != nil || ok {
			return storage.ErrRequestExists, err
		}
		res, err := b.tx.Exec(`DELETE FROM friend_requests WHERE from_id = ? AND to_id = ?`, to, from)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			mutual = true
			return nil, befriend(b, from, to, now)
		}
		_, err = b.tx.Exec(`INSERT INTO friend_requests (from_id, to_id, note, created) VALUES (?, ?, ?, ?)`,
			from, to, note, now.UnixMilli())
		return nil, err
	})
	return mutual, err
}

func befriend(b *batch, a, c int64, now time.Time) error {
	_, err := b.tx.Exec(`INSERT INTO friends (user_id, friend_id, created) VALUES (?1, ?2, ?3), (?2, ?1, ?3)
		ON CONFLICT DO NOTHING`, a, c, now.UnixMilli())
	return err
}

// FriendRequests implements storage.Friends.
func (s *Store) FriendRequests(ctx context.Context, user int64) (incoming, outgoing []storage.FriendRequest, err error) {
	var all []storage.FriendRequest
	err = s.read(ctx, "friend requests", func(r *sql.Rows) error {
		var (
			fr      storage.FriendRequest
			created int64
		)
		err := r.Scan(&fr.From.ID, &fr.From.Username, &fr.From.DisplayName, &fr.From.AvatarURL,
			&fr.To.ID, &fr.To.Username, &fr.To.DisplayName, &fr.To.AvatarURL, &fr.Note, &created)
		fr.Created = time.UnixMilli(created)
		all = append(all, fr)
		return err
	}, `SELECT f.id, f.username, f.display_name, f.avatar_url,
			t.id, t.username, t.display_name, t.avatar_url, r.note, r.created
		FROM friend_requests r JOIN users f ON f.id = r.from_id JOIN users t ON t.id = r.to_id
		WHERE r.to_id = ?1 OR r.from_id = ?1
		ORDER BY r.created DESC, r.from_id DESC, r.to_id DESC`, user)
	for _, fr := range all {
		if fr.To.ID == user {
			incoming = append(incoming, fr)
		} else {
			outgoing = append(outgoing, fr)
		}
	}
	return incoming, outgoing, err
}

// AnswerFriend implements storage.Friends.
func (s *Store) AnswerFriend(ctx context.Context, from, user int64, accept bool, now time.Time) error {
	return s.write(ctx, "friend answer", func(b *batch) (error, error) {
		res, err := b.tx.Exec(`DELETE FROM friend_requests WHERE from_id = ? AND to_id = ?`, from, user)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound, nil
		}
		if accept {
			return nil, befriend(b, from, user, now)
		}
		return nil, nil
	})
}

// Unfriend implements storage.Friends.
func (s *Store) Unfriend(ctx context.Context, a, c int64) error {
	return s.write(ctx, "unfriend", func(b *batch) (error, error) {
		res, err := b.tx.Exec(`DELETE FROM friends WHERE (user_id = ?1 AND friend_id = ?2) OR (user_id = ?2 AND friend_id = ?1)`, a, c)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFriends, nil
		}
		return nil, nil
	})
}

// FriendsOf implements storage.Friends.
func (s *Store) FriendsOf(ctx context.Context, user int64) ([]storage.Profile, error) {
	var out []storage.Profile
	err := s.read(ctx, "friends", func(r *sql.Rows) error {
		p, err := scanProfile(r)
		out = append(out, p)
		return err
	}, `SELECT `+profileCols+` FROM friends f JOIN users u ON u.id = f.friend_id
		WHERE f.user_id = ? ORDER BY lower(u.username), u.id`, user)
	return out, err
}

// AreFriends implements storage.Friends.
func (s *Store) AreFriends(ctx context.Context, a, c int64) (bool, error) {
	found := false
	err := s.read(ctx, "are friends", func(*sql.Rows) error { found = true; return nil },
		`SELECT 1 FROM friends WHERE user_id = ? AND friend_id = ?`, a, c)
	return found, err
}

// join makes user a member of group: its cursors in the group's
// conversation start at the conversation's last seq.
func join(b *batch, group, user int64, now time.Time) error {
	conv := protocol.GroupConv(group)
	last, err := b.lastSeq(conv)
	if err != nil {
		return err
	}
	if _, err := b.tx.Exec(`INSERT INTO group_members (group_id, user_id, joined) VALUES (?, ?, ?)`,
		group, user, now.UnixMilli()); err != nil {
		return err
	}
	if _, err := b.tx.Exec(`DELETE FROM hidden WHERE user_id = ? AND conv = ?`, user, conv); err != nil {
		return err
	}
	_, err = b.tx.Exec(`INSERT INTO user_convs (user_id, conv, ack_seq, cleared_seq) VALUES (?1, ?2, ?3, ?3)
		ON CONFLICT (user_id, conv) DO UPDATE SET ack_seq = ?3, cleared_seq = ?3`, user, conv, last)
	return err
}

// leave ends user's membership of group and reports whether it was one.
func leave(b *batch, group, user int64) (bool, error) {
	res, err := b.tx.Exec(`DELETE FROM group_members WHERE group_id = ? AND user_id = ?`, group, user)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	conv := protocol.GroupConv(group)
	if _, err := b.tx.Exec(`DELETE FROM user_convs WHERE user_id = ? AND conv = ?`, user, conv); err != nil {
		return false, err
	}
	_, err = b.tx.Exec(`DELETE FROM hidden WHERE user_id = ? AND conv = ?`, user, conv)
	return err == nil, err
}

// dedupe returns ids sorted, each once.
func dedupe(ids []int64) []int64 {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// CreateGroup implements storage.Groups.
func (s *Store) CreateGroup(ctx context.Context, owner int64, name string, open bool, members []int64, max int, now time.Time) (storage.Group, error) {
	all := dedupe(append([]int64{owner}, members...))
	now = now.Truncate(time.Millisecond)
	g := storage.Group{Name: name, Owner: owner, Open: open, Members: len(all), Created: now}
	err := s.write(ctx, "create group", func(b *batch) (error, error) {
		if len(all) > max {
			return storage.ErrGroupFull, nil
		}
		for _, u := range all {
			if ok, err := b.userExists(u); err != nil || !ok {
				return storage.ErrNotFound, err
			}
		}
		res, err := b.tx.Exec(`INSERT INTO chat_groups (name, owner, open, created) VALUES (?, ?, ?, ?)`,
			name, owner, open, now.UnixMilli())
		if err != nil {
			return nil, err
		}
		if g.ID, err = res.LastInsertId(); err != nil {
			return nil, err
		}
		for _, u := range all {
			if err := join(b, g.ID, u, now); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return storage.Group{}, err
	}
	return g, nil
}

// groupCols are a group's columns with its member count, for scanGroup,
// from chat_groups g.
const groupCols = `g.id, g.name, g.owner, g.open, g.created,
	(SELECT count(*) FROM group_members m WHERE m.group_id = g.id)`

func scanGroup(r scanner) (storage.Group, error) {
	var (
		g       storage.Group
		created int64
	)
	err := r.Scan(&g.ID, &g.Name, &g.Owner, &g.Open, &created, &g.Members)
	g.Created = time.UnixMilli(created)
	return g, err
}

// Group implements storage.Groups.
func (s *Store) Group(ctx context.Context, id int64) (storage.Group, error) {
	var (
		g     storage.Group
		found bool
	)
	err := s.read(ctx, "group", func(r *sql.Rows) (err error) {
		g, err = scanGroup(r)
		found = true
		return err
	}, `SELECT `+groupCols+` FROM chat_groups g WHERE g.id = ?`, id)
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	return g, err
}

// AddMembers implements storage.Groups.
func (s *Store) AddMembers(ctx context.Context, group int64, users []int64, max int, now time.Time) ([]int64, error) {
	var added []int64
	err := s.write(ctx, "add members", func(b *batch) (error, error) {
		added = added[:0]
		if ok, err := b.exists(`SELECT 1 FROM chat_groups WHERE id = ?`, group); err != nil || !ok {
			return storage.ErrNotFound, err
		}
		var count int
		if err := b.tx.QueryRow(`SELECT count(*) FROM group_members WHERE group_id = ?`, group).Scan(&count); err != nil {
			return nil, err
		}
		for _, u := range dedupe(users) {
			if ok, err := b.userExists(u); err != nil || !ok {
				return storage.ErrNotFound, err
			}
			member, err := b.exists(`SELECT 1 FROM group_members WHERE group_id = ? AND user_id = ?`, group, u)
			if err != nil {
				return nil, err
			}
			if !member {
				added = append(added, u)
			}
		}
		if count+len(added) > max {
			return storage.ErrGroupFull, nil
		}
		for _, u := range added {
			if err := join(b, group, u, now); err != nil {
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
	return s.write(ctx, "remove member", func(b *batch) (error, error) {
		ok, err := leave(b, group, user)
		if err != nil || ok {
			return nil, err
		}
		return storage.ErrNotMember, nil
	})
}

// RenameGroup implements storage.Groups.
func (s *Store) RenameGroup(ctx context.Context, group int64, name string) error {
	return s.write(ctx, "rename group", func(b *batch) (error, error) {
		res, err := b.tx.Exec(`UPDATE chat_groups SET name = ? WHERE id = ?`, name, group)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound, nil
		}
		return nil, nil
	})
}

// SetGroupOwner implements storage.Groups.
func (s *Store) SetGroupOwner(ctx context.Context, group, owner int64) error {
	return s.write(ctx, "set group owner", func(b *batch) (error, error) {
		if ok, err := b.exists(`SELECT 1 FROM chat_groups WHERE id = ?`, group); err != nil || !ok {
			return storage.ErrNotFound, err
		}
		if ok, err := b.exists(`SELECT 1 FROM group_members WHERE group_id = ? AND user_id = ?`, group, owner); err != nil || !ok {
			return storage.ErrNotMember, err
		}
		_, err := b.tx.Exec(`UPDATE chat_groups SET owner = ? WHERE id = ?`, owner, group)
		return nil, err
	})
}

// DeleteGroup implements storage.Groups.
func (s *Store) DeleteGroup(ctx context.Context, group int64) error {
	conv := protocol.GroupConv(group)
	return s.write(ctx, "delete group", func(b *batch) (error, error) {
		res, err := b.tx.Exec(`DELETE FROM chat_groups WHERE id = ?`, group)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrNotFound, nil
		}
		for _, q := range []string{
			`DELETE FROM group_members WHERE group_id = ?1`,
			`DELETE FROM user_convs WHERE conv = ?2`,
			`DELETE FROM hidden WHERE conv = ?2`,
		} {
			if _, err := b.tx.Exec(q, group, conv); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
}

// GroupsOf implements storage.Groups.
func (s *Store) GroupsOf(ctx context.Context, user int64) ([]storage.Group, error) {
	var out []storage.Group
	err := s.read(ctx, "groups of user", func(r *sql.Rows) error {
		g, err := scanGroup(r)
		out = append(out, g)
		return err
	}, `SELECT `+groupCols+` FROM group_members gm JOIN chat_groups g ON g.id = gm.group_id
		WHERE gm.user_id = ? ORDER BY g.id`, user)
	return out, err
}

// Members implements storage.Groups.
func (s *Store) Members(ctx context.Context, group int64) ([]storage.Member, error) {
	if _, err := s.Group(ctx, group); err != nil {
		return nil, err
	}
	var out []storage.Member
	err := s.read(ctx, "members", func(r *sql.Rows) error {
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
	err := s.read(ctx, "member ids", func(r *sql.Rows) error {
		var id sql.NullInt64
		found = true
		if err := r.Scan(&id); err != nil {
			return err
		}
		if id.Valid {
			ids = append(ids, id.Int64)
		}
		return nil
	}, `SELECT gm.user_id FROM chat_groups g LEFT JOIN group_members gm ON gm.group_id = g.id
		WHERE g.id = ? ORDER BY gm.user_id`, group)
	if err == nil && !found {
		err = storage.ErrNotFound
	}
	return ids, err
}

// IsMember implements storage.Groups.
func (s *Store) IsMember(ctx context.Context, group, user int64) (bool, error) {
	found := false
	err := s.read(ctx, "is member", func(*sql.Rows) error { found = true; return nil },
		`SELECT 1 FROM group_members WHERE group_id = ? AND user_id = ?`, group, user)
	return found, err
}

// BanUser implements storage.Bans.
func (s *Store) BanUser(ctx context.Context, user int64, until time.Time, reason string, now time.Time) error {
	return s.write(ctx, "ban", func(b *batch) (error, error) {
		if ok, err := b.userExists(user); err != nil || !ok {
			return storage.ErrNotFound, err
		}
		_, err := b.tx.Exec(`INSERT INTO bans (user_id, until, reason, created) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (user_id) DO UPDATE SET until = ?2, reason = ?3, created = ?4`,
			user, until.UnixMilli(), reason, now.UnixMilli())
		return nil, err
	})
}

// UnbanUser implements storage.Bans.
func (s *Store) UnbanUser(ctx context.Context, user int64) error {
	return s.write(ctx, "unban", func(b *batch) (error, error) {
		_, err := b.tx.Exec(`DELETE FROM bans WHERE user_id = ?`, user)
		return nil, err
	})
}

// BannedUntil implements storage.Bans.
func (s *Store) BannedUntil(ctx context.Context, user int64, now time.Time) (time.Time, error) {
	var until time.Time
	err := s.read(ctx, "banned until", func(r *sql.Rows) error {
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
	err := s.read(ctx, "active bans", func(r *sql.Rows) error {
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
