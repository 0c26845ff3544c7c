package bench

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/push/apnsstub"
)

// The wave (issue 17): one configuration profile assigned to every enrolled
// device, then every simulated device works its queue the way an iPhone
// does after the push: Idle → InstallProfile, Acknowledged → the
// ProfileList that verifies it (handed out with that answer; a server
// that queues it later pushes again and the device polls after the push),
// Acknowledged with the device's list. Seeded devices have no keys and
// never talk: their InstallProfiles stay queued (the assignment still
// covers them, so the tables are as large as the fleet's).

// waveProfile is bench/profiles.go's profile under its own identifiers,
// so --wave and --profiles can run in one bench without the two
// assignments colliding.
var waveProfile = strings.NewReplacer("com.example.bench.wifi", "com.example.bench.wave",
	"6A0B0C5E-1111", "6A0B0C5E-2222", "7A0B0C5E-1111", "7A0B0C5E-2222").Replace(benchProfile)

// Bounds of one device's part in the wave.
var (
	// wavePushWait: how long a device waits for the push of its
	// ProfileList before it polls anyway (as a device does on its own
	// schedule); without pushes (an existing server) it polls after
	// wavePollEvery.
	wavePushWait  = 10 * time.Second
	wavePollEvery = 250 * time.Millisecond
	// waveMaxBursts: polls-until-empty a device makes before it gives up
	// waiting for its ProfileList (an error in the phase).
	waveMaxBursts = 40
)

// assignToAll creates a profile from content in the tenant, assigns it to
// the tenant's all-users group and waits until every one of devices has
// its InstallProfile queued (installing) or done. It returns the profile's
// id. The phase is measured (server CPU of the assignment: lane bulkrec's
// figure).
func assignToAll(ctx context.Context, srv *target, domain, content string, devices int, log io.Writer) (string, Phase, error) {
	var groups struct {
		Groups []struct{ ID, Source string } `json:"groups"`
	}
	if err := srv.api(ctx, "GET", "/api/v1/groups?tenant_id="+url.QueryEscape(domain), nil, &groups); err != nil {
		return "", Phase{}, err
	}
	all := ""
	for _, g := range groups.Groups {
		if g.Source == "all" {
			all = g.ID
		}
	}
	if all == "" {
		return "", Phase{}, errors.New("the tenant has no all-users group")
	}
	var prof struct{ ID string }
	if err := srv.api(ctx, "POST", "/api/v1/profiles", map[string]any{"tenant_id": domain, "content": base64.StdEncoding.EncodeToString([]byte(content))}, &prof); err != nil {
		return "", Phase{}, err
	}
	ph := measure(ctx, srv, fmt.Sprintf("wave: assignment, %d InstallProfiles queued", devices), 1, 1, func(int) error {
		if err := srv.api(ctx, "POST", "/api/v1/profiles/"+prof.ID+"/assignments", map[string]any{"group_id": all}, nil); err != nil {
			return err
		}
		// The same adaptive polls as the --profiles phase: each poll counts
		// every item of the profile (38–160 ms of PostgreSQL's CPU at
		// 100,000), and fixed 100 ms polls were up to a core of the
		// database's time during the phase they measure.
		start := time.Now()
		for ctx.Err() == nil {
			c, err := profileCounts(ctx, srv, prof.ID)
			if err != nil {
				return err
			}
			done := c["installing"] + c["installed"]
			if done >= devices {
				return nil
			}
			if c["failed"] > 0 {
				return fmt.Errorf("%d items failed", c["failed"])
			}
			time.Sleep(pollWait(done, devices, time.Since(start)))
		}
		return ctx.Err()
	}, log)
	return prof.ID, ph, nil
}

func profileCounts(ctx context.Context, srv *target, profileID string) (map[string]int, error) {
	var st struct {
		Counts map[string]int `json:"counts"`
	}
	err := srv.api(ctx, "GET", "/api/v1/profiles/"+profileID+"/status?limit=1", nil, &st)
	return st.Counts, err
}

// Bounds of settle: the server counts as quiet when it used less than
// settleIdle of CPU in each of two consecutive settleTick intervals (10 %
// of a core: its own background jobs stay below that); settleMax caps the
// wait.
const (
	settleTick = 250 * time.Millisecond
	settleIdle = 25 * time.Millisecond
	settleMax  = 60 * time.Second
)

