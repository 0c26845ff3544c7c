package sqlstore

// Profile deliveries (session 6, lane gaps): an acknowledged install
// supersedes the user certificates of earlier deliveries (in
// AcknowledgeProfileItem's transaction), and an admin's retry is one
// conditional write. New functions rather than edits of profiles.go's
// (docs/profiles.md).

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// ProfileSupersededBy is profile_certs.revoked_by for a certificate
// replaced by a later delivery of its profile (CRL reason superseded,
// migration 0026).
const ProfileSupersededBy = "superseded by a new delivery of the profile"

// revokeSuperseded revokes, in tx, the user certificates issued through
// profileID to enrollmentID by any command but commandUUID: the device
// acknowledged that InstallProfile, which replaced the profile (and the
// identity of its SCEP payload) on the device. Called by
// AcknowledgeProfileItem; see store.ProfileResultStore.
func revokeSuperseded(ctx context.Context, tx *Tx, enrollmentID, profileID, commandUUID string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE profile_certs SET revoked_at = ?, revoked_by = ?
		WHERE enrollment_id = ? AND profile_id = ? AND command_uuid <> ? AND revoked_at = 0`,
		toMicros(now), ProfileSupersededBy, enrollmentID, profileID, commandUUID)
	return err
}

func (s *Store) RetryProfileItem(ctx context.Context, enrollmentID, profileID string, now time.Time) error {
	return s.tx(ctx, func(tx *Tx) error {
		var deleted int64
		err := tx.QueryRowContext(ctx, `SELECT deleted_at FROM config_profiles WHERE id = ?`, profileID).Scan(&deleted)
		if errors.Is(err, sql.ErrNoRows) || err == nil && deleted != 0 {
			return fmt.Errorf("profile %w", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		var state string
		err = tx.QueryRowContext(ctx, `SELECT state FROM profile_items WHERE enrollment_id = ? AND profile_id = ?`, enrollmentID, profileID).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("profile item %w on this device", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if state != "failed" {
			return fmt.Errorf("%w: the profile is %s on this device, not failed", store.ErrConflict, state)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE profile_items SET state = 'pending', attempts = 0, next_retry = 0, hash = '', updated_at = ?
			WHERE enrollment_id = ? AND profile_id = ? AND state = 'failed'`, toMicros(now), enrollmentID, profileID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO reconcile_queue (enrollment_id, due_at, verify, gen) VALUES (?, ?, 0, 1)
			ON CONFLICT (enrollment_id) DO UPDATE SET gen = reconcile_queue.gen + 1,
			due_at = CASE WHEN excluded.due_at < reconcile_queue.due_at THEN excluded.due_at ELSE reconcile_queue.due_at END`,
			enrollmentID, toMicros(now))
		return s.constraint(err)
	})
}
