package cli_test

import (
	"errors"
	"net"
	"os"
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

// TestServeTakenPortKeepsTheFirstStart: a first start on a port already
// taken fails before it creates anything, so the next start (on a free
// port) is still the first one and prints the admin API key and the
// owner's setup link. Before, it made the data directory, stored the key
// and the setup token, then failed to listen without printing either; the
// next start said "open the setup link the first start printed" and the
// key was lost (README's "Port 8443 taken?" path, met by a newcomer).
func TestServeTakenPortKeepsTheFirstStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	data := filepath.Join(t.TempDir(), "pomona-data")
	code, out, errs := serveArgsUntilReady(t, "--listen", taken.Addr().String(), "--data", data)
	if code != 1 || !strings.Contains(errs, "cannot listen on "+taken.Addr().String()) {
		t.Fatalf("serve on a taken port: exit %d\n%s\n%s", code, out, errs)
	}
	if _, err := os.Stat(data); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve on a taken port created %s: %v", data, err)
	}
	code, out, errs = serveArgsUntilReady(t, "--listen", "127.0.0.1:0", "--data", data)
	if code != 0 {
		t.Fatalf("serve: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"Admin API key (shown once", "/console/setup?token="} {
		if !strings.Contains(out, want) {
			t.Errorf("the start after a taken port lacks %q:\n%s", want, out)
		}
	}
}
