package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/cli"
	"github.com/pomona-mdm/pomona/demo"
	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/server"
)

func TestDemoAndSimEnroll(t *testing.T) {
	e := testenv.Start(t, func(c *server.Config) { c.Demo = true })
	r := mustOK(t, runCLI(t, e, "", map[string]string{"POMONA_DATA": e.DataDir}, "sim", "enroll", "--user", demo.User,
		"--password", demo.Password, "--server", e.URL))
	for _, want := range []string{"discovery at " + e.URL, "answered 401", "second factor set up", "profile: BYOD", "identity certificate", "enrolled as EnrollmentID", "Enrollment works."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sim output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "list"))
	if !strings.Contains(r.stdout, "enrolled") {
		t.Fatalf("device list:\n%s", r.stdout)
	}
	// Again, without the key of the second factor set up the first time:
	// the failure says which flag gives it.
	r = runCLI(t, e, "", map[string]string{"POMONA_DATA": e.DataDir}, "sim", "enroll", "--user", demo.User,
		"--password", demo.Password, "--server", e.URL)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  sign-in") || !strings.Contains(r.stdout, "--totp-secret") {
		t.Fatalf("repeated enroll without --totp-secret: %+v", r)
	}
	// A wrong password is reported as the page shows it.
	r = runCLI(t, e, "", map[string]string{"POMONA_DATA": e.DataDir}, "sim", "enroll", "--user", demo.User, "--password", "wrong", "--server", e.URL)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  sign-in") || !strings.Contains(r.stdout, "not correct") {
		t.Fatalf("wrong password: %+v", r)
	}
	// Deleting the user says how many devices it unenrolls and wants --yes.
	r = runCLI(t, e, "", nil, "user", "delete", demo.User)
	if r.code != 1 || !strings.Contains(r.stderr, "unenrolls 1 device(s)") || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("user delete without --yes: %+v", r)
	}
	mustOK(t, runCLI(t, e, "", nil, "user", "show", demo.User))
	r = mustOK(t, runCLI(t, e, "", nil, "user", "delete", demo.User, "--yes"))
	if !strings.Contains(r.stdout, "1 device(s) told to remove their enrollment") {
		t.Fatalf("user delete --yes:\n%s", r.stdout)
	}
}

