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
	"log/slog"
	"net/netip"
	"time"

	"github.com/pomona-mdm/pomona/jobs"
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

// Begin counts a sign-in step for the account and the client address
// before anything is checked, and refuses it (LockedError) when that
// count passes Max or IPMax. Counting first is what makes the limits
// hold under concurrency: were the counters only read here and raised
// after a wrong answer, every attempt sent at once would read the same
// count and be checked — 200 wrong passwords sent together against one
// account were 188 checked (401) instead of 5. The caller ends the step
// with Attempt.Succeeded when it was not a failure, and with
// Attempt.Failed when it was (counted already; Failed counts it again
// only when a success reset the account meanwhile).
//
// The counters are read first, and a step already over a limit is
// refused without a write: a flood of refused steps costs reads only
// (the store's writer is the devices' too), and one address makes no
// rows for the accounts it names while it is locked out. The address is
// counted before the account for the same reason.
//
// IPv6 addresses count per /64 (one host's usual allocation, and what a
// single client can rotate through freely); IPv4 per address.
func (l Limits) Begin(ctx context.Context, st store.RateLimitStore, prefix, account, ip string, now time.Time) (*Attempt, error) {
	acct, addr := limit{prefix + ":acct:" + account, "account", l.Max}, limit{prefix + ":ip:" + AddressKey(ip), "address", l.IPMax}
	for _, c := range []limit{acct, addr} {
		n, start, err := st.RateLimitCount(ctx, c.key, l.Window, now)
		if err != nil {
			return nil, err
		}
		if n >= c.max {
			return nil, &LockedError{RetryAfter: start.Add(l.Window).Sub(now), Scope: c.scope}
		}
	}
	a := &Attempt{st: st, window: l.Window}
	for _, c := range []limit{addr, acct} {
		n, start, err := st.RateLimitHit(ctx, c.key, l.Window, now)
		if err != nil {
			a.Succeeded(ctx) // no step ran: take back what was counted
			return nil, err
		}
		a.hits = append(a.hits, hit{c.key, start})
		if n > c.max {
			// Lost a race with concurrent steps. A refused step counts
			// nothing (as no check ran): taking its hits back cannot let
			// another step through, since the steps that passed keep
			// theirs until they end.
			a.Succeeded(ctx)
			return nil, &LockedError{RetryAfter: start.Add(l.Window).Sub(now), Scope: c.scope}
		}
	}
	return a, nil
}

type limit struct {
	key, scope string
	max        int
}

// Attempt is a sign-in step Begin counted.
type Attempt struct {
	st     store.RateLimitStore
	window time.Duration
	hits   []hit // the address's, then the account's
}

type hit struct {
	key   string
	start time.Time
}

// Succeeded takes the step back from the counters: it was no failure (the
// right password, the right code, or the step ended for another reason
// than a wrong answer, such as a store error). Calling it twice, or on
// nil, does nothing.
func (a *Attempt) Succeeded(ctx context.Context) {
	if a == nil {
		return
	}
	ctx = context.WithoutCancel(ctx) // a client gone meanwhile must not leave a success counted
	for _, h := range a.hits {
		a.st.RateLimitUndo(ctx, h.key, h.start)
	}
	a.hits = nil
}

// AddressKey is the part of a client address the per-address limit
// counts: the /64 of an IPv6 address (an IPv4-mapped one is IPv4), the
// address itself otherwise; text that is no address is used as it is.
func AddressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
}

// Failed ends a step whose answer was wrong. The failure is already
// counted (Begin), unless a successful sign-in of the same account reset
// the account's counter while this step was being checked: that reset
// forgave the failures before it, not this one, which was still in flight
// — without counting it again, an attacker guessing while the person
// signs in would have up to Max guesses forgiven by each of the person's
// sign-ins. So when the account's counter is no longer the window this
// step was counted in (reset, and perhaps a new window begun since), the
// failure is counted again in the current one. A window that simply ran
// out meanwhile is not counted again (the step would have expired with
// it). Calling it on nil, or after Succeeded, does nothing.
func (a *Attempt) Failed(ctx context.Context, now time.Time) {
	if a == nil || len(a.hits) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx) // a client gone meanwhile must not take its failure back
	h := a.hits[len(a.hits)-1]       // the account's (Begin counts the address first)
	a.hits = nil
	if !now.Before(h.start.Add(a.window)) {
		return
	}
	_, start, err := a.st.RateLimitCount(ctx, h.key, a.window, now)
	if err != nil || start.Equal(h.start) {
		return
	}
	a.st.RateLimitHit(ctx, h.key, a.window, now)
}

// Reset clears the account's failures after a successful sign-in (the
// address keeps its count). Steps of the account in flight at that moment
// count again if they fail (Attempt.Failed).
func (l Limits) Reset(ctx context.Context, st store.RateLimitStore, prefix, account string) {
	st.RateLimitReset(ctx, prefix+":acct:"+account)
}

// Pruner deletes the rate-limit counters whose window is over. Without
// it a counter was deleted only by a successful sign-in of its account,
// so the table kept a row for every address and every account name ever
// tried: an attacker rotating addresses (each may name up to IPMax
// accounts per window) grew it without end. A deleted counter reads as
// an ended window does (0), so pruning changes no limit's answer.
type Pruner struct {
	Store interface {
		RateLimitPrune(ctx context.Context, before time.Time, max int) (int, error)
	}
	// Limits are every set of limits counting into Store (the device
	// sign-in's and the console's): counters older than the longest
	// window among them are deleted. Read at each pass.
	Limits []*Limits
	Now    func() time.Time
	Log    *slog.Logger
}

// pruneEvery is how often the counters are pruned: a third of the
// default window, so the table holds at most about 1⅓ windows of keys.
const pruneEvery = 5 * time.Minute

// pruneBatch bounds one delete statement (the writer is the devices' too).
const pruneBatch = 1000

// Periodic is the job for jobs.Runner.Run: a pass every 5 minutes on one
// instance of a cluster (lease "rate-limit-prune"), the first a minute
// after start.
func (p *Pruner) Periodic() jobs.Job {
	return jobs.Job{Lease: "rate-limit-prune", LeaseTTL: pruneEvery - 30*time.Second, First: time.Minute, Interval: pruneEvery,
		Run: func(ctx context.Context) {
			if _, err := p.Prune(ctx); err != nil && ctx.Err() == nil {
				p.Log.Warn("rate-limit counters: prune failed", "err", err)
			}
		}}
}

// Prune deletes every counter whose window ended (started more than the
// longest window before Now), pruneBatch rows per statement, and returns
// how many it deleted.
func (p *Pruner) Prune(ctx context.Context) (int, error) {
	var window time.Duration
	for _, l := range p.Limits {
		window = max(window, l.Window)
	}
	if window <= 0 {
		return 0, nil
	}
	before := p.Now().Add(-window)
	total := 0
	for {
		n, err := p.Store.RateLimitPrune(ctx, before, pruneBatch)
		total += n
		if err != nil || n < pruneBatch || ctx.Err() != nil {
			if total > 0 && p.Log != nil {
				p.Log.Info("rate-limit counters pruned", "count", total, "older_than", window.String())
			}
			return total, err
		}
	}
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
// false, after the same work as a real check. ctx is the sign-in's
// request: when it ends while the check waits for a free computation
// (password.VerifyContext), the answer is false without computing (the
// step stays counted as a failure: its client has gone).
func (p *Passwords) Verify(ctx context.Context, pw, hash string) bool {
	if hash == "" {
		password.VerifyContext(ctx, pw, p.dummy)
		return false
	}
	return password.VerifyContext(ctx, pw, hash) == nil
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
