package app

import (
	"context"
	"errors"
	"strings"

	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/lifecycle"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// TenantStore is what Tenants reads and deletes directly (creating and
// changing go through directory's rules).
type TenantStore interface {
	Tenant(ctx context.Context, id string) (*store.Tenant, error)
	Tenants(ctx context.Context) ([]store.Tenant, error)
	DeleteTenant(ctx context.Context, id string, cascade bool, end store.Ending) error
	Users(ctx context.Context, f store.UserFilter) ([]store.User, error)
}

// Tenants are the tenant use cases. A tenant is named by its id ("tn_…")
// or by one of its domains everywhere (a "ref").
type Tenants struct {
	Dir     *directory.Service
	Store   TenantStore
	Endings *Endings
}

// Resolve finds a tenant by id or domain. Errors: Unprocessable (field
// "tenant") for an empty ref; store.ErrNotFound (404).
func (t *Tenants) Resolve(ctx context.Context, ref string) (*store.Tenant, error) {
	return t.Dir.ResolveTenant(ctx, ref)
}

// List returns every tenant by name; with domain set, the one tenant
// owning it (none when no tenant does).
func (t *Tenants) List(ctx context.Context, domain string) ([]store.Tenant, error) {
	if domain == "" {
		return t.Store.Tenants(ctx)
	}
	tn, err := t.Dir.ResolveTenant(ctx, domain)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []store.Tenant{*tn}, nil
}

// Create makes a tenant (name ≤ 200 characters, at least one domain, each
// a registrable domain; RequireSecondFactor defaults to true). Errors:
// Unprocessable validation_failed naming the field; store.ErrConflict when
// a domain belongs to another tenant.
func (t *Tenants) Create(ctx context.Context, in directory.TenantInput) (*store.Tenant, error) {
	return t.Dir.CreateTenant(ctx, in)
}

// Update changes the set fields of the tenant ref (branding fields as
// package branding allows; "" removes one). Errors: as Create and
// Resolve; store.ErrInUse (409) when a removed domain is still used by
// users' emails.
func (t *Tenants) Update(ctx context.Context, ref string, p directory.TenantPatch) (*store.Tenant, error) {
	cur, err := t.Dir.ResolveTenant(ctx, ref)
	if err != nil {
		return nil, err
	}
	out, err := t.Dir.UpdateTenant(ctx, cur.ID, p)
	if errors.Is(err, store.ErrInUse) {
		// The store says which domain and how many users.
		msg := strings.TrimPrefix(err.Error(), store.ErrInUse.Error()+": ")
		return nil, &problem.Error{Kind: problem.Conflict, Code: "in_use", Message: msg + ": move or delete those users first", Err: err}
	}
	return out, err
}

// SetLogo stores the sign-in page logo of the tenant ref (PNG or JPEG of
// at most branding.MaxLogoBytes; nil removes it) and returns the tenant.
// Errors: Unprocessable validation_failed on field "logo"; as Resolve.
func (t *Tenants) SetLogo(ctx context.Context, ref string, data []byte) (*store.Tenant, error) {
	cur, err := t.Dir.ResolveTenant(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := t.Dir.SetLogo(ctx, cur.ID, data); err != nil {
		return nil, err
	}
	return t.Store.Tenant(ctx, cur.ID)
}

// HasUsers reports whether the tenant has at least one user.
func (t *Tenants) HasUsers(ctx context.Context, tenantID string) (bool, error) {
	us, err := t.Store.Users(ctx, store.UserFilter{TenantID: tenantID, Limit: 1})
	return len(us) > 0, err
}

// ErrTenantInUse is the refusal to delete a tenant that still has users
// without cascade (409, code in_use).
var ErrTenantInUse = problem.Coded(problem.Conflict, "in_use",
	"the tenant still has users; delete them first or pass cascade=true to delete them with it")

// Delete deletes the tenant ref and returns it with the number of
// enrolled devices its deletion unenrolls. With cascade, its users go
// with it and each of their enrolled devices is first sent RemoveProfile
// (docs/lifecycle.md, Endings); with dryRun nothing changes and only the
// count is returned. by names the actor in the ending's reason. Errors:
// ErrTenantInUse; as Resolve.
func (t *Tenants) Delete(ctx context.Context, ref string, cascade, dryRun bool, by string) (*store.Tenant, int, error) {
	tn, err := t.Dir.ResolveTenant(ctx, ref)
	if err != nil {
		return nil, 0, err
	}
	devices, err := t.Endings.Enrolled(ctx, store.EnrollmentFilter{TenantID: tn.ID})
	if err != nil || dryRun {
		return tn, len(devices), err
	}
	if cascade {
		t.Endings.UnenrollAll(ctx, devices, by)
	}
	if err := t.Store.DeleteTenant(ctx, tn.ID, cascade, store.Ending{Reason: "tenant deleted by " + by, At: t.Endings.now()}); err != nil {
		if errors.Is(err, store.ErrInUse) {
			return nil, 0, &problem.Error{Kind: ErrTenantInUse.Kind, Code: ErrTenantInUse.Code, Message: ErrTenantInUse.Message, Err: err}
		}
		return nil, 0, err
	}
	if cascade {
		t.Endings.Ended(ctx, devices, lifecycle.EndTenantDeleted, by)
	}
	return tn, len(devices), nil
}
