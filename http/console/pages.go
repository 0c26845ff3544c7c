package console

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/branding"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/discovery"
	"github.com/pomona-mdm/pomona/discovery/check"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/pushcert"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/webhook"
)

// --- dashboard ---

type dashboardView struct {
	Devices, Users, Tenants int
	ByPlatform              []platformCount
	Versions                []store.VersionCount
	Chart                   template.HTML
	Last30                  int
	D                       *store.Dashboard
	Push                    *pushcert.Cert
	PushDays                int
	PushWarnings            []string
	// SilentFor is serve --silent-after in words (D.PendingDevices counts
	// the silent devices).
	SilentFor string
}

type platformCount struct {
	Platform string
	Count    int
	Percent  int
}

func (c *Console) dashboard(w http.ResponseWriter, r *Request) error {
	now := c.Now()
	d, err := c.App.Stats.Dashboard(r.Context(), now.AddDate(0, 0, -30), c.App.Devices.SilentCutoff())
	if err != nil {
		return err
	}
	v := dashboardView{D: d, Versions: d.Enrolled, Chart: barChart(d.PerDay, 30, now), SilentFor: c.App.Devices.SilentFor()}
	byPlatform := map[string]int{}
	for _, e := range d.Enrolled {
		v.Devices += e.Count
		byPlatform[e.Platform] += e.Count
	}
	for p, n := range byPlatform {
		v.ByPlatform = append(v.ByPlatform, platformCount{p, n, n * 100 / max(v.Devices, 1)})
	}
	sort.Slice(v.ByPlatform, func(i, j int) bool { return v.ByPlatform[i].Count > v.ByPlatform[j].Count })
	for _, p := range d.PerDay {
		v.Last30 += p.Count
	}
	v.Tenants, v.Users, _ = c.App.Stats.Counts(r.Context())
	if pc, err := c.App.PushCerts.Get(r.Context()); err == nil {
		v.Push, v.PushDays, v.PushWarnings = pc, int(pc.Cert.NotAfter.Sub(now).Hours()/24), pc.Problems(now)
	}
	c.render(w, r, http.StatusOK, "dashboard", "Dashboard", v)
	return nil
}

// --- tenants ---

func (c *Console) tenants(w http.ResponseWriter, r *Request) error {
	ts, err := c.App.Tenants.List(r.Context(), "")
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "tenants", "Tenants", map[string]any{"Tenants": ts})
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == ' ' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (c *Console) createTenant(w http.ResponseWriter, r *Request) error {
	twoFA := r.PostFormValue("second_factor") == "on"
	t, err := c.App.Tenants.Create(r.Context(), directory.TenantInput{Name: r.PostFormValue("name"), Domains: splitList(r.PostFormValue("domains")), RequireSecondFactor: &twoFA})
	if err != nil {
		return err
	}
	r.Target = t.ID
	c.Log.Info("tenant created", "tenant", t.ID, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/tenants/"+t.ID, "Tenant %s created. Next: set up the redirect on each domain (below), then add users.", t.Name)
}

type domainView struct {
	Domain   string
	Snippets map[string]string
	Report   *check.Report
}

func (c *Console) tenantView(r *Request, t *store.Tenant, checked string, rep *check.Report) (map[string]any, error) {
	var ds []domainView
	for _, d := range t.Domains {
		dv := domainView{Domain: d, Snippets: map[string]string{}}
		for _, k := range discovery.SnippetKinds {
			s, err := discovery.Snippet(k, c.PublicURL, c.EnrollURL(t.ID), d)
			if err != nil {
				return nil, err
			}
			if k == "json" {
				s += "\n\n" + discovery.JSONNote(d)
			}
			dv.Snippets[k] = s
		}
		if d == checked {
			dv.Report = rep
		}
		ds = append(ds, dv)
	}
	hasUsers, _ := c.App.Tenants.HasUsers(r.Context(), t.ID)
	return map[string]any{"Tenant": t, "Domains": ds, "EnrollURL": c.EnrollURL(t.ID), "HasUsers": hasUsers, "Kinds": discovery.SnippetKinds}, nil
}

func (c *Console) tenant(w http.ResponseWriter, r *Request) error {
	t, err := c.App.Tenants.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	v, err := c.tenantView(r, t, "", nil)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "tenant", t.Name, v)
	return nil
}

