package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

func (s *Store) CreateAccessToken(ctx context.Context, t *store.AccessToken) error {
	defer s.auth.changed() // after the commit: authCache
	_, err := s.w.ExecContext(ctx, `INSERT INTO access_tokens (hash, user_id, tenant_id, created_at, expires_at, enrollment_id) VALUES (?, ?, ?, ?, ?, ?)`,
		t.Hash, t.UserID, t.TenantID, toMicros(t.CreatedAt), toMicros(t.ExpiresAt), t.DeviceID)
	return s.constraint(err)
}

func (s *Store) AccessToken(ctx context.Context, hash []byte) (*store.AccessToken, error) {
	var t store.AccessToken
	var created, expires, revoked int64
	err := s.r.QueryRowContext(ctx, `SELECT hash, user_id, tenant_id, created_at, expires_at, enrollment_id, revoked_at FROM access_tokens WHERE hash = ?`, hash).
		Scan(&t.Hash, &t.UserID, &t.TenantID, &created, &expires, &t.DeviceID, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("access token %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromMicros(created), fromMicros(expires), fromMicros(revoked)
	return &t, nil
}

func (s *Store) BindAccessToken(ctx context.Context, hash []byte, enrollmentID string) error {
	defer s.auth.changed() // after the commit: authCache
	return s.tx(ctx, func(tx *Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT enrollment_id FROM access_tokens WHERE hash = ?`, hash).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("access token %w", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		switch cur {
		case enrollmentID:
			return nil
		case "":
			_, err = tx.ExecContext(ctx, `UPDATE access_tokens SET enrollment_id = ? WHERE hash = ?`, enrollmentID, hash)
			return err
		}
		return fmt.Errorf("%w: the access token is bound to another enrollment", store.ErrConflict)
	})
}

func (s *Store) CreateEnrollment(ctx context.Context, e *store.Enrollment, ch *store.SCEPChallenge) error {
	return s.tx(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, product, os_version,
			build_version, language, machine_info, device_signature, profile_id, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.ID, e.TenantID, e.UserID, e.TokenHash, e.Platform, e.Product, e.OSVersion, e.BuildVersion, e.Language,
			e.MachineInfo, e.DeviceSignature, e.ProfileID, e.Status, toMicros(e.CreatedAt), toMicros(e.UpdatedAt))
		if err != nil {
			return s.constraint(err)
		}
		if ch == nil {
			return nil
		}
		return s.insertChallenge(ctx, tx, e.ID, ch)
	})
}

func (s *Store) CreatePendingEnrollment(ctx context.Context, e *store.Enrollment, ch *store.SCEPChallenge, now time.Time) (bool, error) {
	defer s.auth.changed() // after the commit: authCache
	id := e.ID
	replaced := false
	err := s.tx(ctx, func(tx *Tx) error {
		replaced = false
		e.ID = id
		// The conditional update is the race's referee: of concurrent
		// requests with one token exactly one binds it (the others wait for
		// its row lock, or on SQLite for the write lock, and then find it
		// bound).
		res, err := tx.ExecContext(ctx, `UPDATE access_tokens SET enrollment_id = ? WHERE hash = ? AND enrollment_id = ''`, e.ID, e.TokenHash)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, product, os_version,
				build_version, language, machine_info, device_signature, profile_id, status, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				e.ID, e.TenantID, e.UserID, e.TokenHash, e.Platform, e.Product, e.OSVersion, e.BuildVersion, e.Language,
				e.MachineInfo, e.DeviceSignature, e.ProfileID, store.EnrollmentPending, toMicros(e.CreatedAt), toMicros(e.UpdatedAt)); err != nil {
				return s.constraint(err)
			}
			return s.insertChallenge(ctx, tx, e.ID, ch)
		}
		var bound string
		err = tx.QueryRowContext(ctx, `SELECT enrollment_id FROM access_tokens WHERE hash = ?`, e.TokenHash).Scan(&bound)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("access token %w", store.ErrNotFound)
		}
		if err != nil {
			return err
		}
		// Lock the bound enrollment's row first (the update), so that
		// concurrent replacements run one after the other.
		res, err = tx.ExecContext(ctx, `UPDATE enrollments SET product = ?, os_version = ?, build_version = ?, language = ?, machine_info = ?,
			device_signature = ?, profile_id = ?, updated_at = ? WHERE id = ? AND status = ? AND user_id = ?`,
			e.Product, e.OSVersion, e.BuildVersion, e.Language, e.MachineInfo, e.DeviceSignature, e.ProfileID, toMicros(e.UpdatedAt),
			bound, store.EnrollmentPending, e.UserID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: this sign-in was already used for an enrollment", store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM scep_challenges WHERE enrollment_id = ?`, bound); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE identity_certs SET revoked_at = ?, revoked_reason = ? WHERE enrollment_id = ? AND revoked_at = 0`,
			toMicros(now), "replaced by a new profile request of the same sign-in", bound); err != nil {
			return err
		}
		e.ID, replaced = bound, true
		return s.insertChallenge(ctx, tx, bound, ch)
	})
	if err != nil {
		e.ID = id
	}
	return replaced, err
}

func (s *Store) insertChallenge(ctx context.Context, tx *Tx, enrollmentID string, ch *store.SCEPChallenge) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO scep_challenges (hash, enrollment_id, expires_at, used_at) VALUES (?, ?, ?, ?)`,
		ch.Hash, enrollmentID, toMicros(ch.ExpiresAt), toMicros(ch.UsedAt))
	return s.constraint(err)
}

const enrollmentColumns = `id, tenant_id, user_id, platform, product, os_version, build_version,
	language, machine_info, device_signature, profile_id, status, created_at, updated_at,
	COALESCE(apple_enrollment_id, ''), device_name, model, model_name, enrolled_at, unenrolled_at, last_seen_at, inventory, predecessor_id`

func scanEnrollment(sc scanner) (*store.Enrollment, error) {
	var e store.Enrollment
	var created, updated, enrolled, unenrolled, seen int64
	err := sc.Scan(&e.ID, &e.TenantID, &e.UserID, &e.Platform, &e.Product, &e.OSVersion, &e.BuildVersion,
		&e.Language, &e.MachineInfo, &e.DeviceSignature, &e.ProfileID, &e.Status, &created, &updated,
		&e.AppleEnrollmentID, &e.DeviceName, &e.Model, &e.ModelName, &enrolled, &unenrolled, &seen, &e.Inventory, &e.PredecessorID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("enrollment %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	e.EnrolledAt, e.UnenrolledAt, e.LastSeenAt = fromMicros(enrolled), fromMicros(unenrolled), fromMicros(seen)
	return &e, nil
}

func (s *Store) Enrollment(ctx context.Context, id string) (*store.Enrollment, error) {
	return scanEnrollment(s.r.QueryRowContext(ctx, `SELECT `+enrollmentColumns+` FROM enrollments WHERE id = ?`, id))
}

func (s *Store) SCEPChallenge(ctx context.Context, hash []byte) (*store.SCEPChallenge, error) {
	return getChallenge(ctx, s.r, hash)
}

func getChallenge(ctx context.Context, q queryer, hash []byte) (*store.SCEPChallenge, error) {
	var c store.SCEPChallenge
	var exp, used int64
	err := q.QueryRowContext(ctx, `SELECT hash, enrollment_id, expires_at, used_at, kind, renews FROM scep_challenges WHERE hash = ?`, hash).
		Scan(&c.Hash, &c.DeviceID, &exp, &used, &c.Kind, &c.Renews)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("SCEP challenge %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	c.ExpiresAt, c.UsedAt = fromMicros(exp), fromMicros(used)
	return &c, nil
}

func (s *Store) ConsumeSCEPChallenge(ctx context.Context, hash []byte, now time.Time, cert *store.IdentityCert) error {
	return s.tx(ctx, func(tx *Tx) error {
		c, err := getChallenge(ctx, tx, hash)
		if err != nil {
			return err
		}
		if !c.UsedAt.IsZero() {
			return store.ErrSCEPChallengeUsed
		}
		if !now.Before(c.ExpiresAt) {
			return fmt.Errorf("SCEP challenge %w", store.ErrExpired)
		}
		if cert.DeviceID != c.DeviceID {
			return fmt.Errorf("%w: certificate and challenge belong to different enrollments", store.ErrConflict)
		}
		if c.Kind == store.ChallengeProfile {
			// A profile's challenge never issues an MDM identity.
			return fmt.Errorf("%w: a profile's SCEP challenge issues user certificates only", store.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE scep_challenges SET used_at = ? WHERE hash = ? AND used_at = 0`, toMicros(now), hash); err != nil {
			return err
		}
		if c.Kind == store.ChallengeRenewal {
			cert.RenewedFrom = c.Renews
		}
		if err := s.insertCert(ctx, tx, cert); err != nil {
			return err
		}
		if c.Kind == store.ChallengeRenewal {
			return s.completeRenewal(ctx, tx, c.Renews, cert.Serial, now)
		}
		return nil
	})
}

func (s *Store) insertCert(ctx context.Context, tx *Tx, c *store.IdentityCert) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO identity_certs (serial, enrollment_id, sha256, not_before, not_after, issued_at, renewed_from)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, c.Serial, c.DeviceID, c.SHA256, toMicros(c.NotBefore), toMicros(c.NotAfter),
		toMicros(c.IssuedAt), c.RenewedFrom)
	return s.constraint(err)
}

func (s *Store) IdentityCert(ctx context.Context, serial string) (*store.IdentityCert, error) {
	var c store.IdentityCert
	var nb, na, issued, revoked int64
	err := s.r.QueryRowContext(ctx, `SELECT serial, enrollment_id, sha256, not_before, not_after, issued_at, renewed_from, revoked_at, revoked_reason
		FROM identity_certs WHERE serial = ?`, serial).Scan(&c.Serial, &c.DeviceID, &c.SHA256, &nb, &na, &issued, &c.RenewedFrom, &revoked, &c.RevokedReason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("identity certificate %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	c.NotBefore, c.NotAfter, c.IssuedAt, c.RevokedAt = fromMicros(nb), fromMicros(na), fromMicros(issued), fromMicros(revoked)
	return &c, nil
}

// RateLimitHit is one statement, atomic on both backends (an upsert that
// starts a new window when the old one ended before now-window): many
// instances and many concurrent sign-ins from one address never conflict,
// where a read-then-write transaction at PostgreSQL's serializable
// isolation could exhaust its retries under a burst on one key.
func (s *Store) RateLimitHit(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	var count int
	var start int64
	ended := toMicros(now.Add(-window))
	// writeRow: with SQLite's group commit, a transaction of the next
	// batch (committed FULL, in the committer's order); the writer pool's
	// QueryRowContext would bypass the committer.
	err := s.writeRow(ctx, `INSERT INTO rate_limits (key, count, window_start) VALUES (?, 1, ?)
		ON CONFLICT (key) DO UPDATE SET
			count = CASE WHEN rate_limits.window_start < ? THEN 1 ELSE rate_limits.count + 1 END,
			window_start = CASE WHEN rate_limits.window_start < ? THEN excluded.window_start ELSE rate_limits.window_start END
		RETURNING count, window_start`, []any{key, toMicros(now), ended, ended}, &count, &start)
	if err != nil {
		return 0, time.Time{}, err
	}
	return count, fromMicros(start), nil
}

func (s *Store) RateLimitCount(ctx context.Context, key string, window time.Duration, now time.Time) (int, time.Time, error) {
	var count int
	var start int64
	err := s.r.QueryRowContext(ctx, `SELECT count, window_start FROM rate_limits WHERE key = ?`, key).Scan(&count, &start)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	if fromMicros(start).Add(window).Before(now) {
		return 0, time.Time{}, nil
	}
	return count, fromMicros(start), nil
}

func (s *Store) RateLimitUndo(ctx context.Context, key string, start time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE rate_limits SET count = count - 1 WHERE key = ? AND window_start = ? AND count > 0`,
		key, toMicros(start))
	return err
}

func (s *Store) RateLimitReset(ctx context.Context, key string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM rate_limits WHERE key = ?`, key)
	return err
}

func (s *Store) RateLimitPrune(ctx context.Context, before time.Time, max int) (int, error) {
	// One bounded statement: the writer (SQLite's, the devices' too) is
	// held for max rows at most, found by rate_limits_window_start (0036).
	res, err := s.w.ExecContext(ctx, `DELETE FROM rate_limits WHERE key IN
		(SELECT key FROM rate_limits WHERE window_start < ? ORDER BY window_start LIMIT ?)`, toMicros(before), max)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s *Store) Enrollments(ctx context.Context, f store.EnrollmentFilter) ([]store.Enrollment, error) {
	q := `SELECT ` + enrollmentColumns + ` FROM enrollments WHERE 1=1`
	var args []any
	for _, c := range []struct{ col, v string }{{"tenant_id", f.TenantID}, {"user_id", f.UserID}, {"status", f.Status}, {"platform", f.Platform},
		{"predecessor_id", f.PredecessorID}} {
		if c.v != "" {
			q += ` AND ` + c.col + ` = ?`
			args = append(args, c.v)
		}
	}
	if !f.SeenBefore.IsZero() {
		q += ` AND last_seen_at < ?`
		args = append(args, toMicros(f.SeenBefore))
	}
	if f.Before != "" {
		q += ` AND (created_at, id) < (SELECT created_at, id FROM enrollments WHERE id = ?)`
		args = append(args, f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit)
	return collect(ctx, s.r, scanEnrollment, q, args...)
}
