package api

import (
	"encoding/base64"
	"net/http"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// ABMServerToken is the API form of an Apple Business Manager server
// token. Keys and OAuth credentials never leave the server; the
// certificate is public (it is uploaded to ABM).
type ABMServerToken struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	// Status: waiting_for_token, active, expiring (within 30 days), expired.
	Status              string     `json:"status"`
	OrgName             string     `json:"org_name,omitempty"`
	OrgID               string     `json:"org_id,omitempty"`
	ServerName          string     `json:"server_name,omitempty"`
	ServerUUID          string     `json:"server_uuid,omitempty"`
	ExpiresAt           *time.Time `json:"expires_at,omitempty"`
	DaysLeft            *int       `json:"days_left,omitempty"`
	ImportedAt          *time.Time `json:"imported_at,omitempty"`
	DiscoveryURL        string     `json:"discovery_url,omitempty"`
	DiscoveryAssertedAt *time.Time `json:"discovery_asserted_at,omitempty"`
	DiscoveryError      string     `json:"discovery_error,omitempty"`
	Certificate         string     `json:"certificate"`
	Warnings            []string   `json:"warnings"`
	CreatedAt           time.Time  `json:"created_at"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ABMView is the API form of t at now.
func ABMView(t *store.ABMServerToken, now time.Time) ABMServerToken {
	cert, _ := abm.CertificatePEM(t)
	v := ABMServerToken{ID: t.ID, TenantID: t.TenantID, Name: t.Name, OrgName: t.OrgName, OrgID: t.OrgID, ServerName: t.ServerName,
		ServerUUID: t.ServerUUID, ImportedAt: timePtr(t.ImportedAt), DiscoveryURL: t.DiscoveryURL, DiscoveryAssertedAt: timePtr(t.DiscoveryAssertedAt),
		DiscoveryError: t.DiscoveryError, Certificate: string(cert), CreatedAt: t.CreatedAt, Warnings: abm.Problems([]store.ABMServerToken{*t}, now)}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	switch left := t.AccessTokenExpiry.Sub(now); {
	case !t.Imported():
		v.Status = "waiting_for_token"
	case left <= 0:
		v.Status = "expired"
	case left < abm.WarnBefore:
		v.Status = "expiring"
	default:
		v.Status = "active"
	}
	if t.Imported() {
		days := int(t.AccessTokenExpiry.Sub(now).Hours() / 24)
		v.ExpiresAt, v.DaysLeft = timePtr(t.AccessTokenExpiry), &days
	}
	return v
}

func (a *API) abmRoutes() []route {
	return []route{
		{"POST /api/v1/abm/tokens", a.createABMToken},
		{"GET /api/v1/abm/tokens", a.listABMTokens},
		{"GET /api/v1/abm/tokens/{id}", a.getABMToken},
		{"DELETE /api/v1/abm/tokens/{id}", a.deleteABMToken},
		{"GET /api/v1/abm/tokens/{id}/certificate", a.abmCertificate},
		{"PUT /api/v1/abm/tokens/{id}/token", a.importABMToken},
		{"GET /api/v1/abm/tokens/{id}/discovery", a.showABMDiscovery},
		{"POST /api/v1/abm/tokens/{id}/discovery", a.registerABMDiscovery},
		{"DELETE /api/v1/abm/tokens/{id}/discovery", a.removeABMDiscovery},
	}
}

// abmErr renders a problem.Error of the ABM service with its status.
// Until httpx renders problem.Error itself, this is the one place the
// ABM endpoints turn a Kind into a status.
func abmErr(err error) error {
	p, ok := problem.As(err)
	if !ok {
		return err
	}
	status := map[problem.Kind]int{problem.Invalid: http.StatusBadRequest, problem.Unauthenticated: http.StatusUnauthorized,
		problem.Forbidden: http.StatusForbidden, problem.NotFound: http.StatusNotFound, problem.Conflict: http.StatusConflict,
		problem.Unprocessable: http.StatusUnprocessableEntity, problem.TooLarge: http.StatusRequestEntityTooLarge,
		problem.TooManyRequests: http.StatusTooManyRequests, problem.Unavailable: http.StatusServiceUnavailable}[p.Kind]
	if status == 0 {
		return err
	}
	return httpx.Errorf(status, p.Code, "%s", p.Message)
}

func (a *API) createABMToken(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Tenant string `json:"tenant"`
		Name   string `json:"name"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	t, err := a.Dir.ResolveTenant(r.Context(), in.Tenant)
	if err != nil {
		return err
	}
	row, err := a.ABM.Create(r.Context(), t.ID, in.Name)
	if err != nil {
		return abmErr(err)
	}
	a.Log.Info("ABM server token created", "token", row.ID, "tenant", t.ID, "by", Principal(r.Context()))
	w.Header().Set("Location", "/api/v1/abm/tokens/"+row.ID)
	httpx.WriteJSON(w, http.StatusCreated, ABMView(row, a.Now()))
	return nil
}

