package catalog

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func sorted(s []string) string {
	c := append([]string(nil), s...)
	sort.Strings(c)
	return strings.Join(c, " ")
}

// The allowed lists match the protocol notes (§6.1), which were computed
// independently from the same schema.
func TestAllowedCommands(t *testing.T) {
	ios := "CertificateList DeclarativeManagement DeviceInformation DeviceLock InstallApplication InstallMedia InstallProfile " +
		"InstallProvisioningProfile InstalledApplicationList ManagedApplicationAttributes ManagedApplicationConfiguration " +
		"ManagedApplicationFeedback ManagedApplicationList ManagedMediaList ProfileList ProvisioningProfileList RemoveApplication " +
		"RemoveMedia RemoveProfile RemoveProvisioningProfile RequestMirroring SecurityInfo Settings ValidateApplications"
	mac := "CertificateList DeclarativeManagement DeviceInformation InstallApplication InstallEnterpriseApplication InstallProfile " +
		"InstallProvisioningProfile ManagedApplicationConfiguration ManagedApplicationList ProfileList ProvisioningProfileList " +
		"RemoveProfile RemoveProvisioningProfile RequestMirroring SecurityInfo Settings"
	if got := sorted(Default().AllowedCommands(IOS)); got != sorted(strings.Fields(ios)) {
		t.Errorf("iOS allowed:\n%s\nwant\n%s", got, sorted(strings.Fields(ios)))
	}
	if got := sorted(Default().AllowedCommands(MacOS)); got != sorted(strings.Fields(mac)) {
		t.Errorf("macOS allowed:\n%s\nwant\n%s", got, sorted(strings.Fields(mac)))
	}
}

func TestCheck(t *testing.T) {
	c := Default()
	for _, tc := range []struct {
		name     string
		platform string
		in       map[string]any
		refused  string // substring of the refusal; empty: accepted
	}{
		{"device info", IOS, map[string]any{"request_type": "DeviceInformation", "queries": []any{"OSVersion", "ModelName"}}, ""},
		{"device info, Apple names", MacOS, map[string]any{"RequestType": "DeviceInformation", "Queries": []any{"OSVersion"}}, ""},
		{"UDID query", IOS, map[string]any{"request_type": "DeviceInformation", "queries": []any{"UDID"}}, "Queries[0]=UDID: Apple forbids"},
		{"serial query", MacOS, map[string]any{"request_type": "DeviceInformation", "queries": []any{"SerialNumber"}}, "forbids"},
		{"IMEI on iOS", IOS, map[string]any{"request_type": "DeviceInformation", "queries": []any{"IMEI"}}, "forbids"},
		{"unknown query", IOS, map[string]any{"request_type": "DeviceInformation", "queries": []any{"Nonsense"}}, "unknown value"},
		{"missing queries", IOS, map[string]any{"request_type": "DeviceInformation"}, "required"},
		{"erase", IOS, map[string]any{"request_type": "EraseDevice"}, "Apple forbids this command for user enrollments on iOS"},
		{"erase mac", MacOS, map[string]any{"request_type": "EraseDevice"}, "forbids"},
		{"restart", IOS, map[string]any{"request_type": "RestartDevice"}, "forbids"},
		{"lock iOS", IOS, map[string]any{"request_type": "DeviceLock"}, ""},
		{"lock mac", MacOS, map[string]any{"request_type": "DeviceLock"}, "forbids"},
		{"unknown command", IOS, map[string]any{"request_type": "MakeCoffee"}, "unknown command"},
		{"unknown key", IOS, map[string]any{"request_type": "ProfileList", "colour": "red"}, "unknown key"},
		{"profile list", IOS, map[string]any{"request_type": "ProfileList", "managed_only": true}, ""},
		{"wrong type", IOS, map[string]any{"request_type": "ProfileList", "managed_only": "yes"}, "true or false"},
		{"install profile", IOS, map[string]any{"request_type": "InstallProfile", "payload": "PD94bWw+"}, ""},
		{"bad base64", IOS, map[string]any{"request_type": "InstallProfile", "payload": "!!"}, "base64"},
		{"change management state", IOS, map[string]any{"request_type": "InstallApplication", "itunes_store_id": 361309726, "change_management_state": "Managed"}, "forbids"},
		{"install app", IOS, map[string]any{"request_type": "InstallApplication", "itunes_store_id": 361309726, "options": map[string]any{"purchase_method": 1}}, ""},
		{"settings device name", IOS, map[string]any{"request_type": "Settings", "settings": []any{map[string]any{"item": "DeviceName", "device_name": "x"}}}, "forbids"},
		{"settings wallpaper", IOS, map[string]any{"request_type": "Settings", "settings": []any{map[string]any{"item": "Wallpaper", "image": "AAAA", "where": 1}}}, "forbids"},
		{"settings unknown item", IOS, map[string]any{"request_type": "Settings", "settings": []any{map[string]any{"item": "Nope"}}}, "unknown Item"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.FromJSON(tc.platform, tc.in)
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if out["RequestType"] == nil {
					t.Fatal("no RequestType")
				}
				return
			}
			var r *Refusal
			if !errors.As(err, &r) || !strings.Contains(err.Error(), tc.refused) {
				t.Fatalf("got %v, want a refusal containing %q", err, tc.refused)
			}
		})
	}
	out, err := c.FromJSON(IOS, map[string]any{"request_type": "InstallProfile", "payload": "PD94bWw+"})
	if err != nil || !bytes.Equal(out["Payload"].([]byte), []byte("<?xml>")) {
		t.Fatalf("data conversion: %v %v", out, err)
	}
}

func TestSnake(t *testing.T) {
	for in, want := range map[string]string{"ManagedOnly": "managed_only", "iTunesStoreID": "itunes_store_id", "Queries": "queries",
		"DeviceName": "device_name", "ChangeManagementState": "change_management_state", "UDID": "udid", "PINRequiredForEraseDevice": "pin_required_for_erase_device"} {
		if got := Snake(in); got != want {
			t.Errorf("Snake(%s) = %s, want %s", in, got, want)
		}
	}
}

// catalog.json is what the generator makes of Apple's schema today.
// The schema (github.com/apple/device-management) is not in the
// repository: POMONA_APPLE_SCHEMA names its checkout, by default
// ../shared/ref/apple-device-management beside the repository. Without it
// the test is skipped locally and fails in CI (CI=true), where .ci/run
// points at it.
func TestCatalogIsFresh(t *testing.T) {
	root := os.Getenv("POMONA_APPLE_SCHEMA")
	if root == "" {
		root = filepath.Join("..", "..", "..", "shared", "ref", "apple-device-management")
	}
	src := filepath.Join(root, "mdm", "commands")
	if _, err := os.Stat(src); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("Apple's schema is missing at %s (set POMONA_APPLE_SCHEMA to a checkout of github.com/apple/device-management at commit %s): %v",
				src, Default().Source.Commit, err)
		}
		t.Skip("Apple's schema is not beside the repository (set POMONA_APPLE_SCHEMA):", src)
	}
	out := filepath.Join(t.TempDir(), "catalog.json")
	cmd := exec.Command("go", "run", "./gen", "-src", src, "-commit", Default().Source.Commit, "-out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, b)
	}
	fresh, _ := os.ReadFile(out)
	if !bytes.Equal(fresh, catalogJSON) {
		t.Fatal("catalog.json is stale: run go generate ./mdm/catalog")
	}
}
