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

// TestTopicCacheInvalidateDuringLoad: a Load that read the old push
// certificate and returns after Invalidate (the certificate was saved
// meanwhile) must not be kept: the next check-in with the old topic is
// refused at once, not trusted for another TopicTTL.
func TestTopicCacheInvalidateDuringLoad(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	current := "com.apple.mgmt.A"
	var c *TopicCache
	inFlight := true
	c = &TopicCache{Now: func() time.Time { return now }, Load: func(context.Context) (string, error) {
		read := current
		if inFlight {
			// The certificate changes (and this instance invalidates)
			// while this Load still holds the old topic.
			inFlight = false
			current = "com.apple.mgmt.B"
			c.Invalidate()
		}
		return read, nil
	}}
	if err := c.Check(ctx, "com.apple.mgmt.A"); err != nil {
		t.Fatal(err) // answered with what was current when it asked
	}
	if err := c.Check(ctx, "com.apple.mgmt.A"); problem.KindOf(err) != problem.Invalid {
		t.Fatalf("old topic after Invalidate: %v, want Invalid", err)
	}
	if err := c.Check(ctx, "com.apple.mgmt.B"); err != nil {
		t.Fatalf("new topic: %v", err)
	}
}
