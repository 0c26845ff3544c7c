package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// benchTimeout bounds a whole in-process bench run in these tests. They
// take well under a minute on a quiet machine; CI's race pass at a load
// of 50 on 2 cores took TestProfilePhases past 3 minutes (its last
// membership change then failed on the run's deadline).
const benchTimeout = 10 * time.Minute

// A tiny in-process run exercises every phase, seeding and the memory
// reading; it fails on errors, never on speed.
func TestInProcessRun(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of argon2id")
	}
	var log strings.Builder
	rep, err := Run(context.Background(), Options{InProcess: true, Devices: 4, Users: 2, Seed: 30, Checkins: 2, Commands: 1, Concurrency: 2,
		Timeout: benchTimeout, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if rep.TotalErrors != 0 || rep.Devices != 4 || rep.Seeded != 30 || rep.Mode != "in process" {
		t.Fatalf("report %+v\n%s", rep, log.String())
	}
	names := map[string]bool{}
	for _, p := range rep.Phases {
		names[p.Name] = true
		if p.Ops == 0 || p.Errors != 0 {
			t.Errorf("phase %+v", p)
		}
	}
	for _, want := range []string{"enrollment (full flow)", "idle check-in", "command round trip (enqueue without push)", "command round trip", "bulk enqueue (one command, every device)"} {
		if !names[want] {
			t.Errorf("no phase %q", want)
		}
	}
	if rep.HeapBase <= 0 || rep.HeapAfter <= 0 {
		t.Fatalf("heap %d %d", rep.HeapBase, rep.HeapAfter)
	}
	if tab := rep.Table(); !strings.Contains(tab, "on top of 30 written into the store") || !strings.Contains(tab, "include the load generator") {
		t.Fatal(tab)
	}
}

// The profile phases: every enrolled device (seeded ones too) gets its
// InstallProfile queued after one assignment.
func TestProfilePhases(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of argon2id")
	}
	profileSettle, profileIdle = time.Second, time.Second
	var log strings.Builder
	rep, err := Run(context.Background(), Options{InProcess: true, Devices: 3, Users: 2, Seed: 40, Concurrency: 2, Profiles: true,
		Timeout: benchTimeout, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	found, pair := false, false
	for _, p := range rep.Phases {
		if p.Errors != 0 {
			t.Errorf("phase %+v\n%s", p, log.String())
		}
		found = found || strings.HasPrefix(p.Name, "profile assigned to all users: 43 installs queued")
		pair = pair || strings.HasPrefix(p.Name, "membership change of one user, 2 devices (API + reconciler)")
	}
	if !found || !pair {
		t.Fatalf("no profile phase or no two-device membership phase: %+v", rep.Phases)
	}
}

func TestRefusesRemoteServers(t *testing.T) {
	for _, u := range []string{"https://mdm.example.com", "http://127.0.0.1:8443", "https://10.0.0.1:8443"} {
		if _, err := Run(context.Background(), Options{Server: u, APIKey: "k", Devices: 1}); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// The wave: every simulated device fetches its InstallProfile and the
// ProfileList after it, and the server ends with each of them installed;
// the seeded devices' installs stay queued.
func TestWave(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of argon2id")
	}
	var log strings.Builder
	rep, err := Run(context.Background(), Options{InProcess: true, Devices: 3, Users: 2, Seed: 10, Concurrency: 2, Wave: true, WaveConcurrency: 2,
		Timeout: benchTimeout, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	var wave *Phase
	for i, p := range rep.Phases {
		if p.Errors != 0 {
			t.Errorf("phase %+v\n%s", p, log.String())
		}
		if strings.HasPrefix(p.Name, "wave: InstallProfile + ProfileList, 3 devices") {
			wave = &rep.Phases[i]
		}
	}
	// Per device at least: Idle → InstallProfile, Acknowledged → the
	// ProfileList, Acknowledged.
	if wave == nil || wave.Ops < 3*3 || wave.P99 <= 0 {
		t.Fatalf("wave phase %+v\n%s", wave, log.String())
	}
	notes := strings.Join(rep.Notes, "\n")
	if !strings.Contains(notes, "installed:3 ") || !strings.Contains(notes, "installing:10") || !strings.Contains(notes, "10 seeded devices have no keys") {
		t.Fatalf("notes:\n%s", notes)
	}
}

// waveLimit names the side whose CPU per round trip × rate filled a core.
func TestWaveLimit(t *testing.T) {
	for _, tc := range []struct {
		srv, gen time.Duration // CPU over a 1 s wave of 1,000 round trips
		want     string
		all      time.Duration // both cores' busy time (0: not read)
	}{
		{950 * time.Millisecond, 600 * time.Millisecond, "the server limited", 0},
		{500 * time.Millisecond, 900 * time.Millisecond, "the load generator limited", 0},
		{400 * time.Millisecond, 300 * time.Millisecond, "neither side", 0},
		// PostgreSQL on the same 2 cores took the rest: the machine.
		{400 * time.Millisecond, 600 * time.Millisecond, "the machine's cores", 1900 * time.Millisecond},
		{400 * time.Millisecond, 600 * time.Millisecond, "neither side", 1200 * time.Millisecond},
	} {
		got := waveLimit(Phase{Ops: 1000, Wall: time.Second, ServerCPU: tc.srv, LoadCPU: tc.gen, MachineCPU: tc.all, Cores: 2})
		if tc.all == 1900*time.Millisecond && !strings.Contains(got, "all 2 cores were 95 % busy, other processes (PostgreSQL on this machine) 90 % of a core, 900 µs per round trip") {
			t.Errorf("the machine's share is not stated: %q", got)
		}
		if !strings.Contains(got, tc.want) || !strings.Contains(got, "measured 1000 round trips/s") {
			t.Errorf("server %v, generator %v: %q, want %q", tc.srv, tc.gen, got, tc.want)
		}
	}
}

// The assignment phase polls less while much is left and more densely
// as its end nears, within its bounds.
func TestPollWait(t *testing.T) {
	for _, c := range []struct {
		done, want    int
		elapsed, wait time.Duration
	}{
		{0, 100000, 0, 100 * time.Millisecond},           // no rate yet
		{0, 100000, time.Second, 250 * time.Millisecond}, // a quarter of the wait so far
		{0, 100000, 10 * time.Second, time.Second},       // capped
		{10000, 100000, time.Second, time.Second},        // 9 s left: capped at 1 s
		{50000, 100000, time.Second, 500 * time.Millisecond},
		{99000, 100000, 9900 * time.Millisecond, 50 * time.Millisecond},
		{99999, 100000, 10 * time.Second, 20 * time.Millisecond}, // the floor
	} {
		if got := pollWait(c.done, c.want, c.elapsed); got != c.wait {
			t.Errorf("pollWait(%d, %d, %v) = %v, want %v", c.done, c.want, c.elapsed, got, c.wait)
		}
	}
}
