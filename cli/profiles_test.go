package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/internal/testenv"
)

const cliWiFi = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.wifi</string>
<key>PayloadUUID</key><string>6A0B0C5E-1111-4222-8333-444455556666</string>
<key>PayloadContent</key><array><dict>
	<key>PayloadType</key><string>com.apple.wifi.managed</string>
	<key>PayloadIdentifier</key><string>com.example.wifi.payload</string>
	<key>PayloadUUID</key><string>7A0B0C5E-1111-4222-8333-444455556666</string>
	<key>SSID_STR</key><string>Corp</string>
	%s
</dict></array></dict></plist>`

func TestGroupAndProfileCommands(t *testing.T) {
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example"))
	mustOK(t, runCLI(t, e, "amy-password\n", nil, "user", "add", "amy@a.example", "--password-stdin"))
	mustOK(t, runCLI(t, e, "bo-password\n", nil, "user", "add", "bo@a.example", "--password-stdin"))

	r := mustOK(t, runCLI(t, e, "", nil, "group", "add", "Sales", "--tenant", "a.example"))
	gid := regexp.MustCompile(`group (gr_\S+) created`).FindStringSubmatch(r.stdout)
	if gid == nil {
		t.Fatalf("group add: %s", r.stdout)
	}
	dir := t.TempDir()
	csvPath := filepath.Join(dir, "members.csv")
	os.WriteFile(csvPath, []byte("email\nbo@a.example\nzed@a.example\n"), 0o600)
	r = runCLI(t, e, "", nil, "group", "add-members", gid[1], "amy@a.example", "--csv", csvPath)
	if r.code != 1 || !strings.Contains(r.stdout, "2 added, 1 failed") || !strings.Contains(r.stdout, "zed@a.example") {
		t.Fatalf("add-members: %+v", r)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "group", "list", "--tenant", "a.example"))
	if !strings.Contains(r.stdout, "All users") || !strings.Contains(r.stdout, "Sales") {
		t.Fatalf("group list:\n%s", r.stdout)
	}

	good := filepath.Join(dir, "wifi.mobileconfig")
	os.WriteFile(good, []byte(strings.Replace(cliWiFi, "%s", "", 1)), 0o600)
	bad := filepath.Join(dir, "proxy.mobileconfig")
	os.WriteFile(bad, []byte(strings.Replace(strings.Replace(cliWiFi, "%s", "<key>ProxyType</key><string>Manual</string>", 1), "com.example.wifi<", "com.example.proxy<", 1)), 0o600)
	r = runCLI(t, e, "", nil, "profile", "upload", bad, "--tenant", "a.example", "--platforms", "iOS")
	if r.code != 1 || !strings.Contains(r.stderr, "ProxyType is forbidden for a user enrollment on iOS") {
		t.Fatalf("forbidden key: %+v", r)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "upload", good, "--tenant", "a.example"))
	pid := regexp.MustCompile(`profile (pr_\S+): com.example.wifi version 1`).FindStringSubmatch(r.stdout)
	if pid == nil {
		t.Fatalf("upload: %s", r.stdout)
	}
	mustOK(t, runCLI(t, e, "", nil, "profile", "assign", pid[1], "--group", gid[1]))
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "show", pid[1]))
	if !strings.Contains(r.stdout, gid[1]) {
		t.Fatalf("show: %s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "status", pid[1]))
	if !strings.HasPrefix(r.stdout, "installed 0, installing 0, pending 0, failed 0, removing 0") {
		t.Fatalf("status: %s", r.stdout)
	}
	mustOK(t, runCLI(t, e, "", nil, "profile", "unassign", pid[1], "--group", gid[1]))
	// A group by its name (exactly, else ignoring case); a name two
	// groups share, or none has, is an error naming what to give.
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "assign", pid[1], "--group", "sales", "--exclude"))
	if !strings.Contains(r.stdout, "excludes group "+gid[1]) {
		t.Fatalf("assign by name: %s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "unassign", pid[1], "--group", "Sales"))
	if !strings.Contains(r.stdout, "unassigned from group "+gid[1]) {
		t.Fatalf("unassign by name: %s", r.stdout)
	}
	if r = runCLI(t, e, "", nil, "profile", "assign", pid[1], "--group", "Marketing"); r.code == 0 || !strings.Contains(r.stderr, `no group named "Marketing"`) {
		t.Fatalf("unknown group name: %+v", r)
	}
	// Names are unique in a tenant as written, not ignoring case.
	gid2 := regexp.MustCompile(`group (gr_\S+) created`).FindStringSubmatch(mustOK(t, runCLI(t, e, "", nil, "group", "add", "SALES", "--tenant", "a.example")).stdout)
	if r = mustOK(t, runCLI(t, e, "", nil, "profile", "assign", pid[1], "--group", "SALES")); !strings.Contains(r.stdout, "assigned to group "+gid2[1]) {
		t.Fatalf("assign by exact name: %s", r.stdout)
	}
	if r = runCLI(t, e, "", nil, "profile", "assign", pid[1], "--group", "sales"); r.code == 0 || !strings.Contains(r.stderr, `2 groups are named "sales" (ignoring case)`) ||
		!strings.Contains(r.stderr, gid[1]) || !strings.Contains(r.stderr, gid2[1]) {
		t.Fatalf("ambiguous group name: %+v", r)
	}
	// A group named like an id is found by its name, not passed on as one.
	gid3 := regexp.MustCompile(`group (gr_\S+) created`).FindStringSubmatch(mustOK(t, runCLI(t, e, "", nil, "group", "add", "gr_contractors", "--tenant", "a.example")).stdout)
	if r = mustOK(t, runCLI(t, e, "", nil, "profile", "assign", pid[1], "--group", "gr_contractors")); !strings.Contains(r.stdout, "assigned to group "+gid3[1]) {
		t.Fatalf("assign a group named gr_…: %s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "list", "--tenant", "a.example"))
	if !strings.Contains(r.stdout, "com.example.wifi") {
		t.Fatalf("list: %s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "update", pid[1], "--name", "Corp", "--platforms", "iOS", "--min-os", "17.0", "--sign"))
	if !strings.Contains(r.stdout, "Corp, platforms iOS, minimum OS 17.0, signed true") {
		t.Fatalf("update: %s", r.stdout)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "update", pid[1], "--min-os", "none", "--sign=false"))
	if !strings.Contains(r.stdout, "minimum OS none, signed false") {
		t.Fatalf("update: %s", r.stdout)
	}
	if r = runCLI(t, e, "", nil, "profile", "update", pid[1]); r.code == 0 {
		t.Fatalf("update without changes: %+v", r)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "delete", pid[1]))
	if !strings.Contains(r.stdout, "deleted: 0 device(s) will lose it") {
		t.Fatalf("delete: %s", r.stdout)
	}
	if r = mustOK(t, runCLI(t, e, "", nil, "profile", "list", "--tenant", "a.example")); strings.Contains(r.stdout, "com.example.wifi") {
		t.Fatalf("list after delete: %s", r.stdout)
	}
	mustOK(t, runCLI(t, e, "", nil, "group", "remove-member", gid[1], "bo@a.example"))
	mustOK(t, runCLI(t, e, "", nil, "group", "delete", gid[1]))
}
