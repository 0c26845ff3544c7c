package cli_test

import (
	"net"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/server"
)

// pomona healthcheck (the container HEALTHCHECK) passes against a running
// server over HTTPS and plain HTTP, and fails when nothing answers.
func TestHealthcheck(t *testing.T) {
	e := testenv.Start(t)
	addr := strings.TrimPrefix(e.URL, "https://")
	_, port, _ := net.SplitHostPort(addr)
	r := mustOK(t, runCLI(t, nil, "", map[string]string{"POMONA_LISTEN": ":" + port}, "healthcheck"))
	if !strings.Contains(r.stdout, "https://127.0.0.1:"+port+"/readyz: 200") {
		t.Fatalf("healthcheck: %+v", r)
	}
	plain := testenv.Start(t, func(c *server.Config) { c.TLS = server.TLSOff })
	mustOK(t, runCLI(t, nil, "", nil, "healthcheck", "--tls", "off", "--listen", strings.TrimPrefix(plain.URL, "http://"), "--path", "/healthz"))

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	if r := runCLI(t, nil, "", nil, "healthcheck", "--listen", closed); r.code != 1 || !strings.Contains(r.stderr, "/readyz") {
		t.Fatalf("healthcheck with nothing listening: %+v", r)
	}
	if r := runCLI(t, nil, "", nil, "healthcheck", "--listen", "nonsense"); r.code != 2 {
		t.Fatalf("bad --listen: %+v", r)
	}
}