// settle waits until the separate server process has gone quiet (see
// settleTick) or max has passed, and says how long it waited and whether
// the server went quiet. With the server in this process (no pid to read)
// it returns at once: 0, true.
func settle(ctx context.Context, srv *target, max time.Duration) (time.Duration, bool) {
	if srv.pid == 0 {
		return 0, true
	}
	start := time.Now()
	last, _, _ := srv.stats()
	calm := 0
	for time.Since(start) < max && ctx.Err() == nil {
		time.Sleep(settleTick)
		cpu, _, _ := srv.stats()
		if cpu-last < settleIdle {
			calm++
		} else {
			calm = 0
		}
		last = cpu
		if calm == 2 {
			return time.Since(start), true
		}
	}
	return time.Since(start), false
}

// waveDevice is one simulated device's progress through the wave.
type waveDevice struct {
	d         *devicesim.Device
	pushes    <-chan apnsstub.Push
	installed bool // answered its InstallProfile
	listed    bool // then answered a ProfileList
	bursts    int
}

// wavePhases assigns waveProfile to every enrolled device (seeded ones
// too: total) and drives every simulated device in live through its
// queue with c requests in flight. Every signed MDM request is one round
// trip (latency percentiles are per request); the server's and the load
// generator's CPU are read around the whole wave (and, when prof is not
// nil, a CPU profile of this process written to it). It also measures what
// one signature costs the generator, and adds notes to rep.
func wavePhases(ctx context.Context, srv *target, stub *apnsstub.Server, domain string, live []*devicesim.Device, total, c int, prof io.Writer, rep *Report, log io.Writer) ([]Phase, error) {
	profID, assign, err := assignToAll(ctx, srv, domain, waveProfile, total, log)
	if err != nil {
		return nil, err
	}
	out := []Phase{assign}
	if assign.Errors > 0 {
		return out, nil
	}
	// The assignment phase ends when every InstallProfile is queued; the
	// pushes for them (asynchronous, 100,000 at a time) and their result
	// hints go on after it. Measured inside the wave's window they were
	// billed to the wave's round trips (Session 9: 1.7 → 3.7 ms of server
	// CPU per round trip at 100,000 once the assignment got faster), so
	// the wave starts once the server has gone quiet.
	if waited, quiet := settle(ctx, srv, settleMax); waited > 0 {
		if quiet {
			rep.Notes = append(rep.Notes, fmt.Sprintf("wave: the server went quiet %s after the assignment phase (its push fan-out); the wave was measured after that", waited.Round(10*time.Millisecond)))
		} else {
			rep.Notes = append(rep.Notes, fmt.Sprintf("wave: the server was still busy %s after the assignment phase; the wave's figures include that work", waited.Round(10*time.Millisecond)))
		}
	}

	devs := make([]*waveDevice, len(live))
	work := make(chan *waveDevice, len(live))
	for i, d := range live {
		devs[i] = &waveDevice{d: d}
		if srv.pushes {
			devs[i].pushes = stub.Listen(d.MDM.PushToken)
		}
		work <- devs[i]
	}
	defer func() {
		for _, d := range live {
			if srv.pushes {
				stub.Forget(d.MDM.PushToken)
			}
		}
	}()
	name := fmt.Sprintf("wave: InstallProfile + ProfileList, %d devices", len(live))
	fmt.Fprintf(log, "%s: %d at a time\n", name, c)
	var (
		mu       sync.Mutex
		lat      []time.Duration
		commands atomic.Int64
		errs     atomic.Int64
		firstErr atomic.Value
		pending  sync.WaitGroup
	)
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	pending.Add(len(devs))
	// Each device's first request in the wave is its Idle, whose bytes
	// depend on nothing the server sends: with signature reuse (the
	// default; not with --fresh-signatures) it is signed here, before the
	// measured window, and sent with that signature (devicesim.SignIdle:
	// the same bytes and a real signature on the wire). That leaves the
	// generator one RSA operation per answer (two per device) instead of
	// three per device — its largest cost, ~0.9–1.2 ms each.
	for _, d := range live {
		if err := d.SignIdle(false); err != nil {
			return out, fmt.Errorf("device %s: sign its Idle: %w", d.MDM.EnrollmentID, err)
		}
	}
	if prof != nil {
		if err := pprof.StartCPUProfile(prof); err != nil {
			return out, fmt.Errorf("wave CPU profile: %w", err)
		}
	}
	cpu0, _, _ := srv.stats()
	load0, _, _, _ := procStats(os.Getpid())
	machine0, _ := machineBusy()
	start := time.Now()
	wctx, stop := context.WithCancel(ctx)
	var workers sync.WaitGroup
	for w := 0; w < c; w++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				var wd *waveDevice
				select {
				case wd = <-work:
				case <-wctx.Done():
					return
				}
				mine := make([]time.Duration, 0, 4)
				done, err := wd.burst(wctx, &mine, &commands)
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
				switch {
				case err != nil:
					fail(err)
					pending.Done()
				case done:
					pending.Done()
				case wd.bursts >= waveMaxBursts:
					fail(fmt.Errorf("device %s: no ProfileList after %d polls", wd.d.MDM.EnrollmentID, wd.bursts))
					pending.Done()
				default:
					go wd.wait(wctx, work, srv.pushes)
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { pending.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done(): // the run's timeout: waiting devices never finish
		fail(fmt.Errorf("wave: %w", ctx.Err()))
	}
	wall := time.Since(start)
	stop()
	workers.Wait()
	cpu1, _, _ := srv.stats()
	load1, _, _, _ := procStats(os.Getpid())
	machine1, cores := machineBusy()
	if prof != nil {
		pprof.StopCPUProfile()
	}
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(log, "  first error: %s\n", e)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ph := Phase{Name: name, Ops: len(lat), Errors: int(errs.Load()), Wall: wall, ServerCPU: cpu1 - cpu0, LoadCPU: load1 - load0,
		MachineCPU: machine1 - machine0, Cores: cores}
	if len(lat) > 0 {
		pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
		ph.P50, ph.P95, ph.P99 = pct(0.50), pct(0.95), pct(0.99)
	}
	if srv.kind == "in process" {
		ph.LoadCPU = 0 // one process: the server's figure is both
	}
	out = append(out, ph)

	// Did the server see it the same way? Every simulated device's item
	// should be installed (verified by its ProfileList).
	counts, err := profileCounts(ctx, srv, profID)
	if err != nil {
		return out, err
	}
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("wave: %d signed MDM requests carried %d commands for %d simulated devices; the profile's items: %v. The %d seeded devices have no keys and never talk: their InstallProfiles stay queued.",
			len(lat), commands.Load(), len(live), counts, total-len(live)))
	if counts["installed"] < len(live) {
		// A device that failed a request stopped there (one error); the
		// others missing are errors too.
		out[len(out)-1].Errors = max(out[len(out)-1].Errors, len(live)-counts["installed"])
		fmt.Fprintf(log, "  only %d of %d simulated devices are installed\n", counts["installed"], len(live))
	}

	// What one Mdm-Signature costs the generator (RSA 2048, pkcs7), on
	// this process's CPU clock.
	sign := signCost(live[0])
	if ph.Ops > 0 && ph.ServerCPU > 0 && srv.kind != "in process" {
		per := ph.CPUPerOp()
		rep.Notes = append(rep.Notes, fmt.Sprintf("wave: server CPU %s per round trip → one core alone could serve %.0f round trips/s; the load generator spent %s of CPU per round trip (one Mdm-Signature alone: %s), so one generator core drives at most %.0f/s.",
			per.Round(time.Microsecond), float64(time.Second)/float64(per), ph.LoadCPUPerOp().Round(time.Microsecond), sign.Round(time.Microsecond),
			float64(time.Second)/float64(max(ph.LoadCPUPerOp(), time.Microsecond))))
		rep.Notes = append(rep.Notes, waveLimit(ph))
	}
	return out, nil
}

