// Package version reports the build's version.
package version

import (
	"runtime/debug"
	"strings"
)

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

// Build is what the Go toolchain recorded about this binary
// (runtime/debug.ReadBuildInfo). Fields it did not record are empty: a
// `go install …@v1.2.3` has Module but no Revision; a `go build` in a
// git checkout has Revision, Time and Modified but Module "(devel)".
type Build struct {
	Version   string // Version()
	Path      string // main module path, e.g. github.com/pomona-mdm/pomona
	Module    string // main module version ("(devel)" for a local build)
	Revision  string // vcs.revision: the full commit hash
	Time      string // vcs.time: the commit time, RFC 3339
	Modified  bool   // vcs.modified: built from a tree with uncommitted changes
	GoVersion string // toolchain, e.g. go1.26.8
}

// Info reads the build information of the running binary.
func Info() Build {
	b := Build{Version: Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Path, b.Module, b.GoVersion = bi.Main.Path, bi.Main.Version, bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the multi-line report `pomona version` prints.
func (b Build) String() string {
	var w strings.Builder
	w.WriteString("pomona " + b.Version + "\n")
	line := func(k, v string) {
		if v != "" {
			w.WriteString("  " + k + strings.Repeat(" ", 10-len(k)) + v + "\n")
		}
	}
	if b.Path != "" {
		line("module", b.Path+" "+b.Module)
	}
	rev := b.Revision
	if rev != "" && b.Modified {
		rev += " (with uncommitted changes)"
	}
	line("revision", rev)
	line("committed", b.Time)
	line("go", b.GoVersion)
	return w.String()
}
