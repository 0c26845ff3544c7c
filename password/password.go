// Package password hashes and verifies passwords with argon2id. Each hash
// is a PHC string that records its own parameters
// ($argon2id$v=19$m=19456,t=2,p=1$salt$hash), so the defaults can be
// raised later and old hashes still verify; NeedsRehash tells when to
// upgrade a hash at the next successful sign-in.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// Default follows OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane).
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Fast is for tests only: it keeps the format but costs almost nothing.
var Fast = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// Limits on what Verify will compute, so a hostile or corrupt stored hash
// cannot make one sign-in allocate gigabytes.
const (
	maxMemory = 1 << 20 // 1 GiB in KiB
	maxTime   = 16
	// MaxLength bounds password length; longer input is refused before hashing.
	MaxLength = 1024
)

// slots bounds the argon2id computations (Hash, Verify) running at once
// in this process to GOMAXPROCS; the others wait their turn. Each holds
// its Memory (19 MiB by Default) while it runs, and the sign-in pages
// start one per attempt for anyone on the network: without the bound,
// 200 wrong passwords sent at once took a demo server from 72 MB to
// 3.6 GB. Computing more at once than there are CPUs (each is
// single-threaded by Default) would not finish sooner anyway.
var (
	slots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))
	// idKey is argon2.IDKey; a test replaces it to watch the bound.
	idKey = argon2.IDKey
)

// key computes an argon2id key in one of the slots, waiting for one
// until ctx ends (then ctx's error, nothing computed): a sign-in whose
// client has gone does not wait its turn to compute a key nobody will
// read. Without that, a flood of attempts whose clients had all hung up
// (each counted by the sign-in limits before the check) still kept every
// slot busy, one queued key after another, ahead of a later client's.
func key(ctx context.Context, pw, salt []byte, time, memory uint32, threads uint8, keyLen uint32) ([]byte, error) {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-slots }()
	if err := ctx.Err(); err != nil {
		return nil, err // a slot and an ended context both ready: select picks either
	}
	return idKey(pw, salt, time, memory, threads, keyLen), nil
}

var (
	ErrMismatch  = errors.New("password: mismatch")
	ErrMalformed = errors.New("password: malformed hash")
)

// Hash returns the PHC string for pw under p.
func Hash(pw string, p Params) (string, error) {
	if len(pw) > MaxLength {
		return "", fmt.Errorf("password: longer than %d bytes", MaxLength)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	k, err := key(context.Background(), []byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(k)), nil
}

// Verify reports nil when pw matches the PHC hash, ErrMismatch when it
// does not, ErrMalformed when the hash cannot be read.
func Verify(pw, hash string) error { return VerifyContext(context.Background(), pw, hash) }

// VerifyContext is Verify for a request: when ctx ends (the client
// disconnected) before one of the bounded computations is free, it
// returns ctx's error without computing anything. Any error but nil is
// a refusal.
func VerifyContext(ctx context.Context, pw, hash string) error {
	p, salt, want, err := decode(hash)
	if err != nil {
		return err
	}
	if len(pw) > MaxLength {
		return ErrMismatch
	}
	got, err := key(ctx, []byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrMismatch
	}
	return nil
}

// NeedsRehash reports whether hash uses weaker parameters than p.
func NeedsRehash(hash string, p Params) bool {
	hp, salt, key, err := decode(hash)
	if err != nil {
		return true
	}
	return hp.Memory < p.Memory || hp.Time < p.Time || hp.Threads < p.Threads ||
		uint32(len(salt)) < p.SaltLen || uint32(len(key)) < p.KeyLen
}

// ParamsOf returns the parameters recorded in hash.
func ParamsOf(hash string) (Params, error) {
	p, salt, key, err := decode(hash)
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, err
}

func decode(hash string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, ErrMalformed
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, ErrMalformed
	}
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &threads); err != nil || n != 3 {
		return p, nil, nil, ErrMalformed
	}
	if p.Memory == 0 || p.Memory > maxMemory || p.Time == 0 || p.Time > maxTime || threads == 0 || threads > 255 {
		return p, nil, nil, ErrMalformed
	}
	p.Threads = uint8(threads)
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, ErrMalformed
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 128 {
		return p, nil, nil, ErrMalformed
	}
	return p, salt, key, nil
}
