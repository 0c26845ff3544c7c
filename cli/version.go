package cli

import (
	"fmt"

	"github.com/pomona-mdm/pomona/version"
)

// runVersion prints the version and what the Go toolchain recorded about
// the build (module version for `go install …@vX`, VCS revision for a
// build from a checkout). `pomona --version` runs it too.
func runVersion(env *Env, args []string) error {
	fs := newFlags(env, "version", "version [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(env, fs, args); err != nil {
		return err
	}
	b := version.Info()
	if *asJSON {
		return printJSON(env.Stdout, map[string]any{"version": b.Version, "module": b.Path, "module_version": b.Module,
			"revision": b.Revision, "time": b.Time, "modified": b.Modified, "go": b.GoVersion})
	}
	_, err := fmt.Fprint(env.Stdout, b.String())
	return err
}
