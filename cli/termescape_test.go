package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/store"
)

// TestTextOutputEscapesControlCharacters (break8): the text output of
// group show, group list, profile show, profile list and profile upload
// printed names as they were stored. A group name may hold ESC (only
// CR, LF and tab are refused) and a profile's name is its file's
// PayloadDisplayName, which an XML property list can give the
// one-character CSI U+009B and DEL: written raw, they drive the
// administrator's terminal (clear the screen, hide or rewrite lines,
// retitle the window, OSC 52 sets the clipboard). Every control
// character but tab and newline is shown as an escape now. On the code
// before, each output held them raw.
func TestTextOutputEscapesControlCharacters(t *testing.T) {
	e := testenv.Start(t)
	mustOK(t, runCLI(t, e, "", nil, "tenant", "add", "A", "--domain", "a.example", "--second-factor=false"))
	// A name stored before names were checked for control characters
	// (break8 refuses them now: TestNamesRefuseControlCharacters), so
	// written through the store; the rename's answer prints it too.
	hostile := "Ops\x1b[2J\x1b]0;owned\x07\u009b31m\x7f"
	r := mustOK(t, runCLI(t, e, "", nil, "group", "add", "Ops", "--tenant", "a.example"))
	gid := regexp.MustCompile(`gr_[a-z0-9]+`).FindString(r.stdout)
	g := &store.Group{ID: gid + "x", Name: hostile, Source: store.GroupStatic, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	ts, err := e.Server.Store.Tenants(context.Background())
	if err != nil || len(ts) == 0 {
		t.Fatal(err)
	}
	g.TenantID = ts[len(ts)-1].ID
	for _, tn := range ts {
		if tn.Name == "A" {
			g.TenantID = tn.ID
		}
	}
	if err := e.Server.Store.CreateGroup(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	gid = g.ID
	groupAdd := r.stdout
	wifi, err := os.ReadFile(filepath.Join("..", "docs", "examples", "wifi.mobileconfig"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(wifi), "<string>Corp Wi-Fi</string>", "<string>Corp&#x9b;2J&#x7f;Wi-Fi</string>", 1)
	path := filepath.Join(t.TempDir(), "hostile.mobileconfig")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustOK(t, runCLI(t, e, "", nil, "profile", "upload", path, "--tenant", "a.example"))
	outputs := map[string]string{"profile upload": r.stdout, "group add": groupAdd}
	pid := regexp.MustCompile(`pr_[a-z0-9]+`).FindString(r.stdout)
	for _, args := range [][]string{
		{"group", "show", gid}, {"group", "list", "--tenant", "a.example"}, {"profile", "show", pid}, {"profile", "list", "--tenant", "a.example"},
	} {
		outputs[strings.Join(args[:2], " ")] = mustOK(t, runCLI(t, e, "", nil, args...)).stdout
	}
	for name, out := range outputs {
		if !utf8.ValidString(out) {
			t.Errorf("%s: output is not UTF-8: %q", name, out)
		}
		for _, r := range out {
			if r != '\t' && r != '\n' && unicode.IsControl(r) {
				t.Errorf("%s: a raw control character %U in the output:\n%q", name, r, out)
				break
			}
		}
	}
	if !strings.Contains(outputs["group show"], `Ops\x1b[2J\x1b]0;owned\x07\u009b31m\x7f`) {
		t.Errorf("group show: the name not shown escaped:\n%s", outputs["group show"])
	}
	if !strings.Contains(outputs["profile show"], `Corp\u009b2J\x7fWi-Fi`) {
		t.Errorf("profile show: the name not shown escaped:\n%s", outputs["profile show"])
	}
}
