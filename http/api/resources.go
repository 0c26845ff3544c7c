package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/apikey"
	"github.com/pomona-mdm/pomona/branding"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/discovery"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/store"
)

// Tenant is the API form of a tenant.
type Tenant struct {
	ID                  string    `json:"id"`
	Name                string    `json:"name"`
	Domains             []string  `json:"domains"`
	RequireSecondFactor bool      `json:"require_second_factor"`
	EnrollmentURL       string    `json:"enrollment_url"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
	// Branding of the device sign-in pages; "" when not set.
	AccentColor string `json:"accent_color"`
	Contact     string `json:"contact"`
	PrivacyURL  string `json:"privacy_url"`
	LogoURL     string `json:"logo_url,omitempty"` // public URL of the logo; absent without one
}

// User is the API form of a user. Secrets never leave the server.
type User struct {
	ID             string     `json:"id"`
	TenantID       string     `json:"tenant_id"`
	Email          string     `json:"email"`
	ManagedAppleID string     `json:"managed_apple_id"`
	Name           string     `json:"name"`
	Enabled        bool       `json:"enabled"`
	PasswordSet    bool       `json:"password_set"`
	SecondFactor   string     `json:"second_factor"` // none, pending, active
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	LastSignInAt   *time.Time `json:"last_sign_in_at,omitempty"`
}

// APIKey is the API form of an admin key; Key is only set on creation.
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Key        string     `json:"key,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

func opt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (a *API) tenant(t *store.Tenant) Tenant {
	d := t.Domains
	if d == nil {
		d = []string{}
	}
	out := Tenant{ID: t.ID, Name: t.Name, Domains: d, RequireSecondFactor: t.RequireSecondFactor,
		EnrollmentURL: a.EnrollURL(t.ID), CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		AccentColor: t.AccentColor, Contact: t.Contact, PrivacyURL: t.PrivacyURL}
	if !t.LogoUpdatedAt.IsZero() {
		out.LogoURL = strings.TrimRight(a.PublicURL, "/") + "/login/" + t.ID + "/logo"
	}
	return out
}

func user(u *store.User) User {
	return User{ID: u.ID, TenantID: u.TenantID, Email: u.Email, ManagedAppleID: u.ManagedAppleID, Name: u.Name,
		Enabled: u.Enabled, PasswordSet: u.PasswordHash != "", SecondFactor: directory.SecondFactorState(u),
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, LastSignInAt: opt(u.LastSignInAt)}
}

func key(k *store.APIKey) APIKey {
	return APIKey{ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt, LastUsedAt: opt(k.LastUsedAt), RevokedAt: opt(k.RevokedAt)}
}

// --- server ---

func (a *API) serverInfo(w http.ResponseWriter, r *http.Request) error {
	nt, err := a.Store.CountTenants(r.Context())
	if err != nil {
		return err
	}
	nu, err := a.Store.CountUsers(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"version": a.Version, "public_url": a.PublicURL, "store": a.Store.Backend(),
		"tenants": nt, "users": nu, "discovery_path": discovery.Path,
	})
	return nil
}

// --- tenants ---

func (a *API) createTenant(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name                string   `json:"name"`
		Domains             []string `json:"domains"`
		RequireSecondFactor *bool    `json:"require_second_factor"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	t, err := a.Dir.CreateTenant(r.Context(), directory.TenantInput{Name: in.Name, Domains: in.Domains, RequireSecondFactor: in.RequireSecondFactor})
	if err != nil {
		return err
	}
	a.Log.Info("tenant created", "tenant", t.ID, "name", t.Name, "domains", t.Domains, "by", Principal(r.Context()))
	w.Header().Set("Location", "/api/v1/tenants/"+t.ID)
	httpx.WriteJSON(w, http.StatusCreated, a.tenant(t))
	return nil
}

func (a *API) listTenants(w http.ResponseWriter, r *http.Request) error {
	out := []Tenant{}
	if d := r.URL.Query().Get("domain"); d != "" {
		t, err := a.Dir.ResolveTenant(r.Context(), d)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if t != nil {
			out = append(out, a.tenant(t))
		}
	} else {
		ts, err := a.Store.Tenants(r.Context())
		if err != nil {
			return err
		}
		for i := range ts {
			out = append(out, a.tenant(&ts[i]))
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"tenants": out})
	return nil
}

func (a *API) getTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := a.Dir.ResolveTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, a.tenant(t))
	return nil
}

func (a *API) patchTenant(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name                *string   `json:"name"`
		Domains             *[]string `json:"domains"`
		RequireSecondFactor *bool     `json:"require_second_factor"`
		AccentColor         *string   `json:"accent_color"`
		Contact             *string   `json:"contact"`
		PrivacyURL          *string   `json:"privacy_url"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	cur, err := a.Dir.ResolveTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	t, err := a.Dir.UpdateTenant(r.Context(), cur.ID, directory.TenantPatch{Name: in.Name, Domains: in.Domains, RequireSecondFactor: in.RequireSecondFactor,
		AccentColor: in.AccentColor, Contact: in.Contact, PrivacyURL: in.PrivacyURL})
	if err != nil {
		return err
	}
	a.Log.Info("tenant updated", "tenant", t.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, a.tenant(t))
	return nil
}

