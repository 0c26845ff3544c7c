package api

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/apikey"
	"github.com/pomona-mdm/pomona/store"
)

// countingKeys is an APIKeyStore of one key that counts reads and writes.
type countingKeys struct {
	store.APIKeyStore // nil: other methods are not called
	key               store.APIKey
	reads, touches    int
}

func (c *countingKeys) APIKey(_ context.Context, id string) (*store.APIKey, error) {
	c.reads++
	if id != c.key.ID {
		return nil, store.ErrNotFound
	}
	k := c.key
	return &k, nil
}

func (c *countingKeys) TouchAPIKey(_ context.Context, id string, at time.Time) error {
	c.touches++
	c.key.LastUsedAt = at
	return nil
}

// The key check reads the key on every request (a revocation takes effect
// at once, on every instance) but writes its last use at most once a
// minute per key, not per request.
func TestKeyCheckWritesLastUseOncePerMinute(t *testing.T) {
	full, id, hash := apikey.New()
	keys := &countingKeys{key: store.APIKey{ID: id, Name: "k", SecretHash: hash}}
	now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	auth := &KeyAuth{Keys: keys, Now: func() time.Time { return now }}
	for _, step := range []struct {
		advance              time.Duration
		wantReads, wantTouch int
	}{
		{0, 1, 1}, // never used: recorded
		{10 * time.Second, 2, 1},
		{30 * time.Second, 3, 1},
		{31 * time.Second, 4, 2}, // over a minute since the last record
		{time.Second, 5, 2},
	} {
		now = now.Add(step.advance)
		if p, err := auth.Check(context.Background(), "Bearer "+full); err != nil || p != "key:"+id {
			t.Fatalf("%q %v", p, err)
		}
		if keys.reads != step.wantReads || keys.touches != step.wantTouch {
			t.Fatalf("after +%s: %d reads, %d writes; want %d, %d", step.advance, keys.reads, keys.touches, step.wantReads, step.wantTouch)
		}
	}
	// Revoked: refused on the next request, no cache in between.
	keys.key.RevokedAt = now
	if _, err := auth.Check(context.Background(), "Bearer "+full); !errors.Is(err, errBadKey) {
		t.Fatalf("revoked key: %v", err)
	}
}
