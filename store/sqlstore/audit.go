package sqlstore

import (
	"context"

	"github.com/pomona-mdm/pomona/store"
)

const appendAuditSQL = `INSERT INTO audit_log (at, actor, action, target, status, remote) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`

func auditArgs(e *store.AuditEntry) []any {
	return []any{toMicros(e.At), e.Actor, e.Action, e.Target, e.Status, e.Remote}
}

func (s *Store) AppendAudit(ctx context.Context, e *store.AuditEntry) error {
	return s.writeRow(ctx, appendAuditSQL, auditArgs(e), &e.ID)
}

// appendAudit appends e inside tx (a write that carries its request's
// audit entry: one commit for both).
func appendAudit(ctx context.Context, tx *Tx, e *store.AuditEntry) error {
	return tx.QueryRowContext(ctx, appendAuditSQL, auditArgs(e)...).Scan(&e.ID)
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
