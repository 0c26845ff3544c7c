package cli_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/pushcert"
)

func TestDeviceCommands(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example", "--second-factor=false"))
	mustOK(t, runCLI(t, e, "amy-password\n", nil, "user", "add", "amy@a.example", "--password-stdin"))
	ca, _ := pki.NewCA("push", pki.ECDSAP256, time.Now())
	pc, _ := pushcert.NewLocal("com.apple.mgmt.External.cccccccc-0000-0000-0000-000000000003", ca, time.Now().Add(365*24*time.Hour))
	kp, _ := pki.KeyPEM(pc.Key)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c.pem"), pki.CertPEM(pc.Cert), 0o600)
	os.WriteFile(filepath.Join(dir, "k.pem"), kp, 0o600)
	mustOK(t, runCLI(t, e, "", nil, "push-cert", "import", "--cert", filepath.Join(dir, "c.pem"), "--key", filepath.Join(dir, "k.pem")))

	pool := x509.NewCertPool()
	pool.AddCert(e.Server.CA.Cert)
	d, _ := devicesim.New(devicesim.Options{RootCAs: pool})
	defer d.Close()
	if _, err := d.Enroll(ctx, e.URL, devicesim.Credentials{User: "amy@a.example", Password: "amy-password"}); err != nil {
		t.Fatal(err)
	}
	d.Authenticate(ctx)
	d.TokenUpdate(ctx, false)

	r := mustOK(t, runCLI(t, e, "", nil, "device", "list", "--tenant", "a.example"))
	if !strings.Contains(r.stdout, d.MDM.EnrollmentID) || !strings.Contains(r.stdout, "enrolled") {
		t.Fatalf("device list:\n%s", r.stdout)
	}
	// Just seen: not silent; silent selects enrolled devices only.
	if r := mustOK(t, runCLI(t, e, "", nil, "device", "list", "--silent")); strings.Contains(r.stdout, d.MDM.EnrollmentID) || strings.Contains(r.stdout, "(silent)") {
		t.Fatalf("device list --silent right after enrolling:\n%s", r.stdout)
	}
	if r := runCLI(t, e, "", nil, "device", "list", "--silent", "--status", "pending"); r.code != 1 || !strings.Contains(r.stderr, "silent=true selects enrolled devices") {
		t.Fatalf("device list --silent --status pending: %+v", r)
	}
	if r := runCLI(t, e, "", nil, "device", "command", d.MDM.EnrollmentID, `{"request_type":"EraseDevice"}`); r.code != 1 || !strings.Contains(r.stderr, "forbids") {
		t.Fatalf("forbidden command: %+v", r)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "command", d.MDM.EnrollmentID, `{"request_type":"DeviceInformation","queries":["OSVersion"]}`, "--no-push"))
	if !strings.HasPrefix(r.stdout, "queued ") {
		t.Fatal(r.stdout)
	}
	cmd, _ := d.Poll(ctx, nil, false)
	d.Poll(ctx, d.Answer(cmd), false)
	r = mustOK(t, runCLI(t, e, "", nil, "device", "commands", d.MDM.EnrollmentID))
	if !strings.Contains(r.stdout, "DeviceInformation") || !strings.Contains(r.stdout, "Acknowledged") {
		t.Fatalf("commands:\n%s", r.stdout)
	}
	// device show: text by default, the API's object with --json.
	r = mustOK(t, runCLI(t, e, "", nil, "device", "show", d.MDM.EnrollmentID))
	if !strings.Contains(r.stdout, "device_information") || strings.Contains(r.stdout, "{") || !strings.Contains(r.stdout, d.MDM.EnrollmentID) {
		t.Fatalf("show:\n%s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "show", d.MDM.EnrollmentID, "--json"))
	if !strings.Contains(r.stdout, `"device_information"`) {
		t.Fatalf("show --json:\n%s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "command", "--tenant", "a.example", `{"request_type":"ProfileList"}`, "--no-push"))
	if !strings.Contains(r.stdout, "for 1 device(s)") {
		t.Fatalf("bulk:\n%s", r.stdout)
	}
	// Answers lost on the way back (a proxy's 502 after the server queued
	// the command): the CLI repeats with the same Idempotency-Key and the
	// command is queued once.
	target, _ := url.Parse(e.URL)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = e.Client.Transport
	var mu sync.Mutex
	var keys []string
	lossy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			rp.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		first := len(keys)%2 == 1
		mu.Unlock()
		if first {
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r) // the server does it; the answer is lost
			http.Error(w, "bad gateway", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer lossy.Close()
	via := map[string]string{"POMONA_SERVER": lossy.URL}
	countQueued := func() map[string]int {
		t.Helper()
		var out struct {
			Commands []struct {
				UUID string `json:"command_uuid"`
			} `json:"commands"`
		}
		if err := json.Unmarshal([]byte(mustOK(t, runCLI(t, e, "", nil, "device", "commands", d.MDM.EnrollmentID, "--json")).stdout), &out); err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, c := range out.Commands {
			m[c.UUID]++
		}
		return m
	}
	for _, args := range [][]string{
		{"device", "command", d.MDM.EnrollmentID, `{"request_type":"SecurityInfo"}`, "--no-push"},
		{"device", "command", "--tenant", "a.example", `{"request_type":"ProfileList"}`, "--no-push"},
	} {
		before := countQueued()
		r = mustOK(t, runCLI(t, e, "", via, args...))
		uuid := strings.Fields(r.stdout)[1]
		after := countQueued()
		if len(after) != len(before)+1 || after[uuid] != 1 {
			t.Fatalf("%v: queued %v, before %v", args, after, before)
		}
	}
	if len(keys) != 4 || keys[0] != keys[1] || keys[2] != keys[3] || keys[0] == keys[2] || !strings.HasPrefix(keys[0], `"`) {
		t.Fatalf("Idempotency-Keys sent: %q", keys)
	}

	mustOK(t, runCLI(t, e, "", nil, "device", "unenroll", d.MDM.EnrollmentID))
	r = mustOK(t, runCLI(t, e, "", nil, "audit", "--action", "POST /api/v1/devices/{id}/unenroll"))
	if !strings.Contains(r.stdout, d.MDM.EnrollmentID) {
		t.Fatalf("audit:\n%s", r.stdout)
	}

	// Amy enrolls her iPhone again: device show names its predecessor.
	d2, _ := devicesim.New(devicesim.Options{RootCAs: pool})
	defer d2.Close()
	if _, err := d2.Enroll(ctx, e.URL, devicesim.Credentials{User: "amy@a.example", Password: "amy-password"}); err != nil {
		t.Fatal(err)
	}
	d2.Authenticate(ctx)
	old := mustOK(t, runCLI(t, e, "", nil, "device", "show", d.MDM.EnrollmentID, "--json"))
	var oldDev struct{ ID string }
	json.Unmarshal([]byte(old.stdout), &oldDev)
	r = mustOK(t, runCLI(t, e, "", nil, "device", "show", d2.MDM.EnrollmentID))
	if oldDev.ID == "" || !strings.Contains(r.stdout, "re-enrollment of") || !strings.Contains(r.stdout, oldDev.ID) {
		t.Fatalf("device show of the re-enrolled device does not name its predecessor %q:\n%s", oldDev.ID, r.stdout)
	}
}
