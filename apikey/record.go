package apikey

import (
	"context"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// NewRecord makes a key named name: the key string (shown once) and the
// row to store (its id and secret hash, created at now to the
// microsecond, as both backends keep it).
func NewRecord(name string, now time.Time) (key string, rec *store.APIKey) {
	k, id, hash := New()
	return k, &store.APIKey{ID: id, Name: name, SecretHash: hash, CreatedAt: now.UTC().Truncate(time.Microsecond)}
}

// Keys is the part of the store FirstStart needs.
type Keys interface {
	CountAPIKeys(ctx context.Context) (int, error)
	CreateAPIKey(ctx context.Context, k *store.APIKey) error
}

// FirstStart makes the first admin API key, named "first-start", when the
// store has none and returns it (to be shown once); "" when keys exist.
func FirstStart(ctx context.Context, keys Keys, now time.Time) (string, error) {
	n, err := keys.CountAPIKeys(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	k, rec := NewRecord("first-start", now)
	if err := keys.CreateAPIKey(ctx, rec); err != nil {
		return "", err
	}
	return k, nil
}
