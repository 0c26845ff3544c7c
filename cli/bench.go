package cli

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/pomona-mdm/pomona/bench"
)

// runBench is `pomona bench`: it drives simulated devices at a pomona server it starts on
// loopback and prints per-phase throughput, server CPU per operation,
// latency percentiles, errors and server memory. It fails on errors.
func runBench(fs *flag.FlagSet) func(*call) error {
	o := bench.Options{}
	fs.IntVar(&o.Devices, "devices", 300, "simulated devices to enroll")
	fs.IntVar(&o.Users, "users", 0, "users the devices enroll as (default min(devices, 50))")
	fs.IntVar(&o.Checkins, "checkins", 10, "idle check-ins per device")
	fs.IntVar(&o.Commands, "commands", 2, "command round trips per device in each of the two round-trip phases (enqueue without push; with push)")
	fs.BoolVar(&o.Profiles, "profiles", false, "also measure configuration profiles: one assignment to every device, the status API, a membership change, the idle reconciler")
	fs.BoolVar(&o.Wave, "wave", false, "also measure a profile wave: one profile assigned to every device, every simulated device fetching its InstallProfile and then the reconciler's ProfileList (round trips/s, latency, server and load-generator CPU)")
	fs.IntVar(&o.WaveConcurrency, "wave-concurrency", 32, "MDM requests in flight during --wave")
	fs.BoolVar(&o.FreshSignatures, "fresh-signatures", false, "sign every Idle poll anew (default: a device's Idle identical to its previous one reuses that signature, which saves the load generator an RSA operation and the server nothing)")
	fs.IntVar(&o.Concurrency, "concurrency", 8, "operations in flight")
	fs.DurationVar(&o.Timeout, "timeout", 30*time.Minute, "give up after this long")
	fs.IntVar(&o.Seed, "seed", 0, "more enrolled devices to write straight into the store before the server starts (large tables)")
	fs.BoolVar(&o.InProcess, "in-process", false, "run the server inside the bench process (CPU and memory then include the load)")
	fs.StringVar(&o.Server, "server", "", "an already running server on loopback instead of one the bench starts")
	fs.StringVar(&o.APIKey, "api-key", "", "admin API key of --server")
	fs.StringVar(&o.CAFile, "ca-file", "", "CA of --server's certificate (its <data>/ca.pem)")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "process id of --server, to read its CPU and memory")
	storeKind := fs.String("store", "sqlite", "sqlite or postgres")
	fs.StringVar(&o.DB, "db", "", "PostgreSQL URL (an empty database) with --store postgres")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.StringVar(&o.AssignCPUProfile, "assign-cpuprofile", "", "with --in-process --profiles: write a CPU profile of the assignment phase alone to the file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process to the file (with --in-process: server and load; go tool pprof)")
	waveProfile := fs.String("wave-cpuprofile", "", "write a CPU profile of this process during --wave's round trips alone (with --in-process: the server's and the devices' work; not with --cpuprofile)")
	return func(c *call) error {
		switch *storeKind {
		case "sqlite":
			o.DB = ""
		case "postgres":
			if o.DB == "" {
				return usagef("--store postgres needs --db postgres://… (an empty database)")
			}
		default:
			return usagef("--store must be sqlite or postgres")
		}
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Binary, o.Log = exe, c.Stderr
		if *waveProfile != "" {
			if *cpuProfile != "" || !o.Wave {
				return usagef("--wave-cpuprofile needs --wave and no --cpuprofile (one CPU profile at a time)")
			}
			f, err := os.Create(*waveProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			o.WaveCPUProfile = f
		}
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		rep, err := bench.Run(c.Ctx, o)
		if err != nil {
			return err
		}
		if *asJSON {
			printJSON(c.Stdout, rep)
		} else {
			fmt.Fprint(c.Stdout, rep.Table())
		}
		if rep.TotalErrors > 0 {
			fmt.Fprintf(c.Stderr, "bench: %d operations failed\n", rep.TotalErrors)
			return errSilent
		}
		return nil
	}
}
