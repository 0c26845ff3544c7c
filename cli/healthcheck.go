package cli

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/pomona-mdm/pomona/server"
)

// runHealthcheck asks the server on this host for GET /readyz and exits 0
// when it answers 200 (the store is reachable), 1 otherwise. It exists for
// container HEALTHCHECKs: a scratch or distroless image has no curl. It
// reads the same --listen and --tls (POMONA_LISTEN, POMONA_TLS) as `serve`,
// so the container's environment describes both.
func runHealthcheck(fs *flag.FlagSet) func(*call) error {
	def := server.DefaultConfig()
	listen := fs.String("listen", def.Listen, "the server's --listen address (a host of 0.0.0.0, :: or none means this host's loopback)")
	mode := fs.String("tls", def.TLS, "the server's --tls mode: off means plain HTTP, anything else HTTPS")
	path := fs.String("path", "/readyz", "path to request: /readyz (the store answers) or /healthz (the process is alive)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	return func(c *call) error {
		host, port, err := net.SplitHostPort(*listen)
		if err != nil {
			return usagef("--listen %q: %v", *listen, err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		scheme := "https"
		if *mode == server.TLSOff {
			scheme = "http"
		}
		url := scheme + "://" + net.JoinHostPort(host, port) + *path
		// The public certificate names the public host, not the loopback
		// address dialled here: this probe only asks "are you up?", sends no
		// secret and reads nothing but the status, so it does not verify it.
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(c.Ctx, *timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return usagef("%v", err)
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		fmt.Fprintf(c.Stdout, "%s: %s\n", url, resp.Status)
		return nil
	}
}
