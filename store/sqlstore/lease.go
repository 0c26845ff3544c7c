package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

func (s *Store) TryLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (bool, error) {
	got := false
	err := s.tx(ctx, func(tx *Tx) error {
		got = false
		var cur string
		var exp int64
		err := tx.QueryRowContext(ctx, `SELECT holder, expires_at FROM leases WHERE name = ?`, name).Scan(&cur, &exp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err := tx.ExecContext(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)`, name, holder, toMicros(now.Add(ttl))); err != nil {
				return s.constraint(err)
			}
		case err != nil:
			return err
		case cur != holder && fromMicros(exp).After(now):
			return nil
		default:
			if _, err := tx.ExecContext(ctx, `UPDATE leases SET holder = ?, expires_at = ? WHERE name = ?`, holder, toMicros(now.Add(ttl)), name); err != nil {
				return err
			}
		}
		got = true
		return nil
	})
	return got, err
}
