package abm

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// Store is what the ABM connection needs from storage.
type Store interface {
	store.ABMStore
	Tenant(ctx context.Context, id string) (*store.Tenant, error)
}

// Sealer protects the private keys and the OAuth credentials at rest.
type Sealer interface {
	Seal(plaintext []byte, context string) []byte
	Open(sealed []byte, context string) ([]byte, error)
}

// WarnBefore is how long before a server token expires Pomona warns (start-up
// line, log, console, metric).
const WarnBefore = 30 * 24 * time.Hour

// Service holds the use cases of the ABM connection: server tokens per
// tenant (key pair, import, renewal by a new import, removal), the
// com.apple.maid answer of GetToken, and the fallback discovery
// registration with its periodic re-assertion.
type Service struct {
	Store  Store
	Sealer Sealer
	// BaseURL is Apple's device-assignment service ("" DefaultURL) or a
	// stand-in; Transport sends to it (nil: http.DefaultTransport).
	BaseURL   string
	Transport http.RoundTripper
	// DiscoveryURL is the tenant's fallback discovery endpoint, the URL
	// registered with Apple.
	DiscoveryURL func(tenantID string) string
	Now          func() time.Time
	Log          *slog.Logger
	Metrics      *metrics.ABM // optional
	// TokenAdded, when set, hears that tenantID has a usable server token
	// now (the profiles it delivered without com.apple.mdm.token are
	// re-delivered).
	TokenAdded func(ctx context.Context, tenantID string)

	mu      sync.Mutex
	clients map[string]cachedClient
}

