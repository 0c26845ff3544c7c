package console

import (
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"

	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// Groups and configuration profiles (docs/profiles.md): the same use
// cases as /api/v1/groups and /api/v1/profiles.

func (c *Console) profileRoutes() []route {
	R, S, M := adminaccount.Read, adminaccount.Support, adminaccount.Manage
	return []route{
		{"GET /console/groups", R, c.groupsPage},
		{"POST /console/groups", M, c.createGroup},
		{"GET /console/groups/{id}", R, c.groupPage},
		{"POST /console/groups/{id}/members", M, c.addGroupMembers},
		{"POST /console/groups/{id}/members/{user}/remove", M, c.removeGroupMember},
		{"POST /console/groups/{id}/rename", M, c.renameGroup},
		{"POST /console/groups/{id}/delete", M, c.deleteGroup},
		{"GET /console/profiles", R, c.profilesPage},
		{"POST /console/profiles", M, c.uploadProfile},
		{"GET /console/profiles/{id}", R, c.profilePage},
		{"POST /console/profiles/{id}/versions", M, c.uploadVersion},
		{"POST /console/profiles/{id}/assignments", M, c.assignProfile},
		{"POST /console/profiles/{id}/assignments/{group}/remove", M, c.unassignProfile},
		{"POST /console/profiles/{id}/devices/{device}/retry", S, c.retryProfile},
		{"POST /console/profiles/{id}/settings", M, c.profileSettings},
		{"POST /console/profiles/{id}/delete", M, c.deleteProfile},
	}
}

// tenantChoice resolves the tenant a page is about (?tenant=, or the only
// one), and lists them for the selector.
func (c *Console) tenantChoice(r *Request) (*store.Tenant, []store.Tenant, error) {
	ts, err := c.App.Tenants.List(r.Context(), "")
	if err != nil {
		return nil, nil, err
	}
	want := r.URL.Query().Get("tenant")
	if want == "" {
		want = r.PostFormValue("tenant")
	}
	for i := range ts {
		if ts[i].ID == want || want == "" && len(ts) > 0 {
			return &ts[i], ts, nil
		}
	}
	if len(ts) == 0 {
		return nil, ts, nil
	}
	return nil, ts, problem.New(problem.NotFound, "No tenant %q.", want)
}

// --- groups ---

func (c *Console) groupsPage(w http.ResponseWriter, r *Request) error {
	t, ts, err := c.tenantChoice(r)
	if err != nil {
		return err
	}
	var gs []store.Group
	if t != nil {
		if gs, err = c.App.Profiles.Groups(r.Context(), t.ID); err != nil {
			return err
		}
	}
	c.render(w, r, http.StatusOK, "groups", "Groups", map[string]any{"Tenant": t, "Tenants": ts, "Groups": gs})
	return nil
}

func (c *Console) createGroup(w http.ResponseWriter, r *Request) error {
	g, err := c.App.Profiles.CreateGroup(r.Context(), r.PostFormValue("tenant"), r.PostFormValue("name"))
	if err != nil {
		return err
	}
	r.Target = g.ID
	return c.done(w, r, Prefix+"/groups/"+g.ID, "Group %s created.", g.Name)
}

func (c *Console) groupPage(w http.ResponseWriter, r *Request) error {
	g, ms, err := c.App.Profiles.GroupDetail(r.Context(), r.PathValue("id"), r.URL.Query().Get("after"), 200)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "group", g.Name, map[string]any{"Group": g, "Members": ms, "Static": g.Source == store.GroupStatic})
	return nil
}

func (c *Console) addGroupMembers(w http.ResponseWriter, r *Request) error {
	refs := strings.FieldsFunc(r.PostFormValue("users"), func(r rune) bool { return r == ',' || r == '\n' || r == '\r' || r == ' ' || r == ';' })
	if f, _, err := r.FormFile("csv"); err == nil {
		defer f.Close()
		b, _ := io.ReadAll(io.LimitReader(f, MaxForm))
		for i, line := range strings.Split(string(b), "\n") {
			v := strings.TrimSpace(strings.SplitN(line, ",", 2)[0])
			if v == "" || i == 0 && strings.EqualFold(v, "email") {
				continue
			}
			refs = append(refs, v)
		}
	}
	if len(refs) == 0 {
		return problem.New(problem.Invalid, "Give the members' emails, or a CSV file of emails.")
	}
	rows, err := c.App.Profiles.AddMembers(r.Context(), r.PathValue("id"), refs)
	if err != nil {
		return err
	}
	added, failed := 0, 0
	var bad []string
	for _, x := range rows {
		switch x.Result {
		case "added":
			added++
		case "error":
			failed++
			bad = append(bad, x.Ref+" ("+x.Error+")")
		}
	}
	if failed > 0 {
		c.setFlash(w, "error", fmt.Sprintf("%d added; %d not added: %s", added, failed, strings.Join(bad, "; ")))
		http.Redirect(w, r.Request, Prefix+"/groups/"+r.PathValue("id"), http.StatusSeeOther)
		return nil
	}
	return c.done(w, r, Prefix+"/groups/"+r.PathValue("id"), "%d added.", added)
}

