package untrusted

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// banned are the parsers that must see untrusted bytes only through this
// package: import path → function names.
var banned = map[string][]string{
	"github.com/smallstep/pkcs7": {"Parse"},
	"github.com/micromdm/plist":  {"Unmarshal", "NewDecoder", "NewXMLDecoder", "NewBinaryDecoder"},
	"github.com/smallstep/scep":  {"ParsePKIMessage", "CACerts"},
}

// bannedMethods are methods that parse untrusted bytes, whatever the
// receiver's package is called.
var bannedMethods = []string{"DecryptPKIEnvelope"}

// allowed packages may call the banned parsers, each with its reason.
var allowed = map[string]string{
	// This package is the layer.
	"github.com/pomona-mdm/pomona/untrusted": "the layer itself",
	// The device simulator is client code: it decodes the answers of the
	// Pomona server it is testing (profiles, SCEP replies, commands),
	// never bytes from the internet; `pomona bench` runs it against a
	// server the operator chose.
	"github.com/pomona-mdm/pomona/devicesim": "client of a Pomona server under test",
}

// violations lists the calls of banned parsers in one file's source.
func violations(fset *token.FileSet, f *ast.File) []string {
	names := map[string][]string{} // local import name → banned functions
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		fns, ok := banned[path]
		if !ok {
			continue
		}
		name := filepath.Base(path)
		if imp.Name != nil {
			name = imp.Name.Name
		}
		names[name] = fns
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); ok {
			for _, fn := range names[id.Name] {
				if sel.Sel.Name == fn {
					out = append(out, fset.Position(sel.Pos()).String()+": "+id.Name+"."+fn)
				}
			}
		}
		for _, m := range bannedMethods {
			if sel.Sel.Name == m {
				out = append(out, fset.Position(sel.Pos()).String()+": ."+m)
			}
		}
		return true
	})
	return out
}

// The build fails if a package outside this layer calls pkcs7.Parse,
// plist.Unmarshal/NewDecoder/NewXMLDecoder/NewBinaryDecoder,
// scep.ParsePKIMessage/CACerts or DecryptPKIEnvelope in non-test code.
func TestOnlyThisLayerParsesUntrustedBytes(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{.Dir}}|{{join .GoFiles ","}}`, "github.com/pomona-mdm/pomona/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	fset := token.NewFileSet()
	pkgs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 || parts[2] == "" {
			continue
		}
		pkgs++
		if _, ok := allowed[parts[0]]; ok {
			continue
		}
		for _, name := range strings.Split(parts[2], ",") {
			f, err := parser.ParseFile(fset, filepath.Join(parts[1], name), nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range violations(fset, f) {
				t.Errorf("%s: parse untrusted bytes through package untrusted (ParseCMS, ParseSCEP, Plist)", v)
			}
		}
	}
	if pkgs < 20 {
		t.Fatalf("only %d packages listed", pkgs)
	}
}

// The checker finds what it must (so the test above can fail).
func TestViolations(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want int
	}{
		{`package p; import "github.com/smallstep/pkcs7"; var _, _ = pkcs7.Parse(nil)`, 1},
		{`package p; import p7 "github.com/smallstep/pkcs7"; var _, _ = p7.Parse(nil)`, 1},
		{`package p; import "github.com/smallstep/pkcs7"; var _, _ = pkcs7.NewSignedData(nil)`, 0},
		{`package p; import "github.com/micromdm/plist"; func f(v any) { plist.Unmarshal(nil, v); plist.NewBinaryDecoder(nil); plist.NewDecoder(nil); plist.NewXMLDecoder(nil) }`, 4},
		{`package p; import "github.com/micromdm/plist"; var _, _ = plist.Marshal(1)`, 0},
		{`package p; import "github.com/smallstep/scep"; func f(m *scep.PKIMessage) { scep.ParsePKIMessage(nil); m.DecryptPKIEnvelope(nil, nil) }`, 2},
		{`package p; import "encoding/json"; func f(v any) { json.Unmarshal(nil, v) }`, 0},
	} {
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "x.go", tc.src, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := violations(fset, f); len(got) != tc.want {
			t.Errorf("%s: %v, want %d", tc.src, got, tc.want)
		}
	}
}
