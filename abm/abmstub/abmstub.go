// Package abmstub is a local stand-in for the parts of Apple Business
// Manager that Pomona uses, for tests, `serve --demo` and `pomona sim`:
//
//   - the portal: an organisation with MDM servers, where the admin
//     uploads a public-key certificate and downloads the server token
//     (Token: an S/MIME .p7m encrypted to that certificate, holding fresh
//     OAuth credentials; a new download replaces the old credentials, as
//     in ABM);
//   - the device-assignment web service (Handler): GET /session checking
//     the OAuth 1.0a HMAC-SHA1 signature, timestamp, nonce and token
//     expiry; GET /account; GET/POST/DELETE
//     /account-driven-enrollment/profile with Apple's error codes
//     (MDM_SERVICE_DISCOVERY_URL_REQUIRED, MDM_SERVICE_DISCOVERY_URL_NOT_VALID,
//     ORG_NOT_SUPPORTED, NOT_FOUND); sessions that end (401 UNAUTHORIZED);
//     injected 5xx failures;
//   - Apple's fallback discovery (GET /.well-known/com.apple.remotemanagement):
//     the user's domain names the organisation, which redirects to the URL
//     its MDM server registered, keeping the query (iOS 18.2+, macOS 15.2+).
//
// It keeps everything in memory and is never used with real devices.
package abmstub

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/abm"
)

// Org is an organisation in the stand-in.
type Org struct {
	Name string
	ID   string
	// Domains are its verified domains (Managed Apple Accounts), used by
	// fallback discovery.
	Domains []string
	// NoFallbackDiscovery makes the profile endpoint answer
	// ORG_NOT_SUPPORTED, as for an organisation without the feature.
	NoFallbackDiscovery bool
	// TermsPending makes /session answer 403 T_C_NOT_SIGNED.
	TermsPending bool
}

// Server is one MDM server of an organisation.
type Server struct {
	Org          *Org
	Name         string
	UUID         string
	Cert         *x509.Certificate // the uploaded public-key certificate
	Tokens       abm.OAuthTokens   // the current credentials
	DiscoveryURL string
	Updated      time.Time
}

// Stub is the stand-in.
type Stub struct {
	// Now is its clock (nil: time.Now).
	Now func() time.Time
	// SessionTTL is how long a session lasts (default 30 minutes).
	SessionTTL time.Duration

	mu       sync.Mutex
	servers  map[string]*Server // by UUID
	byKey    map[string]*Server // by consumer key
	sessions map[string]session
	nonces   map[string]time.Time
	fail     []int // statuses to answer next, in order
	calls    map[string]int
}

type session struct {
	server  *Server
	expires time.Time
}

// New returns an empty stand-in.
func New() *Stub {
	return &Stub{servers: map[string]*Server{}, byKey: map[string]*Server{}, sessions: map[string]session{},
		nonces: map[string]time.Time{}, calls: map[string]int{}}
}

func (s *Stub) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// AddServer creates an MDM server of org named name (the portal's "Add MDM
// Server") and returns its UUID.
func (s *Stub) AddServer(org *Org, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := randomUUID()
	s.servers[u] = &Server{Org: org, Name: name, UUID: u}
	return u
}

// Token is the portal's "upload public key" then "Download Token": it
// records cert for the server, makes fresh OAuth credentials valid until
// expiry (the previous ones stop working) and returns the .p7m file —
// an S/MIME message encrypted to cert whose content holds the credentials'
// JSON between -----BEGIN MESSAGE----- lines, as ABM's.
func (s *Stub) Token(serverUUID string, cert *x509.Certificate, expiry time.Time) ([]byte, error) {
	s.mu.Lock()
	srv, ok := s.servers[serverUUID]
	if !ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("abmstub: no MDM server %s", serverUUID)
	}
	delete(s.byKey, srv.Tokens.ConsumerKey)
	srv.Cert = cert
	srv.Tokens = abm.OAuthTokens{ConsumerKey: "CK_" + randomHex(24), ConsumerSecret: "CS_" + randomHex(20),
		AccessToken: "AT_O" + randomHex(20), AccessSecret: "AS_" + randomHex(20), AccessTokenExpiry: expiry.UTC().Truncate(time.Second)}
	s.byKey[srv.Tokens.ConsumerKey] = srv
	tokens := srv.Tokens
	s.mu.Unlock()
	return SMIME(tokens, cert)
}

