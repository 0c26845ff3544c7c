// Package reconcile is the pure core of Pomona's desired-state engine for
// configuration profiles: given what a device should have (the profiles
// assigned to its user's groups, filtered by platform and OS version, each
// rendered with the user's variables) and what Pomona knows it installed,
// Plan says which InstallProfile and RemoveProfile commands make the two
// equal, and Verify reads a ProfileList answer into state changes. No
// HTTP, no database: package profiles runs it against the store.
//
// Apple: InstallProfile, RemoveProfile and ProfileList commands (Device
// Management, "Install Profile Command" and following). A RemoveProfile is
// only ever planned for a profile Pomona installed (an item exists), never
// for anything else on the device.
package reconcile

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
)

// Item states (per device × profile).
const (
	Pending    = "pending"    // desired, nothing sent yet (or drift found)
	Installing = "installing" // InstallProfile queued (Acknowledged: waiting for ProfileList)
	Installed  = "installed"  // acknowledged and seen in ProfileList
	Failed     = "failed"     // the device answered Error, or the profile cannot be made for it
	Removing   = "removing"   // RemoveProfile queued
)

// A refused removal: the device answered the RemoveProfile with Error and
// its ProfileList still lists the profile. Verify turns the Removing item
// Failed with Acknowledged kept true (the profile is on the device, the
// Error the device's chain), and Plan retries the removal after Backoff of
// its Attempts, at most MaxAttempts times, as for a refused install. An
// admin's retry (item Pending, Acknowledged still true) removes at once.

// Profile is one profile that may apply to the device: its current version.
type Profile struct {
	ProfileID  string
	Identifier string // PayloadIdentifier
	Version    int
	Platforms  []string // iOS, macOS; empty: every platform
	MinOS      string   // "" or a dotted version ("17.0")
	Plist      []byte   // stored XML plist, placeholders kept
	// Included: assigned to a group of the user; Excluded: one of the
	// user's groups is excluded from it (exclusion wins).
	Included, Excluded bool
}

// Device is the enrollment being reconciled.
type Device struct {
	Platform  string // iOS or macOS
	OSVersion string
	// Values are the variables for mobileconfig.Render.
	Values map[string]string
}

// Item is what Pomona records for the device and one profile.
type Item struct {
	ProfileID   string
	Identifier  string
	State       string
	Version     int
	Hash        string // content hash of what was (or is being) installed
	CommandUUID string
	// Acknowledged: the InstallProfile was acknowledged; on a Removing item
	// (and on the Failed or Pending item of a refused removal), the device
	// answered the RemoveProfile with Error — the profile may still be on
	// it, ProfileList settles it.
	Acknowledged bool
	// Attempts of the current install or removal (1 for the first).
	Attempts  int
	Error     string
	NextRetry time.Time
}

// Action kinds.
const (
	Install = "install" // queue InstallProfile with Payload
	Remove  = "remove"  // queue RemoveProfile of Identifier
	Fail    = "fail"    // record a failure for this device only (Error)
	Drop    = "drop"    // forget the item: nothing of it is on the device
)

// Action is one step of a plan.
type Action struct {
	Kind       string
	ProfileID  string
	Identifier string
	Version    int
	Payload    []byte // Install: the rendered profile
	Hash       string // Install: its content hash
	Error      string // Fail: why
	Attempts   int    // Install, Remove: the attempt this is (1 for a new hash, a first removal)
}

// Backoff of failed installs and refused removals: 1 min, doubled per attempt, at most 6 h;
// after MaxAttempts the item stays failed until the profile, the user's
// values or an admin's retry change it.
const (
	BackoffBase = time.Minute
	BackoffMax  = 6 * time.Hour
	MaxAttempts = 8
)

// Backoff is the wait after the attempts-th failed attempt.
func Backoff(attempts int) time.Duration {
	d := BackoffBase
	for i := 1; i < attempts && d < BackoffMax; i++ {
		d *= 2
	}
	return min(d, BackoffMax)
}

// Applies reports whether p is for a device on platform at osVersion.
func Applies(p Profile, platform, osVersion string) bool {
	if !p.Included || p.Excluded {
		return false
	}
	if len(p.Platforms) > 0 {
		ok := false
		for _, x := range p.Platforms {
			ok = ok || x == platform
		}
		if !ok {
			return false
		}
	}
	return p.MinOS == "" || CompareVersions(osVersion, p.MinOS) >= 0
}

// CompareVersions compares dotted versions numerically ("17.10" > "17.9");
// missing parts count as 0, a non-number as 0.
func CompareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// ValidVersion reports whether s is a dotted version of 1–3 numbers.
func ValidVersion(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return false
	}
	for _, p := range parts {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || len(p) > 4 {
			return false
		}
	}
	return true
}

// Plan compares the device's profiles with its items at now. It returns
// the actions to take, in a stable order (installs and failures in
// profiles' order, then removals and drops in items' order), and when the
// device must be looked at again for a retry (zero: not for a retry).
func Plan(dev Device, profiles []Profile, items []Item, now time.Time) (actions []Action, wake time.Time) {
	return plan(mobileconfig.Render, dev, profiles, items, now)
}

