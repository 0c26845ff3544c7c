package app

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// UserStore is what Users reads and deletes directly (creating and
// changing go through directory's rules).
type UserStore interface {
	User(ctx context.Context, id string) (*store.User, error)
	UserByEmail(ctx context.Context, email string) (*store.User, error)
	Users(ctx context.Context, f store.UserFilter) ([]store.User, error)
	DeleteUser(ctx context.Context, id string, end store.Ending) error
}

// Users are the user use cases. A user is named by id ("us_…") or by
// email (any case) everywhere (a "ref").
type Users struct {
	Dir     *directory.Service
	Store   UserStore
	Tenants *Tenants
	Endings *Endings
}

// Get finds a user by id or email. Errors: store.ErrNotFound (404).
func (u *Users) Get(ctx context.Context, ref string) (*store.User, error) {
	if isUserID(ref) {
		return u.Store.User(ctx, ref)
	}
	return u.Store.UserByEmail(ctx, strings.ToLower(ref))
}

// Emails maps each of ids (user ids, "us_…") to its user's email, ""
// for a deleted user (whose devices are being told to unenroll): what an
// administrator reads to tell devices apart, since a user enrollment
// reveals no device name. One look-up per distinct id, so a caller
// passes one page (the device list's at most 1000 rows). Errors: the
// store's, other than store.ErrNotFound.
func (u *Users) Emails(ctx context.Context, ids []string) (map[string]string, error) {
	emails := make(map[string]string, len(ids))
	for _, id := range ids {
		if _, ok := emails[id]; ok {
			continue
		}
		us, err := u.Store.User(ctx, id)
		switch {
		case err == nil:
			emails[id] = us.Email
		case errors.Is(err, store.ErrNotFound):
			emails[id] = ""
		default:
			return nil, err
		}
	}
	return emails, nil
}

// UserQuery selects a page of users: of Tenant (a ref; "" for all), with
// Email exactly (any case), after the email After, at most Limit (default
// 100, at most 1000), by email.
type UserQuery struct {
	Tenant, Email, After string
	Limit                int
}

// List returns a page of users and the cursor of the next page ("" when
// this one is the last). Errors: as Tenants.Resolve for Tenant.
func (u *Users) List(ctx context.Context, q UserQuery) ([]store.User, string, error) {
	f := store.UserFilter{Email: strings.ToLower(q.Email), After: strings.ToLower(q.After), Limit: limit(q.Limit)}
	if q.Tenant != "" {
		t, err := u.Tenants.Resolve(ctx, q.Tenant)
		if err != nil {
			return nil, "", err
		}
		f.TenantID = t.ID
	}
	us, err := u.Store.Users(ctx, f)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(us) == f.Limit {
		next = us[len(us)-1].Email
	}
	return us, next, nil
}

// Search is List for people typing: a text with "@" is an exact email,
// anything else matches a part of the email or the name (any case),
// scanning the directory 500 users at a time until the page is full.
// tenantID "" means all tenants.
func (u *Users) Search(ctx context.Context, tenantID, text, after string, n int) ([]store.User, string, error) {
	text = strings.ToLower(strings.TrimSpace(text))
	n = limit(n)
	if strings.Contains(text, "@") {
		us, err := u.Store.Users(ctx, store.UserFilter{TenantID: tenantID, Email: text, After: strings.ToLower(after), Limit: n})
		return us, nextEmail(us, n), err
	}
	var out []store.User
	after = strings.ToLower(after)
	for len(out) < n {
		page, err := u.Store.Users(ctx, store.UserFilter{TenantID: tenantID, After: after, Limit: 500})
		if err != nil {
			return nil, "", err
		}
		for _, us := range page {
			if text == "" || strings.Contains(us.Email, text) || strings.Contains(strings.ToLower(us.Name), text) {
				out = append(out, us)
				if len(out) == n {
					break
				}
			}
		}
		if len(page) < 500 {
			break
		}
		after = page[len(page)-1].Email
	}
	return out, nextEmail(out, n), nil
}

func nextEmail(us []store.User, n int) string {
	if len(us) == n {
		return us[len(us)-1].Email
	}
	return ""
}