type cachedClient struct {
	imported time.Time
	c        *Client
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func keyContext(id string) string   { return "abm/key/" + id }
func tokenContext(id string) string { return "abm/token/" + id }

// MaxNameLen bounds a server token's label.
const MaxNameLen = 100

// Create makes the key pair of a new ABM MDM server of tenantID, labelled
// name (1–100 printable characters), and stores it waiting for its server
// token. The admin uploads CertificatePEM of the result to ABM (Preferences →
// Your MDM Servers → Add/Edit → Upload Public Key) and imports the token
// ABM then offers for download.
func (s *Service) Create(ctx context.Context, tenantID, name string) (*store.ABMServerToken, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > MaxNameLen || strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return nil, problem.FieldError(problem.Invalid, "name", "the name must be 1 to %d printable characters", MaxNameLen)
	}
	t, err := s.Store.Tenant(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	kp, err := NewKeyPair(fmt.Sprintf("Pomona %s: %s", t.Name, name), now)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(kp.Key)
	if err != nil {
		return nil, err
	}
	id := newID()
	row := &store.ABMServerToken{ID: id, TenantID: t.ID, Name: name, Certificate: kp.Cert.Raw, KeySealed: s.Sealer.Seal(der, keyContext(id)),
		CreatedAt: now, UpdatedAt: now}
	if err := s.Store.CreateABMServerToken(ctx, row); err != nil {
		return nil, err
	}
	s.Log.Info("ABM server token: key pair made, waiting for the server token", "token", id, "tenant", t.ID, "name", name)
	return row, nil
}

func newID() string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "abm_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// CertificatePEM is the public-key certificate to upload to ABM.
func CertificatePEM(t *store.ABMServerToken) ([]byte, error) {
	c, err := x509.ParseCertificate(t.Certificate)
	if err != nil {
		return nil, err
	}
	return (&KeyPair{Cert: c}).CertPEM(), nil
}

// KeyPairOf returns the key pair of t (the demo hands its certificate to
// the ABM stand-in).
func (s *Service) KeyPairOf(t *store.ABMServerToken) (*KeyPair, error) { return s.keyPair(t) }

func (s *Service) keyPair(t *store.ABMServerToken) (*KeyPair, error) {
	c, err := x509.ParseCertificate(t.Certificate)
	if err != nil {
		return nil, fmt.Errorf("ABM server token %s: certificate: %w", t.ID, err)
	}
	der, err := s.Sealer.Open(t.KeySealed, keyContext(t.ID))
	if err != nil {
		return nil, fmt.Errorf("ABM server token %s: key: %w", t.ID, err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("ABM server token %s: key: %w", t.ID, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("ABM server token %s: not an RSA key", t.ID)
	}
	return &KeyPair{Cert: c, Key: rk}, nil
}

func (s *Service) tokens(t *store.ABMServerToken) (*OAuthTokens, error) {
	if !t.Imported() {
		return nil, problem.Coded(problem.Unprocessable, "abm_token_missing", "no server token imported for %s yet: upload its public-key certificate to ABM, download the token and import it", t.ID)
	}
	js, err := s.Sealer.Open(t.TokenSealed, tokenContext(t.ID))
	if err != nil {
		return nil, fmt.Errorf("ABM server token %s: %w", t.ID, err)
	}
	var o OAuthTokens
	if err := json.Unmarshal(js, &o); err != nil {
		return nil, fmt.Errorf("ABM server token %s: %w", t.ID, err)
	}
	return &o, nil
}

// client is the Apple client of an imported token, kept while the token
// stays the same (its session is reused).
func (s *Service) client(t *store.ABMServerToken) (*Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.clients[t.ID]; ok && c.imported.Equal(t.ImportedAt) {
		return c.c, nil
	}
	o, err := s.tokens(t)
	if err != nil {
		return nil, err
	}
	c := NewClient(s.BaseURL, *o, s.Transport, 0)
	if s.clients == nil {
		s.clients = map[string]cachedClient{}
	}
	s.clients[t.ID] = cachedClient{imported: t.ImportedAt, c: c}
	return c, nil
}

// Import decrypts file, the server token ABM downloaded for the key of
// token id, asks Apple's account endpoint which organisation and MDM
// server it belongs to, and stores it sealed — the first import, or a
// renewal (a newer download for the same MDM server). Refused, with what
// to do: a token encrypted to another key (code abm_token_foreign), an
// expired one (abm_token_expired), a file that is no server token
// (abm_token_invalid), one Apple refuses (abm_token_refused), one of
// another MDM server than the one imported before or imported elsewhere
// in Pomona (abm_server_mismatch, abm_server_taken); Apple unreachable
// is abm_unreachable.
func (s *Service) Import(ctx context.Context, id string, file []byte) (*store.ABMServerToken, error) {
	t, err := s.Store.ABMServerToken(ctx, id)
	if err != nil {
		return nil, err
	}
	kp, err := s.keyPair(t)
	if err != nil {
		return nil, err
	}
	now := s.now()
	o, err := DecryptServerToken(file, kp, now)
	switch {
	case errors.Is(err, ErrForeignToken):
		return nil, problem.Coded(problem.Unprocessable, "abm_token_foreign", "%s", strings.TrimPrefix(err.Error(), ErrForeignToken.Error()+": "))
	case errors.Is(err, ErrExpiredToken):
		return nil, problem.Coded(problem.Unprocessable, "abm_token_expired", "the server token %s", strings.TrimPrefix(err.Error(), ErrExpiredToken.Error()+": "))
	case err != nil:
		return nil, problem.Coded(problem.Invalid, "abm_token_invalid", "%s", err.Error())
	}
	acct, err := NewClient(s.BaseURL, *o, s.Transport, 0).Account(ctx)
	switch {
	case errors.Is(err, ErrSessionRefused):
		return nil, problem.Coded(problem.Unprocessable, "abm_token_refused", "%s", err.Error())
	case err != nil:
		return nil, problem.Wrap(problem.Unavailable, err, "cannot reach Apple's device-assignment service to check the token; try again")
	}
	if t.Imported() && t.ServerUUID != acct.ServerUUID {
		return nil, problem.Coded(problem.Conflict, "abm_server_mismatch",
			"this token belongs to the MDM server %q (%s), not to %q (%s) imported here before: add another server token for it", acct.ServerName, acct.ServerUUID, t.ServerName, t.ServerUUID)
	}
	all, err := s.Store.ABMServerTokens(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o.ID != t.ID && o.ServerUUID == acct.ServerUUID {
			return nil, problem.Coded(problem.Conflict, "abm_server_taken", "the MDM server %q (%s) is already connected as %s: renew that one instead", acct.ServerName, acct.ServerUUID, o.ID)
		}
	}
	sealed := s.Sealer.Seal(marshalTokens(o), tokenContext(t.ID))
	renewal := t.Imported()
	t, err = s.Store.UpdateABMServerToken(ctx, id, func(x *store.ABMServerToken) error {
		x.TokenSealed, x.OrgName, x.OrgID, x.ServerName, x.ServerUUID = sealed, acct.OrgName, acct.OrgID, acct.ServerName, acct.ServerUUID
		x.AccessTokenExpiry, x.ImportedAt, x.UpdatedAt = o.AccessTokenExpiry, now, now
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Log.Info("ABM server token imported", "token", t.ID, "tenant", t.TenantID, "org", t.OrgName, "server", t.ServerName,
		"server_uuid", t.ServerUUID, "expires", t.AccessTokenExpiry.Format(time.RFC3339), "renewal", renewal)
	s.setExpiryMetric(t)
	if s.TokenAdded != nil {
		s.TokenAdded(ctx, t.TenantID)
	}
	return t, nil
}

func (s *Service) setExpiryMetric(t *store.ABMServerToken) {
	if s.Metrics != nil && t.Imported() {
		s.Metrics.ServerTokenExpiry.WithLabelValues(t.ID).Set(float64(t.AccessTokenExpiry.Unix()))
	}
}

// List returns a tenant's server tokens ("" every tenant's).
func (s *Service) List(ctx context.Context, tenantID string) ([]store.ABMServerToken, error) {
	return s.Store.ABMServerTokens(ctx, tenantID)
}

// Get returns one server token.
func (s *Service) Get(ctx context.Context, id string) (*store.ABMServerToken, error) {
	return s.Store.ABMServerToken(ctx, id)
}

// Certificate is server token id's public-key certificate to upload to
// ABM (CertificatePEM) and the file name to offer it under
// (pomona-abm-<id>.pem), for the API's and the console's download.
func (s *Service) Certificate(ctx context.Context, id string) (name string, pem []byte, err error) {
	t, err := s.Store.ABMServerToken(ctx, id)
	if err != nil {
		return "", nil, err
	}
	pem, err = CertificatePEM(t)
	return "pomona-abm-" + t.ID + ".pem", pem, err
}

// Delete removes a server token; a fallback discovery URL it registered is
// removed at Apple first (a failure there is logged, the removal goes on:
// the URL keeps answering like the domain while the tenant exists).
func (s *Service) Delete(ctx context.Context, id string) error {
	t, err := s.Store.ABMServerToken(ctx, id)
	if err != nil {
		return err
	}
	if t.DiscoveryURL != "" && t.Imported() {
		if c, err := s.client(t); err == nil {
			if err := c.RemoveDiscoveryURL(ctx); err != nil && !NotRegistered(err) {
				s.Log.Warn("ABM server token removed, but its fallback discovery URL could not be removed at Apple", "token", id, "err", err)
			}
		}
	}
	if err := s.Store.DeleteABMServerToken(ctx, id); err != nil {
		return err
	}
	if s.Metrics != nil {
		s.Metrics.ServerTokenExpiry.DeleteLabelValues(id)
	}
	s.Log.Info("ABM server token removed", "token", id, "tenant", t.TenantID, "server_uuid", t.ServerUUID)
	return nil
}

// Usable reports whether t can sign GetToken answers at now: imported and
// not expired.
func Usable(t *store.ABMServerToken, now time.Time) bool {
	return t.Imported() && now.Before(t.AccessTokenExpiry)
}

// current is the tenant's server token GetToken uses: the most recently
// imported usable one (nil: none).
func (s *Service) current(ctx context.Context, tenantID string) (*store.ABMServerToken, error) {
	all, err := s.Store.ABMServerTokens(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var best *store.ABMServerToken
	for i := range all {
		if Usable(&all[i], now) && (best == nil || all[i].ImportedAt.After(best.ImportedAt)) {
			best = &all[i]
		}
	}
	return best, nil
}

// HasToken reports whether tenantID has a usable server token: its
// enrollment profiles then advertise com.apple.mdm.token.
func (s *Service) HasToken(ctx context.Context, tenantID string) (bool, error) {
	t, err := s.current(ctx, tenantID)
	return t != nil, err
}

// GetToken answers a GetToken check-in of enrollment e (Apple: "Get
// Token"): for TokenServiceType com.apple.maid the TokenData is a fresh
// MAIDToken signed with the tenant's current server token (iss its
// server_uuid). Another service type is refused (problem.Invalid, code
// unsupported_token_service_type: 400, as Apple documents for a type the
// server does not support), and so is com.apple.maid without a usable
// server token (code no_server_token). Each answer is logged and counted.
func (s *Service) GetToken(ctx context.Context, e *store.Enrollment, serviceType string) ([]byte, error) {
	label := "other"
	if serviceType == ServiceTypeMAID {
		label = ServiceTypeMAID
	}
	count := func(result string) {
		if s.Metrics != nil {
			s.Metrics.GetToken.WithLabelValues(label, result).Inc()
		}
	}
	if serviceType != ServiceTypeMAID {
		count("unsupported")
		s.Log.Info("GetToken refused: unsupported service type", "device", e.ID, "tenant", e.TenantID, "service_type", quoteShort(serviceType))
		return nil, problem.Coded(problem.Invalid, "unsupported_token_service_type", "unsupported TokenServiceType %s", quoteShort(serviceType))
	}
	t, err := s.current(ctx, e.TenantID)
	if err != nil {
		count("error")
		return nil, err
	}
	if t == nil {
		count("no-server-token")
		s.Log.Warn("GetToken com.apple.maid refused: the tenant has no usable ABM server token (a device under \"Managed devices only\" unenrolls itself)", "device", e.ID, "tenant", e.TenantID)
		return nil, problem.Coded(problem.Invalid, "no_server_token", "no Apple Business Manager server token for this organisation: unsupported TokenServiceType %s", serviceType)
	}
	kp, err := s.keyPair(t)
	if err != nil {
		count("error")
		return nil, err
	}
	tok, jti, err := MAIDToken(kp.Key, t.ServerUUID, s.now())
	if err != nil {
		count("error")
		return nil, err
	}
	count("ok")
	s.Log.Info("GetToken answered", "device", e.ID, "tenant", e.TenantID, "service_type", serviceType, "abm_token", t.ID, "server_uuid", t.ServerUUID, "jti", jti)
	return []byte(tok), nil
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// DiscoveryStatus is Apple's record of a server's fallback discovery URL.
type DiscoveryStatus struct {
	// Registered is what Apple has (nil: nothing registered).
	Registered *DiscoveryProfile
	// Want is the tenant's discovery endpoint Pomona registers.
	Want string
}

func (s *Service) usable(ctx context.Context, id string) (*store.ABMServerToken, *Client, error) {
	t, err := s.Store.ABMServerToken(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if !t.Imported() {
		return nil, nil, problem.Coded(problem.Unprocessable, "abm_token_missing", "no server token imported for %s yet", id)
	}
	if !Usable(t, s.now()) {
		return nil, nil, problem.Coded(problem.Unprocessable, "abm_token_expired", "the server token of %s expired on %s: import a new one", id, t.AccessTokenExpiry.Format("2006-01-02"))
	}
	c, err := s.client(t)
	return t, c, err
}

// apple turns an error of Apple's service into a problem with its code
// and plain words.
func apple(err error) error {
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusTooManyRequests:
		code := "abm_refused"
		if ae.Code != "" {
			code = strings.ToLower(ae.Code)
		}
		msg := Explain(ae.Code, ae.Status)
		if msg == "" {
			msg = ae.Error()
		}
		return problem.Coded(problem.Unprocessable, code, "%s", msg)
	case errors.Is(err, ErrSessionRefused):
		return problem.Coded(problem.Unprocessable, "abm_token_refused", "%s", err.Error())
	case err != nil:
		return problem.Wrap(problem.Unavailable, err, "Apple's device-assignment service did not answer; try again later")
	}
	return nil
}

func (s *Service) countDiscovery(op string, err error) {
	if s.Metrics == nil {
		return
	}
	result := "ok"
	var ae *APIError
	switch {
	case errors.As(err, &ae) && ae.Code != "":
		result = ae.Code
	case err != nil:
		result = "error"
	}
	s.Metrics.Discovery.WithLabelValues(op, result).Inc()
}

// RegisterDiscovery registers the tenant's fallback discovery endpoint
// with Apple for server token id (Apple: "Assign Account-Driven Enrollment
// Profile"), and records it so the periodic re-assertion keeps it.
// Apple's refusals come back in plain words (ORG_NOT_SUPPORTED,
// MDM_SERVICE_DISCOVERY_URL_NOT_VALID) as problem.Unprocessable with the
// code lower-cased.
func (s *Service) RegisterDiscovery(ctx context.Context, id string) (*store.ABMServerToken, error) {
	t, c, err := s.usable(ctx, id)
	if err != nil {
		return nil, err
	}
	want := s.DiscoveryURL(t.TenantID)
	err = c.SetDiscoveryURL(ctx, want)
	s.countDiscovery("register", err)
	now := s.now()
	t, uerr := s.Store.UpdateABMServerToken(ctx, id, func(x *store.ABMServerToken) error {
		x.UpdatedAt = now
		if err != nil {
			x.DiscoveryError = errText(err)
			return nil
		}
		x.DiscoveryURL, x.DiscoveryAssertedAt, x.DiscoveryError = want, now, ""
		return nil
	})
	if err != nil {
		s.Log.Warn("fallback discovery: Apple refused the registration", "token", id, "url", want, "err", err)
		return nil, apple(err)
	}
	if uerr != nil {
		return nil, uerr
	}
	s.Log.Info("fallback discovery URL registered with Apple", "token", id, "tenant", t.TenantID, "server_uuid", t.ServerUUID, "url", want)
	return t, nil
}

func errText(err error) string {
	var ae *APIError
	if errors.As(err, &ae) {
		if w := Explain(ae.Code, ae.Status); w != "" {
			if ae.Code != "" {
				return ae.Code + ": " + w
			}
			return w
		}
	}
	return err.Error()
}

// ShowDiscovery asks Apple what is registered for server token id.
func (s *Service) ShowDiscovery(ctx context.Context, id string) (*DiscoveryStatus, error) {
	t, c, err := s.usable(ctx, id)
	if err != nil {
		return nil, err
	}
	st := &DiscoveryStatus{Want: s.DiscoveryURL(t.TenantID)}
	p, err := c.DiscoveryURL(ctx)
	if NotRegistered(err) {
		return st, nil
	}
	if err != nil {
		return nil, apple(err)
	}
	st.Registered = p
	return st, nil
}

// RemoveDiscovery removes the registration at Apple (nothing registered
// counts as done) and stops its re-assertion.
func (s *Service) RemoveDiscovery(ctx context.Context, id string) (*store.ABMServerToken, error) {
	_, c, err := s.usable(ctx, id)
	if err != nil {
		return nil, err
	}
	err = c.RemoveDiscoveryURL(ctx)
	s.countDiscovery("remove", err)
	if err != nil && !NotRegistered(err) {
		return nil, apple(err)
	}
	now := s.now()
	t, err := s.Store.UpdateABMServerToken(ctx, id, func(x *store.ABMServerToken) error {
		x.DiscoveryURL, x.DiscoveryAssertedAt, x.DiscoveryError, x.UpdatedAt = "", time.Time{}, "", now
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Log.Info("fallback discovery URL removed at Apple", "token", id, "tenant", t.TenantID)
	return t, nil
}

// Reassert registers again every fallback discovery URL Pomona registered
// (idempotent at Apple; it also follows a changed public URL), recording
// each result. The server runs it periodically on one instance of a
// cluster. It returns how many were asserted.
func (s *Service) Reassert(ctx context.Context) (int, error) {
	all, err := s.Store.ABMServerTokens(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range all {
		if t.DiscoveryURL == "" || !Usable(&t, s.now()) {
			continue
		}
		c, err := s.client(&t)
		if err != nil {
			return n, err
		}
		want := s.DiscoveryURL(t.TenantID)
		err = c.SetDiscoveryURL(ctx, want)
		s.countDiscovery("reassert", err)
		now := s.now()
		if _, uerr := s.Store.UpdateABMServerToken(ctx, t.ID, func(x *store.ABMServerToken) error {
			if err != nil {
				x.DiscoveryError = errText(err)
			} else {
				x.DiscoveryURL, x.DiscoveryAssertedAt, x.DiscoveryError = want, now, ""
			}
			return nil
		}); uerr != nil && !errors.Is(uerr, store.ErrNotFound) {
			return n, uerr
		}
		if err != nil {
			s.Log.Warn("fallback discovery: re-assertion failed", "token", t.ID, "url", want, "err", errText(err))
			continue
		}
		n++
	}
	return n, nil
}

// Problems lists what an operator should know about server tokens at now:
// expired ones, ones expiring within WarnBefore, ones still waiting for
// their token, and failed discovery registrations.
func Problems(all []store.ABMServerToken, now time.Time) []string {
	var out []string
	for _, t := range all {
		name := fmt.Sprintf("%s (%s)", t.Name, t.ID)
		switch left := t.AccessTokenExpiry.Sub(now); {
		case !t.Imported():
			out = append(out, fmt.Sprintf("ABM server token %s has no token yet: upload its public key to ABM, download the token, then pomona abm token import %s <file.p7m>", name, t.ID))
		case left <= 0:
			out = append(out, fmt.Sprintf("ABM server token %s expired on %s: GetToken and fallback discovery stop working. Download a new token in ABM and import it: pomona abm token import %s <file.p7m>", name, t.AccessTokenExpiry.Format("2006-01-02"), t.ID))
		case left < WarnBefore:
			out = append(out, fmt.Sprintf("ABM server token %s expires in %d days (%s): download a new token in ABM and import it: pomona abm token import %s <file.p7m>", name, int(left.Hours()/24), t.AccessTokenExpiry.Format("2006-01-02"), t.ID))
		}
		if t.DiscoveryError != "" {
			out = append(out, fmt.Sprintf("ABM server token %s: the fallback discovery registration failed: %s", name, t.DiscoveryError))
		}
	}
	return out
}

// Refresh keeps the expiry metric of every token current (tokens imported
// on another instance included) and returns the Problems at now.
func (s *Service) Refresh(ctx context.Context) ([]string, error) {
	all, err := s.Store.ABMServerTokens(ctx, "")
	if err != nil {
		return nil, err
	}
	if s.Metrics != nil {
		s.Metrics.ServerTokenExpiry.Reset()
		for i := range all {
			s.setExpiryMetric(&all[i])
		}
	}
	return Problems(all, s.now()), nil
}
