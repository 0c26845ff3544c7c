package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pomona-mdm/pomona/apiclient"
	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/push/apnsstub"
)

// simRun is `pomona sim run`: it keeps simulated devices enrolled against
// a test server. It starts the local APNs stand-in the server must push to, creates one
// user per device through the admin API (each signs in and sets up its
// own second factor, as a person would), enrolls the devices and lets
// them answer pushes until the time is up or it is interrupted; then the
// devices check out.
func simRun(fs *flag.FlagSet) func(*call) error {
	domain := fs.String("domain", "", "a domain of the tenant the simulated users belong to")
	n := fs.Int("devices", 10, "simulated devices to enroll (one user each)")
	families := fs.String("families", "iPhone", "device kinds to cycle through: iPhone, iPad, Mac")
	apnsAddr := fs.String("apns-listen", "127.0.0.1:2197", "loopback address of the APNs stand-in (the server's --apns-url)")
	state := fs.String("state", "./pomona-sim", "directory keeping the stand-in's CA, so the server keeps trusting it across runs")
	duration := fs.Duration("duration", 0, "how long to keep the devices (0: until interrupted)")
	concurrency := fs.Int("concurrency", 4, "enrollments in flight")
	poll := fs.Duration("poll", 0, "also check in this often without a push (0: only when pushed)")
	checkout := fs.Bool("checkout", true, "check the devices out at the end")
	every := fs.Duration("status-every", 10*time.Second, "print the counters this often")
	return func(c *call) error {
		if *domain == "" {
			return usagef("give --domain: the simulated users are created in the tenant that owns it")
		}
		if *n < 1 || *n > 100000 {
			return usagef("--devices must be 1 to 100000")
		}
		var fams []string
		for _, f := range strings.Split(*families, ",") {
			f = strings.TrimSpace(f)
			if f != "iPhone" && f != "iPad" && f != "Mac" {
				return usagef("--families: %q is not iPhone, iPad or Mac", f)
			}
			fams = append(fams, f)
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		if _, err := api.Tenant(c.Ctx, *domain); err != nil {
			return fmt.Errorf("the tenant of %s: %w", *domain, err)
		}
		ca, caFile, created, err := stubCA(*state)
		if err != nil {
			return err
		}
		stub, err := apnsstub.StartWith(apnsstub.Options{Addr: *apnsAddr, CA: ca})
		if err != nil {
			return err
		}
		defer stub.Close()
		w := c.Stdout
		fmt.Fprintf(w, "APNs stand-in listening at %s (never Apple).\n", stub.URL)
		if created {
			fmt.Fprintf(w, "Its CA is new: start the server with  --apns-url %s --apns-ca-file %s\n", stub.URL, caFile)
		} else {
			fmt.Fprintf(w, "The server must run with  --apns-url %s --apns-ca-file %s\n", stub.URL, caFile)
		}
		pool, err := serverPool(*c.api)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithCancel(c.Ctx)
		defer cancel()
		if *duration > 0 {
			ctx, cancel = context.WithTimeout(ctx, *duration)
			defer cancel()
		}
		fleet := &devicesim.Fleet{Server: strings.TrimRight(c.api.server, "/"), RootCAs: pool, APNs: stub, Poll: *poll}

		// Users: one per device, with a random password, under a run prefix.
		run, err := randomString(4, lowerHex)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "Creating %d users sim-%s-N@%s and enrolling %d devices (%d at a time)…\n", *n, run, *domain, *n, *concurrency)
		var next atomic.Int64
		var wg sync.WaitGroup
		var firstErr atomic.Value
		for i := 0; i < *concurrency; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					i := int(next.Add(1) - 1)
					if i >= *n {
						return
					}
					email := fmt.Sprintf("sim-%s-%d@%s", run, i+1, *domain)
					pw, err := randomString(18, urlSafe)
					if err != nil {
						firstErr.CompareAndSwap(nil, fmt.Sprintf("password for %s: %v", email, err))
						return
					}
					if _, err := api.CreateUser(ctx, apitypes.UserInput{Email: email, Name: fmt.Sprintf("Simulated user %d", i+1), Password: pw}); err != nil {
						firstErr.CompareAndSwap(nil, fmt.Sprintf("create %s: %v", email, err))
						continue
					}
					if _, err := fleet.Enroll(ctx, fams[i%len(fams)], devicesim.Credentials{User: email, Password: pw}); err != nil && ctx.Err() == nil {
						firstErr.CompareAndSwap(nil, fmt.Sprintf("enroll %s: %v", email, err))
					}
				}
			}()
		}
		wg.Wait()
		st := fleet.Stats()
		fmt.Fprintf(w, "%d of %d devices enrolled.\n", st.Enrolled, *n)
		if e, ok := firstErr.Load().(string); ok {
			fmt.Fprintf(w, "  first failure: %s\n", e)
		}
		if st.Enrolled > 0 {
			checkPushPath(ctx, w, api, fleet, stub, caFile)
			fmt.Fprintln(w, "Devices answer pushes now: queue commands (console, API or pomona device command). Ctrl-C to stop.")
			t := time.NewTicker(*every)
		loop:
			for {
				select {
				case <-ctx.Done():
					break loop
				case <-t.C:
					s := fleet.Stats()
					fmt.Fprintf(w, "  %s  enrolled %d  pushes %d  commands answered %d  errors %d\n", time.Now().Format("15:04:05"), s.Enrolled, s.Pushes, s.Answered, s.Errors)
					if s.LastError != "" {
						fmt.Fprintf(w, "    last error: %s\n", s.LastError)
					}
				}
			}
			t.Stop()
		}
		cancel()
		fleet.Wait()
		if *checkout && st.Enrolled > 0 {
			cctx, ccancel := context.WithTimeout(context.WithoutCancel(c.Ctx), time.Minute)
			defer ccancel()
			k, err := fleet.CheckOutAll(cctx)
			fmt.Fprintf(w, "%d devices checked out.\n", k)
			if err != nil {
				fmt.Fprintf(w, "  check-out failures: %v\n", err)
			}
		}
		s := fleet.Stats()
		fmt.Fprintf(w, "Done: %d enrolled, %d pushes, %d commands answered, %d errors.\n", s.Enrolled, s.Pushes, s.Answered, s.Errors)
		if s.Enrolled < int64(*n) {
			return errSilent
		}
		return nil
	}
}

