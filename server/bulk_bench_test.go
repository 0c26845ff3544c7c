package server_test

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// BenchmarkBulkCommand100k: the admin API queues one command (no push)
// for every device of a tenant of 100,000 enrolled devices: key check,
// target selection, Apple's rules per platform, one transaction with
// 100,000 queue rows and the audit entry. One device enrolls through the
// full flow; 99,999 copies of its enrollment and device channel are
// written into the SQLite file in SQL (through the API they would take
// minutes). SQLite only (the PostgreSQL share is in store/postgres's
// BenchmarkBulkEnqueue100k). cpu-ns/op is the process's CPU time.
func BenchmarkBulkCommand100k(b *testing.B) {
	w := newWorld(b, true)
	d := newHotDevice(b, w, "alice@example.com", "alice-password")
	const n = 100_000
	seedCopies(b, filepath.Join(w.e.DataDir, "pomona.db"), d.MDM.EnrollmentID, n-1)
	h := w.e.Server.Handler()
	body := fmt.Sprintf(`{"targets":{"tenant":%q},"command":{"request_type":"ProfileList"},"push":false}`, w.tenant)
	m := newCPUMeter(b)
	defer m.done()
	for i := 0; i < b.N; i++ {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/commands", bytes.NewReader([]byte(body)))
		r.Header.Set("Authorization", "Bearer "+w.e.APIKey)
		r.Header.Set("Content-Type", "application/json")
		rec := serve(b, h, r)
		var out struct {
			Queued int `json:"queued"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Queued != n {
			b.Fatalf("queued %d of %d: %s", out.Queued, n, rec.Body)
		}
	}
}

// seedCopies writes copies of the enrollment whose Apple EnrollmentID is
// appleID, and of its device channel, into the SQLite database at path,
// in one transaction.
func seedCopies(b *testing.B, path, appleID string, copies int) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(20000)&_pragma=foreign_keys(1)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var ref string
	if err := db.QueryRow(`SELECT id FROM enrollments WHERE apple_enrollment_id = ?`, appleID).Scan(&ref); err != nil {
		b.Fatal(err)
	}
	copyRows := func(table, where string, repl map[string]string) string {
		rows, err := db.Query(`SELECT name FROM pragma_table_info(?)`, table)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		var cols, vals []string
		for rows.Next() {
			var c string
			rows.Scan(&c)
			cols = append(cols, c)
			if r, ok := repl[c]; ok {
				c = r
			}
			vals = append(vals, c)
		}
		return fmt.Sprintf(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d)
			INSERT INTO %s (%s) SELECT %s FROM %s, n WHERE %s`, copies, table, strings.Join(cols, ", "), strings.Join(vals, ", "), table, where)
	}
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		copyRows("enrollments", "id = '"+ref+"'", map[string]string{"id": "'en_copy' || i", "apple_enrollment_id": "'APPLE-COPY-' || i",
			"token_hash": "CAST('copy' || i AS BLOB)"}),
		copyRows("channels", "enrollment_ref = '"+ref+"' AND kind = 'device'", map[string]string{"id": "'CH-COPY-' || i", "enrollment_ref": "'en_copy' || i"}),
	} {
		if _, err := tx.Exec(q); err != nil {
			b.Fatal(q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