func (c *Console) updateTenant(w http.ResponseWriter, r *Request) error {
	t, err := c.App.Tenants.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	name, domains := r.PostFormValue("name"), splitList(r.PostFormValue("domains"))
	twoFA := r.PostFormValue("second_factor") == "on"
	if _, err := c.App.Tenants.Update(r.Context(), t.ID, directory.TenantPatch{Name: &name, Domains: &domains, RequireSecondFactor: &twoFA}); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/tenants/"+t.ID, "Tenant saved.")
}

// updateBranding saves the sign-in page branding of a tenant: accent
// colour, contact line, privacy link (checked by package branding through
// the directory) and the logo (uploaded, removed, or left as it is).
func (c *Console) updateBranding(w http.ResponseWriter, r *Request) error {
	t, err := c.App.Tenants.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	// One byte over the limit, so that branding.Logo sees it is too large.
	logo, err := formFile(r, "logo", branding.MaxLogoBytes+1)
	if err != nil {
		return err
	}
	accent, contact, privacy := r.PostFormValue("accent_color"), r.PostFormValue("contact"), r.PostFormValue("privacy_url")
	if _, err := c.App.Tenants.Update(r.Context(), t.ID, directory.TenantPatch{AccentColor: &accent, Contact: &contact, PrivacyURL: &privacy}); err != nil {
		return err
	}
	switch {
	case len(logo) > 0:
		if _, err := c.App.Tenants.SetLogo(r.Context(), t.ID, logo); err != nil {
			return err
		}
	case r.PostFormValue("remove_logo") == "on":
		if _, err := c.App.Tenants.SetLogo(r.Context(), t.ID, nil); err != nil {
			return err
		}
	}
	c.Log.Info("console: tenant branding saved", "tenant", t.ID, "logo_bytes", len(logo), "by", r.Admin.Email)
	return c.done(w, r, Prefix+"/tenants/"+t.ID+"#branding", "Branding saved.")
}

// checkDomain runs the discovery check the way a device would and shows
// the report beside the domain.
func (c *Console) checkDomain(w http.ResponseWriter, r *Request) error {
	t, err := c.App.Tenants.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	domain := r.PostFormValue("domain")
	if !slices.Contains(t.Domains, domain) {
		return problem.New(problem.Invalid, "%s is not a domain of this tenant", domain)
	}
	rep := c.Check(r.Context(), check.Options{Domain: domain, ExpectBaseURL: c.EnrollURL(t.ID)})
	c.Log.Info("console: discovery check", "domain", domain, "by", r.Admin.Email)
	v, err := c.tenantView(r, t, domain, rep)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "tenant", t.Name, v)
	return nil
}

func (c *Console) deleteTenant(w http.ResponseWriter, r *Request) error {
	t, err := c.App.Tenants.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if r.PostFormValue("confirm") != t.Name {
		return problem.New(problem.Invalid, "Type the tenant's name to confirm the deletion.")
	}
	if _, _, err := c.App.Tenants.Delete(r.Context(), t.ID, false, false, "console:"+r.Admin.Email); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/tenants", "Tenant %s deleted.", t.Name)
}

// --- users ---

func (c *Console) users(w http.ResponseWriter, r *Request) error {
	q := r.URL.Query()
	us, next, err := c.App.Users.Search(r.Context(), q.Get("tenant"), q.Get("q"), q.Get("after"), 50)
	if err != nil {
		return err
	}
	ts, err := c.App.Tenants.List(r.Context(), "")
	if err != nil {
		return err
	}
	names := map[string]string{}
	for _, t := range ts {
		names[t.ID] = t.Name
	}
	c.render(w, r, http.StatusOK, "users", "Users", map[string]any{"Users": us, "Tenants": ts, "TenantNames": names, "Q": q.Get("q"),
		"Tenant": q.Get("tenant"), "Next": next, "Columns": strings.Join(directory.CSVColumns, ",")})
	return nil
}

