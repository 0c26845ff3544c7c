package version

import (
	"strings"
	"testing"
)

func TestBuildString(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Build
		want []string
		not  []string
	}{
		{"go install of a tag", Build{Version: "v1.2.3", Path: "github.com/pomona-mdm/pomona", Module: "v1.2.3", GoVersion: "go1.26.8"},
			[]string{"pomona v1.2.3\n", "module    github.com/pomona-mdm/pomona v1.2.3\n", "go        go1.26.8\n"}, []string{"revision"}},
		{"build from a checkout", Build{Version: "dev-0123456789ab", Path: "github.com/pomona-mdm/pomona", Module: "(devel)",
			Revision: "0123456789abcdef0123456789abcdef01234567", Time: "2026-11-30T20:00:00Z", Modified: true},
			[]string{"revision  0123456789abcdef0123456789abcdef01234567 (with uncommitted changes)\n", "committed 2026-11-30T20:00:00Z\n"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.b.String()
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("missing %q in\n%s", w, s)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(s, n) {
					t.Errorf("unexpected %q in\n%s", n, s)
				}
			}
		})
	}
}