// putLogo stores the body (a PNG or JPEG image of at most
// branding.MaxLogoBytes; Content-Type image/png or image/jpeg, matching
// the data) as the tenant's sign-in page logo and answers the tenant.
func (a *API) putLogo(w http.ResponseWriter, r *http.Request) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != branding.PNG && mt != branding.JPEG {
		return httpx.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send the logo as image/png or image/jpeg (SVG is not accepted), got %q", r.Header.Get("Content-Type"))
	}
	// Bounded before anything parses it.
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, branding.MaxLogoBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return httpx.Errorf(http.StatusRequestEntityTooLarge, "too_large", "the logo is larger than %d KiB", branding.MaxLogoBytes>>10)
		}
		return httpx.Errorf(http.StatusBadRequest, "bad_request", "cannot read the logo: %v", err)
	}
	if ct, err := branding.Logo(data); err == nil && ct != mt {
		return httpx.Errorf(http.StatusUnprocessableEntity, "invalid", "the data is %s, the Content-Type says %s", ct, mt)
	}
	t, err := a.Dir.ResolveTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := a.Dir.SetLogo(r.Context(), t.ID, data); err != nil {
		return err
	}
	if t, err = a.Store.Tenant(r.Context(), t.ID); err != nil {
		return err
	}
	a.Log.Info("tenant logo set", "tenant", t.ID, "bytes", len(data), "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, a.tenant(t))
	return nil
}

// deleteLogo removes the tenant's logo (also when it has none).
func (a *API) deleteLogo(w http.ResponseWriter, r *http.Request) error {
	t, err := a.Dir.ResolveTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := a.Dir.SetLogo(r.Context(), t.ID, nil); err != nil {
		return err
	}
	a.Log.Info("tenant logo removed", "tenant", t.ID, "by", Principal(r.Context()))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	cascade, err := boolParam(r, "cascade")
	if err != nil {
		return err
	}
	dry, err := boolParam(r, "dry_run")
	if err != nil {
		return err
	}
	t, err := a.Dir.ResolveTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	by := Principal(r.Context())
	if dry {
		devices, err := a.Endings.Enrolled(r.Context(), store.EnrollmentFilter{TenantID: t.ID})
		if err != nil {
			return err
		}
		dryRun(w, len(devices))
		return nil
	}
	n, err := a.Endings.DeleteTenant(r.Context(), t.ID, cascade, by)
	if err != nil {
		if errors.Is(err, store.ErrInUse) {
			return &httpx.Error{Status: http.StatusConflict, Code: "in_use",
				Message: "the tenant still has users; delete them first or pass cascade=true to delete them with it", Err: err}
		}
		return err
	}
	a.Log.Info("tenant deleted", "tenant", t.ID, "cascade", cascade, "devices_unenrolled", n, "by", by)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "%s must be true or false", name)
	}
	return b, nil
}

// --- users ---

