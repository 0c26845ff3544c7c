// Package bench is Pomona's load benchmark. It starts `pomona serve` as a
// separate process on loopback (so the server's CPU seconds and peak
// memory can be read from /proc apart from the load generator's), an APNs
// stand-in, and drives simulated devices through phases: full enrollment,
// idle check-ins, command round trips (enqueue without push → poll →
// result stored, as issue 17 defines one; then the same with the push),
// a profile wave (--wave, bench/wave.go) and one bulk command to
// every device. Counts and durations are bounded; it only ever talks to
// 127.0.0.1.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/profile"
	"github.com/pomona-mdm/pomona/push/apnsstub"
	"github.com/pomona-mdm/pomona/pushcert"
)

// Options configure a run.
type Options struct {
	Binary string // pomona executable to run as the server
	DB     string // empty: SQLite in a temporary directory
	// InProcess runs the server inside the bench process (CPU and memory
	// then include the load generator).
	InProcess bool
	// Server is an already running server (loopback only) with its APIKey,
	// CAFile and ServerPID (for CPU and memory; 0: not measured).
	Server    string
	APIKey    string
	CAFile    string
	ServerPID int
	// Seed writes this many more enrolled devices straight into the store
	// before the server starts (tables as large as a big deployment's).
	Seed        int
	Devices     int
	Users       int // devices share users: one sign-in per device still
	Checkins    int // idle check-ins per device
	Commands    int // command round trips per device, in each round-trip phase (without push, with push)
	Concurrency int
	// Profiles adds the desired-state phases (bench/profiles.go).
	Profiles bool
	// AssignCPUProfile, with InProcess and Profiles, writes a CPU profile
	// of the assignment phase alone (server and bench) to this file.
	AssignCPUProfile string
	// Wave adds the profile wave (bench/wave.go): one profile assigned to
	// every device, every simulated device fetching its InstallProfile and
	// the ProfileList after it, WaveConcurrency requests in flight
	// (default 32).
	Wave            bool
	WaveConcurrency int
	// WaveCPUProfile, when set, receives a CPU profile (runtime/pprof) of
	// this process during the wave's device phase alone (not the
	// assignment): with InProcess the server's and the generator's work
	// of the round trips, to be told apart by package.
	WaveCPUProfile io.Writer
	// FreshSignatures signs every Idle anew (default: an Idle identical
	// to the device's previous one reuses its signature).
	FreshSignatures bool
	Timeout         time.Duration // the whole run
	Log             io.Writer     // progress
}