func (c *Console) removeGroupMember(w http.ResponseWriter, r *Request) error {
	if err := c.App.Profiles.RemoveMember(r.Context(), r.PathValue("id"), r.PathValue("user")); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/groups/"+r.PathValue("id"), "Member removed: the profiles of the group leave their devices.")
}

func (c *Console) renameGroup(w http.ResponseWriter, r *Request) error {
	g, err := c.App.Profiles.RenameGroup(r.Context(), r.PathValue("id"), r.PostFormValue("name"))
	if err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/groups/"+g.ID, "Renamed to %s.", g.Name)
}

// deleteGroup deletes a group once the administrator ticked that its
// profiles leave its members' devices (one key press must not do that).
func (c *Console) deleteGroup(w http.ResponseWriter, r *Request) error {
	g, err := c.App.Profiles.Group(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if r.PostFormValue("confirm") == "" {
		return problem.New(problem.Invalid, "Not deleted: tick that the group's profiles leave its members' devices, then delete again.")
	}
	if err := c.App.Profiles.DeleteGroup(r.Context(), g.ID); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/groups?tenant="+g.TenantID, "Group %s deleted.", g.Name)
}

// --- profiles ---

func (c *Console) profilesView(r *Request) (map[string]any, error) {
	t, ts, err := c.tenantChoice(r)
	if err != nil {
		return nil, err
	}
	v := map[string]any{"Tenant": t, "Tenants": ts}
	if t != nil {
		ps, err := c.App.Profiles.List(r.Context(), t.ID)
		if err != nil {
			return nil, err
		}
		v["Profiles"] = ps
	}
	return v, nil
}

func (c *Console) profilesPage(w http.ResponseWriter, r *Request) error {
	v, err := c.profilesView(r)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "profiles", "Profiles", v)
	return nil
}

// A refused upload keeps its file: the page it is refused on carries the
// file back in the upload form (hidden fields kept_file, base64, and
// kept_name), so that an administrator who only has to change a setting
// (uncheck the platform that refuses it) uploads it again with Return,
// and one who corrects the file sees which file it was. A page cannot
// choose a file in the browser's file chooser; this is what it can keep.
// The kept bytes are checked again as any upload (they come from the
// same signed-in administrator's form, CSRF-checked), and a file larger
// than keptMax is not kept (the form's body stays within MaxForm with a
// new file of profileMax beside it).
const (
	profileMax = app.MaxProfileFile // bytes of a profile read from the form
	keptMax    = 1 << 20            // bytes of a refused profile the page keeps
)

// kept is a refused upload's file, for the form to carry back.
type kept struct {
	Name string // the file's name as the browser sent it (base name, at most 100 bytes)
	Data string // its bytes, base64
}

// upload reads the form's file and settings: the chosen file, else the
// file a refusal kept (kept_file). name is the file's name, for the page.
func upload(r *Request) (u app.ProfileUpload, name string, err error) {
	var b []byte
	f, h, err := r.FormFile("file")
	switch {
	case err == nil:
		defer f.Close()
		// One byte more than the limit: Profiles.Upload refuses a larger
		// file as too large, rather than one cut at the limit as unreadable.
		if b, err = io.ReadAll(io.LimitReader(f, profileMax+1)); err != nil {
			return app.ProfileUpload{}, "", err
		}
		name = h.Filename
	case errors.Is(err, http.ErrMissingFile) && r.PostFormValue("kept_file") != "":
		if b, err = base64.StdEncoding.DecodeString(r.PostFormValue("kept_file")); err != nil || len(b) > keptMax {
			return app.ProfileUpload{}, "", problem.New(problem.Invalid, "The kept file could not be read: choose the .mobileconfig file again.")
		}
		name = r.PostFormValue("kept_name")
	default:
		return app.ProfileUpload{}, "", problem.New(problem.Invalid, "Choose a .mobileconfig file.")
	}
	return app.ProfileUpload{TenantID: r.PostFormValue("tenant"), Content: b, Platforms: r.PostForm["platforms"],
		MinOS: strings.TrimSpace(r.PostFormValue("min_os")), Sign: r.PostFormValue("sign") != ""}, fileName(name), nil
}

