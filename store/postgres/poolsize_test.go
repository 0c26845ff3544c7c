package postgres_test

import (
	"context"
	neturl "net/url"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/store/postgres"
)

// TestPoolMaxConns: the URL's pool_max_conns sets an instance's connection
// limit (and is not sent to PostgreSQL, which would refuse the unknown
// parameter: Open connects and migrates), its absence keeps
// DefaultMaxConns, and a bad value is an error that names the parameter.
func TestPoolMaxConns(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	for _, tc := range []struct{ conns, want int }{{0, postgres.DefaultMaxConns}, {40, 40}} {
		s, err := postgres.Open(ctx, withPoolMaxConns(t, url, tc.conns))
		if err != nil {
			t.Fatal(err)
		}
		r, w := s.PoolStats()
		if w.MaxOpenConnections != tc.want || r.MaxOpenConnections != tc.want {
			t.Errorf("pool_max_conns=%d: limit %d (read pool %d), want %d", tc.conns, w.MaxOpenConnections, r.MaxOpenConnections, tc.want)
		}
		s.Close()
	}
	for _, bad := range []string{"0", "x", "1001", ""} {
		u, err := neturl.Parse(url)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set(postgres.PoolMaxConnsParam, bad)
		u.RawQuery = q.Encode()
		if _, err := postgres.Open(ctx, u.String()); err == nil || !strings.Contains(err.Error(), "pool_max_conns") {
			t.Errorf("pool_max_conns=%q: %v, want an error naming the parameter", bad, err)
		}
	}
}
