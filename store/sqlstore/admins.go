package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

const adminColumns = `id, email, name, role, password_hash, totp_secret, totp_last_step, enabled,
	setup_hash, setup_expires_at, created_at, updated_at, last_sign_in_at`

func scanAdmin(sc scanner) (*store.Admin, error) {
	var a store.Admin
	var enabled int
	var setupExp, created, updated, last int64
	err := sc.Scan(&a.ID, &a.Email, &a.Name, &a.Role, &a.PasswordHash, &a.TOTPSecret, &a.TOTPLastStep, &enabled,
		&a.SetupHash, &setupExp, &created, &updated, &last)
	if err != nil {
		return nil, err
	}
	a.Enabled = enabled != 0
	a.SetupExpiresAt = fromMicros(setupExp)
	a.CreatedAt, a.UpdatedAt, a.LastSignInAt = fromMicros(created), fromMicros(updated), fromMicros(last)
	if len(a.TOTPSecret) == 0 {
		a.TOTPSecret = nil
	}
	if len(a.SetupHash) == 0 {
		a.SetupHash = nil
	}
	return &a, nil
}

func adminArgs(a *store.Admin) []any {
	var setup, totp any
	if len(a.SetupHash) > 0 {
		setup = a.SetupHash
	}
	if len(a.TOTPSecret) > 0 {
		totp = a.TOTPSecret
	}
	return []any{a.ID, a.Email, a.Name, a.Role, a.PasswordHash, totp, a.TOTPLastStep, boolInt(a.Enabled),
		setup, toMicros(a.SetupExpiresAt), toMicros(a.CreatedAt), toMicros(a.UpdatedAt), toMicros(a.LastSignInAt)}
}

func (s *Store) CreateAdmin(ctx context.Context, a *store.Admin) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO admins (`+adminColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, adminArgs(a)...)
	if err = s.constraint(err); errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: a console account with email %s already exists", store.ErrConflict, a.Email)
	}
	return err
}

func getAdmin(ctx context.Context, q queryer, where string, arg any) (*store.Admin, error) {
	a, err := scanAdmin(q.QueryRowContext(ctx, `SELECT `+adminColumns+` FROM admins WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("console account %w", store.ErrNotFound)
	}
	return a, err
}

func (s *Store) Admin(ctx context.Context, id string) (*store.Admin, error) {
	return getAdmin(ctx, s.r, `id = ?`, id)
}

func (s *Store) AdminByEmail(ctx context.Context, email string) (*store.Admin, error) {
	return getAdmin(ctx, s.r, `email = ?`, email)
}

func (s *Store) AdminBySetupHash(ctx context.Context, hash []byte) (*store.Admin, error) {
	if len(hash) == 0 {
		return nil, fmt.Errorf("console account %w", store.ErrNotFound)
	}
	return getAdmin(ctx, s.r, `setup_hash = ?`, hash)
}

func (s *Store) Admins(ctx context.Context) ([]store.Admin, error) {
	return collect(ctx, s.r, scanAdmin, `SELECT `+adminColumns+` FROM admins ORDER BY email`)
}

func (s *Store) UpdateAdmin(ctx context.Context, id string, fn func(*store.Admin) error) (*store.Admin, error) {
	var out *store.Admin
	err := s.tx(ctx, func(tx *Tx) error {
		a, err := getAdmin(ctx, tx, `id = ?`, id)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
		a.ID = id
		args := adminArgs(a)
		_, err = tx.ExecContext(ctx, `UPDATE admins SET email = ?, name = ?, role = ?, password_hash = ?, totp_secret = ?, totp_last_step = ?,
			enabled = ?, setup_hash = ?, setup_expires_at = ?, created_at = ?, updated_at = ?, last_sign_in_at = ? WHERE id = ?`,
			append(args[1:], id)...)
		if err = s.constraint(err); err != nil {
			return err
		}
		out = a
		return nil
	})
	return out, err
}

func (s *Store) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM admins`).Scan(&n)
	return n, err
}

func (s *Store) CreateAdminSession(ctx context.Context, a *store.AdminSession) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO admin_sessions (hash, admin_id, created_at, last_seen_at, expires_at, remote) VALUES (?, ?, ?, ?, ?, ?)`,
		a.Hash, a.AdminID, toMicros(a.CreatedAt), toMicros(a.LastSeenAt), toMicros(a.ExpiresAt), a.Remote)
	return s.constraint(err)
}

func (s *Store) AdminSession(ctx context.Context, hash []byte) (*store.AdminSession, error) {
	var a store.AdminSession
	var created, seen, exp int64
	err := s.r.QueryRowContext(ctx, `SELECT hash, admin_id, created_at, last_seen_at, expires_at, remote FROM admin_sessions WHERE hash = ?`, hash).
		Scan(&a.Hash, &a.AdminID, &created, &seen, &exp, &a.Remote)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("console session %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	a.CreatedAt, a.LastSeenAt, a.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(exp)
	return &a, nil
}

func (s *Store) TouchAdminSession(ctx context.Context, hash []byte, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE admin_sessions SET last_seen_at = ? WHERE hash = ?`, toMicros(at), hash)
	return err
}

func (s *Store) DeleteAdminSession(ctx context.Context, hash []byte) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM admin_sessions WHERE hash = ?`, hash)
	return err
}

func (s *Store) DeleteAdminSessions(ctx context.Context, adminID string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM admin_sessions WHERE admin_id = ?`, adminID)
	return err
}
