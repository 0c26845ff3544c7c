package cli

import (
	"flag"
	"fmt"

	"github.com/pomona-mdm/pomona/version"
)

// runVersion prints the version and what the Go toolchain recorded about
// the build (module version for `go install …@vX`, VCS revision for a
// build from a checkout). `pomona --version` runs it too.
func runVersion(fs *flag.FlagSet) func(*call) error {
	asJSON := fs.Bool("json", false, "print JSON")
	return func(c *call) error {
		b := version.Info()
		if *asJSON {
			return printJSON(c.Stdout, map[string]any{"version": b.Version, "module": b.Path, "module_version": b.Module,
				"revision": b.Revision, "time": b.Time, "modified": b.Modified, "go": b.GoVersion})
		}
		_, err := fmt.Fprint(c.Stdout, b.String())
		return err
	}
}
