package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/seal"
)

// One SQLite server killed with SIGKILL while devices report results at
// full speed (eight at once, so SQLite's group commit batches them) loses
// no result it acknowledged: after a restart on the same files, every
// result a device saw answered 200 is stored as Acknowledged. (The
// PostgreSQL counterpart is TestTwoInstancesOnePostgres.)
func TestSIGKILLSQLiteKeepsAcknowledgedResults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a server")
	}
	bin := pomonaBinary(t) // built once, shared with the other process tests
	dir := t.TempDir()
	key := seal.NewKey()
	addr := freeAddr(t)
	public := "https://" + addr
	start := func() *exec.Cmd {
		logs, _ := os.OpenFile(filepath.Join(dir, "log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		cmd := exec.Command(bin, "serve", "--data", dir, "--listen", addr, "--public-url", public,
			"--secret-key", key, "--admin-api-key", "sigkill-test-bootstrap-key-0001", "--apns-url", "https://127.0.0.1:1")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			logs.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logs.Name())
				t.Logf("server log:\n%s", tail(string(b), 40))
			}
		})
		return cmd
	}
	srv := start()
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	waitReady(t, plain, addr)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(fetchCA(t, plain, addr))
	api := func(method, path string, body any) map[string]any {
		var r io.Reader
		if body != nil {
			j, _ := json.Marshal(body)
			r = strings.NewReader(string(j))
		}
		req, _ := http.NewRequest(method, public+path, r)
		req.Header.Set("Authorization", "Bearer sigkill-test-bootstrap-key-0001")
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
	api("POST", "/api/v1/tenants", map[string]any{"name": "Kill", "domains": []string{"kill.example"}, "require_second_factor": false})
	pca, _ := pki.NewCA("push", pki.ECDSAP256, time.Now())
	pc, _ := pushcert.NewLocal("com.apple.mgmt.External.dddddddd-0000-0000-0000-000000000005", pca, time.Now().Add(365*24*time.Hour))
	kp, _ := pki.KeyPEM(pc.Key)
	api("PUT", "/api/v1/push-certificate", map[string]any{"certificate": string(pki.CertPEM(pc.Cert)), "private_key": string(kp)})

	const devices, perDevice = 8, 40
	ds := make([]*devicesim.Device, devices)
	for i := range ds {
		email := fmt.Sprintf("user%d@kill.example", i)
		api("POST", "/api/v1/users", map[string]any{"email": email, "password": "kill-password"})
		d, err := devicesim.New(devicesim.Options{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ctx := context.Background()
		if _, err := d.Enroll(ctx, public, devicesim.Credentials{User: email, Password: "kill-password"}); err != nil {
			t.Fatalf("device %d: %v", i, err)
		}
		if err := d.Authenticate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.TokenUpdate(ctx, false); err != nil {
			t.Fatal(err)
		}
		ds[i] = d
	}
	for k := 0; k < perDevice; k++ {
		api("POST", "/api/v1/commands", map[string]any{"targets": map[string]any{"tenant": "kill.example"}, "command": map[string]any{"request_type": "ProfileList"}, "push": false})
	}

	// Every device works through its queue; the server is killed once a
	// quarter of all results have been acknowledged.
	acked := make([]map[string]bool, devices)
	var total atomic.Int64
	killed := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i, d := range ds {
		acked[i] = map[string]bool{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			var status map[string]any
			for {
				cmd, err := d.Poll(ctx, status, false)
				if err != nil {
					return // the server is gone
				}
				if status != nil {
					acked[i][status["CommandUUID"].(string)] = true
					if total.Add(1) == devices*perDevice/4 {
						once.Do(func() { close(killed) })
					}
				}
				if cmd == nil {
					return
				}
				status = d.Answer(cmd)
			}
		}()
	}
	select {
	case <-killed:
	case <-time.After(2 * time.Minute):
		t.Fatal("the devices did not get a quarter through their queues")
	}
	srv.Process.Kill() // SIGKILL: no graceful shutdown, no final checkpoint
	srv.Wait()
	wg.Wait()

	start()
	waitReady(t, plain, addr)
	n := 0
	for i, d := range ds {
		res := api("GET", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands?limit=100", nil)
		stored := map[string]string{}
		for _, c := range res["commands"].([]any) {
			m := c.(map[string]any)
			stored[m["command_uuid"].(string)] = m["status"].(string)
		}
		for uuid := range acked[i] {
			n++
			if stored[uuid] != "Acknowledged" {
				t.Errorf("device %d: acknowledged result of %s lost (status %q)", i, uuid, stored[uuid])
			}
		}
	}
	if n < devices*perDevice/4 {
		t.Fatalf("only %d acknowledged results checked", n)
	}
}