// burst is what a device does when woken: it polls until its queue is
// empty, carrying out each command and sending the answer with the next
// poll. It reports whether the device is through the wave.
func (wd *waveDevice) burst(ctx context.Context, lat *[]time.Duration, commands *atomic.Int64) (bool, error) {
	wd.bursts++
	var answer map[string]any
	for {
		t0 := time.Now()
		cmd, err := wd.d.Poll(ctx, answer, false)
		*lat = append(*lat, time.Since(t0))
		if err != nil {
			return false, fmt.Errorf("device %s: %w", wd.d.MDM.EnrollmentID, err)
		}
		if answer != nil {
			commands.Add(1)
		}
		if cmd == nil {
			return wd.listed, nil
		}
		answer = wd.d.Process(ctx, cmd)
		switch cmd.RequestType() {
		case "InstallProfile":
			if answer["Status"] != "Acknowledged" {
				return false, fmt.Errorf("device %s: InstallProfile answered %v", wd.d.MDM.EnrollmentID, answer)
			}
			wd.installed = true
		case "ProfileList":
			wd.listed = wd.installed
		}
	}
}

// wait puts the device back to work after its next push (or after a
// while without one).
func (wd *waveDevice) wait(ctx context.Context, work chan<- *waveDevice, pushes bool) {
	after := wavePollEvery
	if pushes {
		after = wavePushWait
	}
	select {
	case <-wd.pushes: // nil without pushes: never
	case <-time.After(after):
	case <-ctx.Done():
		return
	}
	work <- wd
}

