package postgres_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store/postgres"
)

// The item an acknowledged InstallProfile answers is found by its
// enrollment's primary-key range (a few items per device), without an
// index on command_uuid (dropped by migration 0030: one more entry per
// item the reconciler writes), even where 1,000 items share one template
// command and PostgreSQL has no statistics (items just written). Fails
// before 0030 on the index list.
func TestItemForCommandByPrimaryKey(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('t', 'T', 0, 0)`,
		`INSERT INTO tenant_domains (tenant_id, domain) VALUES ('t', 't.example')`,
		`INSERT INTO users (id, tenant_id, email, domain, managed_apple_id, created_at, updated_at)
			VALUES ('us_1', 't', 'a@t.example', 't.example', 'a@t.example', 0, 0)`,
		`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, status, created_at, updated_at)
			SELECT 'en_' || lpad(i::text, 6, '0'), 't', 'us_1', '\x00', 'iOS', 'enrolled', 0, 0 FROM generate_series(0, 19999) AS i`,
		`INSERT INTO config_profiles (id, tenant_id, identifier, name, platforms, min_os, sign, version, hash, payload_types, created_at, updated_at)
			VALUES ('pr_1', 't', 'com.example.wifi', 'Wi-Fi', '', '', 0, 1, 'h', '', 0, 0)`,
		`INSERT INTO profile_items (enrollment_id, profile_id, identifier, state, command_uuid, updated_at)
			SELECT 'en_' || lpad(i::text, 6, '0'), 'pr_1', 'com.example.wifi', 'installing', 'CMD-' || lpad((i / 1000)::text, 3, '0'), 0
			FROM generate_series(0, 19999) AS i`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(q, err)
		}
	}
	var indexes string
	if err := db.QueryRowContext(ctx, `SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'profile_items'`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if indexes != "profile_items_pkey,profile_items_profile,profile_items_profile_device" {
		t.Errorf("profile_items' indexes: %s", indexes)
	}
	rows, err := db.QueryContext(ctx, `EXPLAIN SELECT i.state FROM profile_items i WHERE i.enrollment_id = $1 AND i.command_uuid = $2`, "en_012345", "CMD-012")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	p := strings.Join(plan, "\n")
	// An index scan or a bitmap scan (PostgreSQL's guess without
	// statistics: 47 items per enrollment) of the enrollment's range.
	if !strings.Contains(p, "on profile_items_pkey") || !strings.Contains(p, "Index Cond: (enrollment_id =") || strings.Contains(p, "Seq Scan") {
		t.Fatalf("the item of one device's command is not found by the enrollment's primary-key range:\n%s", p)
	}
}
