package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
)

// TestProfileUploadTooLarge: `pomona profile upload` of a file over the
// server's 2 MiB limit says so and what the limit is, before reading it
// whole (on the old code it read all of it into memory, base64 in JSON,
// sent it and printed the server's "request body is larger than 2861740
// bytes"; /dev/zero, a wrong path to a device, grew until memory ran out).
func TestProfileUploadTooLarge(t *testing.T) {
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example"))
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.mobileconfig")
	wifi := strings.Replace(cliWiFi, "%s", "", 1)
	os.WriteFile(ok, append([]byte(strings.Repeat(" ", mobileconfig.MaxFile-len(wifi))), wifi...), 0o600)
	mustOK(t, runCLI(t, e, "", nil, "profile", "upload", ok, "--tenant", "a.example"))

	big := filepath.Join(dir, "disk.img")
	f, _ := os.Create(big)
	f.Truncate(30 << 20)
	f.Close()
	paths := []string{big}
	if _, err := os.Stat("/dev/zero"); err == nil && os.Getenv("POMONA_TEST_OLD_CLI") == "" {
		paths = append(paths, "/dev/zero") // never ends: not with the old code
	}
	for _, p := range paths {
		t0 := time.Now()
		r := runCLI(t, e, "", nil, "profile", "upload", p, "--tenant", "a.example")
		if r.code == 0 || !strings.Contains(r.stderr, "larger than 2 MiB") || !strings.Contains(r.stderr, "at most 2 MiB (signed) or 1 MiB (unsigned)") || time.Since(t0) > 10*time.Second {
			t.Errorf("upload of %s: exit %d in %v\nstdout: %s\nstderr: %.500s", p, r.code, time.Since(t0), r.stdout, r.stderr)
		}
	}
}
