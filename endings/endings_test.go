package endings

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

type purger struct{ before time.Time }

func (p *purger) PurgeTombstones(_ context.Context, before time.Time) (int64, error) {
	p.before = before
	return 3, nil
}

func TestPurgeUsesRetentionOnTheLifecycleClock(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		retention, want time.Duration
	}{{0, DefaultTombstoneRetention}, {48 * time.Hour, 48 * time.Hour}} {
		p := &purger{}
		ts := &Tombstones{Store: p, Retention: c.retention, Now: func() time.Time { return now }, Log: log}
		n, err := ts.Purge(context.Background())
		if err != nil || n != 3 {
			t.Fatalf("Purge = %d, %v", n, err)
		}
		if got := now.Sub(p.before); got != c.want {
			t.Errorf("retention %v: purged before now-%v, want now-%v", c.retention, got, c.want)
		}
	}
	j := (&Tombstones{}).Periodic()
	if j.Lease != "tombstone-purge" || j.Interval != 6*time.Hour || j.LeaseTTL >= j.Interval {
		t.Errorf("job = %+v: want lease tombstone-purge, every 6 h, held less than the interval", j)
	}
}
