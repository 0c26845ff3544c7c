package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/pomona-mdm/pomona/store"
)

func (s *Store) SetPredecessor(ctx context.Context, ref, predecessorID string) error {
	if predecessorID == "" || predecessorID == ref {
		return fmt.Errorf("%w: an enrollment cannot be its own predecessor", store.ErrConflict)
	}
	return s.tx(ctx, func(tx *Tx) error {
		var user, cur string
		err := tx.QueryRowContext(ctx, `SELECT user_id, predecessor_id FROM enrollments WHERE id = ?`, ref).Scan(&user, &cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("enrollment %w", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if cur != "" {
			return fmt.Errorf("%w: the enrollment has a predecessor already", store.ErrConflict)
		}
		// The unique index on predecessor_id refuses a predecessor that
		// another enrollment claimed (ErrConflict through s.constraint).
		res, err := tx.ExecContext(ctx, `UPDATE enrollments SET predecessor_id = ? WHERE id = ? AND predecessor_id = ''
			AND EXISTS (SELECT 1 FROM enrollments p WHERE p.id = ? AND p.user_id = ?)`, predecessorID, ref, predecessorID, user)
		if err != nil {
			return s.constraint(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: the predecessor is not an enrollment of the same user", store.ErrConflict)
		}
		return nil
	})
}
