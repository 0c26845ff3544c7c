package reconcile

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
)

func plistFor(id, value string) []byte {
	return []byte(`<plist><dict><key>PayloadType</key><string>Configuration</string><key>PayloadIdentifier</key><string>` + id +
		`</string><key>PayloadUUID</key><string>u</string><key>PayloadContent</key><array><dict><key>X</key><string>` + value + `</string></dict></array></dict></plist>`)
}

func summary(as []Action) string {
	var s []string
	for _, a := range as {
		x := a.Kind + ":" + a.ProfileID
		if a.Kind == Install || a.Kind == Remove {
			x += fmt.Sprintf("#%d", a.Attempts)
		}
		s = append(s, x)
	}
	return strings.Join(s, " ")
}

func TestPlan(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	dev := Device{Platform: "iOS", OSVersion: "18.2", Values: map[string]string{mobileconfig.VarEmail: "alice@example.com"}}
	wifi := Profile{ProfileID: "wifi", Identifier: "c.wifi", Version: 1, Plist: plistFor("c.wifi", "$EMAIL"), Included: true}
	_, wifiHash, _ := mobileconfig.Render(wifi.Plist, dev.Values)
	mac := Profile{ProfileID: "mac", Identifier: "c.mac", Version: 1, Plist: plistFor("c.mac", "x"), Included: true, Platforms: []string{"macOS"}}
	new19 := Profile{ProfileID: "new", Identifier: "c.new", Version: 1, Plist: plistFor("c.new", "x"), Included: true, MinOS: "19.0"}
	excl := Profile{ProfileID: "excl", Identifier: "c.excl", Version: 1, Plist: plistFor("c.excl", "x"), Included: true, Excluded: true}
	name := Profile{ProfileID: "name", Identifier: "c.name", Version: 1, Plist: plistFor("c.name", "$USER_NAME"), Included: true}

	cases := []struct {
		name     string
		profiles []Profile
		items    []Item
		want     string
		wake     time.Time
	}{
		{"nothing", nil, nil, "", time.Time{}},
		{"new device", []Profile{wifi, mac, new19, excl}, nil, "install:wifi#1", time.Time{}},
		{"installed", []Profile{wifi}, []Item{{ProfileID: "wifi", State: Installed, Hash: wifiHash}}, "", time.Time{}},
		{"installing", []Profile{wifi}, []Item{{ProfileID: "wifi", State: Installing, Hash: wifiHash, CommandUUID: "c"}}, "", time.Time{}},
		{"changed content", []Profile{wifi}, []Item{{ProfileID: "wifi", State: Installed, Hash: "old"}}, "install:wifi#1", time.Time{}},
		{"failed, retry due", []Profile{wifi}, []Item{{ProfileID: "wifi", State: Failed, Hash: wifiHash, Attempts: 2, NextRetry: now}}, "install:wifi#3", time.Time{}},
		{"failed, retry later", []Profile{wifi}, []Item{{ProfileID: "wifi", State: Failed, Hash: wifiHash, Attempts: 2, NextRetry: now.Add(time.Hour)}}, "", now.Add(time.Hour)},
		{"failed, gave up", []Profile{wifi}, []Item{{ProfileID: "wifi", State: Failed, Hash: wifiHash, Attempts: MaxAttempts}}, "", time.Time{}},
		{"drift", []Profile{wifi}, []Item{{ProfileID: "wifi", State: Pending, Hash: wifiHash}}, "install:wifi#1", time.Time{}},
		{"unassigned, installed", nil, []Item{{ProfileID: "wifi", Identifier: "c.wifi", State: Installed}}, "remove:wifi#1", time.Time{}},
		// A refused removal (failed, still on the device): retried after
		// the backoff, at most MaxAttempts times; an admin's retry
		// (pending, attempts reset) removes at once.
		{"unassigned, removal refused, retry due", nil, []Item{{ProfileID: "wifi", Identifier: "c.wifi", State: Failed, Acknowledged: true, Attempts: 2, NextRetry: now}}, "remove:wifi#3", time.Time{}},
		{"unassigned, removal refused, retry later", nil, []Item{{ProfileID: "wifi", Identifier: "c.wifi", State: Failed, Acknowledged: true, Attempts: 2, NextRetry: now.Add(time.Hour)}}, "", now.Add(time.Hour)},
		{"unassigned, removal refused, gave up", nil, []Item{{ProfileID: "wifi", Identifier: "c.wifi", State: Failed, Acknowledged: true, Attempts: MaxAttempts}}, "", time.Time{}},
		{"unassigned, removal refused, admin retry", nil, []Item{{ProfileID: "wifi", Identifier: "c.wifi", State: Pending, Acknowledged: true}}, "remove:wifi#1", time.Time{}},
		{"reassigned, removal refused", []Profile{wifi}, []Item{{ProfileID: "wifi", Identifier: "c.wifi", State: Failed, Acknowledged: true, Attempts: 2, NextRetry: now.Add(time.Hour)}}, "install:wifi#1", time.Time{}},
		{"unassigned, never sent", nil, []Item{{ProfileID: "wifi", State: Failed}}, "drop:wifi", time.Time{}},
		{"unassigned, removing", nil, []Item{{ProfileID: "wifi", State: Removing}}, "", time.Time{}},
		{"excluded now", []Profile{excl}, []Item{{ProfileID: "excl", State: Installed}}, "remove:excl#1", time.Time{}},
		{"missing value", []Profile{name}, nil, "fail:name", time.Time{}},
		{"missing value recorded", []Profile{name}, []Item{{ProfileID: "name", State: Failed, Version: 1,
			Error: "the profile uses no value for $USER_NAME for this user or device"}}, "", time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, wake := Plan(dev, c.profiles, c.items, now)
			if summary(got) != c.want || !wake.Equal(c.wake) {
				t.Fatalf("plan %q wake %v, want %q %v", summary(got), wake, c.want, c.wake)
			}
			for _, a := range got {
				if a.Kind == Install && (a.Hash != mobileconfig.Hash(a.Payload) || !strings.Contains(string(a.Payload), "alice@example.com")) {
					t.Fatalf("install payload %s", a.Payload)
				}
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	if Backoff(1) != time.Minute || Backoff(2) != 2*time.Minute || Backoff(4) != 8*time.Minute || Backoff(30) != BackoffMax {
		t.Fatal(Backoff(1), Backoff(2), Backoff(4), Backoff(30))
	}
}

func TestVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"17.10", "17.9", 1}, {"17", "17.0", 0}, {"16.4.1", "17.0", -1}, {"18.2", "18.2", 0}} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("%s vs %s = %d", c.a, c.b, got)
		}
	}
	if !ValidVersion("17.0") || !ValidVersion("14") || ValidVersion("17.x") || ValidVersion("1.2.3.4") || ValidVersion("") {
		t.Fatal("ValidVersion")
	}
}

