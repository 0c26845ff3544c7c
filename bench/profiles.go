package bench

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
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
// status API on that profile; a membership change of one user; and the
// server's CPU while nothing changes.
func profilePhases(ctx context.Context, srv *target, domain string, devices, users int, log io.Writer) ([]Phase, error) {
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
	status := func() (map[string]int, error) {
		var st struct {
			Counts map[string]int `json:"counts"`
		}
		err := srv.api(ctx, "GET", "/api/v1/profiles/"+prof.ID+"/status?limit=100", nil, &st)
		return st.Counts, err
	}
	out = append(out, measure(ctx, srv, fmt.Sprintf("profile assigned to all users: %d installs queued", devices), 1, 1, func(int) error {
		if err := srv.api(ctx, "POST", "/api/v1/profiles/"+prof.ID+"/assignments", map[string]any{"group_id": all}, nil); err != nil {
			return err
		}
		for ctx.Err() == nil {
			c, err := status()
			if err != nil {
				return err
			}
			if c["installing"]+c["installed"] >= devices {
				return nil
			}
			if c["failed"] > 0 {
				return fmt.Errorf("%d items failed", c["failed"])
			}
			time.Sleep(100 * time.Millisecond)
		}
		return ctx.Err()
	}, log))
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
	out = append(out, measure(ctx, srv, "membership change of one user (API)", 100, 1, func(i int) error {
		user := fmt.Sprintf("user%d@%s", i%min(10, users), domain)
		if (i/min(10, users))%2 == 0 {
			return srv.api(ctx, "POST", "/api/v1/groups/"+g.ID+"/members", map[string]any{"users": []string{user}}, nil)
		}
		return srv.api(ctx, "DELETE", "/api/v1/groups/"+g.ID+"/members/"+url.PathEscape(user), nil, nil)
	}, log))
	// Idle: let the membership changes settle, then nothing happens.
	time.Sleep(profileSettle)
	out = append(out, measure(ctx, srv, fmt.Sprintf("idle fleet with profiles, %s (reconciler ticks)", profileIdle), 1, 1, func(int) error {
		time.Sleep(profileIdle)
		return nil
	}, log))
	return out, nil
}
