package sqlstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Tables in an order that satisfies the foreign keys: everything a move
// between stores (pomona store migrate) must keep. NotCopied lists the
// rest, with the reason; a test fails when a table is in neither.
var Tables = []string{"tenants", "tenant_logos", "tenant_domains", "users", "api_keys", "secrets", "access_tokens", "enrollments",
	"scep_challenges", "identity_certs", "enrollment_profiles", "renewals", "tombstones", "rate_limits", "channels", "commands", "queue",
	"audit_log", "webhooks", "webhook_deliveries", "admins",
	"user_groups", "user_group_members", "config_profiles", "config_profile_versions", "profile_assignments", "profile_items", "reconcile_queue", "reconcile_expansions", "profile_certs",
	"abm_server_tokens", "revoked_certs", "crl_state"}

// NotCopied are the tables a move leaves behind: leases are per-cluster
// runtime state, console sessions end with a move (admins sign in again),
// and idempotency keys only answer retries within 24 hours.
// revocation_count is not copied but rebuilt: the target's trigger counts
// every revoked_certs row the copy inserts. auth_generation (SQLite) is a
// count of writes the target's triggers keep (authCache).
var NotCopied = []string{"leases", "admin_sessions", "idempotency_keys", "revocation_count", "auth_generation"}

// copyFilter narrows what a copy reads (and checksums, on both sides) of
// a table to the rows the target's foreign keys accept. reconcile_queue
// has no key to enrollments on PostgreSQL (migration 0035): a marking
// concurrent with an enrollment's deletion can leave a row of the deleted
// enrollment, which the reconciler deletes when it claims it; a copy
// leaves it behind (SQLite's key would refuse it).
var copyFilter = map[string]string{
	"reconcile_queue": " WHERE enrollment_id IN (SELECT id FROM enrollments)",
}

// TableReport compares one table after a copy.
type TableReport struct {
	Table    string
	Rows     int64
	Checksum uint64
}

// ErrNotEmpty: the target already holds data.
var ErrNotEmpty = errors.New("the target database is not empty")

// CopyTo copies every table of s into dst (both migrated to the same
// schema version; dst empty) in one transaction on dst, then compares row
// counts and checksums of both sides.
func (s *Store) CopyTo(ctx context.Context, dst *Store, progress func(table string, rows int64)) ([]TableReport, error) {
	defer dst.hooks.changed() // it writes dst's webhooks (webhookCache)
	defer dst.auth.changed()  // and its senders (authCache)
	defer dst.auth.queueWritten("")
	sv, err := s.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	dv, err := dst.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	if sv != dv {
		return nil, fmt.Errorf("schema versions differ: source %d, target %d (run the same Pomona version on both)", sv, dv)
	}
	for _, t := range Tables {
		var n int64
		if err := dst.r.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, fmt.Errorf("%w: table %s has %d rows", ErrNotEmpty, t, n)
		}
	}
	err = dst.tx(ctx, func(tx *Tx) error {
		for _, t := range Tables {
			n, err := s.copyTable(ctx, tx, t)
			if err != nil {
				return fmt.Errorf("copy %s: %w", t, err)
			}
			if progress != nil {
				progress(t, n)
			}
		}
		if dst.d.Name == "postgres" {
			// Identity columns continue after the copied ids.
			for _, t := range []string{"audit_log", "webhook_deliveries", "reconcile_expansions"} {
				if _, err := tx.ExecContext(ctx, `SELECT setval(pg_get_serial_sequence('`+t+`', 'id'), COALESCE((SELECT MAX(id) FROM `+t+`), 0) + 1, false)`); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []TableReport
	for _, t := range Tables {
		a, err := s.checksum(ctx, t)
		if err != nil {
			return nil, err
		}
		b, err := dst.checksum(ctx, t)
		if err != nil {
			return nil, err
		}
		if a != b {
			return nil, fmt.Errorf("verification failed for %s: source %d rows (checksum %x), target %d rows (checksum %x)", t, a.Rows, a.Checksum, b.Rows, b.Checksum)
		}
		out = append(out, a)
	}
	return out, nil
}

func (s *Store) copyTable(ctx context.Context, tx *Tx, table string) (int64, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT * FROM "+table+copyFilter[table])
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO "+table+" ("+strings.Join(cols, ", ")+") VALUES ("+
		strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")+")")
	if err != nil {
		return 0, err
	}
	defer ins.Close()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		if _, err := ins.ExecContext(ctx, vals...); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// checksum is an order-independent digest of a table's rows: the sum of
// a hash of each row's values (as the driver returns them: int64, string,
// []byte or NULL), with the row count.
func (s *Store) checksum(ctx context.Context, table string) (TableReport, error) {
	rep := TableReport{Table: table}
	rows, err := s.r.QueryContext(ctx, "SELECT * FROM "+table+copyFilter[table])
	if err != nil {
		return rep, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return rep, err
		}
		h := sha256.New()
		for i, v := range vals {
			fmt.Fprintf(h, "%s=", cols[i])
			switch x := v.(type) {
			case nil:
				h.Write([]byte("NULL"))
			case []byte:
				h.Write([]byte("B"))
				h.Write(x)
			case string:
				h.Write([]byte("B")) // text and blobs compare by content
				h.Write([]byte(x))
			case int64:
				fmt.Fprintf(h, "I%d", x)
			case int32:
				fmt.Fprintf(h, "I%d", x)
			default:
				fmt.Fprintf(h, "%v", x)
			}
			h.Write([]byte{0})
		}
		rep.Checksum += binary.BigEndian.Uint64(h.Sum(nil))
		rep.Rows++
	}
	return rep, rows.Err()
}
