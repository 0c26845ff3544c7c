package sqlstore

import (
	"context"
	"testing"
	"time"
)

// TestRateLimitHitIsACommittedTransaction (break8): RateLimitHit became
// one INSERT … RETURNING, sent with QueryRowContext on the writer pool —
// which, unlike ExecContext, does not go through SQLite's group
// committer. It ran on the writer connection between batches with
// whatever synchronous level the last batch left (NORMAL after a batch
// of hints: a counted guess could be lost in a crash) and outside the
// committer's order. Through writeRow it is a transaction of the next
// batch, FULL like every write a caller waits for: each hit counts one
// transaction in GroupCommitCounts (0 on the code before).
func TestRateLimitHitIsACommittedTransaction(t *testing.T) {
	ctx := context.Background()
	s, _ := groupCommitStore(t)
	if _, err := s.w.DB.ExecContext(ctx, `CREATE TABLE rate_limits (key TEXT PRIMARY KEY, count INTEGER NOT NULL, window_start INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	_, before := s.GroupCommitCounts()
	now := time.Now()
	for i := 1; i <= 3; i++ {
		n, start, err := s.RateLimitHit(ctx, "signin:acct:a@example.com", time.Minute, now)
		if err != nil || n != i || !start.Equal(now.Truncate(time.Microsecond)) {
			t.Fatalf("hit %d: %d, %v, %v", i, n, start, err)
		}
	}
	if _, after := s.GroupCommitCounts(); after-before != 3 {
		t.Fatalf("%d of 3 rate-limit hits ran as group-commit transactions", after-before)
	}
}
