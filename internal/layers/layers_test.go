// Package layers holds the test that keeps Pomona's import graph layered
// (docs/architecture.md): protocol packages are pure, the application layer
// and the MDM channel never reach into HTTP handlers, handler packages are
// imported only by the wiring, and the API client pulls in no server code.
package layers

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/pomona-mdm/pomona/"

// imports maps every package directory of the module (relative, slash
// separated) to the imports of its non-test files.
func imports(t *testing.T) map[string]map[string]bool {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if out[rel] == nil {
			out[rel] = map[string]bool{}
		}
		for _, s := range f.Imports {
			p, _ := strconv.Unquote(s.Path.Value)
			out[rel][strings.TrimPrefix(p, module)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pure are the protocol and rule packages: no HTTP, no SQL, no server.
var pure = []string{
	"problem", "address", "branding", "discovery", "enroll", "mdm", "mdm/catalog",
	"profile", "opaquetoken", "password", "totp", "seal", "apitypes",
	"mdm/payloads", "mdm/mobileconfig", "reconcile",
}

// serviceLayer are the application layer and the MDM channel: no HTTP
// handler plumbing (their callers render problems), no SQL drivers.
var serviceLayer = []string{"app", "mdmservice", "profiles"}

func TestPurePackages(t *testing.T) {
	g := imports(t)
	for _, p := range pure {
		deps, ok := g[p]
		if !ok {
			t.Errorf("package %s is listed as pure but does not exist (update the list)", p)
			continue
		}
		for _, bad := range []string{"net/http", "database/sql", "server", "store/sqlstore", "store/sqlite", "store/postgres"} {
			if deps[bad] {
				t.Errorf("pure package %s imports %s", p, bad)
			}
		}
		for d := range deps {
			if strings.HasPrefix(d, "http/") {
				t.Errorf("pure package %s imports the handler package %s", p, d)
			}
		}
	}
}

func TestServiceLayerStaysOutOfHTTP(t *testing.T) {
	g := imports(t)
	for _, p := range serviceLayer {
		deps, ok := g[p]
		if !ok {
			t.Errorf("package %s does not exist (update the list)", p)
			continue
		}
		for d := range deps {
			if d == "net/http" || d == "database/sql" || strings.HasPrefix(d, "http/") || d == "server" || d == "cli" {
				t.Errorf("%s imports %s", p, d)
			}
		}
	}
}

// TestHandlersOnlyFromWiring: handler packages are mounted by server and
// nobody else depends on them (they may share http/httpx).
func TestHandlersOnlyFromWiring(t *testing.T) {
	g := imports(t)
	for p, deps := range g {
		if p == "server" || strings.HasPrefix(p, "http/") {
			continue
		}
		for d := range deps {
			if strings.HasPrefix(d, "http/") {
				t.Errorf("%s imports the handler package %s; only server wires handlers", p, d)
			}
		}
	}
	for p, deps := range g {
		if !strings.HasPrefix(p, "http/") || p == "http/httpx" {
			continue
		}
		for d := range deps {
			if strings.HasPrefix(d, "http/") && d != "http/httpx" {
				t.Errorf("handler package %s imports another handler package %s", p, d)
			}
		}
	}
}

// TestAPIClientIsLeaf: a Go client of the admin API imports only the wire
// types, never server code.
func TestAPIClientIsLeaf(t *testing.T) {
	g := imports(t)
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for d := range g[p] {
			if _, ours := g[d]; ours {
				walk(d)
			}
		}
	}
	walk("apiclient")
	var got []string
	for p := range seen {
		got = append(got, p)
	}
	sort.Strings(got)
	for _, p := range got {
		if p != "apiclient" && p != "apitypes" {
			t.Errorf("apiclient depends on %s (all: %v)", p, got)
		}
	}
}

func TestMain(m *testing.M) {
	// The walk reads the source tree; refuse to run from elsewhere.
	if _, err := os.Stat("../../go.mod"); err != nil {
		panic("run from internal/layers inside the module")
	}
	os.Exit(m.Run())
}
