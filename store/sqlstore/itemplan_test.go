package sqlstore

import (
	"context"
	"os"
	"strings"
	"testing"
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
