package payloads

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func wifi(extra map[string]any) map[string]any {
	p := map[string]any{"PayloadType": "com.apple.wifi.managed", "PayloadIdentifier": "corp.wifi", "PayloadUUID": "x", "PayloadVersion": 1,
		"SSID_STR": "Corp", "EncryptionType": "WPA2"}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func profile(payloads ...map[string]any) map[string]any {
	var c []any
	for _, p := range payloads {
		c = append(c, p)
	}
	return map[string]any{"PayloadType": "Configuration", "PayloadIdentifier": "corp.profile", "PayloadUUID": "y", "PayloadVersion": 1, "PayloadContent": c}
}

func TestCheck(t *testing.T) {
	r := Default()
	cases := []struct {
		name     string
		profile  map[string]any
		platform string
		want     []string // substrings of the violations, in order
	}{
		{"allowed wifi", profile(wifi(nil)), IOS, nil},
		{"allowed wifi mac", profile(wifi(nil)), MacOS, nil},
		{"forbidden key", profile(wifi(map[string]any{"ProxyType": "Manual"})), IOS, []string{"com.apple.wifi.managed (corp.wifi): ProxyType: ProxyType is forbidden"}},
		{"key allowed on mac", profile(wifi(map[string]any{"ProxyType": "Manual"})), MacOS, nil},
		{"forbidden payload", profile(map[string]any{"PayloadType": "com.apple.vpn.managed", "PayloadIdentifier": "corp.vpn"}), IOS,
			[]string{"com.apple.vpn.managed (corp.vpn): VPN (com.apple.vpn.managed) is forbidden for a user enrollment on iOS"}},
		{"not on platform", profile(map[string]any{"PayloadType": "com.apple.dock", "PayloadIdentifier": "corp.dock"}), IOS, []string{"is not available on iOS"}},
		{"no platform entry", profile(map[string]any{"PayloadType": "com.apple.security.wapi-identity", "PayloadIdentifier": "w"}), IOS, []string{"is not available on iOS"}},
		{"unknown type", profile(map[string]any{"PayloadType": "com.example.nope", "PayloadIdentifier": "n"}), IOS, []string{"not a payload type in Apple's schema"}},
		{"removal disallowed", func() map[string]any { p := profile(wifi(nil)); p["PayloadRemovalDisallowed"] = true; return p }(), IOS,
			[]string{"TopLevel (corp.profile): PayloadRemovalDisallowed"}},
		{"not a dictionary", profile(), IOS, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.Check(c.profile, c.platform)
			if len(got) != len(c.want) {
				t.Fatalf("got %d violations %v, want %v", len(got), got, c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(got[i].String(), w) {
					t.Errorf("violation %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
	// A payload that is not a dictionary.
	bad := map[string]any{"PayloadContent": []any{"x"}}
	if v := r.Check(bad, IOS); len(v) != 1 || v[0].Reason != "a payload must be a dictionary" {
		t.Fatalf("%v", v)
	}
}

// Nested keys: Apple's data has few (AirPlay's AllowList is forbidden as
// a whole on iOS), so the walk is checked on rules of the generated shape.
func TestCheckNested(t *testing.T) {
	pl := map[string]any{"PayloadType": "com.apple.airplay", "PayloadIdentifier": "corp.airplay", "AllowList": []any{map[string]any{"DeviceID": "aa"}}}
	if v := Default().Check(profile(pl), IOS); len(v) != 1 || v[0].Key != "AllowList" {
		t.Fatalf("%v", v)
	}
	if v := Default().Check(profile(pl), MacOS); len(v) != 0 {
		t.Fatalf("ignored on macOS: %v", v)
	}
	r := mustLoad([]byte(`{"payloads":[
		{"type":"TopLevel","platforms":{"iOS":{"introduced":"4.0","user_enrollment":"allowed"}}},
		{"type":"CommonPayloadKeys","platforms":{"iOS":{"introduced":"4.0","user_enrollment":"allowed"}}},
		{"type":"t","title":"T","platforms":{"iOS":{"introduced":"4.0","user_enrollment":"allowed"}},"keys":[
			{"name":"D","type":"dictionary","sub":[{"name":"Bad","type":"string","user_enrollment":{"iOS":"forbidden"}}]},
			{"name":"A","type":"array","sub":[{"name":"Item","type":"dictionary","sub":[{"name":"Bad","type":"string","user_enrollment":{"iOS":"forbidden"}}]}]}]}]}`))
	v := r.Check(profile(map[string]any{"PayloadType": "t", "PayloadIdentifier": "x", "D": map[string]any{"Bad": "1", "Good": "2"},
		"A": []any{map[string]any{"Good": 1}, map[string]any{"Bad": 1}}}), IOS)
	if len(v) != 2 || v[0].Key != "D.Bad" || v[1].Key != "A[1].Bad" {
		t.Fatalf("%v", v)
	}
}

// payloads.json is what the generator makes of Apple's schema today.
// POMONA_APPLE_SCHEMA names its checkout, by default
// ../shared/ref/apple-device-management beside the repository. Without it
// the test is skipped locally and fails in CI (CI=true).
func TestPayloadsAreFresh(t *testing.T) {
	root := os.Getenv("POMONA_APPLE_SCHEMA")
	if root == "" {
		root = filepath.Join("..", "..", "..", "shared", "ref", "apple-device-management")
	}
	src := filepath.Join(root, "mdm", "profiles")
	if _, err := os.Stat(src); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Apple's schema is missing at %s (set POMONA_APPLE_SCHEMA to a checkout of github.com/apple/device-management at commit %s): %v",
				src, Default().Source.Commit, err)
		}
		t.Skip("Apple's schema is not beside the repository (set POMONA_APPLE_SCHEMA):", src)
	}
	out := filepath.Join(t.TempDir(), "payloads.json")
	cmd := exec.Command("go", "run", "./gen", "-src", src, "-commit", Default().Source.Commit, "-out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, b)
	}
	fresh, _ := os.ReadFile(out)
	if !bytes.Equal(fresh, payloadsJSON) {
		t.Fatal("payloads.json is stale: run go generate ./mdm/payloads")
	}
}
