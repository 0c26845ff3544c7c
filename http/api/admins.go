package api

import (
	"net/http"

	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/store"
)

func adminView(a *store.Admin) apitypes.Admin {
	return apitypes.Admin{ID: a.ID, Email: a.Email, Name: a.Name, Role: a.Role, Enabled: a.Enabled, SetupPending: !a.Ready(),
		CreatedAt: a.CreatedAt, LastSignInAt: apitypes.Opt(a.LastSignInAt)}
}

// createAdmin invites a console account and returns its one-time setup link.
func (a *API) createAdmin(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Email string `json:"email"`
		Name  string `json:"name"`
		Role  string `json:"role"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	ad, tok, err := a.App.Accounts.Invite(r.Context(), in.Email, in.Name, in.Role)
	if err != nil {
		return err
	}
	auditCreated(r, ad.ID)
	a.Log.Info("console account invited", "admin", ad.Email, "role", ad.Role, "by", Principal(r.Context()))
	out := adminView(ad)
	out.SetupURL, out.SetupExpires = a.SetupURL(tok), apitypes.Opt(ad.SetupExpiresAt)
	httpx.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) listAdmins(w http.ResponseWriter, r *http.Request) error {
	as, err := a.App.Accounts.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]apitypes.Admin, 0, len(as))
	for i := range as {
		out = append(out, adminView(&as[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"admins": out})
	return nil
}

// resetAdmin clears a console account's password and second factor, ends
// its sessions and returns a new setup link.
func (a *API) resetAdmin(w http.ResponseWriter, r *http.Request) error {
	ad, tok, err := a.App.Accounts.ResetSetup(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	a.Log.Info("console account reset", "admin", ad.Email, "by", Principal(r.Context()))
	out := adminView(ad)
	out.SetupURL, out.SetupExpires = a.SetupURL(tok), apitypes.Opt(ad.SetupExpiresAt)
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}