func (c *Console) createUser(w http.ResponseWriter, r *Request) error {
	u, err := c.App.Users.Create(r.Context(), directory.UserInput{Tenant: r.PostFormValue("tenant"), Email: r.PostFormValue("email"),
		Name: r.PostFormValue("name"), ManagedAppleID: r.PostFormValue("managed_apple_id"), Password: r.PostFormValue("password")})
	if err != nil {
		return err
	}
	r.Target = u.ID
	c.Log.Info("user created", "user", u.ID, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/users/"+u.ID, "User %s created.", u.Email)
}

func (c *Console) importUsers(w http.ResponseWriter, r *Request) error {
	f, _, err := r.FormFile("csv")
	if err != nil {
		return problem.New(problem.Invalid, "Choose a CSV file to import.")
	}
	defer f.Close()
	created, failed, err := c.App.Users.Import(r.Context(), io.LimitReader(f, MaxForm), r.PostFormValue("tenant"))
	if err != nil {
		return err
	}
	c.Log.Info("console: users imported", "created", created, "failed", len(failed), "by", r.Admin.Email)
	c.render(w, r, http.StatusOK, "import", "Import result", map[string]any{"Created": created, "Failed": failed})
	return nil
}

func (c *Console) userRef(r *Request) (*store.User, error) {
	return c.App.Users.Get(r.Context(), r.PathValue("id"))
}

func (c *Console) user(w http.ResponseWriter, r *Request) error {
	u, err := c.userRef(r)
	if err != nil {
		return err
	}
	t, err := c.App.Tenants.Resolve(r.Context(), u.TenantID)
	if err != nil {
		return err
	}
	es, _, err := c.App.Devices.List(r.Context(), app.DeviceQuery{User: u.ID, Limit: 100})
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "user", u.Email, map[string]any{"User": u, "Tenant": t, "Devices": es, "SecondFactor": directory.SecondFactorState(u)})
	return nil
}

func (c *Console) setUserEnabled(w http.ResponseWriter, r *Request) error {
	u, err := c.userRef(r)
	if err != nil {
		return err
	}
	on := r.PostFormValue("enabled") == "true"
	if _, err := c.App.Users.Update(r.Context(), u.ID, directory.UserPatch{Enabled: &on}); err != nil {
		return err
	}
	if on {
		return c.done(w, r, Prefix+"/users/"+u.ID, "%s can sign in again.", u.Email)
	}
	return c.done(w, r, Prefix+"/users/"+u.ID, "%s is disabled: their devices must sign in again and cannot.", u.Email)
}

func (c *Console) setUserPassword(w http.ResponseWriter, r *Request) error {
	u, err := c.userRef(r)
	if err != nil {
		return err
	}
	if _, err := c.App.Users.SetPassword(r.Context(), u.ID, r.PostFormValue("password")); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/users/"+u.ID, "Password of %s changed; their devices will ask them to sign in again.", u.Email)
}

func (c *Console) resetUserTOTP(w http.ResponseWriter, r *Request) error {
	u, err := c.userRef(r)
	if err != nil {
		return err
	}
	if _, err := c.App.Users.ResetSecondFactor(r.Context(), u.ID); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/users/"+u.ID, "Second factor of %s reset: they set up a new one at their next sign-in.", u.Email)
}

func (c *Console) reauthenticate(w http.ResponseWriter, r *Request) error {
	u, err := c.userRef(r)
	if err != nil {
		return err
	}
	if _, err := c.App.Users.Reauthenticate(r.Context(), u.ID); err != nil {
		return err
	}
	c.Log.Info("user must re-authenticate: access tokens revoked", "user", u.ID, "by", "console:"+r.Admin.Email)
	return c.done(w, r, c.back(r), "%s must sign in again on each device at its next check-in.", u.Email)
}

// --- devices ---

