package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/seal"
)

var built struct {
	once sync.Once
	dir  string
	err  error
	out  []byte
}

// pomonaBinary builds cmd/pomona once per test binary (the tests that run
// it as its own process — the cluster, SIGKILL and memory-capped hostile
// tests — share it: a build costs tens of seconds on a loaded machine).
func pomonaBinary(t testing.TB) string {
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "pomona-bin-")
		if built.err == nil {
			built.out, built.err = exec.Command("go", "build", "-o", filepath.Join(built.dir, "pomona"), "../cmd/pomona").CombinedOutput()
		}
	})
	if built.err != nil {
		t.Fatalf("build: %v\n%s", built.err, built.out)
	}
	return filepath.Join(built.dir, "pomona")
}

// TestMain removes the shared binary after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// Two `pomona serve` processes (the built binary, separate ports) on one
// PostgreSQL database: devices enrolled through either, a profile assigned
// through one, every device polling both by turns. Every device installs
// the profile exactly once (both reconcilers run; their row claims keep
// them apart), and both processes serve the same CRL.
func TestTwoProcessesReconcileProfilesOnePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs two servers")
	}
	db := pgtest.NewDatabase(t) // skipped without POMONA_TEST_POSTGRES, failed in CI
	bin := pomonaBinary(t)
	key := seal.NewKey()
	pubAddr := freeAddr(t)
	public := "https://" + pubAddr
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	a := startInstance(t, bin, db, key, public)
	waitReady(t, plain, a.addr)
	b := startInstance(t, bin, db, key, public)
	waitReady(t, plain, b.addr)
	insts := []*instance{a, b}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(fetchCA(t, plain, a.addr))

	api := func(inst *instance, method, path string, body any) map[string]any {
		t.Helper()
		var r io.Reader
		if body != nil {
			j, _ := json.Marshal(body)
			r = bytes.NewReader(j)
		}
		req, _ := http.NewRequest(method, "https://"+inst.addr+path, r)
		req.Header.Set("Authorization", "Bearer cluster-test-bootstrap-key-0001")
		req.Header.Set("Content-Type", "application/json")
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, m)
		}
		return m
	}
	tenant := api(a, "POST", "/api/v1/tenants", map[string]any{"name": "Cluster", "domains": []string{"cluster.example"}, "require_second_factor": false})["id"].(string)
	pca, _ := pki.NewCA("push", pki.ECDSAP256, time.Now())
	pc, _ := pushcert.NewLocal("com.apple.mgmt.External.dddddddd-0000-0000-0000-000000000005", pca, time.Now().Add(365*24*time.Hour))
	kp, _ := pki.KeyPEM(pc.Key)
	api(b, "PUT", "/api/v1/push-certificate", map[string]any{"certificate": string(pki.CertPEM(pc.Cert)), "private_key": string(kp)})

	const devices = 6
	ctx := context.Background()
	var ds []*devicesim.Device
	for i := 0; i < devices; i++ {
		email := fmt.Sprintf("user%d@cluster.example", i)
		api(insts[i%2], "POST", "/api/v1/users", map[string]any{"email": email, "password": "cluster-password"})
		d, err := devicesim.New(devicesim.Options{RootCAs: pool, Resolve: map[string]string{pubAddr: insts[i%2].addr}})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.Enroll(ctx, public, devicesim.Credentials{User: email, Password: "cluster-password"}); err != nil {
			t.Fatalf("device %d: %v", i, err)
		}
		if err := d.Authenticate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.TokenUpdate(ctx, false); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	// The profile is uploaded through A and assigned through B.
	p := api(a, "POST", "/api/v1/profiles", map[string]any{"tenant_id": tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("cluster"))})
	groups := api(b, "GET", "/api/v1/groups?tenant_id="+tenant, nil)["groups"].([]any)
	api(b, "POST", "/api/v1/profiles/"+p["id"].(string)+"/assignments", map[string]any{"group_id": groups[0].(map[string]any)["id"]})

	// Every device polls A and B by turns and counts the InstallProfile
	// commands it receives, until all have it verified (installed).
	installs := make([]int, devices)
	deadline := time.Now().Add(60 * time.Second)
	for turn := 0; ; turn++ {
		for i, d := range ds {
			d.SetResolve(map[string]string{pubAddr: insts[(i+turn)%2].addr})
			cmd, err := d.Poll(ctx, nil, false)
			for err == nil && cmd != nil {
				if cmd.RequestType() == "InstallProfile" {
					installs[i]++
				}
				d.SetResolve(map[string]string{pubAddr: insts[(i+turn+1)%2].addr})
				cmd, err = d.Poll(ctx, d.Process(ctx, cmd), false)
			}
			if err != nil {
				t.Fatalf("device %d: %v", i, err)
			}
		}
		st := api(insts[turn%2], "GET", "/api/v1/profiles/"+p["id"].(string)+"/status", nil)["counts"].(map[string]any)
		if st["installed"] == float64(devices) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every device installed it: %v, installs %v", st, installs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i, n := range installs {
		if n != 1 {
			t.Errorf("device %d received %d InstallProfile commands, want 1", i, n)
		}
		if _, ok := ds[i].InstalledProfile("com.example.wifi"); !ok {
			t.Errorf("device %d does not have the profile", i)
		}
	}
	// Both processes serve the same CRL.
	crl := func(inst *instance) []byte {
		resp, err := plain.Get("https://" + inst.addr + "/pki/crl")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/pkix-crl") {
			t.Fatalf("CRL from %s: %d", inst.addr, resp.StatusCode)
		}
		return body
	}
	if ca, cb := crl(a), crl(b); !bytes.Equal(ca, cb) {
		t.Fatal("the two instances serve different CRLs")
	}
}
