package cli_test

import (
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/server"
)

func TestDemoAndSimEnroll(t *testing.T) {
	e := testenv.Start(t, func(c *server.Config) { c.Demo = true })
	r := mustOK(t, runCLI(t, e, "", map[string]string{"POMONA_DATA": e.DataDir}, "sim", "enroll", "--user", server.DemoUser,
		"--password", server.DemoPassword, "--server", e.URL))
	for _, want := range []string{"discovery at " + e.URL, "answered 401", "second factor set up", "profile: BYOD", "identity certificate", "enrolled as EnrollmentID", "Enrollment works."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("sim output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = mustOK(t, runCLI(t, e, "", nil, "device", "list"))
	if !strings.Contains(r.stdout, "enrolled") {
		t.Fatalf("device list:\n%s", r.stdout)
	}
	// A wrong password is reported as the page shows it.
	r = runCLI(t, e, "", map[string]string{"POMONA_DATA": e.DataDir}, "sim", "enroll", "--user", server.DemoUser, "--password", "wrong", "--server", e.URL)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  sign-in") || !strings.Contains(r.stdout, "not correct") {
		t.Fatalf("wrong password: %+v", r)
	}
}
