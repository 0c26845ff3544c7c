package sqlstore

import (
	"context"

	"github.com/pomona-mdm/pomona/store"
)

func (s *Store) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	return s.writeRow(ctx, `INSERT INTO audit_log (at, actor, action, target, status, remote) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		[]any{toMicros(e.At), e.Actor, e.Action, e.Target, e.Status, e.Remote}, &e.ID)
}

func (s *Store) Audit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	q := `SELECT id, at, actor, action, target, status, remote FROM audit_log WHERE 1=1`
	var args []any
	for col, v := range map[string]string{"actor": f.Actor, "action": f.Action, "target": f.Target} {
		if v != "" {
			q += ` AND ` + col + ` = ?`
			args = append(args, v)
		}
	}
	if f.Before > 0 {
		q += ` AND id < ?`
		args = append(args, f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		var e store.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &e.Status, &e.Remote); err != nil {
			return nil, err
		}
		e.At = fromMicros(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
