package connlimit_test

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/http/connlimit"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// serve accepts on ln and keeps every accepted connection open (reading
// until the peer closes), as a server does with a slow body.
func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { io.Copy(io.Discard, c); c.Close() }()
	}
}

// closedByServer reports whether the server closed c without a word: a
// read returns EOF (or a reset) instead of timing out.
func closedByServer(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// TestPerAddressLimitThroughListener: through a real TCP listener, one
// address gets max connections; the next ones are closed at once, counted
// and logged once; closing one gives its place back.
func TestPerAddressLimitThroughListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	logs := &syncBuf{}
	ln := connlimit.New(raw, 4, nil, func() { refused.Add(1) }, slog.New(slog.NewTextHandler(logs, nil)))
	defer ln.Close()
	go serve(ln)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		return c
	}
	for i := 0; i < 4; i++ {
		dial()
	}
	for _, c := range conns {
		if closedByServer(t, c) {
			t.Fatal("a connection under the limit was closed")
		}
	}
	for i := 0; i < 6; i++ {
		if c := dial(); !closedByServer(t, c) {
			t.Fatalf("connection %d over the limit of 4 was kept open", 5+i)
		}
	}
	if refused.Load() != 6 {
		t.Fatalf("refused counted %d, want 6", refused.Load())
	}
	if n := strings.Count(logs.String(), "connections refused"); n != 1 {
		t.Fatalf("%d log lines for one address's refusals, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "address=127.0.0.1") {
		t.Fatalf("log line does not name the address:\n%s", logs)
	}
	// A closed connection gives its place back.
	conns[0].Close()
	l := ln.(*connlimit.Listener)
	deadline := time.Now().Add(2 * time.Second)
	for l.Open("127.0.0.1") != 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c := dial(); closedByServer(t, c) {
		t.Fatal("after one of the 4 closed, a new connection was refused")
	}
	// Closing everything leaves no entry behind (the map stays bounded by
	// the addresses connected now, not every address ever seen).
	for _, c := range conns {
		c.Close()
	}
	deadline = time.Now().Add(2 * time.Second)
	for l.Open("127.0.0.1") != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := l.Open("127.0.0.1"); n != 0 {
		t.Fatalf("%d connections still counted after all closed", n)
	}
}

// TestTrustedProxyNotLimited: a trusted proxy's address carries every
// client behind it and is never limited; 0 turns the limit off.
func TestTrustedProxyNotLimited(t *testing.T) {
	for _, tc := range []struct {
		name   string
		max    int
		exempt []netip.Prefix
	}{{"proxy", 2, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, {"off", 0, nil}} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ln := connlimit.New(raw, tc.max, tc.exempt, nil, nil)
			defer ln.Close()
			go serve(ln)
			var conns []net.Conn
			for i := 0; i < 8; i++ {
				c, err := net.Dial("tcp", raw.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns = append(conns, c)
			}
			for i, c := range conns {
				if closedByServer(t, c) {
					t.Fatalf("connection %d refused", i)
				}
			}
		})
	}
}
