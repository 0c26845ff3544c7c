package cli_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// nextSteps returns the "Next steps:" lines of serve's start-up summary.
func nextSteps(t *testing.T, out string) string {
	t.Helper()
	_, steps, ok := strings.Cut(out, "Next steps:")
	if !ok {
		t.Fatalf("no Next steps in the start-up summary:\n%s", out)
	}
	return steps
}

// TestStartupNextStepsOfTheDemo: the demo's directory is throwaway and its
// domain is not a company's, so its start-up does not tell the admin to
// back up its sealing key or to redirect its domain's /.well-known/ (a
// newcomer following those steps would back up throwaway data and try
// to configure demo.example).
func TestStartupNextStepsOfTheDemo(t *testing.T) {
	data := filepath.Join(t.TempDir(), "pomona-data")
	code, out, errs := serveUntilReady(t, "--data", data, "--demo")
	if code != 0 {
		t.Fatalf("demo start: exit %d\n%s\n%s", code, out, errs)
	}
	steps := nextSteps(t, out)
	for _, wrong := range []string{"back up ", "discovery snippet", "discovery check"} {
		if strings.Contains(steps, wrong) {
			t.Errorf("the demo's next steps say %q:\n%s", wrong, steps)
		}
	}
	if !strings.Contains(out, "pomona sim enroll --user") {
		t.Errorf("the demo does not say how to enroll a simulated device:\n%s", out)
	}
}

// TestStartupNextStepsPushCertificate: without a push certificate the
// start-up says who signs the CSR. Apple's Push Certificates Portal only
// accepts a request signed with an MDM vendor certificate
// (docs/push-certificate.md), so "have it signed at Apple's portal" sent
// newcomers to a dead end; a normal start still names the backup of a new
// sealing key.
func TestStartupNextStepsPushCertificate(t *testing.T) {
	data := filepath.Join(t.TempDir(), "pomona-data")
	code, out, errs := serveUntilReady(t, "--data", data)
	if code != 0 {
		t.Fatalf("start: exit %d\n%s\n%s", code, out, errs)
	}
	steps := nextSteps(t, out)
	if !strings.Contains(steps, "no APNs push certificate yet") || !strings.Contains(steps, "MDM vendor certificate") {
		t.Errorf("the push-certificate step does not name the MDM vendor signature:\n%s", steps)
	}
	// The README's first command leaves a newcomer without a device to
	// watch: the start-up names the demo (it said nothing of it).
	if !strings.Contains(steps, "pomona serve --demo") {
		t.Errorf("a start without a push certificate does not point to the demo:\n%s", steps)
	}
	if !strings.Contains(steps, "back up "+filepath.Join(data, "secret.key")) {
		t.Errorf("a new deployment's next steps lack the sealing-key backup:\n%s", steps)
	}
}