func (a *API) createUser(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Tenant         string `json:"tenant"`
		Email          string `json:"email"`
		ManagedAppleID string `json:"managed_apple_id"`
		Name           string `json:"name"`
		Password       string `json:"password"`
		Enabled        *bool  `json:"enabled"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	u, err := a.Dir.CreateUser(r.Context(), directory.UserInput{Tenant: in.Tenant, Email: in.Email,
		ManagedAppleID: in.ManagedAppleID, Name: in.Name, Password: in.Password, Enabled: in.Enabled})
	if err != nil {
		return err
	}
	a.Log.Info("user created", "user", u.ID, "tenant", u.TenantID, "by", Principal(r.Context()))
	w.Header().Set("Location", "/api/v1/users/"+u.ID)
	httpx.WriteJSON(w, http.StatusCreated, user(u))
	return nil
}

// userRef finds a user by id or by email.
func (a *API) userRef(r *http.Request) (*store.User, error) {
	ref := r.PathValue("id")
	if len(ref) > 3 && ref[:3] == "us_" {
		return a.Store.User(r.Context(), ref)
	}
	return a.Store.UserByEmail(r.Context(), strings.ToLower(ref))
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.UserFilter{Email: strings.ToLower(q.Get("email")), After: strings.ToLower(q.Get("after")), Limit: 100}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "limit must be a number from 1 to 1000")
		}
		f.Limit = n
	}
	if ref := q.Get("tenant"); ref != "" {
		t, err := a.Dir.ResolveTenant(r.Context(), ref)
		if err != nil {
			return err
		}
		f.TenantID = t.ID
	}
	us, err := a.Store.Users(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]User, 0, len(us))
	for i := range us {
		out = append(out, user(&us[i]))
	}
	resp := map[string]any{"users": out}
	if len(us) == f.Limit {
		resp["next_after"] = us[len(us)-1].Email
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.userRef(r)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, user(u))
	return nil
}

func (a *API) patchUser(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Email          *string `json:"email"`
		ManagedAppleID *string `json:"managed_apple_id"`
		Name           *string `json:"name"`
		Enabled        *bool   `json:"enabled"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	cur, err := a.userRef(r)
	if err != nil {
		return err
	}
	u, err := a.Dir.UpdateUser(r.Context(), cur.ID, directory.UserPatch{Email: in.Email, ManagedAppleID: in.ManagedAppleID, Name: in.Name, Enabled: in.Enabled})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) && in.Email != nil {
			return &httpx.Error{Status: http.StatusUnprocessableEntity, Code: "validation_failed",
				Message: "email: the new email's domain is not one of the tenant's domains", Err: err}
		}
		return err
	}
	a.Log.Info("user updated", "user", u.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, user(u))
	return nil
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) error {
	dry, err := boolParam(r, "dry_run")
	if err != nil {
		return err
	}
	u, err := a.userRef(r)
	if err != nil {
		return err
	}
	if dry {
		devices, err := a.Endings.Enrolled(r.Context(), store.EnrollmentFilter{UserID: u.ID})
		if err != nil {
			return err
		}
		dryRun(w, len(devices))
		return nil
	}
	by := Principal(r.Context())
	n, err := a.Endings.DeleteUser(r.Context(), u.ID, by)
	if err != nil {
		return err
	}
	a.Log.Info("user deleted", "user", u.ID, "devices_unenrolled", n, "by", by)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) setPassword(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Password string `json:"password"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	cur, err := a.userRef(r)
	if err != nil {
		return err
	}
	u, err := a.Dir.SetPassword(r.Context(), cur.ID, in.Password)
	if err != nil {
		return err
	}
	a.Log.Info("user password set", "user", u.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, user(u))
	return nil
}

func (a *API) resetTOTP(w http.ResponseWriter, r *http.Request) error {
	cur, err := a.userRef(r)
	if err != nil {
		return err
	}
	u, err := a.Dir.ResetSecondFactor(r.Context(), cur.ID)
	if err != nil {
		return err
	}
	a.Log.Info("user second factor reset", "user", u.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, user(u))
	return nil
}

// --- API keys ---

func (a *API) createKey(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	if in.Name == "" || len(in.Name) > 100 {
		return &directory.ValidationError{Field: "name", Message: "is required (at most 100 characters)"}
	}
	k, rec := NewKey(in.Name, a.Now())
	if err := a.Store.CreateAPIKey(r.Context(), rec); err != nil {
		return err
	}
	a.Log.Info("API key created", "key", rec.ID, "name", rec.Name, "by", Principal(r.Context()))
	out := key(rec)
	out.Key = k
	httpx.WriteJSON(w, http.StatusCreated, out)
	return nil
}

// NewKey makes a key string and the record to store for it.
func NewKey(name string, now time.Time) (string, *store.APIKey) {
	k, id, hash := apikey.New()
	return k, &store.APIKey{ID: id, Name: name, SecretHash: hash, CreatedAt: now.UTC().Truncate(time.Microsecond)}
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.Store.APIKeys(r.Context())
	if err != nil {
		return err
	}
	out := make([]APIKey, 0, len(ks))
	for i := range ks {
		out = append(out, key(&ks[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"api_keys": out})
	return nil
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.Store.RevokeAPIKey(r.Context(), id, a.Now().UTC()); err != nil {
		return err
	}
	a.Log.Info("API key revoked", "key", id, "by", Principal(r.Context()))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- discovery helpers ---

func (a *API) snippet(w http.ResponseWriter, r *http.Request) error {
	kind := r.URL.Query().Get("kind")
	domain := r.URL.Query().Get("domain")
	var baseURL string
	if domain != "" {
		t, err := a.Dir.ResolveTenant(r.Context(), domain)
		if err != nil {
			return err
		}
		baseURL = a.EnrollURL(t.ID)
		domain = t.Domains[0]
		for _, d := range t.Domains {
			if d == strings.ToLower(r.URL.Query().Get("domain")) {
				domain = d
			}
		}
	}
	s, err := discovery.Snippet(kind, a.PublicURL, baseURL, domain)
	if err != nil {
		return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "%v", err)
	}
	resp := map[string]string{"kind": kind, "snippet": s}
	if kind == "json" {
		resp["note"] = discovery.JSONNote(domain)
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}