func (a *API) listABMTokens(w http.ResponseWriter, r *http.Request) error {
	tenant := ""
	if ref := r.URL.Query().Get("tenant"); ref != "" {
		t, err := a.Dir.ResolveTenant(r.Context(), ref)
		if err != nil {
			return err
		}
		tenant = t.ID
	}
	all, err := a.ABM.List(r.Context(), tenant)
	if err != nil {
		return err
	}
	out := make([]ABMServerToken, 0, len(all))
	for i := range all {
		out = append(out, ABMView(&all[i], a.Now()))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

func (a *API) getABMToken(w http.ResponseWriter, r *http.Request) error {
	t, err := a.ABM.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, ABMView(t, a.Now()))
	return nil
}

func (a *API) deleteABMToken(w http.ResponseWriter, r *http.Request) error {
	if err := a.ABM.Delete(r.Context(), r.PathValue("id")); err != nil {
		return abmErr(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) abmCertificate(w http.ResponseWriter, r *http.Request) error {
	t, err := a.ABM.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	pem, err := abm.CertificatePEM(t)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `attachment; filename="pomona-abm-`+t.ID+`.pem"`)
	w.Write(pem)
	return nil
}

func (a *API) importABMToken(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		// ServerToken is the .p7m file ABM downloaded, base64.
		ServerToken string `json:"server_token"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	file, err := base64.StdEncoding.DecodeString(in.ServerToken)
	if err != nil || len(file) == 0 {
		return httpx.Errorf(http.StatusBadRequest, "invalid_request", "server_token must be the .p7m file ABM downloaded, base64")
	}
	t, err := a.ABM.Import(r.Context(), r.PathValue("id"), file)
	if err != nil {
		return abmErr(err)
	}
	a.Log.Info("ABM server token imported", "token", t.ID, "tenant", t.TenantID, "server_uuid", t.ServerUUID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, ABMView(t, a.Now()))
	return nil
}

// ABMDiscovery is what Apple has registered for a server token, and the
// URL Pomona registers.
type ABMDiscovery struct {
	Registered  bool   `json:"registered"`
	URL         string `json:"url,omitempty"`
	LastUpdated string `json:"last_updated,omitempty"`
	Want        string `json:"want"`
	// Current: what Apple has is this tenant's discovery URL.
	Current bool `json:"current"`
}

func (a *API) showABMDiscovery(w http.ResponseWriter, r *http.Request) error {
	st, err := a.ABM.ShowDiscovery(r.Context(), r.PathValue("id"))
	if err != nil {
		return abmErr(err)
	}
	out := ABMDiscovery{Want: st.Want}
	if st.Registered != nil {
		out.Registered, out.URL, out.LastUpdated, out.Current = true, st.Registered.URL, st.Registered.LastUpdated, st.Registered.URL == st.Want
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) registerABMDiscovery(w http.ResponseWriter, r *http.Request) error {
	t, err := a.ABM.RegisterDiscovery(r.Context(), r.PathValue("id"))
	if err != nil {
		return abmErr(err)
	}
	httpx.WriteJSON(w, http.StatusOK, ABMView(t, a.Now()))
	return nil
}

func (a *API) removeABMDiscovery(w http.ResponseWriter, r *http.Request) error {
	t, err := a.ABM.RemoveDiscovery(r.Context(), r.PathValue("id"))
	if err != nil {
		return abmErr(err)
	}
	httpx.WriteJSON(w, http.StatusOK, ABMView(t, a.Now()))
	return nil
}