// Create makes a user in Tenant (a ref; default: the tenant of the
// email's domain) with an optional password (8–256 characters). Errors:
// Unprocessable validation_failed naming the field; store.ErrConflict for
// a taken email or Managed Apple ID.
func (u *Users) Create(ctx context.Context, in directory.UserInput) (*store.User, error) {
	return u.Dir.CreateUser(ctx, in)
}

// Update changes the set fields of the user ref. Disabling a user ends
// their sessions (and with --unenroll-on-disable their enrollments).
// Errors: as Create; validation_failed on "email" when the new email's
// domain is not one of the tenant's; store.ErrNotFound.
func (u *Users) Update(ctx context.Context, ref string, p directory.UserPatch) (*store.User, error) {
	cur, err := u.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	out, err := u.Dir.UpdateUser(ctx, cur.ID, p)
	if errors.Is(err, store.ErrNotFound) && p.Email != nil {
		pe := problem.Validation("email", "the new email's domain is not one of the tenant's domains")
		pe.Err = err
		return nil, pe
	}
	return out, err
}

// SetPassword sets the password of the user ref (8–256 characters) and
// ends their devices' sign-ins. Errors: validation_failed on "password";
// store.ErrNotFound.
func (u *Users) SetPassword(ctx context.Context, ref, password string) (*store.User, error) {
	cur, err := u.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return u.Dir.SetPassword(ctx, cur.ID, password)
}

// ResetSecondFactor removes the TOTP secret of the user ref; they set up
// a new one at their next sign-in. Errors: store.ErrNotFound.
func (u *Users) ResetSecondFactor(ctx context.Context, ref string) (*store.User, error) {
	cur, err := u.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return u.Dir.ResetSecondFactor(ctx, cur.ID)
}

// Reauthenticate revokes the access tokens of the user ref: each device
// must sign in again at its next check-in. Errors: store.ErrNotFound.
func (u *Users) Reauthenticate(ctx context.Context, ref string) (*store.User, error) {
	cur, err := u.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	return u.Dir.Reauthenticate(ctx, cur.ID)
}

// Delete deletes the user ref after sending RemoveProfile to each of
// their enrolled devices (tombstones answer the offline ones later;
// docs/lifecycle.md) and returns the user with the number of those
// devices; with dryRun nothing changes. Errors: store.ErrNotFound.
func (u *Users) Delete(ctx context.Context, ref string, dryRun bool, by string) (*store.User, int, error) {
	us, err := u.Get(ctx, ref)
	if err != nil {
		return nil, 0, err
	}
	devices, err := u.Endings.Enrolled(ctx, store.EnrollmentFilter{UserID: us.ID})
	if err != nil || dryRun {
		return us, len(devices), err
	}
	u.Endings.UnenrollAll(ctx, devices, by)
	if err := u.Store.DeleteUser(ctx, us.ID, store.Ending{Reason: "user deleted by " + by, At: u.Endings.now()}); err != nil {
		return nil, 0, err
	}
	u.Endings.Ended(ctx, devices, lifecycle.EndUserDeleted, by)
	return us, len(devices), nil
}

// ImportFailure is a CSV line that did not become a user.
type ImportFailure struct {
	Line  int
	Email string
	Error string
}

// Import creates the users of a CSV (directory.CSVColumns; tenant is the
// default for rows without one), each like Create; a bad row does not stop
// the others. It returns how many were created and the failed lines.
// Errors: Unprocessable (code invalid_csv) when the CSV cannot be read.
func (u *Users) Import(ctx context.Context, csv io.Reader, tenant string) (int, []ImportFailure, error) {
	_, rows, err := directory.ReadUserCSV(csv, tenant)
	if err != nil {
		return 0, nil, &problem.Error{Kind: problem.Unprocessable, Code: "invalid_csv", Message: "The CSV cannot be imported: " + err.Error(), Err: err}
	}
	created := 0
	var failed []ImportFailure
	for _, row := range rows {
		if row.Err == nil {
			_, row.Err = u.Dir.CreateUser(ctx, row.Input)
		}
		if row.Err != nil {
			failed = append(failed, ImportFailure{row.Line, row.Input.Email, row.Err.Error()})
			continue
		}
		created++
	}
	return created, failed, nil
}
