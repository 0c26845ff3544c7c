package postgres_test

import (
	"context"
	"testing"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/postgres"
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
