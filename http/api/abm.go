package api

import (
	"net/http"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
)

// The Apple Business Manager endpoints: server tokens per tenant and the
// fallback discovery registration (docs/apple-business-manager.md). The
// use cases are app.App.ABM's (package abm).

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

func (a *API) createABMToken(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.ABMServerTokenCreate
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	t, err := a.App.Tenants.Resolve(r.Context(), in.Tenant)
	if err != nil {
		return err
	}
	row, err := a.App.ABM.Create(r.Context(), t.ID, in.Name)
	if err != nil {
		return err
	}
	auditCreated(r, row.ID)
	a.Log.Info("ABM server token created", "token", row.ID, "tenant", t.ID, "by", Principal(r.Context()))
	w.Header().Set("Location", "/api/v1/abm/tokens/"+row.ID)
	httpx.WriteJSON(w, http.StatusCreated, abm.View(row, a.Now()))
	return nil
}

func (a *API) listABMTokens(w http.ResponseWriter, r *http.Request) error {
	tenant := ""
	if ref := r.URL.Query().Get("tenant"); ref != "" {
		t, err := a.App.Tenants.Resolve(r.Context(), ref)
		if err != nil {
			return err
		}
		tenant = t.ID
	}
	all, err := a.App.ABM.List(r.Context(), tenant)
	if err != nil {
		return err
	}
	out := apitypes.ABMServerTokenList{Tokens: make([]apitypes.ABMServerToken, 0, len(all))}
	for i := range all {
		out.Tokens = append(out.Tokens, abm.View(&all[i], a.Now()))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getABMToken(w http.ResponseWriter, r *http.Request) error {
	t, err := a.App.ABM.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, abm.View(t, a.Now()))
	return nil
}

func (a *API) deleteABMToken(w http.ResponseWriter, r *http.Request) error {
	if err := a.App.ABM.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) abmCertificate(w http.ResponseWriter, r *http.Request) error {
	name, pem, err := a.App.ABM.Certificate(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.Attachment(w, "application/x-pem-file", name, pem)
	return nil
}

func (a *API) importABMToken(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.ABMServerTokenImport
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	if len(in.ServerToken) == 0 {
		return problem.Validation("server_token", "server_token must be the .p7m file ABM downloaded, base64")
	}
	t, err := a.App.ABM.Import(r.Context(), r.PathValue("id"), in.ServerToken)
	if err != nil {
		return err
	}
	a.Log.Info("ABM server token imported", "token", t.ID, "tenant", t.TenantID, "server_uuid", t.ServerUUID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, abm.View(t, a.Now()))
	return nil
}

func (a *API) showABMDiscovery(w http.ResponseWriter, r *http.Request) error {
	st, err := a.App.ABM.ShowDiscovery(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, abm.DiscoveryView(st))
	return nil
}

func (a *API) registerABMDiscovery(w http.ResponseWriter, r *http.Request) error {
	t, err := a.App.ABM.RegisterDiscovery(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, abm.View(t, a.Now()))
	return nil
}

func (a *API) removeABMDiscovery(w http.ResponseWriter, r *http.Request) error {
	t, err := a.App.ABM.RemoveDiscovery(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, abm.View(t, a.Now()))
	return nil
}
