package cli_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/cli"
	"github.com/pomona-mdm/pomona/demo"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/open"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveUntilReady runs `pomona serve args...` on a loopback port until it
// has printed its start-up summary (then stops it), or until it exits.
func serveUntilReady(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return serveArgsUntilReady(t, append([]string{"--listen", "127.0.0.1:0", "--public-url", "https://127.0.0.1:8443"}, args...)...)
}

// serveArgsUntilReady is serveUntilReady with exactly these arguments.
func serveArgsUntilReady(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Main(&cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
			Getenv: func(string) string { return "" }, Ctx: ctx},
			append([]string{"serve"}, args...))
	}()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case code := <-done:
			return code, out.String(), errb.String()
		case <-deadline:
			cancel()
			<-done
			t.Fatalf("serve %v did not start:\n%s\n%s", args, out.String(), errb.String())
		case <-time.After(50 * time.Millisecond):
			if strings.Contains(out.String(), "console ") {
				cancel()
				return <-done, out.String(), errb.String()
			}
		}
	}
}

// TestDemoKeepsItsOwnData: `serve --demo` never writes into the data
// directory: it uses <data>-demo and says so; a normal start afterwards has
// none of the demo's tenant, user or push certificate, and refuses the
// demo's directory; the demo refuses a directory that holds real data.
func TestDemoKeepsItsOwnData(t *testing.T) {
	data := filepath.Join(t.TempDir(), "pomona-data")
	code, out, errs := serveUntilReady(t, "--data", data, "--demo")
	if code != 0 || !strings.Contains(out, "DEMO MODE") || !strings.Contains(out, data+"-demo") {
		t.Fatalf("demo start: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the demo wrote into %s: %v", data, err)
	}

	// A normal start: its store has no demo tenant, user or push certificate.
	if code, out, errs := serveUntilReady(t, "--data", data); code != 0 || strings.Contains(out, data+"-demo") {
		t.Fatalf("normal start: exit %d\n%s\n%s", code, out, errs)
	}
	st, _, err := open.DB(context.Background(), "sqlite://"+filepath.Join(data, "pomona.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := st.TenantByDomain(ctx, demo.Domain); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the demo tenant is in the real store: %v", err)
	}
	if _, err := st.UserByEmail(ctx, demo.User); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the demo user is in the real store: %v", err)
	}
	if n, _ := st.CountTenants(ctx); n != 0 {
		t.Errorf("%d tenants in the real store", n)
	}
	st.Close()

	// A normal start on the demo's directory is refused, and so is the demo
	// on a directory holding a deployment's data.
	if code, _, errs := serveUntilReady(t, "--data", data+"-demo"); code != 1 || !strings.Contains(errs, "holds demo data") {
		t.Fatalf("normal start on the demo's data: exit %d\n%s", code, errs)
	}
	real := filepath.Join(t.TempDir(), "x-demo")
	if code, _, _ := serveUntilReady(t, "--data", real); code != 0 {
		t.Fatal("a deployment in a directory named *-demo")
	}
	if code, _, errs := serveUntilReady(t, "--data", real, "--demo"); code != 1 || !strings.Contains(errs, "holds a deployment's data") {
		t.Fatalf("demo on real data: exit %d\n%s", code, errs)
	}
	if code, _, errs := serveUntilReady(t, "--data", data, "--demo", "--db", "sqlite:///tmp/x.db"); code != 2 || !strings.Contains(errs, "--db") {
		t.Fatalf("demo with --db: exit %d\n%s", code, errs)
	}
}
