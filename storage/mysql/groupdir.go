package mysql

import (
	"context"
	"database/sql"

	"github.com/parleyim/parley/storage"
)

// SetGroupOpen implements storage.Groups.
func (s *Store) SetGroupOpen(ctx context.Context, group int64, open bool) error {
	return s.tx(ctx, "set group open", func(tx *sql.Tx) error {
		if ok, err := lockGroup(ctx, tx, group); err != nil || !ok {
			return orNotFound(err)
		}
		_, err := tx.ExecContext(ctx, `UPDATE chat_groups SET open = ? WHERE id = ?`, open, group)
		return err
	})
}

// OpenGroups implements storage.Groups. lower_name is bytes, so the order
// is Go's, as in the embedded store; the index (open, lower_name, id)
// serves the range.
func (s *Store) OpenGroups(ctx context.Context, prefix, afterName string, afterID int64, limit int) ([]storage.Group, error) {
	if limit < 1 {
		return nil, nil
	}
	lo, after := storage.DirectoryName(prefix), storage.DirectoryName(afterName)
	return s.groups(ctx, "open groups", `SELECT `+groupCols+` FROM chat_groups g
		WHERE g.open = TRUE AND g.lower_name >= ? AND g.lower_name < ?
			AND (g.lower_name > ? OR (g.lower_name = ? AND g.id > ?))
		ORDER BY g.lower_name, g.id LIMIT ?`, lo, lo+"\U0010FFFF", after, after, afterID, limit)
}