// SMIME builds a server-token file for tokens encrypted to cert.
func SMIME(tokens abm.OAuthTokens, cert *x509.Certificate) ([]byte, error) {
	js, err := json.Marshal(tokens)
	if err != nil {
		return nil, err
	}
	inner := "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n-----BEGIN MESSAGE-----\n" + string(js) + "\n-----END MESSAGE-----\n"
	der, err := pkcs7.Encrypt([]byte(inner), []*x509.Certificate{cert})
	if err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding.EncodeToString(der)
	var body strings.Builder
	for len(b64) > 76 {
		body.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	body.WriteString(b64 + "\r\n")
	return []byte("Content-Type: application/pkcs7-mime; name=\"smime.p7m\"; smime-type=enveloped-data\r\n" +
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n" +
		"Content-Description: S/MIME Encrypted Message\r\n\r\n" + body.String()), nil
}

// Server returns a copy of an MDM server's state (nil: unknown).
func (s *Stub) Server(serverUUID string) *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, ok := s.servers[serverUUID]
	if !ok {
		return nil
	}
	c := *srv
	return &c
}

// Certificate is the public-key certificate uploaded for serverUUID: what
// Apple checks a com.apple.maid token's signature with.
func (s *Stub) Certificate(serverUUID string) (*x509.Certificate, error) {
	srv := s.Server(serverUUID)
	if srv == nil || srv.Cert == nil {
		return nil, fmt.Errorf("abmstub: no public key uploaded for MDM server %q", serverUUID)
	}
	return srv.Cert, nil
}

// Update changes an organisation's or server's settings (fields of Org
// or Server values the stand-in handed out) while it serves: fn runs
// under the stand-in's lock.
func (s *Stub) Update(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn()
}

// EndSessions ends every session (the next call gets 401 and the client
// must authenticate again).
func (s *Stub) EndSessions() {
	s.mu.Lock()
	s.sessions = map[string]session{}
	s.mu.Unlock()
}

// FailNext makes the next len(statuses) calls of the web service answer
// those statuses (a 503 with Retry-After: 0) before doing anything.
func (s *Stub) FailNext(statuses ...int) {
	s.mu.Lock()
	s.fail = append(s.fail, statuses...)
	s.mu.Unlock()
}

// Calls is how many requests reached each "METHOD path" (failed ones too).
func (s *Stub) Calls(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[key]
}

// Handler serves the web service and fallback discovery.
func (s *Stub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+abm.PathSession, s.session)
	mux.HandleFunc("GET "+abm.PathAccount, s.authed(s.account))
	mux.HandleFunc(abm.PathDiscoveryProfile, s.authed(s.profile))
	mux.HandleFunc("GET /.well-known/com.apple.remotemanagement", s.fallback)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls[r.Method+" "+r.URL.Path]++
		var st int
		if len(s.fail) > 0 && r.URL.Path != "/.well-known/com.apple.remotemanagement" {
			st, s.fail = s.fail[0], s.fail[1:]
		}
		s.mu.Unlock()
		if st != 0 {
			w.Header().Set("Retry-After", "0")
			code(w, st, "SERVICE_UNAVAILABLE")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// code answers Apple's way: the error code as a quoted JSON string.
func code(w http.ResponseWriter, status int, c string) {
	w.Header().Set("Content-Type", abm.ContentType)
	w.WriteHeader(status)
	fmt.Fprintf(w, "%q\n", c)
}

func (s *Stub) session(w http.ResponseWriter, r *http.Request) {
	p, err := abm.ParseOAuthAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		code(w, http.StatusBadRequest, "BAD_REQUEST")
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	srv := s.byKey[p["oauth_consumer_key"]]
	if srv == nil || p["oauth_token"] != srv.Tokens.AccessToken || p["oauth_signature_method"] != "HMAC-SHA1" || p["oauth_version"] != "1.0" {
		code(w, http.StatusUnauthorized, "UNAUTHORIZED")
		return
	}
	ts, err := strconv.ParseInt(p["oauth_timestamp"], 10, 64)
	if err != nil || now.Sub(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		code(w, http.StatusUnauthorized, "UNAUTHORIZED")
		return
	}
	// The URL the client signed: the one it asked for, as seen here.
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	want, err := abm.OAuthSignature(r.Method, scheme+"://"+r.Host+r.URL.RequestURI(), p, srv.Tokens.ConsumerSecret, srv.Tokens.AccessSecret)
	if err != nil || want != p["oauth_signature"] {
		code(w, http.StatusUnauthorized, "UNAUTHORIZED")
		return
	}
	nonceKey := p["oauth_consumer_key"] + " " + p["oauth_nonce"]
	if _, used := s.nonces[nonceKey]; used || p["oauth_nonce"] == "" {
		code(w, http.StatusUnauthorized, "UNAUTHORIZED")
		return
	}
	s.nonces[nonceKey] = now
	if !now.Before(srv.Tokens.AccessTokenExpiry) {
		code(w, http.StatusUnauthorized, "UNAUTHORIZED")
		return
	}
	if srv.Org.TermsPending {
		code(w, http.StatusForbidden, "T_C_NOT_SIGNED")
		return
	}
	ttl := s.SessionTTL
	if ttl <= 0 {
		ttl = 30 * time.Minute
	}
	tok := randomHex(32)
	s.sessions[tok] = session{server: srv, expires: now.Add(ttl)}
	w.Header().Set("Content-Type", abm.ContentType)
	json.NewEncoder(w).Encode(map[string]string{"auth_session_token": tok})
}

func (s *Stub) authed(next func(http.ResponseWriter, *http.Request, *Server)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		ses, ok := s.sessions[r.Header.Get(abm.HeaderSession)]
		if ok && !s.now().Before(ses.expires) {
			delete(s.sessions, r.Header.Get(abm.HeaderSession))
			ok = false
		}
		// A session of superseded credentials ends with them.
		if ok && s.byKey[ses.server.Tokens.ConsumerKey] != ses.server {
			ok = false
		}
		s.mu.Unlock()
		if !ok {
			code(w, http.StatusUnauthorized, "UNAUTHORIZED")
			return
		}
		if r.Header.Get(abm.HeaderProtocolVersion) == "" {
			code(w, http.StatusBadRequest, "X_SERVER_PROTOCOL_VERSION_REQUIRED")
			return
		}
		next(w, r, ses.server)
	}
}