func (c *Console) devices(w http.ResponseWriter, r *Request) error {
	q := r.URL.Query()
	f := app.DeviceQuery{Status: q.Get("status"), Platform: q.Get("platform"), Tenant: q.Get("tenant"), User: strings.TrimSpace(q.Get("user")),
		Before: q.Get("before"), Limit: 50}
	if f.Status == "" && !q.Has("status") {
		f.Status = store.EnrollmentEnrolled
	}
	if f.Status == "all" {
		f.Status = ""
	}
	if f.Status == "silent" {
		f.Status, f.Silent = "", true
	}
	es, next, err := c.App.Devices.List(r.Context(), f)
	noUser := false
	if f.User != "" && errors.Is(err, store.ErrNotFound) {
		es, next, err, noUser = nil, "", nil, true // an unknown email: an empty list that says so
	}
	if err != nil {
		return err
	}
	ts, err := c.App.Tenants.List(r.Context(), "")
	if err != nil {
		return err
	}
	// Whose device each is: a user enrollment reveals no device name, so
	// the user's email is what tells an administrator's devices apart.
	// At most one look-up per user on the page (50 rows).
	ids := make([]string, len(es))
	for i := range es {
		ids[i] = es[i].UserID
	}
	emails, err := c.App.Users.Emails(r.Context(), ids)
	if err != nil {
		return err
	}
	status := q.Get("status")
	if status == "" {
		status = store.EnrollmentEnrolled
	}
	c.render(w, r, http.StatusOK, "devices", "Devices", map[string]any{"Devices": es, "Tenants": ts, "Status": status,
		"Platform": f.Platform, "Tenant": f.Tenant, "User": f.User, "NoUser": noUser, "Emails": emails, "Next": next, "Silent": c.silentSet(es)})
	return nil
}

type commandRow struct {
	app.QueuedCommand
	Result  template.HTML
	ErrText string
}

type field struct {
	Name, Type, Label string
	Required          bool
	Options           []string
}

func platformOf(e *store.Enrollment) string {
	if e.Platform == catalog.MacOS {
		return catalog.MacOS
	}
	return catalog.IOS
}

// commandChoices are the request types the form offers for a platform:
// what Apple allows for user enrollments, minus what the server refuses.
func (c *Console) commandChoices(platform string) []string {
	var out []string
	for _, rt := range c.Catalog.AllowedCommands(platform) {
		if rt != "DeclarativeManagement" {
			out = append(out, rt)
		}
	}
	return out
}

func (c *Console) commandFields(rt, platform string) []field {
	cmd, ok := c.Catalog.Command(rt)
	if !ok {
		return nil
	}
	var out []field
	for i := range cmd.Keys {
		k := &cmd.Keys[i]
		if k.Name == "RequestType" || !catalog.KeyAllowed(k, platform) {
			continue
		}
		f := field{Name: k.Name, Type: k.Type, Required: k.Required, Label: k.Name}
		for _, v := range k.Range {
			if s, ok := v.(string); ok {
				f.Options = append(f.Options, s)
			}
		}
		out = append(out, f)
	}
	return out
}

func (c *Console) device(w http.ResponseWriter, r *Request) error {
	dt, err := c.App.Devices.Detail(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	e := dt.Device
	hist, err := c.App.Devices.History(r.Context(), e, 100, true)
	if err != nil {
		return err
	}
	// One result over the list's bound, asked for by ?result=<uuid>, is
	// read and shown whole: one large decode per request at most.
	if uuid := r.URL.Query().Get("result"); uuid != "" {
		for i := range hist {
			if hist[i].UUID == uuid && hist[i].Result == nil && hist[i].ResultSize > 0 {
				if _, q, err := c.App.Devices.Command(r.Context(), e.ID, uuid); err == nil {
					hist[i].Result = q.Result
				}
			}
		}
	}
	var rows []commandRow
	for _, q := range hist {
		row := commandRow{QueuedCommand: q}
		if len(q.Result) > 0 {
			if m, err := mdm.DecodeDict(q.Result); err == nil {
				row.Result = template.HTML(renderValue(m, 0))
				if ec, ok := m["ErrorChain"].([]any); ok && len(ec) > 0 {
					if d, ok := ec[0].(map[string]any); ok {
						row.ErrText, _ = d["LocalizedDescription"].(string)
					}
				}
			}
		}
		rows = append(rows, row)
	}
	var inv map[string]any
	if len(e.Inventory) > 0 {
		json.Unmarshal(e.Inventory, &inv)
	}
	u, _ := c.App.Users.Get(r.Context(), e.UserID)
	platform := platformOf(e)
	rt := r.URL.Query().Get("command")
	choices := c.commandChoices(platform)
	if rt != "" && !slices.Contains(choices, rt) {
		rt = ""
	}
	var title string
	if cmd, ok := c.Catalog.Command(rt); ok {
		title = cmd.Title
	}
	items, err := c.App.Profiles.DeviceProfiles(r.Context(), e.ID)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "device", deviceTitle(e), map[string]any{
		"Predecessor": dt.Predecessor, "Successor": dt.Successor, "Silent": c.App.Devices.Silent(e), "SilentFor": c.App.Devices.SilentFor(),
		"ProfileItems": items, "Device": e, "User": u, "Renewal": dt.Renewal, "Channels": dt.Channels, "Commands": rows, "ShownResult": r.URL.Query().Get("result"), "Inventory": template.HTML(renderInventory(inv)), "HasInventory": len(inv) > 0,
		"Choices": choices, "Command": rt, "CommandTitle": title, "Fields": c.commandFields(rt, platform), "Platform": platform,
	})
	return nil
}

