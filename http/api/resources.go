package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/branding"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/discovery"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

func (a *API) tenant(t *store.Tenant) apitypes.Tenant {
	d := t.Domains
	if d == nil {
		d = []string{}
	}
	out := apitypes.Tenant{ID: t.ID, Name: t.Name, Domains: d, RequireSecondFactor: t.RequireSecondFactor,
		EnrollmentURL: a.EnrollURL(t.ID), CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
		AccentColor: t.AccentColor, Contact: t.Contact, PrivacyURL: t.PrivacyURL}
	if !t.LogoUpdatedAt.IsZero() {
		out.LogoURL = strings.TrimRight(a.PublicURL, "/") + "/login/" + t.ID + "/logo"
	}
	return out
}

func user(u *store.User) apitypes.User {
	return apitypes.User{ID: u.ID, TenantID: u.TenantID, Email: u.Email, ManagedAppleID: u.ManagedAppleID, Name: u.Name,
		Enabled: u.Enabled, PasswordSet: u.PasswordHash != "", SecondFactor: directory.SecondFactorState(u),
		CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt, LastSignInAt: apitypes.Opt(u.LastSignInAt)}
}

func key(k *store.APIKey) apitypes.APIKey {
	return apitypes.APIKey{ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt, LastUsedAt: apitypes.Opt(k.LastUsedAt), RevokedAt: apitypes.Opt(k.RevokedAt)}
}

// --- server ---

func (a *API) serverInfo(w http.ResponseWriter, r *http.Request) error {
	nt, nu, err := a.App.Stats.Counts(r.Context())
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, apitypes.ServerInfo{Version: a.Version, PublicURL: a.PublicURL, Store: a.App.Stats.Backend(),
		Tenants: nt, Users: nu, DiscoveryPath: discovery.Path})
	return nil
}

// --- tenants ---

func (a *API) createTenant(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.TenantInput
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	t, err := a.App.Tenants.Create(r.Context(), directory.TenantInput{Name: in.Name, Domains: in.Domains, RequireSecondFactor: in.RequireSecondFactor})
	if err != nil {
		return err
	}
	auditCreated(r, t.ID)
	a.Log.Info("tenant created", "tenant", t.ID, "name", t.Name, "domains", t.Domains, "by", Principal(r.Context()))
	w.Header().Set("Location", "/api/v1/tenants/"+t.ID)
	httpx.WriteJSON(w, http.StatusCreated, a.tenant(t))
	return nil
}

