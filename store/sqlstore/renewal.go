package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

const renewalColumns = `serial, enrollment_id, command_uuid, status, attempts, error, new_serial, queued_at, updated_at`

func scanRenewal(sc scanner) (*store.Renewal, error) {
	var r store.Renewal
	var queued, updated int64
	err := sc.Scan(&r.Serial, &r.DeviceID, &r.CommandUUID, &r.Status, &r.Attempts, &r.Error, &r.NewSerial, &queued, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("renewal %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	r.QueuedAt, r.UpdatedAt = fromMicros(queued), fromMicros(updated)
	return &r, nil
}

func (s *Store) RenewalCandidates(ctx context.Context, after time.Time, afterSerial string, before time.Time, limit int) ([]store.RenewalCandidate, error) {
	if limit <= 0 {
		limit = 500
	}
	a := toMicros(after)
	// The newest certificate of each enrollment: a renewed one has a
	// successor issued later; a retried first SCEP leaves an older one.
	rows, err := s.r.QueryContext(ctx, `SELECT c.serial, c.enrollment_id, c.not_after,
		COALESCE(r.command_uuid, ''), COALESCE(r.status, ''), COALESCE(r.attempts, 0), COALESCE(r.error, ''), COALESCE(r.new_serial, ''),
		COALESCE(r.queued_at, 0), COALESCE(r.updated_at, 0)
		FROM identity_certs c
		JOIN enrollments e ON e.id = c.enrollment_id
		LEFT JOIN renewals r ON r.serial = c.serial
		WHERE c.not_after < ? AND (c.not_after > ? OR (c.not_after = ? AND c.serial > ?))
		AND e.status = ?
		AND NOT EXISTS (SELECT 1 FROM identity_certs n WHERE n.enrollment_id = c.enrollment_id AND n.issued_at > c.issued_at)
		ORDER BY c.not_after, c.serial LIMIT ?`, toMicros(before), a, a, afterSerial, store.EnrollmentEnrolled, limit)
	if err != nil {
		return nil, err
	}
	return scanRenewalCandidates(rows)
}

func (s *Store) StartRenewal(ctx context.Context, r *store.Renewal, ch *store.SCEPChallenge) error {
	return s.tx(ctx, func(tx *Tx) error {
		cur, err := scanRenewal(tx.QueryRowContext(ctx, `SELECT `+renewalColumns+` FROM renewals WHERE serial = ?`, r.Serial))
		switch {
		case errors.Is(err, store.ErrNotFound):
			r.Attempts = 1
			_, err = tx.ExecContext(ctx, `INSERT INTO renewals (`+renewalColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				r.Serial, r.DeviceID, r.CommandUUID, store.RenewalQueued, r.Attempts, "", "", toMicros(r.QueuedAt), toMicros(r.QueuedAt))
		case err != nil:
			return err
		case cur.Status != store.RenewalFailed:
			return fmt.Errorf("%w: the renewal of %s is %s already", store.ErrConflict, r.Serial, cur.Status)
		default:
			r.Attempts = cur.Attempts + 1
			_, err = tx.ExecContext(ctx, `UPDATE renewals SET command_uuid = ?, status = ?, attempts = ?, error = '', queued_at = ?, updated_at = ?
				WHERE serial = ?`, r.CommandUUID, store.RenewalQueued, r.Attempts, toMicros(r.QueuedAt), toMicros(r.QueuedAt), r.Serial)
		}
		if err != nil {
			return s.constraint(err)
		}
		r.Status, r.Error, r.UpdatedAt = store.RenewalQueued, "", r.QueuedAt
		_, err = tx.ExecContext(ctx, `INSERT INTO scep_challenges (hash, enrollment_id, expires_at, used_at, kind, renews) VALUES (?, ?, ?, 0, ?, ?)`,
			ch.Hash, r.DeviceID, toMicros(ch.ExpiresAt), store.ChallengeRenewal, r.Serial)
		return s.constraint(err)
	})
}

func (s *Store) SetRenewalCommand(ctx context.Context, serial, commandUUID string, now time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE renewals SET command_uuid = ?, updated_at = ? WHERE serial = ?`, commandUUID, toMicros(now), serial)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("renewal %w", store.ErrNotFound)
	}
	return nil
}

func (s *Store) RenewalByCommand(ctx context.Context, commandUUID string) (*store.Renewal, error) {
	if commandUUID == "" {
		return nil, fmt.Errorf("renewal %w", store.ErrNotFound)
	}
	return scanRenewal(s.r.QueryRowContext(ctx, `SELECT `+renewalColumns+` FROM renewals WHERE command_uuid = ?`, commandUUID))
}

func (s *Store) LatestRenewal(ctx context.Context, enrollmentID string) (*store.Renewal, error) {
	return scanRenewal(s.r.QueryRowContext(ctx, `SELECT `+renewalColumns+` FROM renewals WHERE enrollment_id = ?
		ORDER BY queued_at DESC, serial DESC LIMIT 1`, enrollmentID))
}

func (s *Store) FailRenewal(ctx context.Context, serial, reason string, now time.Time) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE renewals SET status = ?, error = ?, updated_at = ? WHERE serial = ? AND status = ?`,
		store.RenewalFailed, reason, toMicros(now), serial, store.RenewalQueued)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func (s *Store) StaleRenewals(ctx context.Context, before time.Time, limit int) ([]store.Renewal, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+renewalColumns+` FROM renewals WHERE status = ? AND updated_at < ?
		ORDER BY updated_at LIMIT ?`, store.RenewalQueued, toMicros(before), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Renewal
	for rows.Next() {
		r, err := scanRenewal(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}

// completeRenewal marks the renewal of serial done (inside the SCEP
// challenge's transaction).
func (s *Store) completeRenewal(ctx context.Context, tx *Tx, serial, newSerial string, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE renewals SET status = ?, new_serial = ?, error = '', updated_at = ? WHERE serial = ?`,
		store.RenewalDone, newSerial, toMicros(now), serial)
	return err
}

func (s *Store) PutProfileKeys(ctx context.Context, enrollmentID string, k store.ProfileKeys, now time.Time) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO enrollment_profiles (enrollment_id, managed_apple_id, topic, server_url, checkin_url, get_token, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (enrollment_id) DO UPDATE SET managed_apple_id = excluded.managed_apple_id,
		topic = excluded.topic, server_url = excluded.server_url, checkin_url = excluded.checkin_url, get_token = excluded.get_token,
		updated_at = excluded.updated_at`,
		enrollmentID, k.ManagedAppleID, k.Topic, k.ServerURL, k.CheckInURL, boolInt(k.GetToken), toMicros(now))
	return s.constraint(err)
}

func (s *Store) ProfileKeys(ctx context.Context, enrollmentID string) (*store.ProfileKeys, error) {
	var k store.ProfileKeys
	var getToken int64
	err := s.r.QueryRowContext(ctx, `SELECT managed_apple_id, topic, server_url, checkin_url, get_token FROM enrollment_profiles WHERE enrollment_id = ?`,
		enrollmentID).Scan(&k.ManagedAppleID, &k.Topic, &k.ServerURL, &k.CheckInURL, &getToken)
	k.GetToken = getToken != 0
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("profile keys %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// scanRenewalCandidates reads rows of (serial, enrollment id, not_after,
// and the renewal's command_uuid, status, attempts, error, new_serial,
// queued_at, updated_at — empty when none) and closes them.
func scanRenewalCandidates(rows *sql.Rows) ([]store.RenewalCandidate, error) {
	defer rows.Close()
	var out []store.RenewalCandidate
	for rows.Next() {
		var c store.RenewalCandidate
		var r store.Renewal
		var na, queued, updated int64
		if err := rows.Scan(&c.Serial, &c.DeviceID, &na, &r.CommandUUID, &r.Status, &r.Attempts, &r.Error, &r.NewSerial, &queued, &updated); err != nil {
			return nil, err
		}
		c.NotAfter = fromMicros(na)
		if r.Status != "" {
			r.Serial, r.DeviceID, r.QueuedAt, r.UpdatedAt = c.Serial, c.DeviceID, fromMicros(queued), fromMicros(updated)
			c.Renewal = &r
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
