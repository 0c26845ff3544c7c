package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/discovery"
	"github.com/pomona-mdm/pomona/pki"
)

// tlsServer serves h over TLS with a certificate for hosts from ca.
func tlsServer(t *testing.T, ca *pki.CA, h http.Handler, hosts ...string) string {
	t.Helper()
	cert, key, err := ca.IssueServer(hosts, pki.ECDSAP256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewUnstartedServer(h)
	s.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

const mdmBase = "https://mdm.example.net/enroll/tn_abc"

// pomonaLike answers discovery the way Pomona does.
func pomonaLike() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := discovery.ParseQuery(r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if err != nil {
			w.WriteHeader(403)
			w.Write([]byte(`{"code":"com.apple.well-known.failed","description":"` + err.(*discovery.Rejection).Reason + `","message":"no"}`))
			return
		}
		if req.Domain != "company.example" {
			w.WriteHeader(403)
			w.Write([]byte(`{"code":"com.apple.well-known.failed","description":"unknown domain","message":"Contact IT."}`))
			return
		}
		w.Write([]byte(`{"Servers":[{"Version":"mdm-byod","BaseURL":"` + mdmBase + `"}]}`))
	})
}

func redirect(target func(r *http.Request) string, code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != discovery.Path {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Location", target(r))
		w.WriteHeader(code)
	})
}

func static(ct, body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.Write([]byte(body))
	})
}

func TestCheck(t *testing.T) {
	ca, err := pki.NewCA("test", pki.ECDSAP256, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	other, _ := pki.NewCA("untrusted", pki.ECDSAP256, time.Now())
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	mdm := tlsServer(t, ca, pomonaLike(), "mdm.example.net")

	good := redirect(func(r *http.Request) string { return "https://mdm.example.net" + r.URL.RequestURI() }, 302)
	for _, tc := range []struct {
		name    string
		company http.Handler
		ca      *pki.CA
		user    string
		expect  string
		ok      bool
		finding string
		hops    int
	}{
		{name: "redirect keeping the query", company: good, ok: true, finding: "with the query string intact", hops: 2, expect: mdmBase},
		{name: "plus addressing survives", company: good, user: "alice+work@company.example", ok: true, hops: 2},
		{name: "permanent redirect", company: redirect(func(r *http.Request) string { return "https://mdm.example.net" + r.URL.RequestURI() }, 308), ok: true, hops: 2},
		{name: "relative redirect on the same host", company: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == discovery.Path {
				http.Redirect(w, r, "/mdm"+r.URL.RequestURI(), 302)
				return
			}
			r.URL.Path = strings.TrimPrefix(r.URL.Path, "/mdm")
			pomonaLike().ServeHTTP(w, r)
		}), ok: true, hops: 2},
		{name: "redirect dropping the query", company: redirect(func(r *http.Request) string { return "https://mdm.example.net" + discovery.Path }, 302),
			finding: "dropped the query parameter"},
		{name: "redirect mangling the plus sign", user: "alice+work@company.example",
			company: redirect(func(r *http.Request) string {
				return "https://mdm.example.net" + discovery.Path + "?" + strings.ReplaceAll(r.URL.RawQuery, "+", "%20")
			}, 302), finding: "changed \"user-identifier\""},
		{name: "redirect to http", company: redirect(func(r *http.Request) string { return "http://mdm.example.net" + r.URL.RequestURI() }, 302), finding: "non-https"},
		{name: "redirect without Location", company: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(302) }), finding: "without a Location"},
		{name: "redirect loop", company: redirect(func(r *http.Request) string { return "https://company.example" + r.URL.RequestURI() }, 302), finding: "loop"},
		{name: "no redirect at all", company: http.NotFoundHandler(), finding: "has no redirect"},
		{name: "static file with the wrong type", company: static("application/octet-stream", `{"Servers":[{"Version":"mdm-byod","BaseURL":"`+mdmBase+`"}]}`), finding: "not application/json"},
		{name: "static file with bad JSON", company: static("application/json", `{"Servers":[`), finding: "not valid JSON"},
		{name: "static file without servers", company: static("application/json", `{"Servers":[]}`), finding: "missing or empty"},
		{name: "static file served right", company: static("application/json; charset=utf-8", `{"Servers":[{"Version":"mdm-byod","BaseURL":"`+mdmBase+`"}]}`),
			ok: true, finding: "serves the discovery document itself", expect: mdmBase, hops: 1},
		{name: "points at another server", company: static("application/json", `{"Servers":[{"Version":"mdm-byod","BaseURL":"https://old-mdm.example.org/enroll"}]}`),
			expect: mdmBase, finding: "points at another server"},
		{name: "refused by the MDM", company: good, user: "alice@elsewhere.example", finding: "refuses"},
		{name: "untrusted certificate", company: good, ca: other, finding: "not issued by a trusted authority"},
		{name: "server error", company: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == discovery.Path {
				w.WriteHeader(502)
			}
		}), finding: "502"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cca := ca
			if tc.ca != nil {
				cca = tc.ca
			}
			company := tlsServer(t, cca, tc.company, "company.example")
			rep := Run(context.Background(), Options{
				Domain: "company.example", User: tc.user, ExpectBaseURL: tc.expect, RootCAs: pool,
				Resolve: map[string]string{"company.example:443": company, "mdm.example.net:443": mdm},
				Timeout: 5 * time.Second,
			})
			var all []string
			for _, f := range rep.Findings {
				all = append(all, string(f.Level)+": "+f.Message)
			}
			text := strings.Join(all, "\n")
			if rep.OK() != tc.ok {
				t.Fatalf("OK() = %v, want %v\n%s", rep.OK(), tc.ok, text)
			}
			if tc.finding != "" && !strings.Contains(text, tc.finding) {
				t.Fatalf("findings lack %q:\n%s", tc.finding, text)
			}
			if tc.hops != 0 && len(rep.Hops) != tc.hops {
				t.Fatalf("%d hops, want %d: %+v", len(rep.Hops), tc.hops, rep.Hops)
			}
			if tc.ok && (rep.Answer == nil || rep.Answer.Servers[0].BaseURL != mdmBase) {
				t.Fatalf("answer %+v", rep.Answer)
			}
			for _, f := range rep.Findings {
				if f.Level == Error && f.Fix == "" && !strings.Contains(f.Message, "failed") {
					t.Errorf("error without a fix: %s", f.Message)
				}
			}
		})
	}
}

func TestCheckUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	rep := Run(context.Background(), Options{Domain: "company.example", Resolve: map[string]string{"company.example:443": addr}, Timeout: 2 * time.Second})
	if rep.OK() || !strings.Contains(rep.Findings[0].Message, "cannot connect") {
		t.Fatalf("%+v", rep.Findings)
	}
}

func TestEscapeKeepsAtAndPlus(t *testing.T) {
	if got := escape("alice+work@company.example"); got != "alice+work@company.example" {
		t.Fatal(got)
	}
	if got := escape("a b&c=d"); got != "a%20b%26c%3Dd" {
		t.Fatal(got)
	}
}