func plan(render func([]byte, map[string]string) ([]byte, string, error), dev Device, profiles []Profile, items []Item, now time.Time) (actions []Action, wake time.Time) {
	byProfile := make(map[string]*Item, len(items))
	for i := range items {
		byProfile[items[i].ProfileID] = &items[i]
	}
	wanted := map[string]bool{}
	for _, p := range profiles {
		if !Applies(p, dev.Platform, dev.OSVersion) {
			continue
		}
		wanted[p.ProfileID] = true
		it := byProfile[p.ProfileID]
		payload, hash, err := render(p.Plist, dev.Values)
		if err != nil {
			reason := "cannot make the profile for this device: " + err.Error()
			var me *mobileconfig.MissingValueError
			if errors.As(err, &me) {
				reason = "the profile uses " + me.Error()
			}
			if it == nil || it.State != Failed || it.Error != reason || it.Version != p.Version {
				actions = append(actions, Action{Kind: Fail, ProfileID: p.ProfileID, Identifier: p.Identifier, Version: p.Version, Error: reason})
			}
			continue
		}
		install := Action{Kind: Install, ProfileID: p.ProfileID, Identifier: p.Identifier, Version: p.Version, Payload: payload, Hash: hash, Attempts: 1}
		switch {
		case it == nil || it.Hash != hash:
			actions = append(actions, install)
		case it.State == Installed || it.State == Installing:
			// Delivered or on its way.
		case it.State == Failed:
			if retryDue(*it, now, &wake) {
				install.Attempts = it.Attempts + 1
				actions = append(actions, install)
			}
		default: // pending (drift) or removing: install again
			actions = append(actions, install)
		}
	}
	for _, it := range items {
		if wanted[it.ProfileID] {
			continue
		}
		remove := Action{Kind: Remove, ProfileID: it.ProfileID, Identifier: it.Identifier, Version: it.Version, Attempts: 1}
		switch {
		case it.State == Removing:
			// RemoveProfile on its way.
		case it.State == Failed && it.Acknowledged:
			// A refused removal (or an install acknowledged, then
			// refused): the profile may be on the device. Retried after
			// the backoff, like a refused install; a device that keeps
			// refusing is not asked again after MaxAttempts.
			if retryDue(it, now, &wake) {
				remove.Attempts = it.Attempts + 1
				actions = append(actions, remove)
			}
		case it.State == Installed || it.State == Installing && it.CommandUUID != "" || it.State == Pending && it.Acknowledged:
			// Pending && Acknowledged: an admin's retry of a refused
			// removal (the retry resets state and attempts only).
			actions = append(actions, remove)
		default:
			// Never delivered: nothing to remove from the device.
			actions = append(actions, Action{Kind: Drop, ProfileID: it.ProfileID, Identifier: it.Identifier})
		}
	}
	return actions, wake
}

// Change is a state change Verify found.
type Change struct {
	ProfileID string
	From, To  string
	Drift     bool // Pomona's profile is missing from the device
}

// Verify reads the identifiers a ProfileList answer lists (the device's
// installed profiles) against the items: an acknowledged install that is
// listed becomes installed; an installed profile that is missing is drift
// (pending again, to be reinstalled); an acknowledged install that is
// missing is a failed attempt (Failed, Drift: retried after the backoff
// like a refused install — reinstalled at once, a device that
// acknowledges and never lists would loop the server through install,
// acknowledgement and ProfileList without a pause); a removal the device
// answered (with Error: an Acknowledged removal deletes its item at once)
// is done when its profile is gone (To "") and failed when it is still
// listed (To Failed: the device refused it; retried after the backoff).
// Items waiting for their command are left alone.
func Verify(items []Item, listed map[string]bool) []Change {
	var out []Change
	for _, it := range items {
		on := listed[it.Identifier]
		switch {
		case it.State == Installing && it.Acknowledged && on:
			out = append(out, Change{ProfileID: it.ProfileID, From: it.State, To: Installed})
		case it.State == Installed && !on:
			out = append(out, Change{ProfileID: it.ProfileID, From: it.State, To: Pending, Drift: true})
		case it.State == Installing && it.Acknowledged && !on:
			out = append(out, Change{ProfileID: it.ProfileID, From: it.State, To: Failed, Drift: true})
		case it.State == Removing && !on && it.Acknowledged:
			out = append(out, Change{ProfileID: it.ProfileID, From: it.State, To: ""})
		case it.State == Removing && on && it.Acknowledged:
			out = append(out, Change{ProfileID: it.ProfileID, From: it.State, To: Failed})
		}
	}
	return out
}

// retryDue reports whether a failed item is due for another attempt at
// now: not after MaxAttempts, and not before its NextRetry — in which case
// *wake is moved to NextRetry if that is earlier (zero: unset), so the
// caller's plan says when to look again.
func retryDue(it Item, now time.Time, wake *time.Time) bool {
	if it.Attempts >= MaxAttempts {
		return false
	}
	if now.Before(it.NextRetry) {
		if wake.IsZero() || it.NextRetry.Before(*wake) {
			*wake = it.NextRetry
		}
		return false
	}
	return true
}
