// Package packaging holds the files for running Pomona as a service
// (pomona.service, pomona.env) and the container recipe's checks.
package packaging_test

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/cli"
)

// systemd treats "#" as a comment only at the start of a line; after a
// value it becomes part of the value (the old example's EnvironmentFile
// line named a file "/etc/pomona/env        # POMONA_SECRET_KEY=...").
func TestUnitHasNoTrailingComments(t *testing.T) {
	for _, f := range []string{"pomona.service", "pomona.env"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			trimmed := strings.TrimSpace(line)
			if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";") {
				continue
			}
			if strings.Contains(line, "#") {
				t.Errorf("%s:%d: a comment after a value becomes part of the value: %q", f, i+1, line)
			}
		}
	}
}

// systemd-analyze verify accepts the unit without a warning. The binary
// path is pointed at an executable that exists here (verify checks it).
func TestUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("POMONA_REQUIRE_SYSTEMD_ANALYZE") != "" {
			t.Fatal("systemd-analyze not installed (apt-get install systemd)")
		}
		t.Skip("systemd-analyze not installed (apt-get install systemd)")
	}
	b, err := os.ReadFile("pomona.service")
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	unit := filepath.Join(t.TempDir(), "pomona.service")
	os.WriteFile(unit, bytes.ReplaceAll(b, []byte("/usr/local/bin/pomona"), []byte(self)), 0o644)
	cmd := exec.Command(sa, "verify", unit)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	err = cmd.Run()
	// Messages about the host itself (no running systemd, other units)
	// are not the unit's fault; anything naming our file is.
	var ours []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, "pomona.service") {
			ours = append(ours, l)
		}
	}
	if err != nil || len(ours) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
}

// Every variable the example environment file sets is a flag of
// `pomona serve` (POMONA_<FLAG>): a misspelt one would be ignored.
func TestEnvFileNamesServeFlags(t *testing.T) {
	var help bytes.Buffer
	cli.Main(&cli.Env{Stdin: strings.NewReader(""), Stdout: &help, Stderr: &help, Getenv: func(string) string { return "" }, Ctx: context.Background()},
		[]string{"serve", "-h"})
	f, err := os.Open("pomona.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`^#?(POMONA_[A-Z0-9_]+)=`)
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		m := re.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n++
		flag := "-" + strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(m[1], "POMONA_"), "_", "-"))
		if !strings.Contains(help.String(), "  "+flag+" ") && !strings.Contains(help.String(), "  "+flag+"\n") {
			t.Errorf("pomona.env sets %s but `pomona serve` has no %s flag", m[1], flag)
		}
	}
	if n < 5 {
		t.Fatalf("only %d variables found", n)
	}
}
