package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/internal/testenv"
)

// pomona apply is idempotent and shows its diff; export writes what apply
// reads back without changes.
func TestApplyAndExport(t *testing.T) {
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example"))
	mustOK(t, runCLI(t, e, "amy-password\n", nil, "user", "add", "amy@a.example", "--password-stdin"))
	mustOK(t, runCLI(t, e, "bo-password\n", nil, "user", "add", "bo@a.example", "--password-stdin"))
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "profiles"), 0o755)
	os.WriteFile(filepath.Join(dir, "profiles", "wifi.mobileconfig"), []byte(strings.Replace(cliWiFi, "%s", "", 1)), 0o600)
	file := filepath.Join(dir, "pomona.yaml")
	os.WriteFile(file, []byte(`tenants:
  - tenant: a.example
    groups:
      - name: Sales
        members: [amy@a.example, bo@a.example]
    profiles:
      - file: profiles/wifi.mobileconfig
        platforms: [iOS]
        assign: [Sales]
        exclude: [All users]
`), 0o600)

	r := mustOK(t, runCLI(t, e, "", nil, "apply", "-f", file, "--dry-run"))
	for _, want := range []string{`+ group "Sales"`, "+ members of \"Sales\": amy@a.example, bo@a.example", "+ profile com.example.wifi (profiles/wifi.mobileconfig)",
		`+ profile com.example.wifi assigned to "Sales"`, "(dry run: nothing was changed)"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("dry run lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := mustOK(t, runCLI(t, e, "", nil, "group", "list", "--tenant", "a.example")); strings.Contains(r.stdout, "Sales") {
		t.Fatal("the dry run changed the server")
	}
	r = mustOK(t, runCLI(t, e, "", nil, "apply", "-f", file))
	if !strings.Contains(r.stdout, "changes applied") {
		t.Fatal(r.stdout)
	}
	if r := mustOK(t, runCLI(t, e, "", nil, "apply", "-f", file)); !strings.Contains(r.stdout, "no changes") {
		t.Fatalf("second apply:\n%s", r.stdout)
	}
	// A member leaves the file, the profile changes.
	b, _ := os.ReadFile(file)
	os.WriteFile(file, []byte(strings.Replace(string(b), "[amy@a.example, bo@a.example]", "[amy@a.example]", 1)), 0o600)
	os.WriteFile(filepath.Join(dir, "profiles", "wifi.mobileconfig"), []byte(strings.Replace(strings.Replace(cliWiFi, "%s", "", 1), "Corp", "Corp2", 1)), 0o600)
	r = mustOK(t, runCLI(t, e, "", nil, "apply", "-f", file))
	if !strings.Contains(r.stdout, `- member of "Sales": bo@a.example`) || !strings.Contains(r.stdout, "~ profile com.example.wifi: new version") {
		t.Fatalf("changes:\n%s", r.stdout)
	}

	// Export, then apply the export: nothing to do.
	out := t.TempDir()
	r = mustOK(t, runCLI(t, e, "", nil, "export", "--dir", out))
	if !strings.Contains(r.stdout, "1 profile files") {
		t.Fatal(r.stdout)
	}
	exported, _ := os.ReadFile(filepath.Join(out, "pomona.yaml"))
	if !strings.Contains(string(exported), "tenant: a.example") || !strings.Contains(string(exported), "- Sales") || !strings.Contains(string(exported), "- All users") {
		t.Fatalf("export:\n%s", exported)
	}
	if r := mustOK(t, runCLI(t, e, "", nil, "apply", "-f", filepath.Join(out, "pomona.yaml"))); !strings.Contains(r.stdout, "no changes") {
		t.Fatalf("apply of the export:\n%s", r.stdout)
	}
	// A malformed file is refused with its line.
	os.WriteFile(file, []byte("tenants:\n  - tenant: a.example\n    grups: []\n"), 0o600)
	if r := runCLI(t, e, "", nil, "apply", "-f", file); r.code == 0 || !strings.Contains(r.stderr, "grups") {
		t.Fatalf("malformed: %+v", r)
	}
}
