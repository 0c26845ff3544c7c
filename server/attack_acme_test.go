package server_test

// Session 13, lane attack5: the ACME listeners as an attacker sees them.
// --acme-http-listen is unauthenticated plain HTTP (normally port 80), and
// the HTTPS listener runs autocert's certificate look-up inside every
// handshake; both are reached here through real listeners of a server
// whose ACME directory never issues anything (nothing here needs pebble).

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/acmetest"
	"github.com/pomona-mdm/pomona/server"
)

// acmeUnreachable starts --tls=acme with a directory that refuses
// connections and HTTP-01 on its own listener; it returns the HTTP-01
// address and the public origin (with its non-default port).
func acmeUnreachable(t *testing.T) (httpAddr, origin string) {
	t.Helper()
	ln, port := acmetest.FreePort(t)
	hl, httpPort := acmetest.FreePort(t)
	hl.Close()
	cfg := testConfig(t)
	origin = "https://" + acmeHost + ":" + strconv.Itoa(port)
	cfg.PublicURL = origin
	cfg.TLS = server.TLSACME
	cfg.ACMEDirectory = "https://127.0.0.1:1/dir"
	httpAddr = "127.0.0.1:" + strconv.Itoa(httpPort)
	cfg.ACMEHTTPListen = httpAddr
	_, stop := runOn(t, cfg, ln)
	t.Cleanup(func() { stop() })
	return httpAddr, origin
}

// rawExchange writes raw to addr and reads one response within wait: its
// status code and Location ("" and ok false when none came in time).
func rawExchange(t *testing.T, addr, raw string, wait time.Duration) (code int, location string, ok bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", false
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location"), true
}

// TestAttackACMEHTTPRedirectStaysOnThePublicOrigin: the port-80 listener
// redirects to --public-url's origin and nowhere else. On the old code
// (autocert's redirect) each hostile row went to another host —
// https://evil.example/x, https://other.example/x,
// https://mdm.pomona.test.evil.example/x, https://mdm.pomona.test@evil.example/ —
// and the honest rows lost the public port (https://mdm.pomona.test/console/).
func TestAttackACMEHTTPRedirectStaysOnThePublicOrigin(t *testing.T) {
	addr, origin := acmeUnreachable(t)
	for _, tc := range []struct {
		name, target, host string
		code               int
		location           string
	}{
		{"honest", "/console/?a=b", acmeHost, 302, origin + "/console/?a=b"},
		{"host with port 80", "/x", acmeHost + ":80", 302, origin + "/x"},
		{"another Host header", "/x", "evil.example", 302, origin + "/x"},
		{"absolute-form target", "http://other.example/x", acmeHost, 302, origin + "/x"},
		{"opaque target glued to the host", "http:.evil.example/x", acmeHost, 302, origin + "/"},
		{"opaque target as userinfo", "http:@evil.example/", acmeHost, 302, origin + "/"},
		{"double slash path", "//evil.example/x", acmeHost, 302, origin + "//evil.example/x"},
		{"asterisk", "*", acmeHost, 302, origin + "/*"},
		{"challenge for another host", "/.well-known/acme-challenge/tok", "evil.example", 403, ""},
		{"challenge path traversal", "/.well-known/acme-challenge/..%2f..%2fsecret", acmeHost, 404, ""},
		{"unknown challenge token", "/.well-known/acme-challenge/tok", acmeHost, 404, ""},
	} {
		raw := "GET " + tc.target + " HTTP/1.1\r\nHost: " + tc.host + "\r\nConnection: close\r\n\r\n"
		code, loc, ok := rawExchange(t, addr, raw, 5*time.Second)
		if !ok || code != tc.code || loc != tc.location {
			t.Errorf("%s: %d %q (answered %v), want %d %q", tc.name, code, loc, ok, tc.code, tc.location)
		}
	}
	if code, _, _ := rawExchange(t, addr, "POST /x HTTP/1.1\r\nHost: "+acmeHost+"\r\nContent-Length: 0\r\n\r\n", 5*time.Second); code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", code)
	}
}

// TestAttackACMEHTTPBodiesAndHeadersAreBounded: a request with a body the
// client never sends is answered at once (400, connection closed), and a
// huge header is refused. On the old code the first two rows got no
// answer at all: net/http reads up to 256 KiB of an unread body before it
// answers, and the listener had no read timeout, so a client trickling
// one byte at a time held a connection and a goroutine for good; the
// header row got 1 MiB of header read (200 or 302 instead of 431).
func TestAttackACMEHTTPBodiesAndHeadersAreBounded(t *testing.T) {
	addr, _ := acmeUnreachable(t)
	for _, tc := range []struct {
		name, raw string
		code      int
	}{
		{"content-length, body never sent", "GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: " + acmeHost + "\r\nContent-Length: 1000\r\n\r\n", 400},
		{"chunked, body never sent", "POST /x HTTP/1.1\r\nHost: " + acmeHost + "\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
		{"64 KiB header", "GET /x HTTP/1.1\r\nHost: " + acmeHost + "\r\nX-Pad: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", 431},
	} {
		code, _, ok := rawExchange(t, addr, tc.raw, 3*time.Second)
		if !ok || code != tc.code {
			t.Errorf("%s: %d (answered within 3 s: %v), want %d", tc.name, code, ok, tc.code)
		}
	}
}

// TestAttackACMEShutdownBoundedWhileAnOrderHangs: a certificate order
// that never ends (the ACME directory accepts and never answers; both the
// start-up prefetch and a client's handshake wait on it) cannot hold a
// stopping server past --shutdown-timeout: ACME.Wait and the wait for the
// prefetch share Shutdown's deadline. A guard for this session's
// ACME.Wait (it passes on the code it was written against).
func TestAttackACMEShutdownBoundedWhileAnOrderHangs(t *testing.T) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	var mu sync.Mutex
	var held []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accepted, never read nor answered
			mu.Unlock()
		}
	}()
	ln, port := acmetest.FreePort(t)
	cfg := testConfig(t)
	cfg.PublicURL = "https://" + acmeHost + ":" + strconv.Itoa(port)
	cfg.TLS = server.TLSACME
	cfg.ACMEDirectory = "https://" + hang.Addr().String() + "/dir"
	cfg.ShutdownTimeout = time.Second
	_, stop := runOn(t, cfg, ln)
	go func() {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{ServerName: acmeHost, InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond) // the handshake is in GetCertificate
	start := time.Now()
	err = stop()
	took := time.Since(start)
	t.Logf("Run returned after %v: %v", took, err)
	if took > cfg.ShutdownTimeout+2*time.Second {
		t.Fatalf("shutdown took %v with --shutdown-timeout %v", took, cfg.ShutdownTimeout)
	}
	// (The client's handshake ends with the server's 10 s handshake
	// timeout; the test does not wait for it.)
}