func (s *Stub) account(w http.ResponseWriter, r *http.Request, srv *Server) {
	s.mu.Lock()
	a := map[string]any{"server_name": srv.Name, "server_uuid": srv.UUID, "admin_id": "admin@" + firstDomain(srv.Org), "facilitator_id": "admin@" + firstDomain(srv.Org),
		"org_name": srv.Org.Name, "org_email": "it@" + firstDomain(srv.Org), "org_phone": "+1 555 0100", "org_address": "1 Example Way",
		"org_id": srv.Org.ID, "org_id_hash": hex.EncodeToString([]byte(srv.Org.ID)), "org_type": "org", "org_version": "v1",
		"urls": []map[string]any{
			{"uri": abm.PathAccount, "http_method": []string{"GET"}},
			{"uri": abm.PathDiscoveryProfile, "http_method": []string{"DELETE", "POST", "GET"}},
		}}
	s.mu.Unlock()
	w.Header().Set("Content-Type", abm.ContentType)
	json.NewEncoder(w).Encode(a)
}

func firstDomain(o *Org) string {
	if len(o.Domains) > 0 {
		return o.Domains[0]
	}
	return "example.com"
}

func (s *Stub) profile(w http.ResponseWriter, r *http.Request, srv *Server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if srv.Org.NoFallbackDiscovery {
		code(w, http.StatusBadRequest, "ORG_NOT_SUPPORTED")
		return
	}
	switch r.Method {
	case http.MethodGet:
		if srv.DiscoveryURL == "" {
			code(w, http.StatusNotFound, "NOT_FOUND")
			return
		}
		w.Header().Set("Content-Type", abm.ContentType)
		json.NewEncoder(w).Encode(map[string]string{"mdm_service_discovery_url": srv.DiscoveryURL,
			"last_updated_timestamp": srv.Updated.UTC().Format(time.RFC3339)})
	case http.MethodPost:
		var in struct {
			URL *string `json:"mdm_service_discovery_url"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&in); err != nil {
			code(w, http.StatusBadRequest, "MALFORMED_REQUEST_BODY")
			return
		}
		if in.URL == nil || *in.URL == "" {
			code(w, http.StatusBadRequest, "MDM_SERVICE_DISCOVERY_URL_REQUIRED")
			return
		}
		u, err := url.Parse(*in.URL)
		if err != nil || u.Scheme != "https" || u.Host == "" || len(*in.URL) > 2048 {
			code(w, http.StatusBadRequest, "MDM_SERVICE_DISCOVERY_URL_NOT_VALID")
			return
		}
		srv.DiscoveryURL, srv.Updated = *in.URL, s.now()
		w.Header().Set("Content-Type", abm.ContentType)
		io.WriteString(w, "{}\n")
	case http.MethodDelete:
		srv.DiscoveryURL, srv.Updated = "", s.now()
		w.Header().Set("Content-Type", abm.ContentType)
		io.WriteString(w, "{}\n")
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		code(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	}
}

// fallback is Apple's fallback discovery: the organisation owning the
// user's domain sends the device to its registered URL with the same
// query; otherwise the device is told no server is known.
func (s *Stub) fallback(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user-identifier")
	_, domain, _ := strings.Cut(strings.ToLower(user), "@")
	s.mu.Lock()
	var target string
	for _, srv := range s.servers {
		for _, d := range srv.Org.Domains {
			if d == domain && srv.DiscoveryURL != "" && !srv.Org.NoFallbackDiscovery {
				target = srv.DiscoveryURL
			}
		}
	}
	s.mu.Unlock()
	if target == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"code":"com.apple.well-known.failed","description":"no MDM service discovery URL for this account"}`+"\n")
		return
	}
	sep := "?"
	if strings.Contains(target, "?") {
		sep = "&"
	}
	http.Redirect(w, r, target+sep+r.URL.RawQuery, http.StatusFound)
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%X-%X-%X-%X-%X", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
