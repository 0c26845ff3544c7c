package app_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
)

// fixture is the application layer over a fresh SQLite store with one
// tenant (example.com), one user and one pending device of theirs.
type fixture struct {
	a      *app.App
	st     store.Store
	tenant *store.Tenant
	user   *store.User
	device *store.Enrollment
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := directory.New(st)
	a := app.New(st, app.Config{Directory: dir, Catalog: catalog.Default()})
	f := &fixture{a: a, st: st}
	if f.tenant, err = a.Tenants.Create(ctx, directory.TenantInput{Name: "Example", Domains: []string{"example.com"}}); err != nil {
		t.Fatal(err)
	}
	if f.user, err = a.Users.Create(ctx, directory.UserInput{Email: "Alice@example.com"}); err != nil {
		t.Fatal(err)
	}
	f.device = &store.Enrollment{ID: directory.NewID("en"), TenantID: f.tenant.ID, UserID: f.user.ID, TokenHash: []byte("t"), Platform: "iOS", Product: "iPhone15,3",
		Status: store.EnrollmentPending, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := st.CreateEnrollment(ctx, f.device, &store.SCEPChallenge{Hash: []byte("h"), DeviceID: f.device.ID, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return f
}

func wantProblem(t *testing.T, err error, kind problem.Kind, code string) {
	t.Helper()
	pe, ok := problem.As(err)
	if !ok || pe.Kind != kind || pe.Code != code {
		t.Fatalf("got %v (%#v), want a %v problem with code %q", err, pe, kind, code)
	}
}

func TestRefs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, ref := range []string{f.user.ID, "alice@example.com", "ALICE@EXAMPLE.COM"} {
		if u, err := f.a.Users.Get(ctx, ref); err != nil || u.ID != f.user.ID {
			t.Fatalf("user %q: %v", ref, err)
		}
	}
	for _, ref := range []string{f.tenant.ID, "example.com"} {
		if tn, err := f.a.Tenants.Resolve(ctx, ref); err != nil || tn.ID != f.tenant.ID {
			t.Fatalf("tenant %q: %v", ref, err)
		}
	}
	if d, err := f.a.Devices.Get(ctx, f.device.ID); err != nil || d.ID != f.device.ID {
		t.Fatalf("device by DeviceID: %v", err)
	}
	_, err := f.a.Devices.Get(ctx, "3A1B2C3D-NOT-AN-ENROLLMENT")
	wantProblem(t, err, problem.NotFound, "not_found")
	if _, err := f.a.Devices.Get(ctx, "en_nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown DeviceID: %v", err)
	}
	es, next, err := f.a.Devices.List(ctx, app.DeviceQuery{User: "alice@example.com", Limit: 1})
	if err != nil || len(es) != 1 || next != f.device.ID {
		t.Fatalf("list by user email: %v %d %q", err, len(es), next)
	}
}

func TestCommandsRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Not authenticated yet: no commands.
	_, _, err := f.a.Devices.Enqueue(ctx, f.device.ID, app.EnqueueRequest{JSON: map[string]any{"request_type": "DeviceInformation", "queries": []any{"OSVersion"}}})
	wantProblem(t, err, problem.Conflict, "not_enrolled")
	if !errors.Is(err, app.ErrNotEnrolled) {
		t.Fatalf("errors.Is(ErrNotEnrolled) lost: %v", err)
	}
	// Apple's rules refuse EraseDevice for a user enrollment.
	_, _, err = f.a.Commands.Build(catalog.IOS, app.EnqueueRequest{JSON: map[string]any{"request_type": "EraseDevice"}})
	var ref *catalog.Refusal
	if !errors.As(err, &ref) {
		t.Fatalf("Build: %v", err)
	}
	_, err = f.a.Devices.EnqueueBulk(ctx, app.Targets{}, app.EnqueueRequest{JSON: map[string]any{"request_type": "DeviceInformation"}})
	wantProblem(t, err, problem.Invalid, "invalid_request")
	_, err = f.a.Devices.EnqueueBulk(ctx, app.Targets{Tenant: "example.com"}, app.EnqueueRequest{JSON: map[string]any{"request_type": "EraseDevice"}})
	wantProblem(t, err, problem.Conflict, "not_enrolled") // nothing enrolled matches
}

func TestDeleteTenant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, n, err := f.a.Tenants.Delete(ctx, "example.com", true, true, "test"); err != nil || n != 0 {
		t.Fatalf("dry run: %d %v", n, err)
	}
	if _, err := f.a.Users.Get(ctx, f.user.ID); err != nil {
		t.Fatalf("a dry run deleted: %v", err)
	}
	_, _, err := f.a.Tenants.Delete(ctx, "example.com", false, false, "test")
	wantProblem(t, err, problem.Conflict, "in_use")
	if !errors.Is(err, store.ErrInUse) {
		t.Fatalf("cause lost: %v", err)
	}
	if _, _, err := f.a.Tenants.Delete(ctx, "example.com", true, false, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Users.Get(ctx, f.user.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cascade left the user: %v", err)
	}
}

func TestValidation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, _, err := f.a.Keys.Create(ctx, "   ")
	wantProblem(t, err, problem.Unprocessable, "validation_failed")
	if pe, _ := problem.As(err); pe.Field != "name" {
		t.Fatalf("field %q", pe.Field)
	}
	key, rec, err := f.a.Keys.Create(ctx, " ci ")
	if err != nil || rec.Name != "ci" || key == "" {
		t.Fatalf("%q %+v %v", key, rec, err)
	}
	_, _, err = f.a.Webhooks.Create(ctx, "ftp://example.com", nil, "")
	wantProblem(t, err, problem.Unprocessable, "validation_failed")
	_, err = f.a.Users.SetPassword(ctx, "alice@example.com", "short")
	wantProblem(t, err, problem.Unprocessable, "validation_failed")
	_, err = f.a.PushCerts.Import(ctx, app.PushCertUpload{})
	wantProblem(t, err, problem.Invalid, "invalid_request")
}

// Removing a domain that users' emails still use is refused with the
// store's detail (which domain, how many users) as an in_use conflict.
func TestUpdateTenantDomainInUse(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.a.Tenants.Update(ctx, "example.com", directory.TenantPatch{Domains: &[]string{"example.com", "example.org"}}); err != nil {
		t.Fatal(err)
	}
	_, err := f.a.Tenants.Update(ctx, "example.com", directory.TenantPatch{Domains: &[]string{"example.org"}})
	wantProblem(t, err, problem.Conflict, "in_use")
	if pe, _ := problem.As(err); !strings.Contains(pe.Message, "example.com still has 1 user") || !errors.Is(err, store.ErrInUse) {
		t.Fatalf("%q %v", pe.Message, err)
	}
}
