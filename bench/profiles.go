package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime/pprof"
	"time"

	"github.com/pomona-mdm/pomona/internal/benchprofile"
)

// benchProfile is a Wi-Fi profile with a per-user variable: every device
// gets its own rendering (docs/profiles.md).
const benchProfile = benchprofile.WiFi

// Settle and idle windows of the profile phases (shortened by tests).
var (
	profileSettle = 20 * time.Second
	profileIdle   = 30 * time.Second
)

// profilePhases measures the desired-state engine (issue 15 item 8):
// assigning one profile to the tenant's all-users group until every
// enrolled device (seeded ones too) has its InstallProfile queued; the
// status API on that profile; a membership change of one of the bench's
// users (devices/users devices each: 2,000 at 100,000 over 50 users) and
// of a seeded user with two devices (pairs; until the reconciler has
// queued the change on both devices); and the server's CPU while nothing
// changes.
//
// cpuProfile, when set (a server in process), receives a CPU profile of
// the assignment phase alone.
func profilePhases(ctx context.Context, srv *target, domain string, devices, users int, pairs []seededUser, cpuProfile string, log io.Writer) ([]Phase, error) {
	var groups struct {
		Groups []struct{ ID, Source string } `json:"groups"`
	}
	if err := srv.api(ctx, "GET", "/api/v1/groups?tenant_id="+url.QueryEscape(domain), nil, &groups); err != nil {
		return nil, err
	}
	all := ""
	for _, g := range groups.Groups {
		if g.Source == "all" {
			all = g.ID
		}
	}
	var prof struct{ ID string }
	if err := srv.api(ctx, "POST", "/api/v1/profiles", map[string]any{"tenant_id": domain, "content": base64.StdEncoding.EncodeToString([]byte(benchProfile))}, &prof); err != nil {
		return nil, err
	}
	var out []Phase
	stopProfile := func() {}
	if cpuProfile != "" {
		if srv.kind != "in process" {
			return nil, fmt.Errorf("a CPU profile of the assignment needs the server in process")
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		// Fails when the whole run is being profiled (--cpuprofile).
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		stopProfile = pprof.StopCPUProfile
	}
	status := func() (map[string]int, error) {
		var st struct {
			Counts map[string]int `json:"counts"`
		}
		err := srv.api(ctx, "GET", "/api/v1/profiles/"+prof.ID+"/status?limit=100", nil, &st)
		return st.Counts, err
	}
	// The phase's polls ask for counts only (limit=1: the page of
	// devices is not what the phase waits for).
	counts := func() (map[string]int, error) {
		var st struct {
			Counts map[string]int `json:"counts"`
		}
		err := srv.api(ctx, "GET", "/api/v1/profiles/"+prof.ID+"/status?limit=1", nil, &st)
		return st.Counts, err
	}
	out = append(out, measure(ctx, srv, fmt.Sprintf("profile assigned to all users: %d installs queued", devices), 1, 1, func(int) error {
		if err := srv.api(ctx, "POST", "/api/v1/profiles/"+prof.ID+"/assignments", map[string]any{"group_id": all}, nil); err != nil {
			return err
		}
		start := time.Now()
		for ctx.Err() == nil {
			c, err := counts()
			if err != nil {
				return err
			}
			done := c["installing"] + c["installed"]
			if done >= devices {
				return nil
			}
			if c["failed"] > 0 {
				return fmt.Errorf("%d items failed", c["failed"])
			}
			time.Sleep(pollWait(done, devices, time.Since(start)))
		}
		return ctx.Err()
	}, log))
	stopProfile()
	out = append(out, measure(ctx, srv, "profile status API (counts + 100 devices)", 200, 4, func(int) error {
		_, err := status()
		return err
	}, log))
	// One user joins and leaves a group the profile is assigned to.
	var g struct{ ID string }
	if err := srv.api(ctx, "POST", "/api/v1/groups", map[string]any{"tenant_id": domain, "name": "Bench members"}, &g); err != nil {
		return nil, err
	}
	if err := srv.api(ctx, "POST", "/api/v1/profiles/"+prof.ID+"/assignments", map[string]any{"group_id": g.ID, "exclude": true}, nil); err != nil {
		return nil, err
	}
	out = append(out, measure(ctx, srv, fmt.Sprintf("membership change of one user, ~%d devices (API)", devices/max(1, users)), 100, 1, func(i int) error {
		user := fmt.Sprintf("user%d@%s", i%min(10, users), domain)
		if (i/min(10, users))%2 == 0 {
			return srv.api(ctx, "POST", "/api/v1/groups/"+g.ID+"/members", map[string]any{"users": []string{user}}, nil)
		}
		return srv.api(ctx, "DELETE", "/api/v1/groups/"+g.ID+"/members/"+url.PathEscape(user), nil, nil)
	}, log))
	// A user with two devices joins (the profile is then removed from
	// both) or leaves (installed again) the excluded group; an operation
	// ends when the reconciler has queued the change on both devices, as
	// the device API shows it.
	if len(pairs) > 0 {
		// Let the big users' changes settle first: they share the
		// reconciler with this phase (100 changes of a 2,000-device user
		// queue 200,000 device passes). The last of them took every user
		// out of the excluded group, so every item is installing again
		// when the backlog is done.
		settled := time.Now().Add(10 * time.Minute)
		for {
			c, err := status()
			if err != nil {
				return nil, err
			}
			if c["installing"]+c["installed"] >= devices {
				break
			}
			if ctx.Err() != nil || time.Now().After(settled) {
				return nil, fmt.Errorf("the membership changes did not settle in 10 minutes: %v", c)
			}
			time.Sleep(time.Second)
		}
		itemState := func(device string) (string, error) {
			var d struct {
				Profiles []struct {
					ProfileID string `json:"profile_id"`
					State     string `json:"state"`
				} `json:"profiles"`
			}
			if err := srv.api(ctx, "GET", "/api/v1/devices/"+device, nil, &d); err != nil {
				return "", err
			}
			for _, p := range d.Profiles {
				if p.ProfileID == prof.ID {
					return p.State, nil
				}
			}
			return "", nil
		}
		out = append(out, measure(ctx, srv, fmt.Sprintf("membership change of one user, %d devices (API + reconciler)", pairDevices), 100, 1, func(i int) error {
			u := pairs[i%len(pairs)]
			join := (i/len(pairs))%2 == 0
			var err error
			want := "installing"
			if join {
				want = "removing"
				err = srv.api(ctx, "POST", "/api/v1/groups/"+g.ID+"/members", map[string]any{"users": []string{u.Email}}, nil)
			} else {
				err = srv.api(ctx, "DELETE", "/api/v1/groups/"+g.ID+"/members/"+url.PathEscape(u.Email), nil, nil)
			}
			if err != nil {
				return err
			}
			deadline := time.Now().Add(time.Minute)
			for _, dev := range u.Devices {
				for {
					st, err := itemState(dev)
					if err != nil {
						return err
					}
					if st == want {
						break
					}
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if time.Now().After(deadline) {
						return fmt.Errorf("device %s of %s: profile %q after a minute, want %s", dev, u.Email, st, want)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			return nil
		}, log))
	}
	// Idle: let the membership changes settle, then nothing happens.
	time.Sleep(profileSettle)
	out = append(out, measure(ctx, srv, fmt.Sprintf("idle fleet with profiles, %s (reconciler ticks)", profileIdle), 1, 1, func(int) error {
		time.Sleep(profileIdle)
		return nil
	}, log))
	return out, nil
}

// pollWait is how long the assignment phase waits before its next status
// poll, having seen done of want items queued after elapsed: half the
// time the rate so far says is left, between 20 ms and 1 s (before the
// first item is queued: a quarter of the time so far, 100 ms to 1 s). Every poll
// counts the profile's items (a grouped scan of 100,000 index entries at
// 100,000 devices) and is server CPU the phase measures: fixed 250 ms
// polls were ~10 % of the phase's CPU (docs/benchmarks.md, Session 8 —
// assign). Halving the estimate makes the polls denser as the end
// nears, so the phase's end is seen within ~20 ms plus one poll once the
// rate is steady (a fixed 250 ms poll saw it 125 ms late on average),
// with a few dozen polls at most in a phase of tens of seconds.
func pollWait(done, want int, elapsed time.Duration) time.Duration {
	const lo, hi = 20 * time.Millisecond, time.Second
	if done <= 0 {
		// No rate yet (the assignment's items are still being written):
		// a quarter of the time waited so far, so a long first stretch
		// costs a handful of polls, not one every 100 ms.
		return min(hi, max(100*time.Millisecond, elapsed/4))
	}
	left := time.Duration(float64(elapsed) * float64(want-done) / float64(done) / 2)
	return min(hi, max(lo, left))
}