func deviceTitle(e *store.Enrollment) string {
	switch {
	case e.DeviceName != "":
		return e.DeviceName
	case e.ModelName != "":
		return e.ModelName
	}
	return e.Product
}

// formCommand turns the command form into typed JSON for the catalogue.
func formCommand(c *Console, rt, platform string, form func(string) string) (map[string]any, error) {
	cmd := map[string]any{"request_type": rt}
	for _, f := range c.commandFields(rt, platform) {
		v := strings.TrimSpace(form("key." + f.Name))
		if v == "" {
			continue
		}
		switch f.Type {
		case "boolean":
			cmd[f.Name] = v == "true" || v == "on"
		case "integer":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, problem.New(problem.Unprocessable, "%s must be a whole number", f.Name)
			}
			cmd[f.Name] = float64(n)
		case "real":
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, problem.New(problem.Unprocessable, "%s must be a number", f.Name)
			}
			cmd[f.Name] = n
		case "array", "dictionary", "any":
			var x any
			if err := json.Unmarshal([]byte(v), &x); err != nil {
				return nil, problem.New(problem.Unprocessable, "%s must be JSON: %v", f.Name, err)
			}
			cmd[f.Name] = x
		case "data":
			if _, err := base64.StdEncoding.DecodeString(v); err != nil {
				return nil, problem.New(problem.Unprocessable, "%s must be base64", f.Name)
			}
			cmd[f.Name] = v
		default:
			cmd[f.Name] = v
		}
	}
	return cmd, nil
}

