package httpx

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParsePrefixes parses a comma-separated list of addresses and CIDR
// prefixes ("10.0.0.0/8, 127.0.0.1").
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP address or CIDR prefix", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR prefix", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func trusted(a netip.Addr, proxies []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr returns the address of the client behind trusted proxies:
// when the direct peer is one of them, the right-most X-Forwarded-For
// entry that is not a trusted proxy (entries further left could be
// forged by the client). Otherwise, or when the header is missing or
// malformed, the direct peer.
func ClientAddr(remoteAddr string, xff []string, proxies []netip.Prefix) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || len(proxies) == 0 || !trusted(peer, proxies) {
		return host
	}
	var hops []string
	for _, h := range xff {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host // malformed: do not guess
		}
		if !trusted(a, proxies) {
			return a.Unmap().String()
		}
	}
	return host
}

type peerKey struct{}

// RealIP sets each request's RemoteAddr to the client's address behind the
// trusted proxies (ClientAddr), so logs, the audit log and per-address
// sign-in limits see the client, not the proxy; the TCP peer stays
// available to Peer. Without trusted proxies X-Forwarded-For is ignored.
func RealIP(next http.Handler, proxies []netip.Prefix) http.Handler {
	if len(proxies) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			if ip := ClientAddr(r.RemoteAddr, xff, proxies); ip != "" {
				r2 := *r
				r2.RemoteAddr = net.JoinHostPort(ip, "0")
				r = r2.WithContext(context.WithValue(r.Context(), peerKey{}, r.RemoteAddr))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Peer returns the "host:port" of r's TCP peer (the proxy, when RealIP
// replaced RemoteAddr with the client behind it).
func Peer(r *http.Request) string {
	if p, ok := r.Context().Value(peerKey{}).(string); ok {
		return p
	}
	return r.RemoteAddr
}

// FromTrustedProxy reports whether r's TCP peer (Peer, not the forwarded
// client) is one of proxies. Headers that only a proxy may set (a
// forwarded client certificate) are honoured only when it is true; with
// no proxies it is always false.
func FromTrustedProxy(r *http.Request, proxies []netip.Prefix) bool {
	if len(proxies) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(Peer(r))
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && trusted(a, proxies)
}
