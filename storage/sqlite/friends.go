package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/parleyim/parley/storage"
)

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
