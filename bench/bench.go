// Package bench is Pomona's load benchmark. It starts `pomona serve` as a
// separate process on loopback (so the server's CPU seconds and peak
// memory can be read from /proc apart from the load generator's), an APNs
// stand-in, and drives simulated devices through phases: full enrollment,
// idle check-ins, command round trips (enqueue → push → poll → result
// stored) and one bulk command to every device. Counts and durations are
// bounded; it only ever talks to 127.0.0.1.
package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/push/apnsstub"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/seal"
)

// Options configure a run.
type Options struct {
	Binary      string // pomona executable to run as the server
	DB          string // empty: SQLite in a temporary directory
	Devices     int
	Users       int // devices share users: one sign-in per device still
	Checkins    int // idle check-ins per device
	Commands    int // command round trips per device
	Concurrency int
	Timeout     time.Duration // the whole run
	Log         io.Writer     // progress
}

// Phase is one measured phase.
type Phase struct {
	Name      string        `json:"name"`
	Ops       int           `json:"ops"`
	Errors    int           `json:"errors"`
	Wall      time.Duration `json:"wall_ns"`
	ServerCPU time.Duration `json:"server_cpu_ns"`
	P50       time.Duration `json:"p50_ns"`
	P95       time.Duration `json:"p95_ns"`
	P99       time.Duration `json:"p99_ns"`
	// Note explains an adjustment (enrollment without password hashing).
	Note string `json:"note,omitempty"`
}

// PerSecond is the throughput.
func (p Phase) PerSecond() float64 { return float64(p.Ops) / p.Wall.Seconds() }

// CPUPerOp is server CPU per operation.
func (p Phase) CPUPerOp() time.Duration {
	if p.Ops == 0 {
		return 0
	}
	return p.ServerCPU / time.Duration(p.Ops)
}

// Report is the result of a run.
type Report struct {
	Options     Options       `json:"-"`
	Store       string        `json:"store"`
	Devices     int           `json:"devices"`
	Phases      []Phase       `json:"phases"`
	PeakRSS     int64         `json:"server_peak_rss_bytes"`
	BaseRSS     int64         `json:"server_rss_before_enroll_bytes"`
	RSSAfter    int64         `json:"server_rss_after_bytes"`
	HashCPU     time.Duration `json:"signin_cpu_ns"`
	TotalErrors int           `json:"errors"`
}

type server struct {
	cmd  *exec.Cmd
	addr string
	pid  int
	key  string
	http *http.Client
}

