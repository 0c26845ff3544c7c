package server_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
)

// TestRefusedRemovalEndToEnd: a device that refuses a RemoveProfile (the
// profile still in its ProfileList) shows the item failed with Apple's
// error chain, its attempts and next retry, and the removal is retried
// after the same bounded backoff as an install — never before it; the
// other device's ordinary removal is not delayed at all.
func TestRefusedRemovalEndToEnd(t *testing.T) {
	clk := &movableClock{}
	w := newWorldWith(t, withClock(clk))
	e, k := w.e, w.e.APIKey
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, k), 200)
	hooks := subscribe(t, w, "profile.failed")
	a := do(t, e, "POST", "/api/v1/groups", map[string]any{"tenant_id": w.tenant, "name": "Wi-Fi users"}, k)
	mustStatus(t, a, 201)
	gid := a.json(t)["id"].(string)
	mustStatus(t, do(t, e, "POST", "/api/v1/groups/"+gid+"/members", map[string]any{"users": []string{"alice@example.com"}}, k), 200)
	a = do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("v1"))}, k)
	mustStatus(t, a, 201)
	pid := a.json(t)["id"].(string)
	mustStatus(t, do(t, e, "POST", "/api/v1/profiles/"+pid+"/assignments", map[string]any{"group_id": gid}, k), 200)

	phone := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	keeper := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	ds := []*devicesim.Device{phone, keeper}
	status := func(state string) map[string]any {
		a := do(t, e, "GET", "/api/v1/profiles/"+pid+"/status?state="+state, nil, k)
		mustStatus(t, a, 200)
		return a.json(t)
	}
	counts := func() map[string]any { return status("")["counts"].(map[string]any) }
	has := func(d *devicesim.Device) bool { _, ok := d.InstalledProfile("com.example.wifi"); return ok }
	converge(t, ds, "installed on both", func() bool { return counts()["installed"] == 2.0 })

	keeper.RefuseRemoval("com.example.wifi", "The profile's removal is not allowed.")
	mustStatus(t, do(t, e, "DELETE", "/api/v1/profiles/"+pid+"/assignments/"+gid, nil, k), 204)
	// No clock moved: the ordinary removal happens at once.
	converge(t, ds, "removed from phone, refused by keeper", func() bool {
		c := counts()
		return !has(phone) && c["failed"] == 1.0 && c["installed"] == 0.0 && c["removing"] == 0.0
	})
	if !has(keeper) {
		t.Fatal("keeper lost the profile it refused to remove")
	}
	failed := func() map[string]any {
		ds := status("failed")["devices"].([]any)
		if len(ds) != 1 {
			t.Fatalf("failed devices: %v (all: %v)", ds, status(""))
		}
		return ds[0].(map[string]any)
	}
	f := failed()
	retry1, _ := time.Parse(time.RFC3339Nano, fmtString(f["next_retry"]))
	if !strings.Contains(fmtString(f["error"]), "MCProfileErrorDomain 1011: The profile's removal is not allowed.") || f["attempts"] != 1.0 ||
		retry1.IsZero() || retry1.Sub(clk.now()) > time.Minute+5*time.Second {
		t.Fatalf("failed removal: %v", f)
	}

	// Not retried before the backoff, however often the device checks in.
	converge(t, ds, "nothing before the backoff", func() bool { return true })
	converge(t, ds, "nothing before the backoff", func() bool { return true })
	if f := failed(); f["attempts"] != 1.0 {
		t.Fatalf("retried before the backoff: %v", f)
	}
	// After it: attempt 2, refused again, the next wait doubled.
	clk.moveTo(retry1.Add(time.Second))
	e.Server.ProfileJob.Wake()
	converge(t, ds, "second attempt refused", func() bool {
		ds := status("failed")["devices"].([]any)
		return len(ds) == 1 && ds[0].(map[string]any)["attempts"] == 2.0
	})
	f = failed()
	retry2, _ := time.Parse(time.RFC3339Nano, fmtString(f["next_retry"]))
	if d := retry2.Sub(clk.now()); d < 90*time.Second || d > 2*time.Minute+5*time.Second {
		t.Fatalf("second backoff %v: %v", d, f)
	}
	// The device lets it go: the next retry removes it and the item goes.
	keeper.AllowRemoval("com.example.wifi")
	clk.moveTo(retry2.Add(time.Second))
	e.Server.ProfileJob.Wake()
	converge(t, ds, "removed from keeper", func() bool {
		c := counts()
		return !has(keeper) && c["failed"] == 0.0 && c["removing"] == 0.0
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && strings.Count(hooks.types(), "profile.failed") < 2 {
		time.Sleep(50 * time.Millisecond)
	}
	if got := hooks.types(); strings.Count(got, "profile.failed") != 2 {
		t.Fatalf("webhook events: %s (want one profile.failed per refused attempt)", got)
	}
}

func fmtString(v any) string { s, _ := v.(string); return s }
