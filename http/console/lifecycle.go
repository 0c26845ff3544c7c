package console

import (
	"net/http"
	"strconv"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/store"
)

// The enrollment lifecycle in the console (docs/lifecycle.md): silent
// devices (dashboard count, devices filter, device page), a re-enrolled
// device's predecessor and successor (device page), and deleting a user
// or a tenant with its users after a confirmation page that says how many
// devices will be unenrolled (as the API's ?dry_run and the CLI's --yes).

// silentSet names the silent devices of a page.
func (c *Console) silentSet(es []store.Enrollment) map[string]bool {
	out := map[string]bool{}
	for i := range es {
		if c.App.Devices.Silent(&es[i]) {
			out[es[i].ID] = true
		}
	}
	return out
}

// confirmDeletion is the data of the confirmation page.
type confirmDeletion struct {
	What    string // "user" or "tenant"
	ID      string // the user's or tenant's id
	Name    string // the email or tenant name
	Action  string // where the form posts
	Back    string // cancel link
	Users   int    // tenant: users deleted with it
	More    bool   // tenant: and more users than Users
	Devices []store.Enrollment
	// Shown bounds the device list on the page (the count is exact).
	Shown []store.Enrollment
	Typed bool // the name must be typed (tenant)
	// Error says why a submitted confirmation was not carried out.
	Error string
}

const maxShown = 20

func (c *Console) renderConfirm(w http.ResponseWriter, r *Request, status int, v confirmDeletion) {
	v.Shown = v.Devices[:min(len(v.Devices), maxShown)]
	c.render(w, r, status, "confirm-delete", "Delete "+v.Name, v)
}

// confirmedCount is the device count the administrator saw; a deletion
// whose count changed since is shown again instead of done.
func confirmedCount(r *Request) int {
	n, err := strconv.Atoi(r.PostFormValue("devices"))
	if err != nil {
		return -1
	}
	return n
}

func (c *Console) userDeletion(r *Request) (confirmDeletion, error) {
	u, err := c.userRef(r)
	if err != nil {
		return confirmDeletion{}, err
	}
	devices, err := c.App.Endings.Enrolled(r.Context(), store.EnrollmentFilter{UserID: u.ID})
	if err != nil {
		return confirmDeletion{}, err
	}
	return confirmDeletion{What: "user", ID: u.ID, Name: u.Email, Action: Prefix + "/users/" + u.ID + "/delete", Back: Prefix + "/users/" + u.ID,
		Devices: devices}, nil
}

func (c *Console) confirmDeleteUser(w http.ResponseWriter, r *Request) error {
	v, err := c.userDeletion(r)
	if err != nil {
		return err
	}
	c.renderConfirm(w, r, http.StatusOK, v)
	return nil
}

// deleteUser deletes a user (app.Users.Delete: RemoveProfile to each
// enrolled device first, tombstones) once the administrator saw the count.
func (c *Console) deleteUser(w http.ResponseWriter, r *Request) error {
	v, err := c.userDeletion(r)
	if err != nil {
		return err
	}
	if confirmedCount(r) != len(v.Devices) {
		v.Error = "The number of devices to unenroll changed since the page was shown: check it again."
		c.renderConfirm(w, r, http.StatusConflict, v)
		return nil
	}
	_, n, err := c.App.Users.Delete(r.Context(), v.ID, false, "console:"+r.Admin.Email)
	if err != nil {
		return err
	}
	c.Log.Info("user deleted", "user", v.ID, "devices_unenrolled", n, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/users", "%s deleted; %d device(s) unenrolled.", v.Name, n)
}

func (c *Console) confirmDeleteTenant(w http.ResponseWriter, r *Request) error {
	v, err := c.tenantDeletion(r)
	if err != nil {
		return err
	}
	c.renderConfirm(w, r, http.StatusOK, v)
	return nil
}

func (c *Console) tenantDeletion(r *Request) (confirmDeletion, error) {
	t, err := c.App.Tenants.Resolve(r.Context(), r.PathValue("id"))
	if err != nil {
		return confirmDeletion{}, err
	}
	devices, err := c.App.Endings.Enrolled(r.Context(), store.EnrollmentFilter{TenantID: t.ID})
	if err != nil {
		return confirmDeletion{}, err
	}
	users, more, err := c.App.Users.List(r.Context(), app.UserQuery{Tenant: t.ID, Limit: app.MaxLimit})
	if err != nil {
		return confirmDeletion{}, err
	}
	return confirmDeletion{What: "tenant", ID: t.ID, Name: t.Name, Action: Prefix + "/tenants/" + t.ID + "/delete-with-users", Back: Prefix + "/tenants/" + t.ID,
		Users: len(users), More: more != "", Devices: devices, Typed: true}, nil
}

// deleteTenantWithUsers deletes a tenant with its users (the API's
// cascade=true) once the administrator typed its name and saw the count.
func (c *Console) deleteTenantWithUsers(w http.ResponseWriter, r *Request) error {
	v, err := c.tenantDeletion(r)
	if err != nil {
		return err
	}
	switch {
	case r.PostFormValue("confirm") != v.Name:
		v.Error = "Type the tenant's name exactly to confirm the deletion."
		c.renderConfirm(w, r, http.StatusBadRequest, v)
		return nil
	case confirmedCount(r) != len(v.Devices):
		v.Error = "The number of devices to unenroll changed since the page was shown: check it again."
		c.renderConfirm(w, r, http.StatusConflict, v)
		return nil
	}
	_, n, err := c.App.Tenants.Delete(r.Context(), v.ID, true, false, "console:"+r.Admin.Email)
	if err != nil {
		return err
	}
	c.Log.Info("tenant deleted", "tenant", v.ID, "cascade", true, "devices_unenrolled", n, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/tenants", "Tenant %s deleted with its users; %d device(s) unenrolled.", v.Name, n)
}
