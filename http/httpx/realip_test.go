package httpx

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	proxies, err := ParsePrefixes("10.0.0.0/8, 127.0.0.1 ,::1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no proxy header", "203.0.113.9:5000", nil, "203.0.113.9"},
		{"untrusted peer's header ignored", "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted proxy", "10.1.2.3:443", []string{"198.51.100.7"}, "198.51.100.7"},
		{"client-forged left entries skipped", "10.1.2.3:443", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted proxies", "127.0.0.1:80", []string{"198.51.100.7, 10.9.9.9", "10.0.0.1"}, "198.51.100.7"},
		{"all trusted", "10.1.2.3:443", []string{"10.0.0.5"}, "10.1.2.3"},
		{"malformed entry", "10.1.2.3:443", []string{"198.51.100.7, not-an-ip"}, "10.1.2.3"},
		{"IPv6 loopback proxy", "[::1]:443", []string{"2001:db8::1"}, "2001:db8::1"},
		{"v4-mapped peer", "[::ffff:10.1.2.3]:443", []string{"198.51.100.7"}, "198.51.100.7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ClientAddr(c.remote, c.xff, proxies); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
	if _, err := ParsePrefixes("10.0.0.0/33"); err == nil {
		t.Fatal("bad prefix accepted")
	}
	if _, err := ParsePrefixes("proxy.example"); err == nil {
		t.Fatal("host name accepted")
	}
}

func TestRealIP(t *testing.T) {
	proxies, _ := ParsePrefixes("192.0.2.1")
	var seen string
	h := RealIP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr }), proxies)
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("X-Forwarded-For", "198.51.100.7")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen != "198.51.100.7:0" {
		t.Fatal(seen)
	}
	// Without trusted proxies the header is ignored.
	h = RealIP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr }), nil)
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen != "192.0.2.1:1234" {
		t.Fatal(seen)
	}
}

func TestFromTrustedProxy(t *testing.T) {
	proxies, _ := ParsePrefixes("192.0.2.0/24, ::1")
	for _, c := range []struct {
		name, remote, xff string
		proxies           []netip.Prefix
		want              bool
	}{
		{"trusted peer", "192.0.2.7:1234", "", proxies, true},
		{"trusted peer, client named by X-Forwarded-For", "192.0.2.7:1234", "198.51.100.7", proxies, true},
		{"IPv6 loopback", "[::1]:1234", "", proxies, true},
		{"untrusted peer", "198.51.100.7:1234", "", proxies, false},
		{"untrusted peer naming a trusted one", "198.51.100.7:1234", "192.0.2.7", proxies, false},
		{"no trusted proxies", "192.0.2.7:1234", "", nil, false},
		{"unparsable peer", "somewhere", "", proxies, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got bool
			h := RealIP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = FromTrustedProxy(r, c.proxies) }), c.proxies)
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			if c.xff != "" {
				r.Header.Set("X-Forwarded-For", c.xff)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	for _, c := range []struct{ remote, want string }{
		{"192.0.2.7:51234", "192.0.2.7"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"192.0.2.7", "192.0.2.7"}, // no port: as it is
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if got := ClientIP(r); got != c.want {
			t.Errorf("ClientIP(%q) = %q, want %q", c.remote, got, c.want)
		}
	}
}