func (a *API) listTenants(w http.ResponseWriter, r *http.Request) error {
	ts, err := a.App.Tenants.List(r.Context(), r.URL.Query().Get("domain"))
	if err != nil {
		return err
	}
	out := apitypes.Tenants{Tenants: []apitypes.Tenant{}}
	for i := range ts {
		out.Tenants = append(out.Tenants, a.tenant(&ts[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getTenant(w http.ResponseWriter, r *http.Request) error {
	t, err := a.App.Tenants.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, a.tenant(t))
	return nil
}

func (a *API) patchTenant(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.TenantPatch
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	t, err := a.App.Tenants.Update(r.Context(), r.PathValue("id"), directory.TenantPatch{Name: in.Name, Domains: in.Domains,
		RequireSecondFactor: in.RequireSecondFactor, AccentColor: in.AccentColor, Contact: in.Contact, PrivacyURL: in.PrivacyURL})
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
		return problem.Coded(problem.UnsupportedMediaType, "unsupported_media_type", "send the logo as image/png or image/jpeg (SVG is not accepted), got %q", r.Header.Get("Content-Type"))
	}
	// Bounded before anything parses it.
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, branding.MaxLogoBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return problem.Coded(problem.TooLarge, "too_large", "the logo is larger than %d KiB", branding.MaxLogoBytes>>10)
		}
		return problem.Coded(problem.Invalid, "bad_request", "cannot read the logo: %v", err)
	}
	if ct, err := branding.Logo(data); err == nil && ct != mt {
		return problem.Coded(problem.Unprocessable, "invalid", "the data is %s, the Content-Type says %s", ct, mt)
	}
	t, err := a.App.Tenants.SetLogo(r.Context(), r.PathValue("id"), data)
	if err != nil {
		return err
	}
	a.Log.Info("tenant logo set", "tenant", t.ID, "bytes", len(data), "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, a.tenant(t))
	return nil
}

// deleteLogo removes the tenant's logo (also when it has none).
func (a *API) deleteLogo(w http.ResponseWriter, r *http.Request) error {
	t, err := a.App.Tenants.SetLogo(r.Context(), r.PathValue("id"), nil)
	if err != nil {
		return err
	}
	a.Log.Info("tenant logo removed", "tenant", t.ID, "by", Principal(r.Context()))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteTenant deletes a tenant (?cascade=true: with its users, their
// devices sent RemoveProfile first); ?dry_run=true only counts those
// devices.
func (a *API) deleteTenant(w http.ResponseWriter, r *http.Request) error {
	cascade, err := boolParam(r, "cascade")
	if err != nil {
		return err
	}
	dry, err := boolParam(r, "dry_run")
	if err != nil {
		return err
	}
	by := Principal(r.Context())
	t, n, err := a.App.Tenants.Delete(r.Context(), r.PathValue("id"), cascade, dry, by)
	if err != nil {
		return err
	}
	if dry {
		httpx.WriteJSON(w, http.StatusOK, apitypes.Deletion{DevicesToUnenroll: n})
		return nil
	}
	a.Log.Info("tenant deleted", "tenant", t.ID, "cascade", cascade, "devices_unenrolled", n, "by", by)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// queryParams reads r's query for a handler that takes the parameters
// named in known, each at most once. r.URL.Query() drops what it cannot
// parse — a pair holding a ';' ("status=enrolled;platform=iOS") or a bad
// escape ("%zz") — and a handler ignores names it does not read and the
// second of a repeated one, so a misspelt or mangled filter ("stauts=",
// "status=x;y") listed every device as if no filter were given: each is
// a 400 invalid_parameter naming the parameter instead.
func queryParams(r *http.Request, known ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, problem.Coded(problem.Invalid, "invalid_parameter", "the query string cannot be read: %v (separate parameters with '&' and escape '%%' and ';')", err)
	}
	for name, vs := range q {
		if !slices.Contains(known, name) {
			return nil, problem.Coded(problem.Invalid, "invalid_parameter", "unknown parameter %q: give %s", clip(name), strings.Join(known, ", "))
		}
		if len(vs) > 1 {
			return nil, problem.Coded(problem.Invalid, "invalid_parameter", "parameter %q is given %d times: give it once", name, len(vs))
		}
	}
	return q, nil
}

// clip bounds a client's text quoted back in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, problem.Coded(problem.Invalid, "invalid_parameter", "%s must be true or false", name)
	}
	return b, nil
}

// limitParam reads ?limit= (1–1000; 0 when absent).
func limitParam(r *http.Request) (int, error) {
	l := r.URL.Query().Get("limit")
	if l == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > 1000 {
		return 0, problem.Coded(problem.Invalid, "invalid_parameter", "limit must be a number from 1 to 1000")
	}
	return n, nil
}

// --- users ---

func (a *API) createUser(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.UserInput
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	u, err := a.App.Users.Create(r.Context(), directory.UserInput{Tenant: in.Tenant, Email: in.Email,
		ManagedAppleID: in.ManagedAppleID, Name: in.Name, Password: in.Password, Enabled: in.Enabled})
	if err != nil {
		return err
	}
	auditCreated(r, u.ID)
	a.Log.Info("user created", "user", u.ID, "tenant", u.TenantID, "by", Principal(r.Context()))
	w.Header().Set("Location", "/api/v1/users/"+u.ID)
	httpx.WriteJSON(w, http.StatusCreated, user(u))
	return nil
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	n, err := limitParam(r)
	if err != nil {
		return err
	}
	us, next, err := a.App.Users.List(r.Context(), app.UserQuery{Tenant: q.Get("tenant"), Email: q.Get("email"), After: q.Get("after"), Limit: n})
	if err != nil {
		return err
	}
	out := apitypes.Users{Users: make([]apitypes.User, 0, len(us)), NextAfter: next}
	for i := range us {
		out.Users = append(out.Users, user(&us[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	u, err := a.App.Users.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, user(u))
	return nil
}

func (a *API) patchUser(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.UserPatch
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	u, err := a.App.Users.Update(r.Context(), r.PathValue("id"), directory.UserPatch{Email: in.Email, ManagedAppleID: in.ManagedAppleID, Name: in.Name, Enabled: in.Enabled})
	if err != nil {
		return err
	}
	a.Log.Info("user updated", "user", u.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, user(u))
	return nil
}

// deleteUser deletes a user after sending RemoveProfile to their enrolled
// devices; ?dry_run=true only counts those devices.
func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) error {
	dry, err := boolParam(r, "dry_run")
	if err != nil {
		return err
	}
	by := Principal(r.Context())
	u, n, err := a.App.Users.Delete(r.Context(), r.PathValue("id"), dry, by)
	if err != nil {
		return err
	}
	if dry {
		httpx.WriteJSON(w, http.StatusOK, apitypes.Deletion{DevicesToUnenroll: n})
		return nil
	}
	a.Log.Info("user deleted", "user", u.ID, "devices_unenrolled", n, "by", by)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) setPassword(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.PasswordInput
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	u, err := a.App.Users.SetPassword(r.Context(), r.PathValue("id"), in.Password)
	if err != nil {
		return err
	}
	a.Log.Info("user password set", "user", u.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, user(u))
	return nil
}

func (a *API) resetTOTP(w http.ResponseWriter, r *http.Request) error {
	u, err := a.App.Users.ResetSecondFactor(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	a.Log.Info("user second factor reset", "user", u.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, user(u))
	return nil
}

func (a *API) reauthenticate(w http.ResponseWriter, r *http.Request) error {
	u, err := a.App.Users.Reauthenticate(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	a.Log.Info("user must re-authenticate: access tokens revoked", "user", u.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, user(u))
	return nil
}

// --- API keys ---

func (a *API) createKey(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.APIKeyInput
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	k, rec, err := a.App.Keys.Create(r.Context(), in.Name)
	if err != nil {
		return err
	}
	auditCreated(r, rec.ID)
	a.Log.Info("API key created", "key", rec.ID, "name", rec.Name, "by", Principal(r.Context()))
	out := key(rec)
	out.Key = k
	httpx.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request) error {
	ks, err := a.App.Keys.List(r.Context())
	if err != nil {
		return err
	}
	out := apitypes.APIKeys{APIKeys: make([]apitypes.APIKey, 0, len(ks))}
	for i := range ks {
		out.APIKeys = append(out.APIKeys, key(&ks[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := a.App.Keys.Revoke(r.Context(), id); err != nil {
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
		t, err := a.App.Tenants.Resolve(r.Context(), domain)
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
		return problem.Coded(problem.Invalid, "invalid_parameter", "%v", err)
	}
	out := apitypes.Snippet{Kind: kind, Snippet: s}
	if kind == "json" {
		out.Note = discovery.JSONNote(domain)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}
