package cli_test

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestServePublicURLFollowsListen: started on another port without
// --public-url, a development server's printed links (public URL, console,
// console set-up link) name the port it listens on, not 8443; an explicit
// --public-url wins.
func TestServePublicURLFollowsListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	want := "https://localhost:" + port

	data := filepath.Join(t.TempDir(), "pomona-data")
	code, out, errs := serveArgsUntilReady(t, "--listen", addr, "--data", data)
	if code != 0 {
		t.Fatalf("serve: exit %d\n%s\n%s", code, out, errs)
	}
	for _, l := range []string{"public URL   " + want + "\n", "console      " + want + "/console/\n", want + "/console/setup?token="} {
		if !strings.Contains(out, l) {
			t.Errorf("serve --listen %s: output lacks %q:\n%s", addr, l, out)
		}
	}
	if strings.Contains(out, ":8443") {
		t.Errorf("serve --listen %s still names port 8443:\n%s", addr, out)
	}

	code, out, errs = serveArgsUntilReady(t, "--listen", addr, "--data", data, "--public-url", "https://mdm.example.com")
	if code != 0 || !strings.Contains(out, "public URL   https://mdm.example.com\n") {
		t.Fatalf("serve --public-url: exit %d\n%s\n%s", code, out, errs)
	}
}