// fileName is a browser-sent file name fit to show: its base name (some
// browsers send a path), at most 100 bytes, "the file" when empty.
func fileName(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 100 {
		s = strings.ToValidUTF8(s[:100], "")
	}
	if s == "" {
		return "the file"
	}
	return s
}

// keep adds the refused upload's file to the page's values v (not when
// larger than keptMax: the page then says to choose it again).
func keep(v map[string]any, u app.ProfileUpload, name string) {
	v["KeptName"] = name
	if len(u.Content) <= keptMax {
		v["Kept"] = kept{Name: name, Data: base64.StdEncoding.EncodeToString(u.Content)}
	}
}

// refused shows the user-enrollment check's findings on the page the
// upload came from (422), rather than as a one-line message.
func (c *Console) refused(w http.ResponseWriter, r *Request, err error, name, title string, v map[string]any) bool {
	var ref *app.RefusedError
	if !errors.As(err, &ref) {
		return false
	}
	c.Log.Info("console: refused", "path", r.URL.Path, "admin", r.Admin.Email, "status", 422, "reason", err.Error())
	v["Violations"] = ref.Violations
	c.render(w, r, http.StatusUnprocessableEntity, name, title, v)
	return true
}

func (c *Console) uploadProfile(w http.ResponseWriter, r *Request) error {
	u, name, err := upload(r)
	if err != nil {
		return err
	}
	p, err := c.App.Profiles.Upload(r.Context(), u)
	if err != nil {
		v, verr := c.profilesView(r)
		if verr == nil {
			keep(v, u, name)
		}
		if verr == nil && c.refused(w, r, err, "profiles", "Profiles", v) {
			return nil
		}
		return err
	}
	r.Target = p.ID
	return c.done(w, r, Prefix+"/profiles/"+p.ID, "Profile %s uploaded: assign it to a group.", p.Identifier)
}

func (c *Console) profileView(r *Request) (map[string]any, error) {
	d, err := c.App.Profiles.Profile(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	p, vs, as := d.Profile, d.Versions, d.Assignments
	gs, err := c.App.Profiles.Groups(r.Context(), p.TenantID)
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	for _, g := range gs {
		names[g.ID] = g.Name
	}
	type assignment struct {
		store.Assignment
		Name string
	}
	var rows []assignment
	for _, a := range as {
		rows = append(rows, assignment{a, names[a.GroupID]})
	}
	st, err := c.App.Profiles.Status(r.Context(), p.ID, "failed", "", 100)
	if err != nil {
		return nil, err
	}
	losing, err := c.App.Profiles.DeleteProfile(r.Context(), p.ID, true)
	if err != nil {
		return nil, err
	}
	return map[string]any{"Profile": p, "Versions": vs, "Assignments": rows, "Groups": gs, "Counts": st.Counts, "Failed": st.Devices,
		"Bar": stateBar(st.Counts), "Losing": losing, "OnIOS": containsStr(p.Platforms, "iOS"), "OnMacOS": containsStr(p.Platforms, "macOS")}, nil
}

func (c *Console) profilePage(w http.ResponseWriter, r *Request) error {
	v, err := c.profileView(r)
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "profile", v["Profile"].(*store.ConfigProfile).Name, v)
	return nil
}

func (c *Console) uploadVersion(w http.ResponseWriter, r *Request) error {
	u, name, err := upload(r)
	if err != nil {
		return err
	}
	u.ProfileID = r.PathValue("id")
	p, err := c.App.Profiles.Upload(r.Context(), u)
	if err != nil {
		v, verr := c.profileView(r)
		if verr == nil {
			keep(v, u, name)
		}
		if verr == nil && c.refused(w, r, err, "profile", "Profile", v) {
			return nil
		}
		return err
	}
	return c.done(w, r, Prefix+"/profiles/"+p.ID, "Version %d uploaded: every device of its groups gets it.", p.Version)
}

func (c *Console) assignProfile(w http.ResponseWriter, r *Request) error {
	exclude := r.PostFormValue("mode") == "exclude"
	if err := c.App.Profiles.Assign(r.Context(), r.PathValue("id"), r.PostFormValue("group"), exclude); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/profiles/"+r.PathValue("id"), "Assignment saved: the group's devices are being updated.")
}

// unassignProfile removes an assignment or an exclusion once the
// administrator ticked what it does to the group's devices (one key press
// must not take a profile off a group, as with deleting the group).
func (c *Console) unassignProfile(w http.ResponseWriter, r *Request) error {
	if r.PostFormValue("confirm") == "" {
		return problem.New(problem.Invalid, "Not removed: tick what removing it does to the group's devices, then remove again.")
	}
	if err := c.App.Profiles.Unassign(r.Context(), r.PathValue("id"), r.PathValue("group")); err != nil {
		return err
	}
	return c.done(w, r, Prefix+"/profiles/"+r.PathValue("id"), "Assignment removed: the profile leaves the group's devices.")
}

