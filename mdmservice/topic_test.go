package mdmservice

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/problem"
)

// TestTopicCache: the topic is loaded once per TopicTTL; a check-in with
// another topic re-reads at once (a certificate changed on another
// instance); Invalidate forgets it; no certificate is Unavailable.
func TestTopicCache(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	current, loads := "com.apple.mgmt.A", 0
	var loadErr error
	c := &TopicCache{Now: func() time.Time { return now }, Load: func(context.Context) (string, error) {
		loads++
		return current, loadErr
	}}
	for range 3 {
		if err := c.Check(ctx, "com.apple.mgmt.A"); err != nil {
			t.Fatal(err)
		}
	}
	if loads != 1 {
		t.Fatalf("%d loads for 3 check-ins, want 1", loads)
	}
	current = "com.apple.mgmt.B" // changed elsewhere
	if err := c.Check(ctx, "com.apple.mgmt.B"); err != nil || loads != 2 {
		t.Fatalf("new topic: %v after %d loads, want accepted on the second load", err, loads)
	}
	if err := c.Check(ctx, "com.apple.mgmt.A"); problem.KindOf(err) != problem.Invalid || loads != 3 {
		t.Fatalf("old topic: %v after %d loads, want Invalid after one re-read", err, loads)
	}
	now = now.Add(TopicTTL)
	c.Check(ctx, "com.apple.mgmt.B")
	if loads != 4 {
		t.Fatalf("after TopicTTL: %d loads, want 4", loads)
	}
	c.Invalidate()
	loadErr = errors.New("no push certificate")
	if err := c.Check(ctx, "com.apple.mgmt.B"); problem.KindOf(err) != problem.Unavailable {
		t.Fatalf("without a certificate: %v, want Unavailable", err)
	}
}
