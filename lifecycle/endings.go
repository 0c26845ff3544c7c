package lifecycle

import (
	"context"
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Endings deletes users and tenants, and applies the disable policy,
// without orphaning a device: every enrolled device concerned is first
// sent RemoveProfile (and pushed); the store then deletes the rows and
// keeps a tombstone per identity certificate in the same transaction, so
// a device that was offline is answered com.apple.unrecognized.device on
// its next request and removes its profile itself. Each device ended gets
// an enrollment.ended event.
type Endings struct {
	Store interface {
		Enrollments(ctx context.Context, f store.EnrollmentFilter) ([]store.Enrollment, error)
		DeleteUser(ctx context.Context, id string, end store.Ending) error
		DeleteTenant(ctx context.Context, id string, cascade bool, end store.Ending) error
	}
	// Unenroll queues RemoveProfile for an enrolled device and pushes it
	// (mdmservice.Commands.Unenroll); with immediately it also ends the
	// enrollment at once. nil: deletions rely on tombstones alone.
	Unenroll func(ctx context.Context, e *store.Enrollment, immediately bool, by string) error
	Events   Publisher
	// Now is the device-lifecycle clock: tombstones age on it.
	Now func() time.Time
	Log *slog.Logger
}

// Enrolled lists every enrolled device matching f (all pages, newest
// first): what a deletion would unenroll — the dry-run count.
func (x *Endings) Enrolled(ctx context.Context, f store.EnrollmentFilter) ([]store.Enrollment, error) {
	f.Status, f.Limit = store.EnrollmentEnrolled, 500
	var out []store.Enrollment
	for {
		page, err := x.Store.Enrollments(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			return out, nil
		}
		f.Before = page[len(page)-1].ID
	}
}

// DeleteUser unenrolls the user's enrolled devices and deletes the user
// (store.UserStore.DeleteUser: tombstones in the same transaction). It
// returns how many devices were unenrolled; ErrNotFound for an unknown
// user. by names who asked (for the log, audit and tombstones).
func (x *Endings) DeleteUser(ctx context.Context, userID, by string) (int, error) {
	devices, err := x.Enrolled(ctx, store.EnrollmentFilter{UserID: userID})
	if err != nil {
		return 0, err
	}
	x.removeProfiles(ctx, devices, by)
	now := x.Now().UTC()
	if err := x.Store.DeleteUser(ctx, userID, store.Ending{Reason: "user deleted by " + by, At: now}); err != nil {
		return 0, err
	}
	x.published(ctx, devices, EndUserDeleted, by, now)
	return len(devices), nil
}

// DeleteTenant deletes a tenant; with cascade its users go too, and their
// enrolled devices are unenrolled first. Without cascade a tenant with
// users gives store.ErrInUse and nothing changes. It returns how many
// devices were unenrolled.
func (x *Endings) DeleteTenant(ctx context.Context, tenantID string, cascade bool, by string) (int, error) {
	var devices []store.Enrollment
	if cascade {
		var err error
		if devices, err = x.Enrolled(ctx, store.EnrollmentFilter{TenantID: tenantID}); err != nil {
			return 0, err
		}
		x.removeProfiles(ctx, devices, by)
	}
	now := x.Now().UTC()
	if err := x.Store.DeleteTenant(ctx, tenantID, cascade, store.Ending{Reason: "tenant deleted by " + by, At: now}); err != nil {
		return 0, err
	}
	x.published(ctx, devices, EndTenantDeleted, by, now)
	return len(devices), nil
}

// UserDisabled is the --unenroll-on-disable policy: every enrolled device
// of a user just disabled is sent RemoveProfile and its enrollment ended
// at once, so its next request is answered com.apple.unrecognized.device
// even though the disabled user's token is refused. Failures are logged;
// the user stays disabled.
func (x *Endings) UserDisabled(ctx context.Context, u *store.User) {
	if x.Unenroll == nil {
		x.Log.Error("unenroll on disable: no way to unenroll devices configured", "user", u.ID)
		return
	}
	devices, err := x.Enrolled(ctx, store.EnrollmentFilter{UserID: u.ID})
	if err != nil {
		x.Log.Error("unenroll on disable: listing the user's devices failed", "user", u.ID, "err", err)
		return
	}
	const by = "policy: user disabled"
	now := x.Now().UTC()
	n := 0
	for i := range devices {
		if err := x.Unenroll(ctx, &devices[i], true, by); err != nil {
			x.Log.Error("unenroll on disable failed", "user", u.ID, "device", devices[i].ID, "err", err)
			continue
		}
		n++
		publish(ctx, x.Events, EventEnded, ended(&devices[i], EndUserDisabled, by, now))
	}
	x.Log.Info("user disabled: devices unenrolled by policy", "user", u.ID, "devices", n)
}

// removeProfiles queues RemoveProfile for each device and pushes it. A
// device whose command could not be queued is logged and still ends by
// its tombstone, so one failure does not block the deletion.
func (x *Endings) removeProfiles(ctx context.Context, devices []store.Enrollment, by string) {
	if x.Unenroll == nil {
		return
	}
	for i := range devices {
		if err := x.Unenroll(ctx, &devices[i], false, by); err != nil {
			x.Log.Warn("RemoveProfile not queued before deletion; the device ends by its tombstone", "device", devices[i].ID, "err", err)
		}
	}
}

func (x *Endings) published(ctx context.Context, devices []store.Enrollment, reason, by string, at time.Time) {
	for i := range devices {
		publish(ctx, x.Events, EventEnded, ended(&devices[i], reason, by, at))
	}
}