func TestVerify(t *testing.T) {
	items := []Item{
		{ProfileID: "a", Identifier: "c.a", State: Installing, Acknowledged: true},
		{ProfileID: "b", Identifier: "c.b", State: Installed},
		{ProfileID: "c", Identifier: "c.c", State: Installing}, // not answered yet
		{ProfileID: "d", Identifier: "c.d", State: Removing, Acknowledged: true},
		{ProfileID: "e", Identifier: "c.e", State: Installed},
		{ProfileID: "f", Identifier: "c.f", State: Installing, Acknowledged: true}, // acknowledged, not listed
		{ProfileID: "g", Identifier: "c.g", State: Removing, Acknowledged: true},   // answered Error, still listed: refused
		{ProfileID: "h", Identifier: "c.h", State: Removing},                       // not answered yet
	}
	got := Verify(items, map[string]bool{"c.a": true, "c.e": true, "c.g": true, "c.h": true})
	want := "a:installing>installed b:installed>pending(drift) d:removing> f:installing>failed(drift) g:removing>failed"
	var s []string
	for _, c := range got {
		x := c.ProfileID + ":" + c.From + ">" + c.To
		if c.Drift {
			x += "(drift)"
		}
		s = append(s, x)
	}
	if strings.Join(s, " ") != want {
		t.Fatalf("%s", strings.Join(s, " "))
	}
}