// signCost is the load generator's CPU for one Mdm-Signature of a typical
// answer (the median of 3 runs of 100 signatures, this process's CPU).
func signCost(d *devicesim.Device) time.Duration {
	body := []byte(`<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>CommandUUID</key><string>0D1F6C5E-3C1A-4F5B-9E0E-000000000000</string><key>Status</key><string>Acknowledged</string></dict></plist>`)
	var runs []time.Duration
	for r := 0; r < 3; r++ {
		c0, _, _, _ := procStats(os.Getpid())
		for i := 0; i < 100; i++ {
			if _, err := d.SignMessage(body); err != nil {
				return 0
			}
		}
		c1, _, _, _ := procStats(os.Getpid())
		runs = append(runs, (c1-c0)/100)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i] < runs[j] })
	return runs[1]
}

// waveLimit says which side limited the wave's measured rate: the share
// of one core each of the server and the load generator kept busy over
// the wave's wall time (CPU per round trip × round trips/s). A side near
// 100 % of a core was the limit; both well under it: the machine's other
// load, or latency (too few requests in flight), was. With MachineCPU it
// also says how busy all the cores were and what the other processes
// (PostgreSQL on the same machine) took: all cores near 100 % means the
// machine, not one side, was the limit.
func waveLimit(ph Phase) string {
	if ph.Wall <= 0 || ph.Ops == 0 {
		return "wave: no round trips"
	}
	srvBusy := float64(ph.ServerCPU) / float64(ph.Wall)
	genBusy := float64(ph.LoadCPU) / float64(ph.Wall)
	side := "neither side used a whole core: the machine's other load or the requests in flight limited the rate"
	var machine string
	allBusy := 0.0
	if ph.MachineCPU > 0 && ph.Cores > 0 {
		allBusy = float64(ph.MachineCPU) / float64(ph.Wall) / float64(ph.Cores)
		other := max(0, float64(ph.MachineCPU-ph.ServerCPU-ph.LoadCPU)/float64(ph.Wall))
		machine = fmt.Sprintf("; all %d cores were %.0f %% busy, other processes (PostgreSQL on this machine) %.0f %% of a core, %.0f µs per round trip",
			ph.Cores, 100*allBusy, 100*other, other*ph.Wall.Seconds()/float64(ph.Ops)*1e6)
	}
	switch {
	case srvBusy >= 0.8 && srvBusy >= genBusy:
		side = "the server limited the rate"
	case genBusy >= 0.8:
		side = "the load generator limited the rate"
	case allBusy >= 0.85:
		side = "the machine's cores, shared by the server, the load generator and the other processes, limited the rate"
	}
	return fmt.Sprintf("wave: measured %.0f round trips/s; the server kept %.0f %% of a core busy, the load generator %.0f %%%s: %s.",
		float64(ph.Ops)/ph.Wall.Seconds(), 100*srvBusy, 100*genBusy, machine, side)
}
