package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// bury writes a tombstone for every identity certificate of the
// enrollments matching where (a condition on enrollments e with one
// argument), inside the caller's transaction, before they are deleted.
// A certificate buried twice keeps its first tombstone.
func bury(ctx context.Context, tx *Tx, where string, arg any, end store.Ending) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO tombstones (serial, sha256, enrollment_id, apple_enrollment_id, tenant_id, user_id, reason, ended_at)
		SELECT c.serial, c.sha256, e.id, COALESCE(e.apple_enrollment_id, ''), e.tenant_id, e.user_id, ?, ?
		FROM identity_certs c JOIN enrollments e ON e.id = c.enrollment_id WHERE `+where+`
		ON CONFLICT (serial) DO NOTHING`, end.Reason, toMicros(end.At), arg)
	return err
}

func (s *Store) Tombstone(ctx context.Context, serial string) (*store.Tombstone, error) {
	var t store.Tombstone
	var ended int64
	err := s.r.QueryRowContext(ctx, `SELECT serial, sha256, enrollment_id, apple_enrollment_id, tenant_id, user_id, reason, ended_at
		FROM tombstones WHERE serial = ?`, serial).Scan(&t.Serial, &t.SHA256, &t.DeviceID, &t.AppleEnrollmentID, &t.TenantID, &t.UserID, &t.Reason, &ended)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("tombstone %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	t.EndedAt = fromMicros(ended)
	return &t, nil
}

func (s *Store) PurgeTombstones(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM tombstones WHERE ended_at < ?`, toMicros(before))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