// procStats reads a process's CPU time (user+system) and RSS figures.
func procStats(pid int) (cpu time.Duration, rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	cpu = time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return cpu, 0, 0, err
	}
	for _, line := range strings.Split(string(st), "\n") {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n * 1024
		case "VmHWM":
			peak = n * 1024
		}
	}
	return cpu, rss, peak, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Run performs a benchmark run.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Devices < 1 || o.Devices > 200000 {
		return nil, errors.New("bench: devices must be 1 to 200000")
	}
	if o.Concurrency < 1 {
		o.Concurrency = 8
	}
	if o.Users < 1 {
		o.Users = min(o.Devices, 50)
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "pomona-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	stub, err := apnsstub.Start()
	if err != nil {
		return nil, err
	}
	defer stub.Close()
	apnsCA := filepath.Join(dir, "apns-ca.pem")
	os.WriteFile(apnsCA, pki.CertPEM(stub.CA.Cert), 0o600)

	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	const bootKey = "pomona-bench-bootstrap-key-000001"
	args := []string{"serve", "--data", filepath.Join(dir, "data"), "--listen", addr, "--public-url", "https://" + addr,
		"--admin-api-key", bootKey, "--secret-key", seal.NewKey(), "--apns-url", stub.URL, "--apns-ca-file", apnsCA, "--log-level", "warn"}
	if o.DB != "" {
		args = append(args, "--db", o.DB)
	}
	logf, _ := os.Create(filepath.Join(dir, "server.log"))
	defer logf.Close()
	cmd := exec.CommandContext(ctx, o.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the server: %w", err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	srv := &server{cmd: cmd, addr: addr, pid: cmd.Process.Pid, key: bootKey,
		http: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: 64}}}
	if err := srv.waitReady(ctx); err != nil {
		b, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("%w\n%s", err, b)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "data", "ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)

	rep := &Report{Options: o, Devices: o.Devices, Store: "sqlite"}
	if o.DB != "" {
		rep.Store = "postgres"
	}
	// Setup (not measured): tenant, users, push certificate.
	fmt.Fprintf(o.Log, "setup: tenant, %d users, push certificate\n", o.Users)
	if err := srv.api(ctx, "POST", "/api/v1/tenants", map[string]any{"name": "Bench", "domains": []string{"bench.example"}, "require_second_factor": false}, nil); err != nil {
		return nil, err
	}
	pca, _ := pki.NewCA("bench push CA", pki.ECDSAP256, time.Now())
	pc, _ := pushcert.NewLocal("com.apple.mgmt.External.beeeeeee-0000-0000-0000-000000000000", pca, time.Now().Add(365*24*time.Hour))
	kp, _ := pki.KeyPEM(pc.Key)
	if err := srv.api(ctx, "PUT", "/api/v1/push-certificate", map[string]any{"certificate": string(pki.CertPEM(pc.Cert)), "private_key": string(kp)}, nil); err != nil {
		return nil, err
	}
	for i := 0; i < o.Users; i++ {
		if err := srv.api(ctx, "POST", "/api/v1/users", map[string]any{"email": fmt.Sprintf("user%d@bench.example", i), "password": "bench-password-1"}, nil); err != nil {
			return nil, err
		}
	}
	_, rep.BaseRSS, _, _ = procStats(srv.pid)

	// Phase 1: full enrollments.
	devices := make([]*devicesim.Device, o.Devices)
	ph := measure(ctx, srv, "enrollment (full flow)", o.Devices, o.Concurrency, func(i int) error {
		d, err := devicesim.New(devicesim.Options{RootCAs: pool})
		if err != nil {
			return err
		}
		devices[i] = d
		if _, err := d.Enroll(ctx, "https://"+addr, devicesim.Credentials{User: fmt.Sprintf("user%d@bench.example", i%o.Users), Password: "bench-password-1"}); err != nil {
			return err
		}
		if err := d.Authenticate(ctx); err != nil {
			return err
		}
		return d.TokenUpdate(ctx, false)
	}, o.Log)
	rep.Phases = append(rep.Phases, ph)
	// Password hashing is deliberate cost. Measure sign-ins alone on the
	// server (pages + one argon2id verification each) and report the rest
	// of the enrollment.
	n := min(o.Devices, 200)
	signIn := measure(ctx, srv, "sign-in alone (pages + argon2id)", n, o.Concurrency, func(i int) error {
		d, err := devicesim.New(devicesim.Options{RootCAs: pool})
		if err != nil {
			return err
		}
		defer d.Close()
		d.LoginURL = "https://" + addr + "/login/" + devices[0].BaseURL[strings.LastIndexByte(devices[0].BaseURL, '/')+1:]
		_, err = d.SignIn(ctx, devicesim.Credentials{User: fmt.Sprintf("user%d@bench.example", i%o.Users), Password: "bench-password-1"})
		return err
	}, o.Log)
	rest := ph
	rest.Name = "enrollment without the sign-in"
	rest.ServerCPU = ph.ServerCPU - time.Duration(ph.Ops)*signIn.CPUPerOp()
	rest.Note = "enrollment CPU/op minus sign-in CPU/op"
	rep.HashCPU = signIn.CPUPerOp()
	rep.Phases = append(rep.Phases, signIn, rest)
	var live []*devicesim.Device
	for _, d := range devices {
		if d != nil && d.MDM.PushToken != nil {
			live = append(live, d)
		}
	}
	if len(live) == 0 {
		return rep, errors.New("bench: no device enrolled; see the errors above")
	}

	// Phase 2: idle check-ins (signed, with bearer).
	if o.Checkins > 0 {
		rep.Phases = append(rep.Phases, measure(ctx, srv, "idle check-in", len(live)*o.Checkins, o.Concurrency, func(i int) error {
			_, err := live[i%len(live)].Poll(ctx, nil, false)
			return err
		}, o.Log))
	}

	// Phase 3: command round trips: enqueue → push → poll → result stored.
	if o.Commands > 0 {
		rep.Phases = append(rep.Phases, measure(ctx, srv, "command round trip", len(live)*o.Commands, o.Concurrency, func(i int) error {
			d := live[i%len(live)]
			pushes := stub.Listen(d.MDM.PushToken)
			var out map[string]string
			if err := srv.api(ctx, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands",
				map[string]any{"request_type": "DeviceInformation", "queries": []string{"OSVersion", "ModelName"}}, &out); err != nil {
				return err
			}
			select {
			case <-pushes:
			case <-time.After(30 * time.Second):
				return errors.New("no push within 30 s")
			}
			cmd, err := d.Poll(ctx, nil, false)
			if err != nil {
				return err
			}
			for cmd != nil && cmd.CommandUUID != out["command_uuid"] {
				if cmd, err = d.Poll(ctx, d.Answer(cmd), false); err != nil {
					return err
				}
			}
			if cmd == nil {
				return errors.New("the queued command did not arrive")
			}
			_, err = d.Poll(ctx, d.Answer(cmd), false)
			return err
		}, o.Log))
	}

	// Phase 4: one command to every device.
	rep.Phases = append(rep.Phases, measure(ctx, srv, "bulk enqueue (one command, every device)", 1, 1, func(int) error {
		var out map[string]any
		if err := srv.api(ctx, "POST", "/api/v1/commands", map[string]any{"targets": map[string]any{"tenant": "bench.example"},
			"command": map[string]any{"request_type": "ProfileList"}, "push": false}, &out); err != nil {
			return err
		}
		if int(out["queued"].(float64)) != len(live) {
			return fmt.Errorf("queued %v of %d", out["queued"], len(live))
		}
		return nil
	}, o.Log))

	_, rep.RSSAfter, rep.PeakRSS, _ = procStats(srv.pid)
	for _, p := range rep.Phases {
		if p.Note == "" {
			rep.TotalErrors += p.Errors
		}
	}
	for _, d := range devices {
		if d != nil {
			d.Close()
		}
	}
	return rep, nil
}

