package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A binary built from this checkout reports the module and the VCS
// revision the Go toolchain recorded (runtime/debug.ReadBuildInfo), both
// as `pomona version` and `pomona --version`. (`go install …@vX.Y.Z`
// records the module version instead; that needs a published tag.)
func TestVersionReportsBuildInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "pomona")
	build := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var first string
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).CombinedOutput()
		if err != nil {
			t.Fatalf("pomona %s: %v\n%s", arg, err, out)
		}
		if !strings.HasPrefix(string(out), "pomona ") || !strings.Contains(string(out), "module    github.com/pomona-mdm/pomona ") {
			t.Fatalf("pomona %s:\n%s", arg, out)
		}
		if first != "" && string(out) != first {
			t.Fatalf("version and --version differ:\n%s\n%s", first, out)
		}
		first = string(out)
	}
	// What the toolchain recorded, read independently of the binary.
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	var rev string
	for _, line := range strings.Split(string(meta), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision=") {
			rev = strings.TrimPrefix(f[1], "vcs.revision=")
		}
	}
	if rev == "" {
		// GOFLAGS=-buildvcs=false, no git, or a git worktree (where the
		// toolchain does not find the repository): .ci/run checks a clone.
		t.Logf("the toolchain recorded no VCS revision here: revision not checked")
		return
	}
	// Go stamps a clean checkout with a pseudo-version (v0.0.0-<time>-<rev>),
	// which then is the version; otherwise it is dev-<rev>.
	if !strings.Contains(first, "revision  "+rev) || !strings.Contains(strings.SplitN(first, "\n", 2)[0], rev[:12]) {
		t.Fatalf("revision %s not reported:\n%s", rev, first)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal(err)
	}
}
