package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

// Migration0009 checks that migration 0009 (channel ownership, terminal
// endings) keeps existing rows working on a backend: old is a store
// migrated up to 0008 only, exec runs raw SQL on it (the old channel
// rows cannot be written through today's interface), reopen closes old
// and opens the database again with every migration. User channels get
// their EnrollmentUserID from the old "EnrollmentID/EnrollmentUserID" id,
// queues survive, and enrollments that had ended get their certificates
// and tokens revoked.
func Migration0009(t *testing.T, old store.Store, exec func(q string) error, reopen func() store.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Raw SQL for rows whose columns later migrations extend (today's
	// writes would name columns this schema does not have).
	must(exec(`INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('t', 't', 1, 1)`))
	must(exec(`INSERT INTO tenant_domains (domain, tenant_id) VALUES ('t.example', 't')`))
	must(old.CreateUser(ctx, &store.User{ID: "u", TenantID: "t", Email: "u@t.example", ManagedAppleID: "u@t.example", Enabled: true, CreatedAt: now, UpdatedAt: now}))
	for _, id := range []string{"en_live", "en_gone"} {
		must(exec(fmt.Sprintf(`INSERT INTO enrollments (id, tenant_id, user_id, token_hash, platform, status, created_at, updated_at)
			VALUES ('%s', 't', 'u', 'h-%[1]s', 'macOS', 'pending', %d, %[2]d)`, id, now.UnixMicro())))
		must(exec(fmt.Sprintf(`INSERT INTO identity_certs (serial, enrollment_id, sha256, not_before, not_after, issued_at)
			VALUES ('s-%s', '%[1]s', 'fp-%[1]s', %d, %d, %[2]d)`, id, now.UnixMicro(), now.Add(time.Hour).UnixMicro())))
		must(old.CreateAccessToken(ctx, &store.AccessToken{Hash: []byte("h-" + id), UserID: "u", TenantID: "t", CreatedAt: now, ExpiresAt: now.Add(time.Hour), EnrollmentID: id}))
	}
	must(old.BindAppleEnrollment(ctx, "en_live", "EID-LIVE", store.DeviceInfo{}, now))
	must(old.BindAppleEnrollment(ctx, "en_gone", "EID-GONE", store.DeviceInfo{}, now))
	for _, q := range []string{
		`INSERT INTO channels (id, enrollment_ref, kind, push_magic, created_at, updated_at) VALUES ('EID-LIVE', 'en_live', 'device', 'm-dev', 1, 1)`,
		`INSERT INTO channels (id, enrollment_ref, kind, user_short_name, push_magic, created_at, updated_at) VALUES ('EID-LIVE/UID-1', 'en_live', 'user', 'alice', 'm-user', 1, 1)`,
		`INSERT INTO channels (id, enrollment_ref, kind, created_at, updated_at) VALUES ('EID-GONE', 'en_gone', 'device', 1, 1)`,
		`UPDATE enrollments SET status = 'unenrolled', unenrolled_at = 5 WHERE id = 'en_gone'`,
	} {
		must(exec(q))
	}
	must(old.Enqueue(ctx, &store.CommandRecord{UUID: "CMD-1", RequestType: "ProfileList", Payload: []byte("x"), CreatedAt: now}, []string{"EID-LIVE/UID-1"}))
	s := reopen()
	user, err := s.Channel(ctx, "en_live", "user", "UID-1")
	if err != nil || user.ID != "EID-LIVE/UID-1" || user.UserShortName != "alice" || user.PushMagic != "m-user" {
		t.Fatalf("user channel after the migration: %+v %v", user, err)
	}
	if dev, err := s.Channel(ctx, "en_live", "device", ""); err != nil || dev.ID != "EID-LIVE" || dev.PushMagic != "m-dev" {
		t.Fatalf("device channel after the migration: %+v %v", dev, err)
	}
	q, err := s.NextCommand(ctx, "en_live", "EID-LIVE/UID-1", true, now)
	if err != nil || q.UUID != "CMD-1" {
		t.Fatalf("queue after the migration: %+v %v", q, err)
	}
	if _, err := s.NextCommand(ctx, "en_gone", "EID-LIVE/UID-1", true, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("queue reachable from another enrollment: %v", err)
	}
	// Ended before: revoked now; live: untouched.
	if ic, _ := s.IdentityCert(ctx, "s-en_gone"); ic.RevokedAt.IsZero() || !strings.Contains(ic.RevokedReason, "ended") {
		t.Fatalf("certificate of an ended enrollment: %+v", ic)
	}
	if tok, _ := s.AccessToken(ctx, []byte("h-en_gone")); tok.RevokedAt.IsZero() {
		t.Fatal("token of an ended enrollment not revoked")
	}
	if ic, _ := s.IdentityCert(ctx, "s-en_live"); !ic.RevokedAt.IsZero() {
		t.Fatalf("live certificate revoked: %+v", ic)
	}
	if tok, _ := s.AccessToken(ctx, []byte("h-en_live")); !tok.RevokedAt.IsZero() {
		t.Fatal("live token revoked")
	}
	// New channels follow the new rules next to migrated ones.
	if err := s.PutChannel(ctx, &store.Channel{ID: "ch_new", DeviceID: "en_live", Kind: "user", EnrollmentUserID: "UID-2", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutChannel(ctx, &store.Channel{ID: "ch_dup", DeviceID: "en_live", Kind: "device", PushMagic: "m-new", CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if dev, _ := s.Channel(ctx, "en_live", "device", ""); dev.ID != "EID-LIVE" || dev.PushMagic != "m-new" {
		t.Fatalf("migrated device channel not updated in place: %+v", dev)
	}
}