// measure runs op n times with c workers and reads the server's CPU.
func measure(ctx context.Context, srv *server, name string, n, c int, op func(i int) error, log io.Writer) Phase {
	fmt.Fprintf(log, "%s: %d operations, %d at a time\n", name, n, c)
	cpu0, _, _, _ := procStats(srv.pid)
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	var firstErr atomic.Value
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu1, _, _, _ := procStats(srv.pid)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	ph := Phase{Name: name, Ops: n, Errors: int(errs.Load()), Wall: wall, ServerCPU: cpu1 - cpu0, P50: pct(0.50), P95: pct(0.95), P99: pct(0.99)}
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(log, "  first error: %s\n", e)
	}
	return ph
}

func (s *server) waitReady(ctx context.Context) error {
	for i := 0; i < 600; i++ {
		resp, err := s.http.Get("https://" + s.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("bench: the server did not become ready")
}

func (s *server) api(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = strings.NewReader(string(b))
	}
	req, _ := http.NewRequestWithContext(ctx, method, "https://"+s.addr+path, body)
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Table renders the report for people.
func (r *Report) Table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "store %s, %d devices\n\n", r.Store, r.Devices)
	fmt.Fprintf(&b, "%-45s %7s %7s %10s %14s %9s %9s %9s\n", "phase", "ops", "errors", "ops/s", "server CPU/op", "p50", "p95", "p99")
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "%-45s %7d %7d %10.1f %14s %9s %9s %9s\n", p.Name, p.Ops, p.Errors, p.PerSecond(), p.CPUPerOp().Round(time.Microsecond),
			p.P50.Round(100*time.Microsecond), p.P95.Round(100*time.Microsecond), p.P99.Round(100*time.Microsecond))
	}
	fmt.Fprintf(&b, "\nserver memory: %.1f MiB before enrolling, %.1f MiB after, peak %.1f MiB (%.0f bytes per enrolled device over the base)\n",
		mib(r.BaseRSS), mib(r.RSSAfter), mib(r.PeakRSS), float64(r.RSSAfter-r.BaseRSS)/float64(max(1, r.Devices)))
	fmt.Fprintf(&b, "server CPU of one sign-in (argon2id, 19 MiB, 2 passes): %s\n", r.HashCPU.Round(time.Microsecond))
	return b.String()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
