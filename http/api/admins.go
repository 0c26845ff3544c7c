package api

import (
	"net/http"
	"time"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/store"
)

// Admin is the API form of a console account.
type Admin struct {
	ID           string     `json:"id"`
	Email        string     `json:"email"`
	Name         string     `json:"name,omitempty"`
	Role         string     `json:"role"`
	Enabled      bool       `json:"enabled"`
	SetupPending bool       `json:"setup_pending"`
	CreatedAt    time.Time  `json:"created_at"`
	LastSignInAt *time.Time `json:"last_sign_in_at,omitempty"`
	SetupURL     string     `json:"setup_url,omitempty"`
	SetupExpires *time.Time `json:"setup_expires_at,omitempty"`
}

func adminView(a *store.Admin) Admin {
	return Admin{ID: a.ID, Email: a.Email, Name: a.Name, Role: a.Role, Enabled: a.Enabled, SetupPending: !a.Ready(),
		CreatedAt: a.CreatedAt, LastSignInAt: opt(a.LastSignInAt)}
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
	ad, tok, err := a.Admins.Invite(r.Context(), in.Email, in.Name, in.Role)
	if err != nil {
		return err
	}
	a.Log.Info("console account invited", "admin", ad.Email, "role", ad.Role, "by", Principal(r.Context()))
	out := adminView(ad)
	out.SetupURL, out.SetupExpires = a.SetupURL(tok), opt(ad.SetupExpiresAt)
	httpx.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) listAdmins(w http.ResponseWriter, r *http.Request) error {
	as, err := a.Store.Admins(r.Context())
	if err != nil {
		return err
	}
	out := make([]Admin, 0, len(as))
	for i := range as {
		out = append(out, adminView(&as[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"admins": out})
	return nil
}

// resetAdmin clears a console account's password and second factor, ends
// its sessions and returns a new setup link.
func (a *API) resetAdmin(w http.ResponseWriter, r *http.Request) error {
	ad, tok, err := a.Admins.ResetSetup(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	a.Log.Info("console account reset", "admin", ad.Email, "by", Principal(r.Context()))
	out := adminView(ad)
	out.SetupURL, out.SetupExpires = a.SetupURL(tok), opt(ad.SetupExpiresAt)
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}
