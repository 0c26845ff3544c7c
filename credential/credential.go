// Package credential holds the steps every sign-in of Pomona takes with
// what a person presents — the device sign-in pages (package auth) and the
// web console (package adminaccount) alike: rate limits per account and
// per client address across every instance sharing the store, a password
// check that costs as much for an unknown account as for a wrong password,
// a rehash when the cost parameters rose, and a TOTP code (RFC 6238) whose
// secret is sealed at rest and that works once.
package credential

import (
	"context"
	"fmt"
	"time"

	"github.com/pomona-mdm/pomona/password"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/totp"
)

// LockedError says sign-in is refused until RetryAfter.
type LockedError struct {
	RetryAfter time.Duration
	Scope      string // "account" or "address"
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("too many failed sign-ins for this %s; retry in %s", e.Scope, e.RetryAfter.Round(time.Second))
}

// Limits are the sign-in rate limits: at most Max failures per Window for
// one account, and at most IPMax for one client address.
type Limits struct {
	Window time.Duration
	Max    int
	IPMax  int
}

// DefaultLimits: 5 failures per account and 30 per address in 15 minutes.
var DefaultLimits = Limits{Window: 15 * time.Minute, Max: 5, IPMax: 30}

// Check refuses a sign-in step when the account or the address has too
// many recent failures. prefix keeps separate counters per sign-in
// ("signin" for devices, "console" for administrators).
func (l Limits) Check(ctx context.Context, st store.RateLimitStore, prefix, account, ip string, now time.Time) error {
	for _, c := range []struct {
		key, scope string
		max        int
	}{{prefix + ":acct:" + account, "account", l.Max}, {prefix + ":ip:" + ip, "address", l.IPMax}} {
		n, start, err := st.RateLimitCount(ctx, c.key, l.Window, now)
		if err != nil {
			return err
		}
		if n >= c.max {
			return &LockedError{RetryAfter: start.Add(l.Window).Sub(now), Scope: c.scope}
		}
	}
	return nil
}

// Fail counts a failed step for the account and the address.
func (l Limits) Fail(ctx context.Context, st store.RateLimitStore, prefix, account, ip string, now time.Time) {
	st.RateLimitHit(ctx, prefix+":acct:"+account, l.Window, now)
	st.RateLimitHit(ctx, prefix+":ip:"+ip, l.Window, now)
}

// Reset clears the account's failures after a successful sign-in (the
// address keeps its count).
func (l Limits) Reset(ctx context.Context, st store.RateLimitStore, prefix, account string) {
	st.RateLimitReset(ctx, prefix+":acct:"+account)
}

// Passwords checks passwords with one set of argon2id parameters.
type Passwords struct {
	params password.Params
	// dummy is verified when there is no hash to check against, so that a
	// wrong account costs as much time as a wrong password.
	dummy string
}

// NewPasswords returns a checker whose Rehash moves hashes to params.
func NewPasswords(params password.Params) *Passwords {
	d, _ := password.Hash("pomona-dummy-password", params)
	return &Passwords{params: params, dummy: d}
}

// Verify reports whether pw matches hash (PHC format, package password).
// An empty hash — no such account, or one without a password yet — is
// false, after the same work as a real check.
func (p *Passwords) Verify(pw, hash string) bool {
	if hash == "" {
		password.Verify(pw, p.dummy)
		return false
	}
	return password.Verify(pw, hash) == nil
}

// Rehash returns a new hash of pw (just verified against hash) when hash
// was made with other parameters than the current ones; "" otherwise or
// when hashing fails (the old hash keeps working).
func (p *Passwords) Rehash(pw, hash string) string {
	if !password.NeedsRehash(hash, p.params) {
		return ""
	}
	h, err := password.Hash(pw, p.params)
	if err != nil {
		return ""
	}
	return h
}

// Opener unseals TOTP secrets (seal.Sealer).
type Opener interface {
	Open(sealed []byte, context string) ([]byte, error)
}

// VerifySealedCode checks a 6-digit TOTP code against the secret sealed
// under sealContext, at now, refusing steps at or before lastStep (each
// code works once). It returns the matching step to record; err only when
// the secret does not open.
func VerifySealedCode(o Opener, sealed []byte, sealContext, code string, now time.Time, lastStep int64) (step int64, ok bool, err error) {
	secret, err := o.Open(sealed, sealContext)
	if err != nil {
		return 0, false, err
	}
	step, ok = totp.Verify(secret, code, now, lastStep)
	return step, ok, nil
}
