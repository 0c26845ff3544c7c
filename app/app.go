// Package app is Pomona's application layer: the use cases administrators
// perform — tenants, users, devices, commands (one, bulk, unenroll, with
// idempotency), the push certificate, API keys, webhooks, the audit log and
// the dashboard's figures — written once and called by every consumer: the
// admin API (http/api), the web console (http/console), the CLI (through
// the API) and the background jobs (renewal, the --unenroll-on-disable
// policy).
//
// Each service takes only the narrow store interfaces it needs (a few
// methods, never store.Store), so a consumer and a test see what a use case
// touches. Failures are *problem.Error values (Kind, stable code, field) or
// the store's sentinels (store.ErrNotFound, ErrConflict, ErrInUse); package
// http/httpx turns both into statuses in one place. The rules for tenant
// and user fields (names, domains, emails, passwords) stay in package
// directory, which this layer calls: they are also used by the console
// account service, and they hold no use case of their own.
//
// Changes are written to the audit log by the caller per request (the
// API's and the console's middleware record the route, the actor, the
// target and the status; never a body), so every use case below that
// changes something is audited as the route that called it.
//
// The package imports no net/http.
package app

import (
	"strings"
	"time"
)

// Page bounds: a list returns at most MaxLimit entries, DefaultLimit when
// the caller gives none.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

func limit(n int) int {
	if n <= 0 {
		return DefaultLimit
	}
	return min(n, MaxLimit)
}

// clock returns now as stored: UTC, microseconds (both backends keep that).
func clock(now func() time.Time) time.Time {
	if now == nil {
		return time.Now().UTC().Truncate(time.Microsecond)
	}
	return now().UTC().Truncate(time.Microsecond)
}

// isDeviceID reports whether ref is Pomona's device id ("en_…") rather
// than Apple's EnrollmentID.
func isDeviceID(ref string) bool { return strings.HasPrefix(ref, "en_") }

// isUserID reports whether ref is a user id ("us_…") rather than an email.
func isUserID(ref string) bool { return len(ref) > 3 && ref[:3] == "us_" }
