package sqlstore

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The item an acknowledged InstallProfile answers is found through one
// index entry on (command_uuid, enrollment_id), not by walking the items
// of a template command shared by a whole batch (up to 1,000 devices):
// the plan SQLite makes for itemForCommandSQL on the real migrations
// (without statistics, as Pomona runs it) searches on both columns.
// Before migration 0025 it searched on command_uuid alone.
func TestItemForCommandPlan(t *testing.T) {
	ctx := context.Background()
	s, _ := groupCommitStore(t)
	if err := s.Migrate(ctx, os.DirFS("../sqlite"), "migrations"); err != nil {
		t.Fatal(err)
	}
	rows, err := s.w.DB.QueryContext(ctx, "EXPLAIN QUERY PLAN "+itemForCommandSQL, "en_a", "cmd")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	p := strings.Join(plan, "; ")
	if len(plan) != 1 || !strings.Contains(p, "command_uuid=?") || !strings.Contains(p, "enrollment_id=?") {
		t.Fatalf("the item of one device's command is not one index lookup on both columns: %s", p)
	}
}

// BenchmarkItemForCommand: one device's item by (enrollment, command) at
// 20,000 items, where every 1,000 devices share one template command
// (render at delivery: one per reconciler batch) — the lookup each
// acknowledged InstallProfile makes. Run it with and without migration
// 0025 to see the walk over a batch's items.
func BenchmarkItemForCommand(b *testing.B) {
	ctx := context.Background()
	s, _ := groupCommitStore(&testing.T{})
	if err := s.Migrate(ctx, os.DirFS("../sqlite"), "migrations"); err != nil {
		b.Fatal(err)
	}
	const n, batch = 20000, 1000
	if _, err := s.w.DB.ExecContext(ctx, `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM k WHERE i < ?)
		INSERT INTO profile_items (enrollment_id, profile_id, identifier, state, command_uuid, updated_at)
		SELECT printf('en_%06d', i), 'pr_1', 'com.example.wifi', 'installing', printf('CMD-%03d', i / ?), 0 FROM k`, n-1, batch); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	// CPU, not wall: the machine is shared (process CPU from getrusage).
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0 := cpu()
	i := 0
	for b.Loop() {
		e := (i * 7919) % n
		i++
		var id string
		row := s.r.QueryRowContext(ctx, `SELECT i.state FROM profile_items i WHERE i.enrollment_id = ? AND i.command_uuid = ?`,
			fmt.Sprintf("en_%06d", e), fmt.Sprintf("CMD-%03d", e/batch))
		if err := row.Scan(&id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpu()-c0)/float64(b.N), "cpu-ns/op")
}
