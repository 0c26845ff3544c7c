package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestHelpOnEveryCommand walks the command table: for every command and
// subcommand, `pomona <path> --help` and `-h` print its usage on stdout
// and exit 0, without a server (help never dials); a group lists each of
// its children with its synopsis, refuses a missing or unknown
// subcommand with exit 2 and that list, and every node is declared
// completely (a synopsis; a leaf a usage line and one run func).
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
	nodes := 0
	var walk func(path []string, cmds []*command, parentHelp string)
	walk = func(path []string, cmds []*command, parentHelp string) {
		seen := map[string]bool{}
		for _, cmd := range cmds {
			nodes++
			p := append(slices.Clone(path), cmd.name)
			name := strings.Join(p, " ")
			if cmd.name == "" || seen[cmd.name] || strings.HasPrefix(cmd.name, "-") || isHelp(cmd.name) {
				t.Errorf("pomona %s: a name must be given, not start with -, not mean help, and be unique among its siblings", name)
			}
			seen[cmd.name] = true
			if cmd.synopsis == "" {
				t.Errorf("pomona %s: no synopsis", name)
			}
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(cmd.name) + ` +` + regexp.QuoteMeta(cmd.synopsis) + `$`).MatchString(parentHelp) {
				t.Errorf("pomona %s is not listed with its synopsis by its parent's help:\n%s", name, parentHelp)
			}
			leaf := len(cmd.children) == 0
			if leaf && (cmd.flags == nil) == (cmd.run == nil) {
				t.Errorf("pomona %s: a leaf needs exactly one of flags and run", name)
			}
			if !leaf && (cmd.flags != nil || cmd.run != nil || cmd.usage != "" || cmd.api) {
				t.Errorf("pomona %s: a group only has children (Main dispatches to them)", name)
			}
			if leaf && (!strings.HasPrefix(cmd.usage, p[0]+" ") && cmd.usage != p[0] || !strings.Contains(cmd.usage, cmd.name)) {
				t.Errorf("pomona %s: usage %q does not show the command", name, cmd.usage)
			}
			var help string
			for _, h := range []string{"--help", "-h"} {
				code, out, errs := run(append(slices.Clone(p), h)...)
				want := "Usage: pomona " + name
				if leaf {
					want = "Usage: pomona " + cmd.usage + "\n"
				}
				if code != 0 || !strings.Contains(out, want) || errs != "" {
					t.Errorf("pomona %s %s: exit %d, want %q\nstdout: %s\nstderr: %s", name, h, code, want, out, errs)
				}
				help = out
			}
			if leaf {
				continue
			}
			for _, args := range [][]string{append(slices.Clone(p), "no-such-subcommand"), p} {
				code, _, errs := run(args...)
				if code != 2 || !strings.Contains(errs, "subcommand") || !strings.Contains(errs, "  "+cmd.children[0].name+" ") {
					t.Errorf("pomona %s: exit %d, stderr: %s", strings.Join(args, " "), code, errs)
				}
			}
			walk(p, cmd.children, help)
		}
	}
	code, top, _ := run("help")
	if code != 0 || !strings.Contains(top, "Commands:") {
		t.Errorf("pomona help: exit %d", code)
	}
	walk(nil, commands(), top)
	if nodes < 40 {
		t.Errorf("walked %d commands: the table is not all there", nodes)
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