// TestSimRun keeps a small fleet alive against a server that pushes to the
// fleet's APNs stand-in: a command queued through the API wakes the device
// with a push and gets answered; at the end the devices check out.
func TestSimRun(t *testing.T) {
	state := t.TempDir()
	// The stand-in's CA, as `sim run` keeps it in --state.
	ca, _ := pki.NewCA("stand-in", pki.ECDSAP256, time.Now())
	kp, _ := pki.KeyPEM(ca.Key)
	os.WriteFile(filepath.Join(state, "apns-stand-in-ca.key.pem"), append(pki.CertPEM(ca.Cert), kp...), 0o600)
	os.WriteFile(filepath.Join(state, "apns-ca.pem"), pki.CertPEM(ca.Cert), 0o644)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	e := testenv.Start(t, func(c *server.Config) {
		c.APNsURL, c.APNsCAFile = "https://"+addr, filepath.Join(state, "apns-ca.pem")
	})
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "Sim", "--domain", "sim.example"))
	pca, _ := pki.NewCA("push", pki.ECDSAP256, time.Now())
	pc, _ := pushcert.NewLocal("com.apple.mgmt.External.dddddddd-0000-0000-0000-000000000004", pca, time.Now().Add(365*24*time.Hour))
	pk, _ := pki.KeyPEM(pc.Key)
	os.WriteFile(filepath.Join(state, "c.pem"), pki.CertPEM(pc.Cert), 0o600)
	os.WriteFile(filepath.Join(state, "k.pem"), pk, 0o600)
	mustOK(t, runCLI(t, e, "", nil, "push-cert", "import", "--cert", filepath.Join(state, "c.pem"), "--key", filepath.Join(state, "k.pem")))

	// The fleet runs until interrupted (its Ctrl-C is runCtx's cancel),
	// not for a --duration: on a busy machine enrollment alone took the
	// 8 s the test used to give, and the stand-in was gone before the push.
	runCtx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	runOut := &syncBuffer{}
	done := make(chan result, 1)
	go func() {
		var errb bytes.Buffer
		env := map[string]string{"POMONA_SERVER": e.URL, "POMONA_API_KEY": e.APIKey, "POMONA_CA_FILE": e.CAFile}
		code := cli.Main(&cli.Env{Stdin: strings.NewReader(""), Stdout: runOut, Stderr: &errb,
			Getenv: func(k string) string { return env[k] }, Ctx: runCtx},
			[]string{"sim", "run", "--domain", "sim.example", "--devices", "3", "--families", "iPhone,Mac",
				"--apns-listen", addr, "--state", state, "--status-every", "1s"})
		done <- result{code, runOut.String(), errb.String()}
	}()
	// Wait for the three devices, then queue a command without polling
	// ourselves: only a push through the stand-in can get it answered.
	var ids []string
	// A ceiling, not a timing: enrollment is slow when the machine is busy.
	deadline := time.Now().Add(60 * time.Second)
	for len(ids) < 3 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		r := runCLI(t, e, "", nil, "device", "list", "--tenant", "sim.example", "--json")
		var out struct {
			Devices []struct {
				EnrollmentID string `json:"enrollment_id"`
				Status       string `json:"status"`
			} `json:"devices"`
		}
		json.Unmarshal([]byte(r.stdout), &out)
		ids = ids[:0]
		for _, d := range out.Devices {
			if d.Status == "enrolled" {
				ids = append(ids, d.EnrollmentID)
			}
		}
	}
	if len(ids) < 3 {
		t.Fatalf("enrolled: %v", ids)
	}
	// "enrolled" comes with Authenticate; the device channel that takes
	// commands comes with the TokenUpdate right after it.
	for {
		r := runCLI(t, e, "", nil, "device", "command", ids[0], `{"request_type":"SecurityInfo"}`)
		if r.code == 0 {
			break
		}
		if !strings.Contains(r.stderr, "channel") || time.Now().After(deadline) {
			t.Fatalf("device command: %+v", r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A push that reaches the stand-in before the simulated device listens
	// (it starts after its enrollment's last TokenUpdate) is lost, as an
	// APNs notification to a device that is not connected can be: wake it
	// again each second, as an admin would. Only a push gets it answered.
	answered := false
	for i := 1; i <= 300 && !answered; i++ {
		time.Sleep(100 * time.Millisecond)
		answered = strings.Contains(runCLI(t, e, "", nil, "device", "commands", ids[0]).stdout, "Acknowledged")
		if !answered && i%10 == 0 {
			runCLI(t, e, "", nil, "device", "push", ids[0])
		}
	}
	if !answered {
		t.Fatal("the pushed device did not answer")
	}
	for !strings.Contains(runOut.String(), "Devices answer pushes now") && time.Now().Before(deadline.Add(time.Minute)) {
		time.Sleep(100 * time.Millisecond) // its own push check, after enrollment
	}
	interrupt()
	r := <-done
	if r.code != 0 {
		t.Fatalf("sim run: %+v", r)
	}
	for _, want := range []string{"3 of 3 devices enrolled", "push path ok", "3 devices checked out", "0 errors"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sim run output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "list", "--tenant", "sim.example", "--status", "unenrolled"))
	if strings.Count(r.stdout, "unenrolled") < 3 {
		t.Fatalf("after check-out:\n%s", r.stdout)
	}
}

// TestSimEnrollDeclinesAProfileOnce is the demo's way to a failed device
// (README, docs/simulator.md) with the README's example profile: with
// --decline-profile the simulated iPhone answers
// the first InstallProfile of that profile with an error chain, the status
// shows the device's reason, and after a retry it is installed.
func TestSimEnrollDeclinesAProfileOnce(t *testing.T) {
	e := testenv.Start(t, func(c *server.Config) { c.Demo = true })
	wifi := filepath.Join("..", "docs", "examples", "wifi.mobileconfig") // the README's example
	r := mustOK(t, runCLI(t, e, "", nil, "profile", "upload", wifi, "--tenant", demo.Domain))
	pid := regexp.MustCompile(`profile (pr_\S+):`).FindStringSubmatch(r.stdout)
	if pid == nil {
		t.Fatalf("upload: %s", r.stdout)
	}
	var groups struct {
		Groups []struct{ ID, Source string } `json:"groups"`
	}
	json.Unmarshal([]byte(mustOK(t, runCLI(t, e, "", nil, "group", "list", "--tenant", demo.Domain, "--json")).stdout), &groups)
	if len(groups.Groups) == 0 {
		t.Fatal("no groups")
	}
	mustOK(t, runCLI(t, e, "", nil, "profile", "assign", pid[1], "--group", groups.Groups[0].ID))

	// The simulated iPhone keeps answering until the test cancels it.
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan int, 1)
	go func() {
		env := map[string]string{"POMONA_DATA": e.DataDir}
		done <- cli.Main(&cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard, Getenv: func(k string) string { return env[k] }, Ctx: ctx},
			[]string{"sim", "enroll", "--user", demo.User, "--password", demo.Password, "--server", e.URL, "--poll", "10m", "--decline-profile", "com.example.wifi"})
	}()
	stopped := false
	stop := func() string {
		if !stopped {
			cancel()
			<-done
			stopped = true
		}
		return out.String()
	}
	defer stop()
	// waitState polls the profile's status until a device is in state; a
	// ceiling, not a timing: a busy machine is slow.
	waitState := func(state string) (device, errText string) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			var st struct {
				Devices []struct{ Device, State, Error string } `json:"devices"`
			}
			json.Unmarshal([]byte(runCLI(t, e, "", nil, "profile", "status", pid[1], "--json").stdout), &st)
			for _, d := range st.Devices {
				if d.State == state {
					return d.Device, d.Error
				}
			}
		}
		t.Fatalf("no device %s; simulator:\n%s", state, stop())
		return "", ""
	}
	dev, reason := waitState("failed")
	if !strings.Contains(reason, "declined the profile") {
		t.Errorf("failed without the device's reason: %q", reason)
	}
	if r := runCLI(t, e, "", nil, "profile", "retry", pid[1]); r.code != 2 || !strings.Contains(r.stderr, "--device D or --failed") {
		t.Fatalf("retry without a device: %d %s", r.code, r.stderr)
	}
	if r := mustOK(t, runCLI(t, e, "", nil, "profile", "retry", pid[1], "--failed")); !strings.Contains(r.stdout, "retry queued on 1 device(s)") {
		t.Fatalf("retry --failed: %s", r.stdout)
	}
	if got, _ := waitState("installed"); got != dev {
		t.Fatal("another device was installed")
	}
	// Installed now: a retry of it is refused, and says which device.
	if r := runCLI(t, e, "", nil, "profile", "retry", pid[1], "--device", dev); r.code == 0 || !strings.Contains(r.stderr, dev) {
		t.Fatalf("retry of an installed device: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if got := stop(); !strings.Contains(got, "answered Error: ") || !strings.Contains(got, "declined com.example.wifi once") {
		t.Errorf("the simulator does not say what it declined:\n%s", got)
	}
}
