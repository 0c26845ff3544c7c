package console

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/store"
)

// The enrollment lifecycle in the console (docs/lifecycle.md): silent
// devices (dashboard count, devices filter, device page), a re-enrolled
// device's predecessor and successor (device page), and deleting a user
// or a tenant with its users after a confirmation page that says how many
// devices will be unenrolled (as the API's ?dry_run and the CLI's --yes).

// silentCutoff is the last-seen time before which an enrolled device is
// silent, on the device-lifecycle clock.
func (c *Console) silentCutoff() time.Time {
	if c.Silence == nil {
		return c.Now().Add(-lifecycle.DefaultSilentAfter)
	}
	return c.Silence.Cutoff(c.Silence.Now())
}

// silentFor is the silence threshold in words ("30 days").
func (c *Console) silentFor() string {
	if c.Silence == nil {
		return lifecycle.Days(lifecycle.DefaultSilentAfter)
	}
	return lifecycle.Days(c.Silence.Threshold())
}

func (c *Console) silent(e *store.Enrollment) bool {
	return e.Status == store.EnrollmentEnrolled && e.LastSeenAt.Before(c.silentCutoff())
}

// silentFilter turns the devices page's status "silent" into the filter.
func (c *Console) silentFilter(f store.EnrollmentFilter) store.EnrollmentFilter {
	if f.Status == "silent" {
		f.Status, f.SeenBefore = store.EnrollmentEnrolled, c.silentCutoff()
	}
	return f
}

// silentSet names the silent devices of a page.
func (c *Console) silentSet(es []store.Enrollment) map[string]bool {
	out := map[string]bool{}
	for i := range es {
		if c.silent(&es[i]) {
			out[es[i].ID] = true
		}
	}
	return out
}

// confirmDeletion is the data of the confirmation page.
type confirmDeletion struct {
	What    string // "user" or "tenant"
	ID      string // the tenant's id
	Name    string // the email or tenant name
	Action  string // where the form posts
	Back    string // cancel link
	Users   int    // tenant: users deleted with it
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

func (c *Console) confirmDeleteUser(w http.ResponseWriter, r *Request) error {
	u, err := c.userRef(r)
	if err != nil {
		return err
	}
	devices, err := c.Endings.Enrolled(r.Context(), store.EnrollmentFilter{UserID: u.ID})
	if err != nil {
		return err
	}
	c.renderConfirm(w, r, http.StatusOK, confirmDeletion{What: "user", Name: u.Email, Action: Prefix + "/users/" + u.ID + "/delete",
		Back: Prefix + "/users/" + u.ID, Devices: devices})
	return nil
}

func (c *Console) deleteUser(w http.ResponseWriter, r *Request) error {
	u, err := c.userRef(r)
	if err != nil {
		return err
	}
	devices, err := c.Endings.Enrolled(r.Context(), store.EnrollmentFilter{UserID: u.ID})
	if err != nil {
		return err
	}
	v := confirmDeletion{What: "user", Name: u.Email, Action: Prefix + "/users/" + u.ID + "/delete", Back: Prefix + "/users/" + u.ID, Devices: devices}
	if confirmedCount(r) != len(devices) {
		v.Error = "The number of devices to unenroll changed since the page was shown: check it again."
		c.renderConfirm(w, r, http.StatusConflict, v)
		return nil
	}
	n, err := c.Endings.DeleteUser(r.Context(), u.ID, "console:"+r.Admin.Email)
	if err != nil {
		return err
	}
	c.Log.Info("user deleted", "user", u.ID, "devices_unenrolled", n, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/users", "%s deleted; %d device(s) unenrolled.", u.Email, n)
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
	t, err := c.Dir.ResolveTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return confirmDeletion{}, err
	}
	id := t.ID
	devices, err := c.Endings.Enrolled(r.Context(), store.EnrollmentFilter{TenantID: t.ID})
	if err != nil {
		return confirmDeletion{}, err
	}
	users, err := c.Store.Users(r.Context(), store.UserFilter{TenantID: t.ID, Limit: 100000})
	if err != nil {
		return confirmDeletion{}, err
	}
	return confirmDeletion{What: "tenant", ID: id, Name: t.Name, Action: Prefix + "/tenants/" + id + "/delete-with-users", Back: Prefix + "/tenants/" + id,
		Users: len(users), Devices: devices, Typed: true}, nil
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
	n, err := c.Endings.DeleteTenant(r.Context(), v.ID, true, "console:"+r.Admin.Email)
	if errors.Is(err, store.ErrNotFound) {
		return refusef(http.StatusNotFound, "The tenant no longer exists.")
	}
	if err != nil {
		return err
	}
	c.Log.Info("tenant deleted", "tenant", v.ID, "cascade", true, "devices_unenrolled", n, "by", "console:"+r.Admin.Email)
	return c.done(w, r, Prefix+"/tenants", "Tenant %s deleted with its users; %d device(s) unenrolled.", v.Name, n)
}
