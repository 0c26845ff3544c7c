package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/cli"
)

// TestTopLevelHelpPointsToSubcommands: `pomona --help` tells where to go
// next, and that is true for both kinds of command: `pomona tenant -h`
// lists subcommands (no flags), `pomona tenant add -h` the flags. The
// help used to promise "a command's flags" from `pomona <command> -h`,
// which a newcomer trying `pomona tenant -h` did not get.
func TestTopLevelHelpPointsToSubcommands(t *testing.T) {
	run := func(args ...string) string {
		var out, errb bytes.Buffer
		if code := cli.Main(&cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
			Getenv: func(string) string { return "" }, Ctx: context.Background()}, args); code != 0 {
			t.Fatalf("pomona %v: exit %d\n%s", args, code, errb.String())
		}
		return out.String()
	}
	top := run("--help")
	if !strings.Contains(top, "`pomona <command> <subcommand> -h`") {
		t.Errorf("pomona --help does not say where a subcommand's flags are:\n%s", top)
	}
	if group := run("tenant", "-h"); !strings.Contains(group, "Subcommands:") || strings.Contains(group, "\n  -") {
		t.Errorf("pomona tenant -h is not a list of subcommands:\n%s", group)
	}
	if leaf := run("tenant", "add", "-h"); !strings.Contains(leaf, "\n  -domain") {
		t.Errorf("pomona tenant add -h does not list its flags:\n%s", leaf)
	}
}

// TestReadmeListsEveryCommand: the README's command list, where a newcomer
// looks first, names every command `pomona --help` lists (group, profile,
// apply, export and abm were missing from it).
func TestReadmeListsEveryCommand(t *testing.T) {
	var out bytes.Buffer
	cli.Main(&cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &out, Getenv: func(string) string { return "" }, Ctx: context.Background()}, []string{"--help"})
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, list, _ := strings.Cut(string(readme), "## Commands\n\n```\n")
	list, _, _ = strings.Cut(list, "```")
	_, cmds, _ := strings.Cut(out.String(), "Commands:\n")
	cmds, _, _ = strings.Cut(cmds, "\n\n")
	n := 0
	for _, line := range strings.Split(cmds, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name == "" {
			continue
		}
		n++
		if !regexp.MustCompile(`(?m)^pomona ` + regexp.QuoteMeta(name) + `\b`).MatchString(list) {
			t.Errorf("README.md's command list lacks pomona %s", name)
		}
	}
	if n < 10 {
		t.Fatalf("read %d commands from pomona --help:\n%s", n, out.String())
	}
}
