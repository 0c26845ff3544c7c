// Package devicesim is a simulated iPhone, iPad or Mac that performs
// account-driven user enrollment the way Apple's client does, over real
// HTTP: service discovery, the first POST with a CMS-signed machine-info
// plist, the 401 apple-as-web challenge, the web sign-in (HTML forms,
// cookies, CSRF fields, TOTP codes or first-time TOTP setup), the 308
// callback, the profile fetch and its checks, and SCEP.
//
// Every step is a method a Go test can call on its own; Enroll runs them
// all. Each step returns an error that says what was wrong, the way
// `pomona discovery check` does.
//
// Apple: https://developer.apple.com/documentation/devicemanagement/onboarding-users-with-account-driven-enrollment
// and https://developer.apple.com/documentation/devicemanagement/implementing-the-simple-authentication-account-driven-enrollment-flow;
// check-in https://developer.apple.com/documentation/devicemanagement/check-in; commands
// https://developer.apple.com/documentation/devicemanagement/sending-mdm-commands-to-a-device;
// SCEP RFC 8894.
package devicesim

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"
)

// Device is one simulated device and what it has learned so far.
type Device struct {
	ModelFamily string // iPhone, iPad or Mac
	Product     string // e.g. iPhone15,3
	Build       string
	OSVersion   string
	Language    string
	UserAgent   string

	// HTTP is used for every request; its jar holds the sign-in cookies.
	HTTP *http.Client
	// Now is the device clock (TOTP codes).
	Now func() time.Time

	// deviceCert/deviceKey stand in for the device's built-in identity that
	// signs the machine info (not Apple's: the server treats it as advisory).
	deviceCert *x509.Certificate
	deviceKey  *ecdsa.PrivateKey

	// Learned during enrollment.
	BaseURL      string
	LoginURL     string
	AccessToken  string
	TOTPSecret   []byte
	lastTOTPStep int64
	ProfileRaw   []byte
	Profile      *ProfileInfo
	IdentityKey  *rsa.PrivateKey
	IdentityCert *x509.Certificate
	SCEPCACerts  []*x509.Certificate
	MDM          MDMState
	// Unenrolled says why the device removed its enrollment by itself
	// ("" while enrolled).
	Unenrolled string

	// cfg holds the configuration profiles installed over MDM.
	cfg configProfiles

	// ReuseSignatures lets the load generator (pomona bench) send an Idle
	// poll with the signature of the device's previous, byte-identical
	// Idle (see signature). Off by default: a device signs every request.
	ReuseSignatures bool
	sigMu           sync.Mutex // lastSig, signed
	lastSig         struct {
		cert   *x509.Certificate
		body   []byte
		header string
		at     time.Time
	}
	signed int // signatures made (tests)

	resolveMu sync.Mutex
	resolve   map[string]string
}

// SetResolve changes where host:port names connect (a test playing a load
// balancer); open connections are dropped.
func (d *Device) SetResolve(m map[string]string) {
	d.resolveMu.Lock()
	d.resolve = m
	d.resolveMu.Unlock()
	d.HTTP.CloseIdleConnections()
}

// Options configure a new Device.
type Options struct {
	ModelFamily string // default iPhone
	// RootCAs are trusted for TLS (nil: the system roots).
	RootCAs *x509.CertPool
	// Resolve maps host:port to another address (tests, local stand-ins).
	Resolve map[string]string
}

// New returns a device of the given family with a fresh device identity.
func New(o Options) (*Device, error) {
	d := &Device{ModelFamily: o.ModelFamily, Language: "en-US", Now: time.Now, resolve: o.Resolve}
	switch d.ModelFamily {
	case "", "iPhone":
		d.ModelFamily, d.Product, d.Build, d.OSVersion = "iPhone", "iPhone15,3", "22C152", "18.2"
		d.UserAgent = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1"
	case "iPad":
		d.Product, d.Build, d.OSVersion = "iPad13,4", "22C152", "18.2"
		d.UserAgent = "Mozilla/5.0 (iPad; CPU OS 18_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Mobile/15E148 Safari/604.1"
	case "Mac":
		d.Product, d.Build, d.OSVersion = "Mac14,2", "24C101", "15.2"
		d.UserAgent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.2 Safari/605.1.15"
	default:
		return nil, fmt.Errorf("devicesim: unknown model family %q (iPhone, iPad or Mac)", o.ModelFamily)
	}
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d.resolveMu.Lock()
			to, ok := d.resolve[addr]
			d.resolveMu.Unlock()
			if ok {
				addr = to
			}
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 4,
	}
	d.HTTP = &http.Client{Transport: tr, Jar: jar, Timeout: 90 * time.Second,
		// Redirects are followed by hand: discovery must see each hop, and
		// the sign-in ends in a redirect to Apple's callback scheme.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: strings.ToUpper(randomHex(16)), Organization: []string{"Pomona device simulator"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	d.deviceCert, _ = x509.ParseCertificate(der)
	d.deviceKey = key
	return d, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// Close releases idle connections.
func (d *Device) Close() { d.HTTP.CloseIdleConnections() }

// StepError says which step failed and what the device saw.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

func stepErr(step string, format string, args ...any) error {
	return &StepError{Step: step, Err: fmt.Errorf(format, args...)}
}

func (d *Device) do(ctx context.Context, method, u string, body []byte, hdr map[string]string) (*http.Response, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := d.HTTP.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return resp, b, err
}

// --- discovery ---

// Discover asks https://<domain>/.well-known/com.apple.remotemanagement
// (domainURL may carry another scheme/port for tests) for user, following
// redirects without re-adding the query, as the device does.
func (d *Device) Discover(ctx context.Context, domainURL, user string) (string, error) {
	const step = "discovery"
	next := strings.TrimRight(domainURL, "/") + "/.well-known/com.apple.remotemanagement?user-identifier=" +
		strings.ReplaceAll(url.QueryEscape(user), "%40", "@") + "&model-family=" + d.ModelFamily
	for hop := 0; hop < 10; hop++ {
		resp, body, err := d.do(ctx, http.MethodGet, next, nil, map[string]string{"User-Agent": "DeviceManagementClient/1.0", "Accept": "*/*"})
		if err != nil {
			return "", stepErr(step, "GET %s: %v", next, err)
		}
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			loc, err := resp.Location()
			if err != nil {
				return "", stepErr(step, "redirect without a usable Location from %s", next)
			}
			next = loc.String()
			continue
		}
		ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if resp.StatusCode == http.StatusForbidden {
			var f struct{ Code, Description, Message string }
			json.Unmarshal(body, &f)
			return "", stepErr(step, "refused (%s): %s — the device would show: %q", f.Code, f.Description, f.Message)
		}
		if resp.StatusCode != http.StatusOK {
			return "", stepErr(step, "%s answered %d", next, resp.StatusCode)
		}
		if ct != "application/json" {
			return "", stepErr(step, "Content-Type %q is not application/json: the device rejects it", resp.Header.Get("Content-Type"))
		}
		var doc struct {
			Servers []struct{ Version, BaseURL string }
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			return "", stepErr(step, "bad JSON: %v", err)
		}
		if len(doc.Servers) == 0 || doc.Servers[0].Version != "mdm-byod" || !strings.HasPrefix(doc.Servers[0].BaseURL, "https://") {
			return "", stepErr(step, "unusable answer %s", body)
		}
		d.BaseURL = doc.Servers[0].BaseURL
		return d.BaseURL, nil
	}
	return "", stepErr(step, "too many redirects")
}

