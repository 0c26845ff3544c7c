package server_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/internal/testenv"
	"github.com/pomona-mdm/pomona/server"
)

// TestHeldMDMRequestsAreNotWritersInProgress (break8): SQLite's commit
// delay waits up to 500 µs for the writes of device requests in progress
// when at least two besides a batch's own are counted. The count began
// when the handler was entered, before the body was read, so anyone —
// no credential needed — holding three requests to /mdm/connect and
// /mdm/checkin open with a body that never finishes (up to the 60 s
// read timeout, then again) made every durable batch of the server wait
// the whole delay. A request counts now only while the service handles
// it: held requests count 0 (3 on the code before), and a served one is
// let go.
func TestHeldMDMRequestsAreNotWritersInProgress(t *testing.T) {
	e := testenv.Start(t)
	st, ok := e.Server.Store.(interface{ DeviceRequestsInProgress() int64 })
	if !ok {
		t.Skip("not a store with group commit")
	}
	u, _ := url.Parse(e.URL)
	var held []net.Conn
	for i, p := range []string{server.ServerPath, server.CheckInPath, server.ServerPath, server.CheckInPath} {
		c, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		ct := "application/x-apple-aspen-mdm"
		if p == server.CheckInPath {
			ct += "-checkin"
		}
		fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nMdm-Signature: AAAA\r\nContent-Length: 100\r\n\r\n<plist %d", p, u.Host, ct, i)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := st.DeviceRequestsInProgress(); n != 0 {
			t.Fatalf("%d device requests counted in progress while 4 only hold their bodies back; want 0", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Finished, the requests are answered (403: no device signed them)
	// and nothing stays counted.
	for _, c := range held {
		c.Write(bytes.Repeat([]byte("x"), 100-len("<plist 0")))
	}
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 12)
		if _, err := c.Read(b); err != nil || string(b[9:12]) != "403" {
			t.Fatalf("the finished request: %q, %v; want a 403", b, err)
		}
	}
	if n := st.DeviceRequestsInProgress(); n != 0 {
		t.Fatalf("%d device requests counted in progress after every one was answered", n)
	}
}