func (c *Console) retryProfile(w http.ResponseWriter, r *Request) error {
	if err := c.App.Profiles.Retry(r.Context(), r.PathValue("device"), r.PathValue("id")); err != nil {
		if _, perr := c.App.Profiles.Profile(r.Context(), r.PathValue("id")); errors.Is(err, store.ErrNotFound) && errors.Is(perr, store.ErrNotFound) {
			// Deleted since the page was shown: its own page is gone too,
			// so say so on the library rather than on a 404 page.
			c.Log.Info("console: retry of a deleted profile", "profile", r.PathValue("id"), "device", r.PathValue("device"), "admin", r.Admin.Email)
			c.setFlash(w, "error", "Not retried: the profile was deleted meanwhile, and its devices are having it removed.")
			if sw, ok := w.(*httpx.StatusRecorder); ok {
				sw.Status = http.StatusNotFound // the audit records the refusal
			}
			http.Redirect(w, r.Request, Prefix+"/profiles", http.StatusSeeOther)
			return nil
		}
		return err
	}
	return c.done(w, r, Prefix+"/profiles/"+r.PathValue("id"), "Retry queued.")
}

// stateBar draws the rollout as one stacked bar (inline SVG: the CSP
// allows no inline styles), with the counts as text beside it.
func stateBar(counts map[string]int) template.HTML {
	total := 0
	for _, s := range app.States {
		total += counts[s]
	}
	if total == 0 {
		return template.HTML(`<p class="muted">No device has this profile yet.</p>`)
	}
	var b strings.Builder
	var label []string
	for _, s := range app.States {
		label = append(label, fmt.Sprintf("%d %s", counts[s], s))
	}
	fmt.Fprintf(&b, `<svg class="chart rollout" viewBox="0 0 600 24" role="img" aria-label="%s">`, template.HTMLEscapeString(strings.Join(label, ", ")))
	x := 0.0
	for _, s := range app.States {
		n := counts[s]
		if n == 0 {
			continue
		}
		wd := 600 * float64(n) / float64(total)
		fmt.Fprintf(&b, `<rect class="state-%s" x="%.1f" y="0" width="%.1f" height="24"><title>%s: %d</title></rect>`, s, x, wd, s, n)
		x += wd
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func containsStr(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// profileSettings changes a profile's name, platforms, minimum OS and
// signing from the profile page's form (every field is sent).
func (c *Console) profileSettings(w http.ResponseWriter, r *Request) error {
	if err := r.ParseForm(); err != nil {
		return err
	}
	name, minOS, sign := r.PostFormValue("name"), r.PostFormValue("min_os"), r.PostFormValue("sign") != ""
	plats := r.PostForm["platforms"]
	p, err := c.App.Profiles.UpdateProfile(r.Context(), r.PathValue("id"), app.ProfileSettings{Name: &name, Platforms: &plats, MinOS: &minOS, Sign: &sign})
	if err != nil {
		v, verr := c.profileView(r)
		if verr == nil && c.refused(w, r, err, "profile", "Profile", v) {
			return nil
		}
		return err
	}
	return c.done(w, r, Prefix+"/profiles/"+p.ID, "Settings saved: the devices it concerns are being brought in line.")
}

// deleteProfile deletes a profile once the administrator confirmed the
// number of devices that lose it (shown on the profile page).
func (c *Console) deleteProfile(w http.ResponseWriter, r *Request) error {
	id := r.PathValue("id")
	p, err := c.App.Profiles.Profile(r.Context(), id)
	if err != nil {
		return err
	}
	n, err := c.App.Profiles.DeleteProfile(r.Context(), id, true)
	if err != nil {
		return err
	}
	if r.PostFormValue("confirm") == "" || confirmedCount(r) != n {
		c.setFlash(w, "error", fmt.Sprintf("Not deleted: confirm that %d device(s) lose the profile (the number may have changed since the page was shown).", n))
		http.Redirect(w, r.Request, Prefix+"/profiles/"+id, http.StatusSeeOther)
		return nil
	}
	if _, err := c.App.Profiles.DeleteProfile(r.Context(), id, false); err != nil {
		return err
	}
	c.Log.Info("profile deleted", "profile", id, "devices_losing_it", n, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/profiles?tenant="+p.Profile.TenantID, "Profile %s deleted: %d device(s) will lose it.", p.Profile.Name, n)
}