// --- enrollment POST ---

// MachineInfo returns the CMS-signed plist the device posts to the BaseURL.
func (d *Device) MachineInfo() ([]byte, error) {
	info := map[string]any{"LANGUAGE": d.Language, "PRODUCT": d.Product, "VERSION": d.Build, "OS_VERSION": d.OSVersion}
	content, err := plist.MarshalIndent(info, "\t")
	if err != nil {
		return nil, err
	}
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, err
	}
	if err := sd.AddSigner(d.deviceCert, d.deviceKey, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, err
	}
	return sd.Finish()
}

var challengeParam = regexp.MustCompile(`([A-Za-z-]+)="([^"]*)"|([A-Za-z-]+)=([^\s,"]+)`)

// ParseChallenge reads a WWW-Authenticate value (RFC 9110 §11.6.1) the way
// Apple's client does: the Bearer scheme (case-sensitive) then name=value
// pairs, commas optional. It fails only when the scheme is not Bearer.
func ParseChallenge(h string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(h), "Bearer ")
	if !ok {
		return nil, errors.New("not a Bearer challenge")
	}
	out := map[string]string{}
	for _, m := range challengeParam.FindAllStringSubmatch(rest, -1) {
		if m[1] != "" {
			out[m[1]] = m[2]
		} else {
			out[m[3]] = m[4]
		}
	}
	return out, nil
}

// FirstPost sends the unauthenticated enrollment POST and returns the
// sign-in URL from the 401 challenge.
func (d *Device) FirstPost(ctx context.Context) (string, error) {
	const step = "enrollment challenge"
	body, err := d.MachineInfo()
	if err != nil {
		return "", stepErr(step, "%v", err)
	}
	resp, b, err := d.do(ctx, http.MethodPost, d.BaseURL, body, map[string]string{"Content-Type": "application/pkcs7-signature", "User-Agent": "DeviceManagementClient/1.0"})
	if err != nil {
		return "", stepErr(step, "POST %s: %v", d.BaseURL, err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		return "", stepErr(step, "the first POST must answer 401, got %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	params, err := ParseChallenge(resp.Header.Get("WWW-Authenticate"))
	if err != nil {
		return "", stepErr(step, "WWW-Authenticate %q: %v", resp.Header.Get("WWW-Authenticate"), err)
	}
	if params["method"] != "apple-as-web" || params["url"] == "" {
		return "", stepErr(step, "challenge without method=apple-as-web and url: %q", resp.Header.Get("WWW-Authenticate"))
	}
	d.LoginURL = params["url"]
	return d.LoginURL, nil
}

// FetchProfile repeats the POST with the access token and returns the profile.
func (d *Device) FetchProfile(ctx context.Context) ([]byte, error) {
	const step = "profile"
	body, err := d.MachineInfo()
	if err != nil {
		return nil, stepErr(step, "%v", err)
	}
	resp, b, err := d.do(ctx, http.MethodPost, d.BaseURL, body, map[string]string{
		"Content-Type": "application/pkcs7-signature", "User-Agent": "DeviceManagementClient/1.0", "Authorization": "Bearer " + d.AccessToken})
	if err != nil {
		return nil, stepErr(step, "POST %s: %v", d.BaseURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, stepErr(step, "expected 200 with the profile, got %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-apple-aspen-config" {
		return nil, stepErr(step, "Content-Type %q, want application/x-apple-aspen-config", ct)
	}
	if len(b) == 0 {
		return nil, stepErr(step, "empty profile")
	}
	d.ProfileRaw = b
	return b, nil
}
