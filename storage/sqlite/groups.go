package sqlite

import (
	"context"
	"database/sql"
	"slices"
	"time"

	"github.com/parleyim/parley/protocol"
	"github.com/parleyim/parley/storage"
)

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
	now = time.UnixMilli(now.UnixMilli()) // as Group reads it back
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
		// Only members have a user_convs row in a group's conversation (Ack
		// and Hide make none there), so the cursors and hidden rows to drop
		// are found from the members, by primary key; the memberships go
		// last.
		for _, q := range []string{
			`DELETE FROM user_convs WHERE conv = ?2
				AND user_id IN (SELECT user_id FROM group_members WHERE group_id = ?1)`,
			`DELETE FROM hidden WHERE conv = ?2
				AND user_id IN (SELECT user_id FROM group_members WHERE group_id = ?1)`,
			`DELETE FROM group_members WHERE group_id = ?1`,
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

// Members implements storage.Groups. It reads in one transaction, so a
// group deleted meanwhile is ErrNotFound rather than a group of no one.
func (s *Store) Members(ctx context.Context, group int64) ([]storage.Member, error) {
	if s.closed.Load() {
		return nil, storage.ErrClosed
	}
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, s.readErr("members", err)
	}
	defer func() { _ = tx.Rollback() }()
	found := false
	err = s.readOn(ctx, tx, "members", func(*sql.Rows) error { found = true; return nil },
		`SELECT 1 FROM chat_groups WHERE id = ?`, group)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, storage.ErrNotFound
	}
	var out []storage.Member
	err = s.readOn(ctx, tx, "members", func(r *sql.Rows) error {
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
