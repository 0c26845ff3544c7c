package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/pomona-mdm/pomona/store"
)

const abmColumns = `id, tenant_id, name, certificate, key_sealed, token_sealed, org_name, org_id, server_name, server_uuid,
	access_token_expiry, discovery_url, discovery_asserted_at, discovery_error, imported_at, created_at, updated_at`

func scanABM(row scanner) (*store.ABMServerToken, error) {
	var t store.ABMServerToken
	var expiry, asserted, imported, created, updated int64
	err := row.Scan(&t.ID, &t.TenantID, &t.Name, &t.Certificate, &t.KeySealed, &t.TokenSealed, &t.OrgName, &t.OrgID, &t.ServerName, &t.ServerUUID,
		&expiry, &t.DiscoveryURL, &asserted, &t.DiscoveryError, &imported, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("ABM server token %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	t.AccessTokenExpiry, t.DiscoveryAssertedAt, t.ImportedAt = fromMicros(expiry), fromMicros(asserted), fromMicros(imported)
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	if len(t.TokenSealed) == 0 {
		t.TokenSealed = nil
	}
	return &t, nil
}

func (s *Store) CreateABMServerToken(ctx context.Context, t *store.ABMServerToken) error {
	return s.tx(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants WHERE id = ?`, t.TenantID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("tenant %s: %w", t.TenantID, store.ErrNotFound)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO abm_server_tokens (`+abmColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.TenantID, t.Name, t.Certificate, t.KeySealed, nilIfEmpty(t.TokenSealed), t.OrgName, t.OrgID, t.ServerName, t.ServerUUID,
			toMicros(t.AccessTokenExpiry), t.DiscoveryURL, toMicros(t.DiscoveryAssertedAt), t.DiscoveryError, toMicros(t.ImportedAt),
			toMicros(t.CreatedAt), toMicros(t.UpdatedAt))
		return s.constraint(err)
	})
}

func nilIfEmpty(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func (s *Store) ABMServerToken(ctx context.Context, id string) (*store.ABMServerToken, error) {
	return scanABM(s.r.QueryRowContext(ctx, `SELECT `+abmColumns+` FROM abm_server_tokens WHERE id = ?`, id))
}

func (s *Store) ABMServerTokens(ctx context.Context, tenantID string) ([]store.ABMServerToken, error) {
	if tenantID == "" {
		return collect(ctx, s.r, scanABM, `SELECT `+abmColumns+` FROM abm_server_tokens ORDER BY created_at, id`)
	}
	return collect(ctx, s.r, scanABM, `SELECT `+abmColumns+` FROM abm_server_tokens WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
}

func (s *Store) UpdateABMServerToken(ctx context.Context, id string, fn func(*store.ABMServerToken) error) (*store.ABMServerToken, error) {
	var out *store.ABMServerToken
	err := s.tx(ctx, func(tx *Tx) error {
		cur, err := scanABM(tx.QueryRowContext(ctx, `SELECT `+abmColumns+` FROM abm_server_tokens WHERE id = ?`, id))
		if err != nil {
			return err
		}
		t := *cur
		if err := fn(&t); err != nil {
			return err
		}
		t.ID, t.TenantID, t.Certificate, t.KeySealed, t.CreatedAt = cur.ID, cur.TenantID, cur.Certificate, cur.KeySealed, cur.CreatedAt
		_, err = tx.ExecContext(ctx, `UPDATE abm_server_tokens SET name = ?, token_sealed = ?, org_name = ?, org_id = ?, server_name = ?, server_uuid = ?,
			access_token_expiry = ?, discovery_url = ?, discovery_asserted_at = ?, discovery_error = ?, imported_at = ?, updated_at = ? WHERE id = ?`,
			t.Name, nilIfEmpty(t.TokenSealed), t.OrgName, t.OrgID, t.ServerName, t.ServerUUID, toMicros(t.AccessTokenExpiry), t.DiscoveryURL,
			toMicros(t.DiscoveryAssertedAt), t.DiscoveryError, toMicros(t.ImportedAt), toMicros(t.UpdatedAt), id)
		if err != nil {
			return s.constraint(err)
		}
		out = &t
		return nil
	})
	return out, err
}

func (s *Store) DeleteABMServerToken(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM abm_server_tokens WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("ABM server token %w", store.ErrNotFound)
	}
	return nil
}

func (s *Store) WithoutGetToken(ctx context.Context, tenantID string, limit int) ([]store.RenewalCandidate, error) {
	if limit <= 0 {
		limit = 500
	}
	rows, err := s.r.QueryContext(ctx, `SELECT c.serial, c.enrollment_id, c.not_after,
		COALESCE(r.command_uuid, ''), COALESCE(r.status, ''), COALESCE(r.attempts, 0), COALESCE(r.error, ''), COALESCE(r.new_serial, ''),
		COALESCE(r.queued_at, 0), COALESCE(r.updated_at, 0)
		FROM enrollments e
		JOIN identity_certs c ON c.enrollment_id = e.id
		LEFT JOIN enrollment_profiles p ON p.enrollment_id = e.id
		LEFT JOIN renewals r ON r.serial = c.serial
		WHERE e.tenant_id = ? AND e.status = ? AND COALESCE(p.get_token, 0) = 0
		AND NOT EXISTS (SELECT 1 FROM identity_certs n WHERE n.enrollment_id = c.enrollment_id AND n.issued_at > c.issued_at)
		ORDER BY e.id LIMIT ?`, tenantID, store.EnrollmentEnrolled, limit)
	if err != nil {
		return nil, err
	}
	return scanRenewalCandidates(rows)
}
