// Package version reports the build's version.
package version

import "runtime/debug"

// version is set at build time: -ldflags "-X github.com/pomona-mdm/pomona/version.version=v1.2.3".
var version = ""

// Version is the release version, or the module version / VCS revision
// recorded by the Go toolchain, or "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
