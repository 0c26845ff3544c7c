package server_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/cli"
	"github.com/pomona-mdm/pomona/internal/pgtest"
	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/server"
	"github.com/pomona-mdm/pomona/store/open"
)

func pomonaCLI(t testing.TB, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := cli.Main(&cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Ctx: context.Background()}, args)
	return code, out.String(), errb.String()
}

// A deployment made by the simulator moves from SQLite to PostgreSQL and
// back without losing an enrollment, a queued command or a result.
func TestStoreMigrateBothWays(t *testing.T) {
	ctx := context.Background()
	pgURL := pgtest.NewDatabase(t)
	w := newWorldOpts(t, true, func(c *server.Config) { c.DB = "" }) // SQLite, whatever POMONA_TEST_STORE says
	e := w.e
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	a := do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "DeviceInformation", "queries": []string{"OSVersion"}}, e.APIKey)
	done := a.json(t)["command_uuid"].(string)
	cmd, _ := d.Poll(ctx, nil, false)
	d.Poll(ctx, d.Answer(cmd), false)
	a = do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList", "push": false}, e.APIKey)
	queued := a.json(t)["command_uuid"].(string)

	// Stop Pomona first, as docs/postgresql.md says: the SQLite file of
	// a running server is refused.
	code, _, errs := pomonaCLI(t, "store", "migrate", "--from", "sqlite://"+filepath.Join(e.DataDir, "pomona.db"), "--to", pgURL)
	if code != 1 || !strings.Contains(errs, "another `pomona serve` uses") {
		t.Fatalf("migrating from a running server's file: %d %s", code, errs)
	}
	e.Stop()
	code, out, errs := pomonaCLI(t, "store", "migrate", "--from", "sqlite://"+filepath.Join(e.DataDir, "pomona.db"), "--to", pgURL)
	if code != 0 || !strings.Contains(out, "verified") || !strings.Contains(out, "queue") {
		t.Fatalf("sqlite -> postgres: %d\n%s\n%s", code, out, errs)
	}
	// Migrating into a database that already has data is refused.
	if code, _, errs := pomonaCLI(t, "store", "migrate", "--from", "sqlite://"+filepath.Join(e.DataDir, "pomona.db"), "--to", pgURL); code == 0 || !strings.Contains(errs, "not empty") {
		t.Fatalf("non-empty target: %d %s", code, errs)
	}

	// A server on PostgreSQL with the same sealing key serves the same device.
	key, err := os.ReadFile(filepath.Join(e.DataDir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	e2 := testenv.Start(t, func(c *server.Config) { c.DB, c.SecretKey = pgURL, strings.TrimSpace(string(key)) })
	if !e2.Server.CA.Cert.Equal(e.Server.CA.Cert) {
		t.Fatal("the CA did not move with the data")
	}
	d.Profile.ServerURL, d.Profile.CheckInURL = e2.URL+"/mdm/connect", e2.URL+"/mdm/checkin"
	got, err := d.Poll(ctx, nil, false)
	if err != nil || got == nil || got.CommandUUID != queued {
		t.Fatalf("the queued command did not survive: %+v %v", got, err)
	}
	d.Poll(ctx, d.Answer(got), false)
	list := do(t, e2, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", nil, e.APIKey).json(t)["commands"].([]any)
	statuses := map[string]string{}
	for _, c := range list {
		m := c.(map[string]any)
		statuses[m["command_uuid"].(string)] = m["status"].(string)
	}
	if statuses[done] != "Acknowledged" || statuses[queued] != "Acknowledged" {
		t.Fatalf("results after the move: %v", statuses)
	}

	// And back to a new SQLite file.
	back := filepath.Join(t.TempDir(), "back.db")
	code, out, errs = pomonaCLI(t, "store", "migrate", "--from", pgURL, "--to", "sqlite://"+back)
	if code != 0 || !strings.Contains(out, "verified") {
		t.Fatalf("postgres -> sqlite: %d\n%s\n%s", code, out, errs)
	}
	st, _, err := open.DB(ctx, "sqlite://"+back)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if en, err := st.EnrollmentByAppleID(ctx, d.MDM.EnrollmentID); err != nil || en.Status != "enrolled" {
		t.Fatalf("enrollment after the round trip: %+v %v", en, err)
	}
}