// checkPushPath pushes the first device through the API and says what
// to fix when the push does not reach the stand-in.
func checkPushPath(ctx context.Context, w io.Writer, c *apiclient.Client, fleet *devicesim.Fleet, stub *apnsstub.Server, caFile string) {
	d := fleet.Devices()[0]
	before := stub.Count()
	if err := c.Do(ctx, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/push", nil, nil); err != nil {
		fmt.Fprintf(w, "  warning: the test push failed: %v\n", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for stub.Count() == before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if stub.Count() == before {
		fmt.Fprintf(w, "  warning: the server's pushes do not reach this stand-in: restart it with --apns-url %s --apns-ca-file %s (or the devices only see commands with --poll)\n", stub.URL, caFile)
		return
	}
	fmt.Fprintln(w, "  push path ok: the server's push reached the stand-in and woke a device.")
}

// stubCA loads the stand-in's CA from dir, creating it on first use.
func stubCA(dir string) (*pki.CA, string, bool, error) {
	bundle := filepath.Join(dir, "apns-stand-in-ca.key.pem")
	caFile := filepath.Join(dir, "apns-ca.pem")
	if b, err := os.ReadFile(bundle); err == nil {
		cert, key, err := pki.ParsePair(b)
		if err != nil {
			return nil, "", false, fmt.Errorf("%s: %w (delete it to start afresh)", bundle, err)
		}
		abs, _ := filepath.Abs(caFile)
		return &pki.CA{Cert: cert, Key: key}, abs, false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", false, err
	}
	ca, err := pki.NewCA("Pomona simulator APNs stand-in CA", pki.ECDSAP256, time.Now())
	if err != nil {
		return nil, "", false, err
	}
	kp, err := pki.KeyPEM(ca.Key)
	if err != nil {
		return nil, "", false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", false, err
	}
	if err := os.WriteFile(bundle, append(pki.CertPEM(ca.Cert), kp...), 0o600); err != nil {
		return nil, "", false, err
	}
	if err := os.WriteFile(caFile, pki.CertPEM(ca.Cert), 0o644); err != nil {
		return nil, "", false, err
	}
	abs, _ := filepath.Abs(caFile)
	return ca, abs, true, nil
}

// serverPool trusts the system roots plus the server's CA file, found as
// the API client finds it (clientFlags.caPath), so the simulated devices
// trust the server the admin API calls reached.
func serverPool(cf clientFlags) (*x509.CertPool, error) {
	pool, _, err := trustPool(cf.caPath())
	return pool, err
}
