package cli

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSynopsesAndUsageLines: a group's synopsis names each of its
// subcommands, and a leaf's usage is one line showing that command (not
// a sibling's).
func TestSynopsesAndUsageLines(t *testing.T) {
	var walk func(path string, cmds []*command)
	walk = func(path string, cmds []*command) {
		for _, cmd := range cmds {
			p := strings.TrimSpace(path + " " + cmd.name)
			for _, child := range cmd.children {
				if !strings.Contains(cmd.synopsis, child.name) {
					t.Errorf("pomona %s: synopsis %q does not name %s", p, cmd.synopsis, child.name)
				}
			}
			if len(cmd.children) == 0 && (strings.Contains(cmd.usage, "\n") || strings.Contains(cmd.usage, "pomona ") || !strings.HasPrefix(cmd.usage, p)) {
				t.Errorf("pomona %s: usage %q is not its own one line", p, cmd.usage)
			}
			walk(p, cmd.children)
		}
	}
	walk("", commands())
	// user update changes the email too.
	for _, tc := range []struct{ path, word string }{{"user update", "email"}} {
		f := strings.Fields(tc.path)
		if c := find(find(commands(), f[0]).children, f[1]); !strings.Contains(c.synopsis, tc.word) {
			t.Errorf("pomona %s: synopsis %q does not say %s", tc.path, c.synopsis, tc.word)
		}
	}
}

// TestSimRunTrustsTheAPIsCA: sim run's simulated devices trust the CA
// the API client trusts, for every way the CLI finds it (--ca-file,
// --data, the nearest pomona-data above the working directory).
func TestSimRunTrustsTheAPIsCA(t *testing.T) {
	root := t.TempDir()
	ca, caFile, _, err := stubCA(filepath.Join(root, "pomona-data"))
	if err != nil {
		t.Fatal(err)
	}
	// stubCA keeps its CA as apns-ca.pem; a local server's is ca.pem.
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "pomona-data", "ca.pem"), pem, 0o644); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(root, "a", "b")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cwd string
		cf        clientFlags
	}{
		{"--ca-file", t.TempDir(), clientFlags{server: "https://mdm.example:8443", caFile: caFile, data: defaultData}},
		{"--data", t.TempDir(), clientFlags{server: "https://mdm.example:8443", data: filepath.Join(root, "pomona-data")}},
		{"nearest pomona-data", deep, clientFlags{server: "https://mdm.example:8443", data: defaultData}},
	} {
		t.Chdir(tc.cwd)
		if tc.cf.caPath() == "" {
			t.Errorf("%s: the API client trusts no CA file", tc.name)
		}
		pool, err := serverPool(tc.cf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ca.Cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s: the simulated devices do not trust the server's CA: %v", tc.name, err)
		}
	}
}

// TestRandomString: n characters of the alphabet, different each time.
func TestRandomString(t *testing.T) {
	for _, tc := range []struct {
		n        int
		alphabet string
	}{{generatedPasswordLen, lowerBase32}, {4, lowerHex}, {18, urlSafe}, {64, "ab"}} {
		seen := map[string]bool{}
		for range 20 {
			s, err := randomString(tc.n, tc.alphabet)
			if err != nil {
				t.Fatal(err)
			}
			if len(s) != tc.n || strings.Trim(s, tc.alphabet) != "" {
				t.Errorf("randomString(%d, %q) = %q", tc.n, tc.alphabet, s)
			}
			seen[s] = true
		}
		if len(seen) < 15 {
			t.Errorf("randomString(%d, %q): %d distinct of 20", tc.n, tc.alphabet, len(seen))
		}
	}
}
