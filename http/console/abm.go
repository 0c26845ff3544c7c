package console

import (
	"net/http"
	"net/url"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
)

// The Apple Business Manager page: server tokens per tenant (key pair,
// certificate to upload, token import and renewal, expiry), and the
// fallback discovery registration with Apple's refusals in plain words.

func (c *Console) abmRoutes() []route {
	R, M := adminaccount.Read, adminaccount.Manage
	return []route{
		{"GET /console/abm", R, c.abmPage},
		{"POST /console/abm", M, c.abmCreate},
		{"GET /console/abm/{id}", R, c.abmToken},
		{"GET /console/abm/{id}/certificate", R, c.abmCertificate},
		// The forms name the token in a field (id), not in the path (the
		// handlers give it to the audit entry: Request.Target).
		{"POST /console/abm/token", M, c.abmImport},
		{"POST /console/abm/discovery", M, c.abmRegister},
		{"POST /console/abm/discovery/remove", M, c.abmUnregister},
		{"POST /console/abm/delete", M, c.abmDelete},
	}
}

type abmRow struct {
	apitypes.ABMServerToken
	TenantName string
}

func (c *Console) abmPage(w http.ResponseWriter, r *Request) error {
	all, err := c.App.ABM.List(r.Context(), "")
	if err != nil {
		return err
	}
	tenants, err := c.App.Tenants.List(r.Context(), "")
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, t := range tenants {
		names[t.ID] = t.Name
	}
	rows := make([]abmRow, 0, len(all))
	for i := range all {
		rows = append(rows, abmRow{ABMServerToken: abm.View(&all[i], c.Now()), TenantName: names[all[i].TenantID]})
	}
	c.render(w, r, http.StatusOK, "abm", "Apple Business Manager", map[string]any{"Tokens": rows, "Tenants": tenants, "New": r.URL.Query().Get("new")})
	return nil
}

func (c *Console) abmCreate(w http.ResponseWriter, r *Request) error {
	t, err := c.App.ABM.Create(r.Context(), r.PostFormValue("tenant"), r.PostFormValue("name"))
	if err != nil {
		return err
	}
	r.Target = t.ID
	c.Log.Info("ABM server token created", "token", t.ID, "tenant", t.TenantID, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/abm?new="+t.ID+"#"+t.ID, "Key pair for %s made. Download its certificate, upload it to ABM, then import the token ABM offers.", t.Name)
}

// abmToken is one token's card on the page (also where a refused form
// without a Referer comes back to).
func (c *Console) abmToken(w http.ResponseWriter, r *Request) error {
	http.Redirect(w, r.Request, Prefix+"/abm#"+url.PathEscape(r.PathValue("id")), http.StatusFound)
	return nil
}

func (c *Console) abmCertificate(w http.ResponseWriter, r *Request) error {
	name, pem, err := c.App.ABM.Certificate(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.Attachment(w, "application/x-pem-file", name, pem)
	return nil
}

func (c *Console) abmImport(w http.ResponseWriter, r *Request) error {
	r.Target = r.PostFormValue("id")
	file, err := formFile(r, "server_token", abm.MaxServerToken+1)
	if err != nil {
		return err
	}
	if len(file) == 0 {
		return problem.New(problem.Invalid, "Choose the server token file (.p7m) ABM downloaded.")
	}
	t, err := c.App.ABM.Import(r.Context(), r.PostFormValue("id"), file)
	if err != nil {
		return err
	}
	c.Log.Info("ABM server token imported", "token", t.ID, "server_uuid", t.ServerUUID, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/abm#"+t.ID, "Server token of %s (%s) imported; valid until %s. Devices of this tenant can answer GetToken now.",
		t.ServerName, t.OrgName, t.AccessTokenExpiry.Format("2006-01-02"))
}

func (c *Console) abmRegister(w http.ResponseWriter, r *Request) error {
	r.Target = r.PostFormValue("id")
	t, err := c.App.ABM.RegisterDiscovery(r.Context(), r.PostFormValue("id"))
	if err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/abm#"+t.ID, "Fallback discovery URL registered with Apple: %s", t.DiscoveryURL)
}

func (c *Console) abmUnregister(w http.ResponseWriter, r *Request) error {
	r.Target = r.PostFormValue("id")
	t, err := c.App.ABM.RemoveDiscovery(r.Context(), r.PostFormValue("id"))
	if err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/abm#"+t.ID, "Fallback discovery URL removed at Apple.")
}

func (c *Console) abmDelete(w http.ResponseWriter, r *Request) error {
	r.Target = r.PostFormValue("id")
	if err := c.App.ABM.Delete(r.Context(), r.PostFormValue("id")); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/abm", "Server token removed.")
}
