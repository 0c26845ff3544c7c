package server_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/micromdm/plist"
)

// BenchmarkProfileWave: one device's part in a profile wave, the server's
// side of it — the signed Idle that fetches the InstallProfile, the
// signed Acknowledged (the item moves; its verifying ProfileList is
// queued), the ProfileList's fetch, and its signed answer (the item
// becomes installed, profile.installed published). Whatever the server
// does between them counts: the reconciler pass and the push, when the
// ProfileList does not come with the Acknowledged's answer, run while
// the meter runs and the device waits (as long as 5 s) before it polls.
// Signing the device's answers and queueing the next version (the
// assignment's work, lane "assign") are outside the timer. One op is one
// device through the wave; "requests/op" says how many signed MDM
// requests that took. Run:
//
//	go test ./server -run '^$' -bench 'ProfileWave' -benchmem -count 6 | benchstat -
func BenchmarkProfileWave(b *testing.B) {
	w := newWorld(b, true)
	e := w.e
	d := newHotDevice(b, w, "alice@example.com", "alice-password")
	h := e.Server.Handler()
	idle := d.signed(b, map[string]any{"Status": "Idle"})
	groups := do(b, e, "GET", "/api/v1/groups?tenant_id="+w.tenant, nil, e.APIKey).json(b)["groups"].([]any)
	var all string
	for _, g := range groups {
		if g := g.(map[string]any); g["source"] == "all" {
			all = g["id"].(string)
		}
	}
	pid := do(b, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("v0"))}, e.APIKey).json(b)["id"].(string)
	do(b, e, "POST", "/api/v1/profiles/"+pid+"/assignments", map[string]any{"group_id": all}, e.APIKey)

	// queued waits (outside the timer) until the reconciler has queued
	// the device's InstallProfile (its item is installing).
	queued := func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			st := do(b, e, "GET", "/api/v1/profiles/"+pid+"/status", nil, e.APIKey).json(b)["counts"].(map[string]any)
			if st["installing"] == float64(1) {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("no InstallProfile queued within 10 s: %v", st)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	answer := func(body []byte, extra map[string]any) *http.Request {
		var cmd struct {
			CommandUUID string
			Command     struct{ RequestType string }
		}
		if err := plist.Unmarshal(body, &cmd); err != nil {
			b.Fatal(err)
		}
		msg := map[string]any{"Status": "Acknowledged", "CommandUUID": cmd.CommandUUID, "RequestType": cmd.Command.RequestType}
		for k, v := range extra {
			msg[k] = v
		}
		return d.signed(b, msg)()
	}
	list := func(version string) map[string]any {
		return map[string]any{"ProfileList": []any{map[string]any{"PayloadIdentifier": "com.example.wifi", "PayloadDisplayName": "Corp Wi-Fi " + version,
			"PayloadUUID": "6A0B0C5E-1111-4222-8333-444455556666", "IsManaged": true, "PayloadVersion": 1}}}
	}
	installed := func() bool {
		st := do(b, e, "GET", "/api/v1/profiles/"+pid+"/status", nil, e.APIKey).json(b)["counts"].(map[string]any)
		return st["installed"] == float64(1)
	}
	requests := 0
	m := newCPUMeter(b)
	m.stop()
	for i := 0; i < b.N; i++ {
		version := fmt.Sprint("v", i)
		if i > 0 {
			do(b, e, "POST", "/api/v1/profiles/"+pid+"/versions", map[string]any{"content": base64.StdEncoding.EncodeToString(wifiProfile(version))}, e.APIKey)
		}
		queued()
		time.Sleep(20 * time.Millisecond) // the reconciler's pass ends (its push, its claim)
		deadline := time.Now().Add(5 * time.Second)
		for done := false; !done; {
			// The device polls and works its queue as a device does; what
			// the server does meanwhile (a reconciler pass, a push) runs
			// while the meter runs.
			m.start()
			rec := serve(b, h, idle())
			requests++
			for rec.Body.Len() != 0 {
				m.stop()
				var extra map[string]any
				if bytes.Contains(rec.Body.Bytes(), []byte("<string>ProfileList</string>")) {
					extra = list(version)
				}
				ans := answer(rec.Body.Bytes(), extra)
				m.start()
				rec = serve(b, h, ans)
				requests++
			}
			m.stop()
			if done = installed(); !done {
				if time.Now().After(deadline) {
					b.Fatal("not installed within 5 s")
				}
				m.start()
				time.Sleep(time.Millisecond)
				m.stop()
			}
		}
	}
	m.start()
	m.done()
	b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
}
