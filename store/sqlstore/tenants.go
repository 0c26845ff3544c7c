package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"

	"github.com/pomona-mdm/pomona/store"
)

func (s *Store) CreateTenant(ctx context.Context, t *store.Tenant) error {
	return s.tx(ctx, func(tx *Tx) error {
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO tenants (id, name, require_second_factor, created_at, updated_at, accent_color, contact, privacy_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, boolInt(t.RequireSecondFactor), toMicros(t.CreatedAt), toMicros(t.UpdatedAt), t.AccentColor, t.Contact, t.PrivacyURL); err != nil {
			return s.constraint(err)
		}
		return s.addDomains(ctx, tx, t.ID, t.Domains)
	})
}

func (s *Store) addDomains(ctx context.Context, tx *Tx, tenantID string, domains []string) error {
	for _, d := range domains {
		var owner string
		err := tx.QueryRowContext(ctx, `SELECT tenant_id FROM tenant_domains WHERE domain = ?`, d).Scan(&owner)
		switch {
		case err == nil && owner == tenantID:
			continue
		case err == nil:
			return fmt.Errorf("%w: domain %s already belongs to another tenant", store.ErrConflict, d)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenant_domains (domain, tenant_id) VALUES (?, ?)`, d, tenantID); err != nil {
			return s.constraint(err)
		}
	}
	return nil
}

func (s *Store) Tenant(ctx context.Context, id string) (*store.Tenant, error) {
	return getTenant(ctx, s.r, `WHERE id = ?`, id)
}

func (s *Store) TenantByDomain(ctx context.Context, domain string) (*store.Tenant, error) {
	return getTenant(ctx, s.r, `WHERE id = (SELECT tenant_id FROM tenant_domains WHERE domain = ?)`, domain)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// tenantColumns are read by scanTenant, in this order; the logo's time
// comes from tenant_logos (0: none).
const tenantColumns = `id, name, require_second_factor, created_at, updated_at, accent_color, contact, privacy_url,
	COALESCE((SELECT updated_at FROM tenant_logos WHERE tenant_id = tenants.id), 0)`

func scanTenant(scan func(...any) error) (*store.Tenant, error) {
	var t store.Tenant
	var rsf int
	var created, updated, logo int64
	if err := scan(&t.ID, &t.Name, &rsf, &created, &updated, &t.AccentColor, &t.Contact, &t.PrivacyURL, &logo); err != nil {
		return nil, err
	}
	t.RequireSecondFactor = rsf != 0
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	if logo != 0 {
		t.LogoUpdatedAt = fromMicros(logo)
	}
	return &t, nil
}

func getTenant(ctx context.Context, q queryer, where string, arg any) (*store.Tenant, error) {
	t, err := scanTenant(q.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants `+where, arg).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("tenant %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	t.Domains, err = domainsOf(ctx, q, t.ID)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func domainsOf(ctx context.Context, q queryer, tenantID string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT domain FROM tenant_domains WHERE tenant_id = ? ORDER BY domain`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (s *Store) Tenants(ctx context.Context) ([]store.Tenant, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY name, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Tenant
	idx := map[string]int{}
	for rows.Next() {
		t, err := scanTenant(rows.Scan)
		if err != nil {
			return nil, err
		}
		idx[t.ID] = len(out)
		out = append(out, *t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	drows, err := s.r.QueryContext(ctx, `SELECT tenant_id, domain FROM tenant_domains ORDER BY domain`)
	if err != nil {
		return nil, err
	}
	defer drows.Close()
	for drows.Next() {
		var tid, d string
		if err := drows.Scan(&tid, &d); err != nil {
			return nil, err
		}
		if i, ok := idx[tid]; ok {
			out[i].Domains = append(out[i].Domains, d)
		}
	}
	return out, drows.Err()
}

func (s *Store) UpdateTenant(ctx context.Context, id string, fn func(*store.Tenant) error) (*store.Tenant, error) {
	var result *store.Tenant
	err := s.tx(ctx, func(tx *Tx) error {
		t, err := getTenant(ctx, tx, `WHERE id = ?`, id)
		if err != nil {
			return err
		}
		old := map[string]bool{}
		for _, d := range t.Domains {
			old[d] = true
		}
		if err := fn(t); err != nil {
			return err
		}
		t.ID = id
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET name = ?, require_second_factor = ?, updated_at = ?, accent_color = ?, contact = ?, privacy_url = ? WHERE id = ?`,
			t.Name, boolInt(t.RequireSecondFactor), toMicros(t.UpdatedAt), t.AccentColor, t.Contact, t.PrivacyURL, id); err != nil {
			return s.constraint(err)
		}
		keep := map[string]bool{}
		for _, d := range t.Domains {
			keep[d] = true
		}
		for d := range old {
			if keep[d] {
				continue
			}
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE domain = ?`, d).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%w: domain %s still has %d user(s)", store.ErrInUse, d, n)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM tenant_domains WHERE domain = ?`, d); err != nil {
				return s.constraint(err)
			}
		}
		if err := s.addDomains(ctx, tx, id, t.Domains); err != nil {
			return err
		}
		sort.Strings(t.Domains)
		result = t
		return nil
	})
	return result, err
}

func (s *Store) DeleteTenant(ctx context.Context, id string, cascade bool, end store.Ending) error {
	defer s.auth.changed() // after the commit: authCache
	return s.tx(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants WHERE id = ?`, id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("tenant %w", store.ErrNotFound)
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE tenant_id = ?`, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 && !cascade {
			return fmt.Errorf("%w: tenant still has %d user(s)", store.ErrInUse, n)
		}
		if err := bury(ctx, tx, `e.tenant_id = ?`, id, end); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE tenant_id = ?`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tenant_logos WHERE tenant_id = ?`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tenants WHERE id = ?`, id); err != nil {
			return s.constraint(err)
		}
		return nil
	})
}

func (s *Store) CountTenants(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants`).Scan(&n)
	return n, err
}

func (s *Store) SetTenantLogo(ctx context.Context, tenantID string, l *store.Logo) error {
	return s.tx(ctx, func(tx *Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenants WHERE id = ?`, tenantID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("tenant %w", store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM tenant_logos WHERE tenant_id = ?`, tenantID); err != nil {
			return err
		}
		if l == nil {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO tenant_logos (tenant_id, content_type, data, updated_at) VALUES (?, ?, ?, ?)`,
			tenantID, l.ContentType, l.Data, toMicros(l.UpdatedAt))
		return s.constraint(err)
	})
}

func (s *Store) TenantLogo(ctx context.Context, tenantID string) (*store.Logo, error) {
	var l store.Logo
	var updated int64
	err := s.r.QueryRowContext(ctx, `SELECT content_type, data, updated_at FROM tenant_logos WHERE tenant_id = ?`, tenantID).
		Scan(&l.ContentType, &l.Data, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("logo %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	l.UpdatedAt = fromMicros(updated)
	return &l, nil
}
