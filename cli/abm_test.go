package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/demo"
	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/server"
)

// TestDemoManagedDevicesOnly: the demo's tenant has a server token from
// the in-process ABM stand-in; `sim enroll --managed-devices-only` with
// its certificate signs in and stays enrolled, with another certificate
// the simulated device unenrolls itself; the fallback discovery URL is
// registered, shown and removed from the CLI.
func TestDemoManagedDevicesOnly(t *testing.T) {
	e := testenv.Start(t, func(c *server.Config) { c.Demo = true })
	r := mustOK(t, runCLI(t, e, "", nil, "abm", "token", "list", "--tenant", demo.Domain, "--json"))
	var list []struct {
		ID, Status, ServerUUID string
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].Status != "active" {
		t.Fatalf("demo tokens: %v %s", err, r.stdout)
	}
	id := list[0].ID
	dir := t.TempDir()
	cert := filepath.Join(dir, "abm.pem")
	mustOK(t, runCLI(t, e, "", nil, "abm", "token", "cert", id, "--out", cert))
	r = mustOK(t, runCLI(t, e, "", map[string]string{"POMONA_DATA": e.DataDir}, "sim", "enroll", "--user", demo.User,
		"--password", demo.Password, "--server", e.URL, "--managed-devices-only", cert))
	if !strings.Contains(r.stdout, "com.apple.maid token of MDM server") || !strings.Contains(r.stdout, "Enrollment works.") {
		t.Fatalf("sim enroll --managed-devices-only:\n%s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "abm", "token", "show", id))
	for _, want := range []string{"active", "Demo Corp (ABM stand-in)", "server_uuid"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("token show lacks %q:\n%s", want, r.stdout)
		}
	}

	// Another key's certificate: the JWT does not verify, the device leaves.
	other, _ := abm.NewKeyPair("other", time.Now())
	os.WriteFile(filepath.Join(dir, "other.pem"), other.CertPEM(), 0o644)
	mustOK(t, runCLI(t, e, "bob-demo-password-1\n", nil, "user", "add", "bob@"+demo.Domain, "--password-stdin"))
	r = runCLI(t, e, "", map[string]string{"POMONA_DATA": e.DataDir}, "sim", "enroll", "--user", "bob@"+demo.Domain,
		"--password", "bob-demo-password-1", "--server", e.URL, "--managed-devices-only", filepath.Join(dir, "other.pem"))
	if r.code != 1 || !strings.Contains(r.stdout, "unenrolled itself") {
		t.Fatalf("with another certificate: %+v", r)
	}

	r = mustOK(t, runCLI(t, e, "", nil, "abm", "discovery", "register", id))
	if !strings.Contains(r.stdout, "registered with Apple: "+e.URL+server.FallbackDiscoveryPath("")) {
		t.Fatalf("register:\n%s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "abm", "discovery", "show", id))
	if !strings.Contains(r.stdout, "registered   "+e.URL) {
		t.Fatalf("show:\n%s", r.stdout)
	}
	mustOK(t, runCLI(t, e, "", nil, "abm", "discovery", "remove", id))
	r = mustOK(t, runCLI(t, e, "", nil, "abm", "discovery", "show", id))
	if !strings.Contains(r.stdout, "nothing registered") {
		t.Fatalf("show after remove:\n%s", r.stdout)
	}
	// Mistakes in the command line exit 2 with the usage.
	if r := runCLI(t, e, "", nil, "abm", "token", "create", "--name", "x"); r.code != 2 || !strings.Contains(r.stderr, "--tenant") {
		t.Fatalf("create without --tenant: %+v", r)
	}
	if r := runCLI(t, e, "", nil, "abm", "token", "frobnicate"); r.code != 2 {
		t.Fatalf("unknown: %+v", r)
	}
}
