package profiles

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
	"github.com/pomona-mdm/pomona/store/sqlstore"
)

// testStore is a new SQLite store holding tenant tn_1 (example.com),
// created at now.
func testStore(t *testing.T, now time.Time) (*sqlstore.Store, *store.Tenant) {
	t.Helper()
	st := emptyStore(t)
	tn := &store.Tenant{ID: "tn_1", Name: "Example", Domains: []string{"example.com"}, CreatedAt: now, UpdatedAt: now}
	if err := st.CreateTenant(context.Background(), tn); err != nil {
		t.Fatal(err)
	}
	return st, tn
}

// delivered decodes a command plist the Deliverer made: the whole
// command, its Command dictionary and the profile in its Payload.
func delivered(t *testing.T, body []byte) (cmd, inner map[string]any, payload []byte) {
	t.Helper()
	cmd, err := mdm.DecodeDict(body)
	if err != nil {
		t.Fatalf("the delivered command: %v", err)
	}
	inner, _ = cmd["Command"].(map[string]any)
	payload, _ = inner["Payload"].([]byte)
	return cmd, inner, payload
}

// emptyStore is a new SQLite store in the test's directory, closed when
// the test ends.
func emptyStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// runUntilIdle runs the reconciler until a pass claims nothing.
func runUntilIdle(t *testing.T, j *Job) {
	t.Helper()
	for {
		rep, err := j.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Claimed == 0 {
			return
		}
	}
}