// Phase is one measured phase.
type Phase struct {
	Name      string        `json:"name"`
	Ops       int           `json:"ops"`
	Errors    int           `json:"errors"`
	Wall      time.Duration `json:"wall_ns"`
	ServerCPU time.Duration `json:"server_cpu_ns"`
	// LoadCPU is the bench process's own CPU over the phase: the load
	// generator (0 with the server in process).
	LoadCPU time.Duration `json:"load_cpu_ns,omitempty"`
	// MachineCPU is the busy time of all the machine's cores together over
	// the phase (/proc/stat; measured for the wave only): what is left
	// after ServerCPU and LoadCPU is every other process's, PostgreSQL's
	// on the same machine above all. Cores is how many there were.
	MachineCPU time.Duration `json:"machine_cpu_ns,omitempty"`
	Cores      int           `json:"cores,omitempty"`
	P50        time.Duration `json:"p50_ns"`
	P95        time.Duration `json:"p95_ns"`
	P99        time.Duration `json:"p99_ns"`
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

// LoadCPUPerOp is the load generator's CPU per operation.
func (p Phase) LoadCPUPerOp() time.Duration {
	if p.Ops == 0 {
		return 0
	}
	return p.LoadCPU / time.Duration(p.Ops)
}

// Report is the result of a run.
type Report struct {
	Options     Options       `json:"-"`
	Store       string        `json:"store"`
	Mode        string        `json:"mode"`
	Devices     int           `json:"devices"`
	Seeded      int           `json:"seeded_devices"`
	SeedTime    time.Duration `json:"seed_ns"`
	HeapBase    int64         `json:"server_heap_live_before_bytes"`
	HeapAfter   int64         `json:"server_heap_live_after_bytes"`
	Phases      []Phase       `json:"phases"`
	PeakRSS     int64         `json:"server_peak_rss_bytes"`
	BaseRSS     int64         `json:"server_rss_before_enroll_bytes"`
	RSSAfter    int64         `json:"server_rss_after_bytes"`
	HashCPU     time.Duration `json:"signin_cpu_ns"`
	TotalErrors int           `json:"errors"`
	// Notes are findings of phases (the wave's) for people.
	Notes []string `json:"notes,omitempty"`
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

// machineBusy is the busy time of all cores together since boot, from
// /proc/stat's "cpu" line (user, nice, system, irq, softirq, steal; not
// idle or iowait), in USER_HZ ticks of 10 ms, and how many cores that line
// sums (its "cpuN" lines: the machine's, not runtime.NumCPU, which is the
// cores this process may run on: 1 under compare.sh's taskset); 0 where
// /proc/stat is not readable.
func machineBusy() (time.Duration, int) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	return parseStat(string(b))
}

func parseStat(stat string) (busy time.Duration, cores int) {
	lines := strings.Split(stat, "\n")
	f := strings.Fields(lines[0])
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	for _, l := range lines[1:] {
		if len(l) > 3 && strings.HasPrefix(l, "cpu") && l[3] >= '0' && l[3] <= '9' {
			cores++
		}
	}
	return time.Duration(ticks) * time.Second / 100, cores
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
	if o.Seed < 0 || o.Seed > 1000000 {
		return nil, errors.New("bench: seed must be 0 to 1000000")
	}
	if o.Server != "" && (o.Seed > 0 || o.InProcess) {
		return nil, errors.New("bench: --seed and --in-process need a server the bench starts itself")
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

	// Every run has its own tenant domain, so runs against one server
	// never collide.
	domain := "bench-" + profile.NewUUID()[:8] + ".example"
	domain = strings.ToLower(domain)
	rep := &Report{Options: o, Devices: o.Devices, Store: "sqlite", Seeded: o.Seed}
	if o.DB != "" {
		rep.Store = "postgres"
	}
	if o.Server != "" {
		rep.Store = "server's own"
	}
	var srv *target
	var pairs []seededUser
	secret := newSecretKey()
	switch {
	case o.Server != "":
		srv, err = existing(ctx, o)
	default:
		// Users (and seeded devices) go straight into the store first.
		dbURL := o.DB
		if dbURL == "" {
			os.MkdirAll(filepath.Join(dir, "data"), 0o700)
			dbURL = "sqlite://" + filepath.Join(dir, "data", "pomona.db")
		}
		t0 := time.Now()
		if pairs, err = seedStore(ctx, dbURL, domain, o.Users, o.Seed, o.Log); err != nil {
			return nil, err
		}
		rep.SeedTime = time.Since(t0)
		if o.InProcess {
			srv, err = inProcess(ctx, o, dir, stub, secret)
		} else {
			srv, err = spawn(ctx, o, dir, stub, secret)
		}
	}
	if err != nil {
		return nil, err
	}
	defer srv.close()
	rep.Mode = srv.kind

	// Setup (not measured): push certificate; tenant and users on an
	// existing server.
	if o.Server != "" {
		fmt.Fprintf(o.Log, "setup: tenant %s, %d users\n", domain, o.Users)
		if err := srv.api(ctx, "POST", "/api/v1/tenants", map[string]any{"name": "Bench " + domain, "domains": []string{domain}, "require_second_factor": false}, nil); err != nil {
			return nil, err
		}
		for i := 0; i < o.Users; i++ {
			if err := srv.api(ctx, "POST", "/api/v1/users", map[string]any{"email": fmt.Sprintf("user%d@%s", i, domain), "password": benchPassword}, nil); err != nil {
				return nil, err
			}
		}
	}
	if err := srv.api(ctx, "GET", "/api/v1/push-certificate", nil, nil); err != nil {
		pca, _ := pki.NewCA("bench push CA", pki.ECDSAP256, time.Now())
		pc, _ := pushcert.NewLocal("com.apple.mgmt.External.beeeeeee-0000-0000-0000-000000000000", pca, time.Now().Add(365*24*time.Hour))
		kp, _ := pki.KeyPEM(pc.Key)
		if err := srv.api(ctx, "PUT", "/api/v1/push-certificate", map[string]any{"certificate": string(pki.CertPEM(pc.Cert)), "private_key": string(kp)}, nil); err != nil {
			return nil, err
		}
	}
	rep.HeapBase = srv.heapLive(ctx)
	_, rep.BaseRSS, _ = srv.stats()
	pool := srv.pool

	// Phase 1: full enrollments.
	devices := make([]*devicesim.Device, o.Devices)
	ph := measure(ctx, srv, "enrollment (full flow)", o.Devices, o.Concurrency, func(i int) error {
		d, err := devicesim.New(devicesim.Options{RootCAs: pool})
		if err != nil {
			return err
		}
		devices[i] = d
		if _, err := d.Enroll(ctx, srv.url, devicesim.Credentials{User: fmt.Sprintf("user%d@%s", i%o.Users, domain), Password: benchPassword}); err != nil {
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
	var first *devicesim.Device
	for _, d := range devices {
		if d != nil && d.BaseURL != "" {
			first = d
			break
		}
	}
	if first == nil {
		return rep, errors.New("bench: no device got through discovery; see the errors above")
	}
	n := min(o.Devices, 200)
	signIn := measure(ctx, srv, "sign-in alone (pages + argon2id)", n, o.Concurrency, func(i int) error {
		d, err := devicesim.New(devicesim.Options{RootCAs: pool})
		if err != nil {
			return err
		}
		defer d.Close()
		d.LoginURL = srv.url + "/login/" + first.BaseURL[strings.LastIndexByte(first.BaseURL, '/')+1:]
		_, err = d.SignIn(ctx, devicesim.Credentials{User: fmt.Sprintf("user%d@%s", i%o.Users, domain), Password: benchPassword})
		return err
	}, o.Log)
	rest := ph
	rest.Name = "enrollment without the sign-in"
	rest.ServerCPU = ph.ServerCPU - time.Duration(ph.Ops)*signIn.CPUPerOp()
	rest.LoadCPU = ph.LoadCPU - time.Duration(ph.Ops)*signIn.LoadCPUPerOp()
	rest.Note = "enrollment CPU/op minus sign-in CPU/op"
	rep.HashCPU = signIn.CPUPerOp()
	rep.Phases = append(rep.Phases, signIn, rest)
	var live []*devicesim.Device
	for _, d := range devices {
		if d != nil && d.MDM.PushToken != nil {
			// The load generator's one saving the server cannot notice: an
			// Idle poll byte-identical to the device's previous Idle
			// carries that Idle's (real, fully verified) signature again,
			// instead of a new RSA 2048 signature (~1.5 ms of the
			// generator's CPU).
			d.ReuseSignatures = !o.FreshSignatures
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

	// Phase 3: command round trips. First as issue 17 defines one: an API
	// enqueue that does not push ("push": false), the device's signed Idle
	// that fetches the command and its signed Acknowledged with a result.
	// Then the same with the push to the APNs stand-in between enqueue and
	// poll (what an admin's default enqueue does); the difference between
	// the two is the push's cost on the server.
	if o.Commands > 0 {
		rep.Phases = append(rep.Phases, measure(ctx, srv, "command round trip (enqueue without push)", len(live)*o.Commands, o.Concurrency, func(i int) error {
			return roundTrip(ctx, srv, stub, live[i%len(live)], false)
		}, o.Log))
		name := "command round trip"
		if !srv.pushes {
			name += " (no push: polled)"
		}
		rep.Phases = append(rep.Phases, measure(ctx, srv, name, len(live)*o.Commands, o.Concurrency, func(i int) error {
			return roundTrip(ctx, srv, stub, live[i%len(live)], srv.pushes)
		}, o.Log))
	}

	// Phase 3b: the profile wave (bench/wave.go), before the bulk command
	// puts a ProfileList of its own into every queue.
	if o.Wave {
		c := o.WaveConcurrency
		if c < 1 {
			c = 32
		}
		ps, err := wavePhases(ctx, srv, stub, domain, live, len(live)+o.Seed, c, o.WaveCPUProfile, rep, o.Log)
		rep.Phases = append(rep.Phases, ps...)
		if err != nil {
			return rep, fmt.Errorf("bench: wave: %w", err)
		}
	}

	// Phase 4: one command to every device of the tenant (seeded ones too).
	rep.Phases = append(rep.Phases, measure(ctx, srv, "bulk enqueue (one command, every device)", 1, 1, func(int) error {
		var out map[string]any
		if err := srv.api(ctx, "POST", "/api/v1/commands", map[string]any{"targets": map[string]any{"tenant": domain},
			"command": map[string]any{"request_type": "ProfileList"}, "push": false}, &out); err != nil {
			return err
		}
		if int(out["queued"].(float64)) != len(live)+o.Seed {
			return fmt.Errorf("queued %v of %d", out["queued"], len(live)+o.Seed)
		}
		return nil
	}, o.Log))

	// Phase 5: configuration profiles (bench/profiles.go).
	if o.Profiles {
		ps, err := profilePhases(ctx, srv, domain, len(live)+o.Seed, o.Users, pairs, o.AssignCPUProfile, o.Log)
		if err != nil {
			return rep, fmt.Errorf("bench: profiles: %w", err)
		}
		rep.Phases = append(rep.Phases, ps...)
	}

	// Memory of idle enrolled devices: every device closes its connections
	// (idle devices hold none), then the server collects and reports.
	for _, d := range devices {
		if d != nil {
			d.Close()
		}
	}
	time.Sleep(500 * time.Millisecond)
	rep.HeapAfter = srv.heapLive(ctx)
	_, rep.RSSAfter, rep.PeakRSS = srv.stats()
	for _, p := range rep.Phases {
		if p.Note == "" {
			rep.TotalErrors += p.Errors
		}
	}
	if rep.TotalErrors > 0 {
		serverErrors(filepath.Join(dir, "server.log"), o.Log)
	}
	rep.Devices = len(live)
	return rep, nil
}

// serverErrors copies the last error lines of the server's log (in the
// run's temporary directory, removed at the end) to log.
func serverErrors(path string, log io.Writer) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "level=ERROR") || strings.Contains(l, `"level":"ERROR"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(log, "server log, %d error lines, the last %d:\n%s\n", len(lines), min(len(lines), 20), strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
}

// measure runs op n times with c workers and reads the server's CPU.
func measure(ctx context.Context, srv *target, name string, n, c int, op func(i int) error, log io.Writer) Phase {
	fmt.Fprintf(log, "%s: %d operations, %d at a time\n", name, n, c)
	cpu0, _, _ := srv.stats()
	load0, _, _, _ := procStats(os.Getpid())
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
	cpu1, _, _ := srv.stats()
	load1, _, _, _ := procStats(os.Getpid())
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	ph := Phase{Name: name, Ops: n, Errors: int(errs.Load()), Wall: wall, ServerCPU: cpu1 - cpu0, P50: pct(0.50), P95: pct(0.95), P99: pct(0.99)}
	if srv.kind != "in process" {
		ph.LoadCPU = load1 - load0
	}
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(log, "  first error: %s\n", e)
	}
	return ph
}

func (s *target) api(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = strings.NewReader(string(b))
	}
	req, _ := http.NewRequestWithContext(ctx, method, s.url+path, body)
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
	fmt.Fprintf(&b, "server: %s, store %s; %d devices enrolled through the full flow", r.Mode, r.Store, r.Devices)
	if r.Seeded > 0 {
		fmt.Fprintf(&b, " on top of %d written into the store (%s)", r.Seeded, r.SeedTime.Round(time.Second))
	}
	fmt.Fprintf(&b, "\n\n%-50s %7s %7s %10s %14s %12s %9s %9s %9s\n", "phase", "ops", "errors", "ops/s", "server CPU/op", "load CPU/op", "p50", "p95", "p99")
	for _, p := range r.Phases {
		cpu := "n/a"
		if r.Mode != "existing server" || r.Options.ServerPID != 0 {
			cpu = p.CPUPerOp().Round(time.Microsecond).String()
		}
		load := "n/a"
		if p.LoadCPU > 0 {
			load = p.LoadCPUPerOp().Round(time.Microsecond).String()
		}
		fmt.Fprintf(&b, "%-50s %7d %7d %10.1f %14s %12s %9s %9s %9s\n", p.Name, p.Ops, p.Errors, p.PerSecond(), cpu, load,
			p.P50.Round(100*time.Microsecond), p.P95.Round(100*time.Microsecond), p.P99.Round(100*time.Microsecond))
	}
	enrolled := float64(max(1, r.Devices+r.Seeded))
	if r.HeapBase > 0 {
		fmt.Fprintf(&b, "\nserver live heap: %.1f MiB before enrolling, %.1f MiB after (devices idle, connections closed): %.0f bytes per enrolled device\n",
			mib(r.HeapBase), mib(r.HeapAfter), float64(r.HeapAfter-r.HeapBase)/enrolled)
	}
	if r.PeakRSS > 0 {
		fmt.Fprintf(&b, "server RSS: %.1f MiB before enrolling, %.1f MiB after, peak %.1f MiB\n", mib(r.BaseRSS), mib(r.RSSAfter), mib(r.PeakRSS))
	}
	if r.Mode == "in process" {
		b.WriteString("(in process: CPU and memory include the load generator and its simulated devices)\n")
	}
	fmt.Fprintf(&b, "server CPU of one sign-in (argon2id, 19 MiB, 2 passes): %s\n", r.HashCPU.Round(time.Microsecond))
	for _, n := range r.Notes {
		b.WriteString(n + "\n")
	}
	return b.String()
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// roundTrip is one command round trip of device d: a DeviceInformation
// enqueued through the API (with push: the bench waits for the APNs
// stand-in to receive it; without: the request says "push": false and
// the server pushes nothing), an Idle that fetches it (answering anything
// queued before it) and the Acknowledged result.
func roundTrip(ctx context.Context, srv *target, stub *apnsstub.Server, d *devicesim.Device, push bool) error {
	var pushes <-chan apnsstub.Push
	if push {
		pushes = stub.Listen(d.MDM.PushToken)
	}
	body := map[string]any{"request_type": "DeviceInformation", "queries": []string{"OSVersion", "ModelName"}}
	if !push {
		body["push"] = false
	}
	var out map[string]string
	if err := srv.api(ctx, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", body, &out); err != nil {
		return err
	}
	if pushes != nil {
		select {
		case <-pushes:
		case <-time.After(30 * time.Second):
			return errors.New("no push within 30 s")
		}
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
}
