// Package check fetches a company domain's discovery document the way an
// Apple device does and says exactly what is wrong with it: no redirect,
// query parameters dropped on the way, wrong content type, bad JSON, an
// answer that points at another server, TLS problems. It backs
// `pomona discovery check` and the console's live domain check.
package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/discovery"
)

// Options say what to check and how to reach it.
type Options struct {
	Domain      string
	User        string // defaults to check@<domain>
	ModelFamily string // defaults to iPhone
	// ExpectBaseURL, when set, is the BaseURL Pomona would answer for this
	// domain; a different one is reported as pointing at another server.
	ExpectBaseURL string
	// RootCAs replaces the system roots (tests, private CAs).
	RootCAs *x509.CertPool
	// Resolve maps "host:port" to the "ip:port" to dial instead, like
	// curl --resolve.
	Resolve map[string]string
	Timeout time.Duration // per request; default 15 s
	MaxHops int           // default 10
}

// Level grades a finding.
type Level string

const (
	OK    Level = "ok"
	Warn  Level = "warning"
	Error Level = "error"
)

// Finding is one conclusion, with what to do about it.
type Finding struct {
	Level   Level  `json:"level"`
	Message string `json:"message"`
	Fix     string `json:"fix,omitempty"`
}

// Hop is one request and its answer.
type Hop struct {
	URL         string `json:"url"`
	Status      int    `json:"status,omitempty"`
	Location    string `json:"location,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Report is the result of a check.
type Report struct {
	StartURL string              `json:"start_url"`
	Hops     []Hop               `json:"hops"`
	Findings []Finding           `json:"findings"`
	Answer   *discovery.Response `json:"answer,omitempty"`
}

// OK reports whether nothing was graded as an error.
func (r *Report) OK() bool {
	for _, f := range r.Findings {
		if f.Level == Error {
			return false
		}
	}
	return true
}

func (r *Report) add(l Level, msg, fix string) {
	r.Findings = append(r.Findings, Finding{Level: l, Message: msg, Fix: fix})
}

// escape percent-encodes like Foundation's query items: '@' and '+' stay
// literal, which is also what exercises Pomona's '+' handling.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~@+", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Run performs the check. It never returns an error: every problem,
// including an unreachable host, is a finding in the report.
func Run(ctx context.Context, o Options) *Report {
	if o.ModelFamily == "" {
		o.ModelFamily = "iPhone"
	}
	if o.User == "" {
		o.User = "check@" + o.Domain
	}
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Second
	}
	if o.MaxHops == 0 {
		o.MaxHops = 10
	}
	rep := &Report{}
	wantQuery := map[string]string{"user-identifier": o.User, "model-family": o.ModelFamily}
	rep.StartURL = "https://" + o.Domain + discovery.Path + "?user-identifier=" + escape(o.User) + "&model-family=" + escape(o.ModelFamily)
	client := newClient(o)
	next := rep.StartURL
	seen := map[string]bool{}
	for hop := 0; ; hop++ {
		if hop >= o.MaxHops {
			rep.add(Error, fmt.Sprintf("more than %d redirects", o.MaxHops), "Point the redirect straight at Pomona's /.well-known/com.apple.remotemanagement.")
			return rep
		}
		if seen[next] {
			rep.add(Error, "redirect loop at "+next, "Check the redirect rules on both servers.")
			return rep
		}
		seen[next] = true
		h, resp, body, err := fetch(ctx, client, next, o.Timeout)
		rep.Hops = append(rep.Hops, h)
		if err != nil {
			diagnoseTransport(rep, next, err)
			return rep
		}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc := resp.Header.Get("Location")
			if loc == "" {
				rep.add(Error, fmt.Sprintf("%s answered %d without a Location header", next, resp.StatusCode), "Fix the redirect rule so it names a target.")
				return rep
			}
			cur, _ := url.Parse(next)
			target, err := cur.Parse(loc)
			if err != nil {
				rep.add(Error, fmt.Sprintf("redirect target %q is not a URL", loc), "Fix the redirect rule.")
				return rep
			}
			if target.Scheme != "https" {
				rep.add(Error, "redirect to a non-https URL: "+target.String(), "Devices only use https; redirect to Pomona's https public URL.")
				return rep
			}
			q := rawQueryValues(target.RawQuery)
			for k, v := range wantQuery {
				if got, ok := q[k]; !ok {
					rep.add(Error, fmt.Sprintf("the redirect from %s to %s dropped the query parameter %q", cur.Host, target.Host, k),
						"Apple devices do not re-add the query after a redirect. Keep it in the rule: nginx `$is_args$args` or `$request_uri`, Apache mod_rewrite without a new query, Caddy `{uri}` (see `pomona discovery snippet`).")
					return rep
				} else if got != v {
					rep.add(Error, fmt.Sprintf("the redirect changed %q from %q to %q", k, v, got),
						"Pass the query string through unchanged (a '+' must not become a space or be re-encoded differently).")
					return rep
				}
			}
			if hop == 0 {
				rep.add(OK, fmt.Sprintf("%s redirects (%d) to %s with the query string intact", o.Domain, resp.StatusCode, target.Host), "")
			}
			next = target.String()
			continue
		}
		judgeFinal(rep, o, hop, resp, body)
		return rep
	}
}

func judgeFinal(rep *Report, o Options, hops int, resp *http.Response, body []byte) {
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case resp.StatusCode == http.StatusForbidden && mt == "application/json":
		var f discovery.Failure
		if json.Unmarshal(body, &f) == nil && f.Code == discovery.FailedCode {
			rep.add(Error, fmt.Sprintf("the server refuses %s on %s: %s (shown to the person: %q)", o.User, o.ModelFamily, f.Description, f.Message),
				"If this user should enroll, make sure a tenant owns the domain ("+"`pomona tenant list`"+") and the device is an iPhone, iPad or Mac.")
			return
		}
		rep.add(Error, "403 Forbidden without a well-known.failed body", "The company web server blocks the path; allow /.well-known/ and add the redirect.")
		return
	case resp.StatusCode == http.StatusNotFound && hops == 0:
		rep.add(Error, fmt.Sprintf("%s has no redirect: it answers 404 for %s", o.Domain, discovery.Path),
			"Add the redirect on the company web server: `pomona discovery snippet nginx|apache|caddy`.")
		return
	case resp.StatusCode != http.StatusOK:
		rep.add(Error, fmt.Sprintf("%s answered %d %s", rep.Hops[len(rep.Hops)-1].URL, resp.StatusCode, http.StatusText(resp.StatusCode)),
			"The device needs 200 with the JSON document; check the redirect target and the server's logs.")
		return
	}
	if mt != "application/json" {
		rep.add(Error, fmt.Sprintf("Content-Type is %q, not application/json: the device rejects the answer", ct),
			"Serve the document as application/json (for nginx: `default_type application/json;` in that location).")
		return
	}
	var doc discovery.Response
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if err := dec.Decode(&doc); err != nil {
		rep.add(Error, "the answer is not valid JSON: "+err.Error(), "Serve the document from `pomona discovery snippet json`, or redirect to Pomona.")
		return
	}
	if err := discovery.ValidateResponse(doc); err != nil {
		rep.add(Error, "the answer is not a usable discovery document: "+err.Error(), "Redirect to Pomona, or serve `pomona discovery snippet json`.")
		return
	}
	rep.Answer = &doc
	s := doc.Servers[0]
	if len(doc.Servers) > 1 {
		rep.add(Warn, fmt.Sprintf("the answer lists %d servers; devices use only the first", len(doc.Servers)), "")
	}
	if s.Version == discovery.VersionADDE {
		rep.add(Warn, `Version is "mdm-adde" (device enrollment), not "mdm-byod" (user enrollment)`, "")
	}
	if o.ExpectBaseURL != "" && s.BaseURL != o.ExpectBaseURL {
		rep.add(Error, fmt.Sprintf("the answer points at another server: BaseURL %s, but Pomona serves this domain at %s", s.BaseURL, o.ExpectBaseURL),
			"Redirect the company domain to this Pomona server, or update the static file.")
		return
	}
	if hops == 0 {
		rep.add(OK, fmt.Sprintf("%s serves the discovery document itself (no redirect)", o.Domain), "")
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") && !strings.Contains(cc, "no-cache") {
		rep.add(Warn, "the answer may be cached (no Cache-Control: no-store); answers depend on the user", "")
	}
	rep.add(OK, fmt.Sprintf("devices are sent to %s (%s)", s.BaseURL, s.Version), "")
}

func diagnoseTransport(rep *Report, u string, err error) {
	host := u
	if pu, perr := url.Parse(u); perr == nil {
		host = pu.Host
	}
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &ua):
		rep.add(Error, "TLS: the certificate of "+host+" is not issued by a trusted authority",
			"Devices only trust public CAs before enrollment: install a certificate from a public CA (or the full chain, including intermediates).")
	case errors.As(err, &hn):
		rep.add(Error, "TLS: the certificate of "+host+" is not valid for that name: "+hn.Error(),
			"Use a certificate whose subjectAltName covers "+host+".")
	case errors.As(err, &ci):
		rep.add(Error, "TLS: the certificate of "+host+" is invalid: "+ci.Error(), "Renew the certificate.")
	case errors.As(err, &dnsErr):
		rep.add(Error, "DNS: "+host+" does not resolve: "+dnsErr.Error(), "Check the domain name and its DNS records.")
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		rep.add(Error, "timed out talking to "+host, "Check that port 443 is reachable from the internet.")
	case errors.As(err, &opErr):
		rep.add(Error, "cannot connect to "+host+": "+opErr.Error(), "Check that a web server listens on port 443 and the firewall lets devices in.")
	default:
		rep.add(Error, "request to "+u+" failed: "+err.Error(), "")
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func fetch(ctx context.Context, c *http.Client, u string, timeout time.Duration) (Hop, *http.Response, []byte, error) {
	h := Hop{URL: u}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		h.Error = err.Error()
		return h, nil, nil, err
	}
	req.Header.Set("User-Agent", "Pomona-discovery-check/1 (like DeviceManagementClient)")
	req.Header.Set("Accept", "*/*")
	resp, err := c.Do(req)
	if err != nil {
		h.Error = err.Error()
		return h, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		h.Error = err.Error()
		return h, nil, nil, err
	}
	h.Status = resp.StatusCode
	h.Location = resp.Header.Get("Location")
	h.ContentType = resp.Header.Get("Content-Type")
	return h, resp, body, nil
}

func newClient(o Options) *http.Client {
	dialer := &net.Dialer{Timeout: o.Timeout}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: o.Timeout,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := o.Resolve[addr]; ok {
				addr = to
			}
			return dialer.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// rawQueryValues decodes a query string without turning '+' into a space,
// the way Pomona (and a device) reads it.
func rawQueryValues(raw string) map[string]string {
	out := map[string]string{}
	for _, p := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(p, "=")
		k, err1 := url.PathUnescape(k)
		v, err2 := url.PathUnescape(v)
		if err1 == nil && err2 == nil && k != "" {
			if _, dup := out[k]; !dup {
				out[k] = v
			}
		}
	}
	return out
}
