package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO api_keys (id, name, secret_hash, created_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, k.SecretHash, toMicros(k.CreatedAt), toMicros(k.LastUsedAt), toMicros(k.RevokedAt))
	return s.constraint(err)
}

func scanKey(sc scanner) (*store.APIKey, error) {
	var k store.APIKey
	var created, used, revoked int64
	if err := sc.Scan(&k.ID, &k.Name, &k.SecretHash, &created, &used, &revoked); err != nil {
		return nil, err
	}
	k.CreatedAt, k.LastUsedAt, k.RevokedAt = fromMicros(created), fromMicros(used), fromMicros(revoked)
	return &k, nil
}

func (s *Store) APIKey(ctx context.Context, id string) (*store.APIKey, error) {
	// Every API request reads its key: one-letter column names (see
	// oneLetterNames), six allocations fewer on SQLite.
	k, err := scanKey(s.r.QueryRowContext(s.hot(ctx), `SELECT id AS a, name AS b, secret_hash AS c, created_at AS d, last_used_at AS e, revoked_at AS f FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("API key %w", store.ErrNotFound)
	}
	return k, err
}

func (s *Store) APIKeys(ctx context.Context) ([]store.APIKey, error) {
	return collect(ctx, s.r, scanKey, `SELECT id, name, secret_hash, created_at, last_used_at, revoked_at FROM api_keys ORDER BY created_at, id`)
}

func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE api_keys SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?`, toMicros(at), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("API key %w", store.ErrNotFound)
	}
	return nil
}

func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, toMicros(at), id)
	return err
}

func (s *Store) CountAPIKeys(ctx context.Context) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_keys`).Scan(&n)
	return n, err
}

func (s *Store) CreateSecret(ctx context.Context, name string, value []byte) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO secrets (name, value, updated_at) VALUES (?, ?, ?)`, name, value, toMicros(time.Now()))
	return s.constraint(err)
}

func (s *Store) PutSecret(ctx context.Context, name string, value []byte) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO secrets (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, name, value, toMicros(time.Now()))
	return err
}

func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := s.r.QueryRowContext(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("secret %q %w", name, store.ErrNotFound)
	}
	return v, err
}
