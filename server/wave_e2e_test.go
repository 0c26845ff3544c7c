package server_test

import (
	"context"
	"encoding/base64"
	"testing"
	"time"
)

// An acknowledged InstallProfile is answered with the ProfileList that
// verifies it (queued in the result's request: no reconciler pass, no
// push, no poll of its own), and that list's answer makes the profile
// installed: a profile wave is three signed requests per device.
func TestInstallAnsweredWithProfileList(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, true)
	e := w.e
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	groups := do(t, e, "GET", "/api/v1/groups?tenant_id="+w.tenant, nil, e.APIKey).json(t)["groups"].([]any)
	var all string
	for _, g := range groups {
		if g := g.(map[string]any); g["source"] == "all" {
			all = g["id"].(string)
		}
	}
	pid := do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("v1"))}, e.APIKey).json(t)["id"].(string)
	do(t, e, "POST", "/api/v1/profiles/"+pid+"/assignments", map[string]any{"group_id": all}, e.APIKey)
	deadline := time.Now().Add(20 * time.Second)
	cmd, err := d.Poll(ctx, nil, false)
	for err == nil && cmd == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		cmd, err = d.Poll(ctx, nil, false)
	}
	if err != nil || cmd == nil || cmd.RequestType() != "InstallProfile" {
		t.Fatalf("first command: %+v %v", cmd, err)
	}
	if cmd, err = d.Poll(ctx, d.Process(ctx, cmd), false); err != nil || cmd == nil || cmd.RequestType() != "ProfileList" {
		t.Fatalf("the InstallProfile's Acknowledged was answered with %+v (%v), not the ProfileList", cmd, err)
	}
	if cmd, err = d.Poll(ctx, d.Process(ctx, cmd), false); err != nil || cmd != nil {
		t.Fatalf("after the ProfileList: %+v %v", cmd, err)
	}
	st := do(t, e, "GET", "/api/v1/profiles/"+pid+"/status", nil, e.APIKey).json(t)["counts"].(map[string]any)
	if st["installed"] != float64(1) {
		t.Fatalf("status after the three requests: %v", st)
	}
}
