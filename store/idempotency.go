package store

import (
	"context"
	"time"
)

// IdempotencyKey remembers one command creation made under an
// Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): a request
// repeating the key from the same credential gets the same answer and
// queues nothing.
type IdempotencyKey struct {
	// Principal is the API credential that sent the key ("key:<id>",
	// "bootstrap"): keys are scoped to it.
	Principal string
	// Key is the header's value, 1–255 printable ASCII characters.
	Key string
	// Fingerprint identifies the request (a hash of method, path and
	// body): the same key with another fingerprint is refused.
	Fingerprint string
	// Response is the outcome to replay (JSON, at most a few KiB).
	Response  []byte
	CreatedAt time.Time
	// ExpiresAt is when the key may be used for another request.
	ExpiresAt time.Time
}

// IdempotencyStore keeps idempotency keys of command creations. They live
// in the database, written in the transaction that queues the command, so
// that they hold across instances and survive a killed one.
type IdempotencyStore interface {
	// IdempotencyKey returns principal's record of key if it has not
	// expired at now; ErrNotFound otherwise.
	IdempotencyKey(ctx context.Context, principal, key string, now time.Time) (*IdempotencyKey, error)
	// EnqueueOnce is Enqueue under an idempotency key: k is recorded in the
	// same transaction that stores cmd and queues it for channelIDs. When
	// k.Principal already holds k.Key unexpired at k.CreatedAt (an earlier
	// request, or a concurrent one that committed first), nothing is
	// queued and that record is returned (existing != nil, err nil); an
	// expired record of the key is replaced.
	EnqueueOnce(ctx context.Context, k *IdempotencyKey, cmd *CommandRecord, channelIDs []string) (existing *IdempotencyKey, err error)
	// PurgeIdempotencyKeys deletes the records expired at now and returns
	// how many.
	PurgeIdempotencyKeys(ctx context.Context, now time.Time) (int64, error)
}