func (c *Console) sendCommand(w http.ResponseWriter, r *Request) error {
	e, err := c.App.Devices.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	req := app.EnqueueRequest{CreatedBy: "console:" + r.Admin.Email, Channel: r.PostFormValue("channel")}
	if raw := strings.TrimSpace(r.PostFormValue("plist")); raw != "" {
		req.Plist = []byte(raw)
	} else {
		rt := r.PostFormValue("request_type")
		if rt == "" {
			return problem.New(problem.Invalid, "Choose a command.")
		}
		if req.JSON, err = formCommand(c, rt, platformOf(e), r.PostFormValue); err != nil {
			return err
		}
	}
	_, id, err := c.App.Devices.Enqueue(r.Context(), e.ID, req)
	if err != nil {
		if pe, ok := problem.As(err); ok && pe.Code == "command_refused" {
			c.Metrics.Commands.WithLabelValues("refused").Inc()
		}
		return err
	}
	c.Metrics.Commands.WithLabelValues("queued").Inc()
	c.Log.Info("command queued", "device", e.ID, "command", id, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/devices/"+e.ID, "Command %s queued and the device was woken; its result appears below when it answers.", id)
}

func (c *Console) resendCommand(w http.ResponseWriter, r *Request) error {
	deviceID := r.PathValue("id")
	rt, id, err := c.App.Devices.Resend(r.Context(), deviceID, r.PathValue("uuid"), "console:"+r.Admin.Email)
	if err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/devices/"+deviceID, "%s sent again as %s.", rt, id)
}

func (c *Console) pushDevice(w http.ResponseWriter, r *Request) error {
	e, res, err := c.App.Devices.Push(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	var bad []string
	for _, p := range res {
		if !p.OK() {
			reason := p.Reason
			if reason == "" && p.Err != nil {
				reason = p.Err.Error()
			}
			bad = append(bad, p.ID+": "+reason)
		}
	}
	if len(bad) > 0 {
		return problem.New(problem.BadGateway, "APNs refused the push: %s", strings.Join(bad, "; "))
	}
	return c.done(w, r, Prefix+"/devices/"+e.ID, "Push sent to %d channel(s): the device checks in shortly.", len(res))
}

func (c *Console) unenroll(w http.ResponseWriter, r *Request) error {
	e, _, err := c.App.Devices.Unenroll(r.Context(), r.PathValue("id"), r.PostFormValue("immediately") == "on", "console:"+r.Admin.Email)
	if err != nil {
		return err
	}
	c.Log.Info("device unenroll requested", "device", e.ID, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/devices/"+e.ID, "Unenrollment requested: the device removes the work profile and its managed data.")
}

// --- push certificate ---

// pushView is the push certificate page. A struct, not a map: the page's
// template starts with {{with .Data}}, which skips an empty map, and the
// page of a new server (no certificate, no CSR yet) was blank.
type pushView struct {
	Cert      *pushcert.Cert // nil: none imported yet
	Days      int            // whole days until Cert expires
	Warnings  []string       // Cert.Problems
	LoadError string         // the stored certificate cannot be loaded
	CSR       string         // PEM of a request just made
}

func (c *Console) pushPage(w http.ResponseWriter, r *Request) error {
	var v pushView
	pc, err := c.App.PushCerts.Get(r.Context())
	switch {
	case err == nil:
		v.Cert, v.Days, v.Warnings = pc, int(pc.Cert.NotAfter.Sub(c.Now()).Hours()/24), pc.Problems(c.Now())
	case errors.Is(err, pushcert.ErrNone):
	default:
		v.LoadError = err.Error()
	}
	c.render(w, r, http.StatusOK, "push", "Push certificate", v)
	return nil
}

func (c *Console) pushCSR(w http.ResponseWriter, r *Request) error {
	csr, err := c.App.PushCerts.CSR(r.Context())
	if err != nil {
		return err
	}
	c.Log.Info("push certificate CSR created", "by", "console:"+r.Admin.Email)
	c.render(w, r, http.StatusOK, "push", "Push certificate", pushView{CSR: string(csr)})
	return nil
}

func formFile(r *Request, name string, limit int64) ([]byte, error) {
	f, _, err := r.FormFile(name)
	if errors.Is(err, http.ErrMissingFile) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

func (c *Console) pushUpload(w http.ResponseWriter, r *Request) error {
	certPEM, err := formFile(r, "certificate", 1<<20)
	if err != nil {
		return err
	}
	keyPEM, err := formFile(r, "private_key", 1<<20)
	if err != nil {
		return err
	}
	p12, err := formFile(r, "pkcs12", 1<<20)
	if err != nil {
		return err
	}
	if len(p12) == 0 && len(certPEM) == 0 {
		return problem.New(problem.Invalid, "Choose the certificate from Apple (PEM, with its key unless the CSR was made here) or a PKCS#12 file.")
	}
	pc, err := c.App.PushCerts.Import(r.Context(), app.PushCertUpload{CertPEM: certPEM, KeyPEM: keyPEM, PKCS12: p12, Password: r.PostFormValue("password"),
		AllowTopicChange: r.PostFormValue("allow_topic_change") == "on"})
	if err != nil {
		return err
	}
	c.Log.Info("push certificate imported", "topic", pc.Topic, "not_after", pc.Cert.NotAfter, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/push", "Push certificate for %s imported; valid until %s.", pc.Topic, pc.Cert.NotAfter.Format("2006-01-02"))
}

// --- API keys ---

func (c *Console) apiKeys(w http.ResponseWriter, r *Request) error {
	ks, err := c.App.Keys.List(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "apikeys", "API keys", map[string]any{"Keys": ks})
	return nil
}

func (c *Console) createAPIKey(w http.ResponseWriter, r *Request) error {
	k, rec, err := c.App.Keys.Create(r.Context(), r.PostFormValue("name"))
	if err != nil {
		return err
	}
	name := rec.Name
	r.Target = rec.ID
	c.Log.Info("API key created", "key", rec.ID, "name", name, "by", "console:"+r.Admin.Email)
	ks, err := c.App.Keys.List(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "apikeys", "API keys", map[string]any{"Keys": ks, "NewKey": k, "NewName": name})
	return nil
}

func (c *Console) revokeAPIKey(w http.ResponseWriter, r *Request) error {
	if err := c.App.Keys.Revoke(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/apikeys", "API key %s revoked.", r.PathValue("id"))
}

// --- webhooks ---

func (c *Console) webhooksView(r *Request) (map[string]any, error) {
	hs, err := c.App.Webhooks.List(r.Context())
	if err != nil {
		return nil, err
	}
	deliveries := map[string][]store.Delivery{}
	for _, h := range hs {
		ds, err := c.App.Webhooks.Deliveries(r.Context(), h.ID, 10)
		if err != nil {
			return nil, err
		}
		deliveries[h.ID] = ds
	}
	return map[string]any{"Hooks": hs, "Deliveries": deliveries, "Events": webhook.Events}, nil
}

func (c *Console) webhooks(w http.ResponseWriter, r *Request) error {
	v, err := c.webhooksView(r)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "webhooks", "Webhooks", v)
	return nil
}

func (c *Console) createWebhook(w http.ResponseWriter, r *Request) error {
	hook, secret, err := c.App.Webhooks.Create(r.Context(), r.PostFormValue("url"), r.PostForm["events"], "")
	if err != nil {
		return err
	}
	r.Target = hook.ID
	c.Log.Info("webhook created", "webhook", hook.ID, "url", hook.URL, "by", "console:"+r.Admin.Email)
	v, err := c.webhooksView(r)
	if err != nil {
		return err
	}
	v["NewSecret"], v["NewURL"] = secret, hook.URL
	c.render(w, r, http.StatusOK, "webhooks", "Webhooks", v)
	return nil
}

func (c *Console) deleteWebhook(w http.ResponseWriter, r *Request) error {
	if err := c.App.Webhooks.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/webhooks", "Webhook deleted.")
}

// --- audit ---

func (c *Console) auditPage(w http.ResponseWriter, r *Request) error {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Limit: 100}
	if b := q.Get("before"); b != "" {
		f.Before, _ = strconv.ParseInt(b, 10, 64)
	}
	es, next, err := c.App.Audit.List(r.Context(), f)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "audit", "Audit log", map[string]any{"Entries": es, "F": f, "Next": next})
	return nil
}

// --- console accounts ---

func (c *Console) adminsPage(w http.ResponseWriter, r *Request) error {
	return c.showAdmins(w, r, "", "")
}

func (c *Console) showAdmins(w http.ResponseWriter, r *Request, link, linkFor string) error {
	as, err := c.App.Accounts.List(r.Context())
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "admins", "Console accounts", map[string]any{"Admins": as, "Roles": rolesList(), "Link": link, "LinkFor": linkFor})
	return nil
}

func rolesList() []string {
	return []string{store.RoleOwner, store.RoleAdmin, store.RoleHelpDesk, store.RoleAuditor}
}

// SetupLink is the absolute URL of a setup token.
func SetupLink(publicURL, token string) string {
	return strings.TrimRight(publicURL, "/") + Prefix + "/setup?token=" + token
}

func (c *Console) inviteAdmin(w http.ResponseWriter, r *Request) error {
	a, tok, err := c.App.Accounts.Invite(r.Context(), r.PostFormValue("email"), r.PostFormValue("name"), r.PostFormValue("role"))
	if err != nil {
		return err
	}
	r.Target = a.ID
	c.Log.Info("console account invited", "admin", a.Email, "role", a.Role, "by", r.Admin.Email)
	return c.showAdmins(w, r, SetupLink(c.PublicURL, tok), a.Email)
}

func (c *Console) updateAdmin(w http.ResponseWriter, r *Request) error {
	var role *string
	var enabled *bool
	if v := r.PostFormValue("role"); v != "" {
		role = &v
	}
	if v := r.PostFormValue("enabled"); v != "" {
		b := v == "true"
		enabled = &b
	}
	a, err := c.App.Accounts.Update(r.Context(), r.Admin.ID, r.PathValue("id"), role, enabled)
	if err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/admins", "%s saved.", a.Email)
}

func (c *Console) resetAdmin(w http.ResponseWriter, r *Request) error {
	if r.PathValue("id") == r.Admin.ID {
		return problem.New(problem.Conflict, "Ask another owner to reset your own account.")
	}
	a, tok, err := c.App.Accounts.ResetSetup(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.showAdmins(w, r, SetupLink(c.PublicURL, tok), a.Email)
}
