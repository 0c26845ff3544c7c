package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/server"
)

// hostAddress is an address of this host that is not loopback (loopback
// peers are not limited), or "" when there is none.
func hostAddress() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// TestAttackSlowConnectionsPerAddressBounded: one client address opens TLS
// connections and sends a request whose body never finishes (Session 14:
// 3,000 of them held 3,000 goroutines and fds, RSS 71 → 178 MB, for 60 s
// each). With --max-conns-per-address 3 the fourth is closed at accept,
// counted in pomona_connections_refused_total and logged; once the slow
// ones go, the address is served again.
func TestAttackSlowConnectionsPerAddressBounded(t *testing.T) {
	host := hostAddress()
	if host == "" {
		t.Skip("no non-loopback address on this host (loopback is not limited)")
	}
	cfg := testConfig(t)
	cfg.MaxConnsPerAddress = 3
	logs := &syncBuf{}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, io.Discard) }()
	defer func() { cancel(); <-done; srv.Close() }()
	addr := ln.Addr().String()
	tlsConf := &tls.Config{InsecureSkipVerify: true}
	slow := func() (net.Conn, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, tlsConf)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(c, "POST /login/tn_x HTTP/1.1\r\nHost: mdm.example.net\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 16000\r\n\r\na")
		return c, nil
	}
	var held []net.Conn
	for i := 0; i < 3; i++ {
		c, err := slow()
		if err != nil {
			t.Fatalf("slow connection %d under the limit: %v", i, err)
		}
		held = append(held, c)
	}
	for i := 0; i < 5; i++ {
		if c, err := slow(); err == nil {
			c.Close()
			t.Fatalf("connection %d over the limit of 3 completed its TLS handshake", 4+i)
		}
	}
	for _, c := range held {
		c.Close()
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}, Timeout: 10 * time.Second}
	var body string
	waitFor(t, func() bool {
		resp, err := client.Get("https://" + addr + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == 200
	})
	// 5, or more when a first metrics request came before the server had
	// seen the slow connections close.
	var refused int
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, "pomona_connections_refused_total "); ok {
			fmt.Sscan(v, &refused)
		}
	}
	if refused < 5 {
		t.Fatalf("refusals counted %d, want ≥ 5:\n%s", refused, grep(body, "pomona_connections"))
	}
	if n := strings.Count(logs.String(), "connections refused"); n != 1 {
		t.Fatalf("%d log lines about the refused address, want 1:\n%s", n, grep(logs.String(), "refused"))
	}
}
