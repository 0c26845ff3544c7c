package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHelpOnEveryCommand walks the command table: `pomona <command>
// --help`, `-h`, and `pomona <command> <subcommand> --help` print usage
// on stdout and exit 0, for every command and subcommand, without a
// server (help never dials).
func TestHelpOnEveryCommand(t *testing.T) {
	// A flag's line in the usage is "  -name" or "  -name type": text in
	// backquotes in a usage string would become the type (flag.UnquoteUsage),
	// as in "-demo pomona sim enroll".
	flagLine := regexp.MustCompile(`^  -[a-z0-9-]+( (string|int|uint|int64|uint64|float|duration|value))?$`)
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(&Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
			Getenv: func(string) string { return "" }, Ctx: context.Background()}, args)
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, "  -") && !flagLine.MatchString(l) {
				t.Errorf("pomona %s: garbled flag line %q", strings.Join(args, " "), l)
			}
			if strings.Contains(l, "(default:") && strings.Contains(l, "(default \"") {
				t.Errorf("pomona %s: two defaults in %q", strings.Join(args, " "), l)
			}
		}
		return code, out.String(), errb.String()
	}
	for name, cmd := range commands() {
		for _, h := range []string{"--help", "-h"} {
			code, out, errs := run(name, h)
			if code != 0 || !strings.Contains(out, "Usage: pomona "+name) {
				t.Errorf("pomona %s %s: exit %d\nstdout: %s\nstderr: %s", name, h, code, out, errs)
			}
		}
		for _, s := range cmd.subs {
			for _, h := range []string{"--help", "-h"} {
				code, out, errs := run(name, s.name, h)
				if code != 0 || !strings.Contains(out, "Usage: pomona "+name) {
					t.Errorf("pomona %s %s %s: exit %d\nstdout: %s\nstderr: %s", name, s.name, h, code, out, errs)
				}
			}
		}
		if len(cmd.subs) > 0 {
			code, _, errs := run(name, "no-such-subcommand")
			if code != 2 || !strings.Contains(errs, "unknown subcommand") || !strings.Contains(errs, cmd.subs[0].name) {
				t.Errorf("pomona %s no-such-subcommand: exit %d, stderr: %s", name, code, errs)
			}
		}
	}
	if code, out, _ := run("help"); code != 0 || !strings.Contains(out, "Commands:") {
		t.Errorf("pomona help: exit %d", code)
	}
}

// TestFindCA: the CLI finds a local server's development CA from any
// directory below the one where the server keeps ./pomona-data, and from
// --data (POMONA_DATA) anywhere.
func TestFindCA(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "pomona-data")
	deep := filepath.Join(root, "a", "b")
	other := t.TempDir()
	for _, d := range []string{data, deep, filepath.Join(other, "pomona-data")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ca := filepath.Join(data, "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cwd, data, want string
	}{
		{root, defaultData, "pomona-data/ca.pem"},
		{deep, defaultData, ca},
		{other, defaultData, ""},                        // a pomona-data without ca.pem is not the one
		{other, data, ca},                               // --data names it
		{deep, filepath.Join(other, "pomona-data"), ""}, // an explicit --data is not searched around
	} {
		t.Chdir(tc.cwd)
		if got := findCA(tc.data); got != tc.want {
			t.Errorf("from %s with --data %s: %q, want %q", tc.cwd, tc.data, got, tc.want)
		}
	}
}
