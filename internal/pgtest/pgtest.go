// Package pgtest gives tests a fresh PostgreSQL database. The server is
// named by POMONA_TEST_POSTGRES (default: the local server, user postgres).
// Without a reachable server a test is skipped locally and fails in CI
// (CI=true), where .ci/run starts PostgreSQL.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// AdminURL is the maintenance connection.
func AdminURL() string {
	if u := os.Getenv("POMONA_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates an empty database, drops it when the test ends, and
// returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("pgx", AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		admin.Close()
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL is not reachable at %s: %v", AdminURL(), err)
		}
		t.Skipf("PostgreSQL not reachable at %s (set POMONA_TEST_POSTGRES): %v", AdminURL(), err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "pomona_test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
		admin.Close()
	})
	u, _ := url.Parse(AdminURL())
	u.Path = "/" + name
	return u.String()
}
