package cli_test

import (
	"bytes"
	"context"
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
