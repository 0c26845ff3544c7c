// Package browser starts Debian's headless Chromium for tests through
// chromedp. Without Chromium a test is skipped locally and fails in CI
// (CI=true), where .ci/run installs it.
package browser

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Find returns the Chromium executable.
func Find() string {
	for _, p := range []string{os.Getenv("POMONA_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if p == "" {
			continue
		}
		if _, err := exec.LookPath(p); err == nil {
			return p
		}
	}
	return ""
}

// Start returns a browser context that trusts the TLS certificate leaf
// (by its public key) and lives until the test ends.
func Start(t *testing.T, leaf *x509.Certificate) context.Context {
	t.Helper()
	return start(t, leaf, 430, 932) // an iPhone-sized sheet
}

// StartDesktop is Start with a laptop-sized window (the web console).
func StartDesktop(t *testing.T, leaf *x509.Certificate) context.Context {
	t.Helper()
	return start(t, leaf, 1280, 900)
}

func start(t *testing.T, leaf *x509.Certificate, width, height int) context.Context {
	t.Helper()
	exe := Find()
	if exe == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("Chromium is not installed: .ci/run installs Debian's chromium package")
		}
		t.Skip("Chromium not installed (apt-get install chromium); browser tests skipped")
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	// Not t.TempDir: Chromium may still be writing its profile when the
	// test's own temporary directories are removed.
	profile, err := os.MkdirTemp("", "pomona-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
		chromedp.WindowSize(width, height),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute) // a hang guard, not a speed target: a busy 2-core machine needs minutes for a walk of every page
	t.Cleanup(func() {
		chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelT()
		cancelC()
		cancelA()
		os.RemoveAll(profile)
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}
