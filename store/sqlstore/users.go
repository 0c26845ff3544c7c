package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/pomona-mdm/pomona/store"
)

const userColumns = `id, tenant_id, email, managed_apple_id, name, password_hash, totp_secret,
	totp_confirmed_at, totp_last_step, enabled, tokens_not_before, created_at, updated_at, last_sign_in_at`

type scanner interface{ Scan(dest ...any) error }

func scanUser(sc scanner) (*store.User, error) {
	var u store.User
	var enabled int
	var totpAt, notBefore, created, updated, lastSignIn int64
	err := sc.Scan(&u.ID, &u.TenantID, &u.Email, &u.ManagedAppleID, &u.Name, &u.PasswordHash, &u.TOTPSecret,
		&totpAt, &u.TOTPLastStep, &enabled, &notBefore, &created, &updated, &lastSignIn)
	if err != nil {
		return nil, err
	}
	u.Enabled = enabled != 0
	u.TOTPConfirmedAt = fromMicros(totpAt)
	u.TokensNotBefore = fromMicros(notBefore)
	u.CreatedAt, u.UpdatedAt, u.LastSignInAt = fromMicros(created), fromMicros(updated), fromMicros(lastSignIn)
	if len(u.TOTPSecret) == 0 {
		u.TOTPSecret = nil
	}
	return &u, nil
}

func (s *Store) CreateUser(ctx context.Context, u *store.User) error {
	return s.tx(ctx, func(tx *Tx) error {
		var owner string
		err := tx.QueryRowContext(ctx, `SELECT tenant_id FROM tenant_domains WHERE domain = ?`, u.Domain()).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && owner != u.TenantID) {
			return fmt.Errorf("%w: the tenant does not own the domain %q", store.ErrNotFound, u.Domain())
		}
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE email = ?`, u.Email).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: a user with email %s already exists", store.ErrConflict, u.Email)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`, domain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, u.TenantID, u.Email, u.ManagedAppleID, u.Name, u.PasswordHash, u.TOTPSecret,
			toMicros(u.TOTPConfirmedAt), u.TOTPLastStep, boolInt(u.Enabled), toMicros(u.TokensNotBefore),
			toMicros(u.CreatedAt), toMicros(u.UpdatedAt), toMicros(u.LastSignInAt), u.Domain())
		return s.constraint(err)
	})
}

func (s *Store) User(ctx context.Context, id string) (*store.User, error) {
	return getUser(ctx, s.r, `id = ?`, id)
}

func (s *Store) UserByEmail(ctx context.Context, email string) (*store.User, error) {
	return getUser(ctx, s.r, `email = ?`, email)
}

func getUser(ctx context.Context, q queryer, where string, arg any) (*store.User, error) {
	u, err := scanUser(q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %w", store.ErrNotFound)
	}
	return u, err
}

func (s *Store) Users(ctx context.Context, f store.UserFilter) ([]store.User, error) {
	q := `SELECT ` + userColumns + ` FROM users WHERE 1=1`
	var args []any
	if f.TenantID != "" {
		q += ` AND tenant_id = ?`
		args = append(args, f.TenantID)
	}
	if f.Email != "" {
		q += ` AND email = ?`
		args = append(args, f.Email)
	}
	if f.After != "" {
		q += ` AND email > ?`
		args = append(args, f.After)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += ` ORDER BY email LIMIT ?`
	args = append(args, limit)
	return collect(ctx, s.r, scanUser, q, args...)
}

func (s *Store) UpdateUser(ctx context.Context, id string, fn func(*store.User) error) (*store.User, error) {
	defer s.auth.changed() // after the commit: authCache
	var result *store.User
	err := s.tx(ctx, func(tx *Tx) error {
		u, err := getUser(ctx, tx, `id = ?`, id)
		if err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return err
		}
		u.ID = id
		var owner string
		err = tx.QueryRowContext(ctx, `SELECT tenant_id FROM tenant_domains WHERE domain = ?`, u.Domain()).Scan(&owner)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && owner != u.TenantID) {
			return fmt.Errorf("%w: the tenant does not own the domain %q", store.ErrNotFound, u.Domain())
		}
		if err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE email = ? AND id <> ?`, u.Email, id).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w: a user with email %s already exists", store.ErrConflict, u.Email)
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET tenant_id = ?, email = ?, domain = ?, managed_apple_id = ?, name = ?,
			password_hash = ?, totp_secret = ?, totp_confirmed_at = ?, totp_last_step = ?, enabled = ?, tokens_not_before = ?,
			updated_at = ?, last_sign_in_at = ? WHERE id = ?`,
			u.TenantID, u.Email, u.Domain(), u.ManagedAppleID, u.Name, u.PasswordHash, u.TOTPSecret,
			toMicros(u.TOTPConfirmedAt), u.TOTPLastStep, boolInt(u.Enabled), toMicros(u.TokensNotBefore),
			toMicros(u.UpdatedAt), toMicros(u.LastSignInAt), id)
		if err != nil {
			return s.constraint(err)
		}
		result = u
		return nil
	})
	return result, err
}

func (s *Store) DeleteUser(ctx context.Context, id string, end store.Ending) error {
	defer s.auth.changed() // after the commit: authCache
	return s.tx(ctx, func(tx *Tx) error {
		if err := bury(ctx, tx, `e.user_id = ?`, id, end); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
		if err != nil {
			return s.constraint(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %w", store.ErrNotFound)
		}
		return nil
	})
}

func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM users`).Scan(&n)
	return n, err
}
