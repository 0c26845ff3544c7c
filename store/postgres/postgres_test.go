package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
	"github.com/pomona-mdm/pomona/store/sqlstore"
	"github.com/pomona-mdm/pomona/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := postgres.Open(context.Background(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestMigrationsOnceUnderConcurrentStarts(t *testing.T) {
	url := pgtest.NewDatabase(t)
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			s, err := postgres.Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.SchemaVersion(context.Background()); err != nil || v < 6 {
		t.Fatalf("schema version %d %v", v, err)
	}
}

func TestRedact(t *testing.T) {
	if got := postgres.Redact("postgres://pomona:s3cret@db:5432/pomona"); got != "postgres://pomona:xxxxx@db:5432/pomona" {
		t.Fatal(got)
	}
}

// A binary older than the database refuses to open it (see the SQLite twin).
func TestRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	known, _ := s.SchemaVersion(ctx)
	s.Close()
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = postgres.Open(ctx, url)
	var tooNew *sqlstore.SchemaTooNewError
	if !errors.As(err, &tooNew) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("open of a newer schema: err = %v, want SchemaTooNewError", err)
	}
	if tooNew.Database != 9999 || tooNew.Binary != known || !strings.Contains(err.Error(), "newer than this Pomona binary") {
		t.Fatalf("error %+v: %v", tooNew, err)
	}
}
