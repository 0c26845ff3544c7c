package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/server"
)

// An ending wins over an expired identity: a device whose user was
// deleted (tombstone), or whose enrollment was ended, and whose
// certificate has also expired since, is still answered
// com.apple.unrecognized.device — so it removes its profile — rather than
// the "expired before it was renewed" 403, which leaves the profile in
// place. A device merely expired still gets that 403.
func TestEndingWinsOverExpiredIdentity(t *testing.T) {
	clk := &movableClock{}
	clk.moveTo(time.Now().Add(-364 * 24 * time.Hour))
	w := newWorldWith(t, withClock(clk), func(c *server.Config) { c.TombstoneRetention = 30 * 24 * time.Hour })
	e, ctx := w.e, context.Background()
	deleted := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	ended := enrolledDevice(t, w, "iPad", "bob@example.com", "bob-password")
	expired := enrolledDevice(t, w, "iPhone", "olga@other.example", "olga-password")
	mustStatus(t, do(t, e, "DELETE", "/api/v1/users/alice@example.com", nil, e.APIKey), 204)
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+ended.MDM.EnrollmentID+"/unenroll", map[string]any{"immediately": true}, e.APIKey), 202)

	// A day after expiry (no renewal was run): every certificate expired.
	clk.moveTo(deleted.IdentityCert.NotAfter.Add(24 * time.Hour))
	if _, err := deleted.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "com.apple.unrecognized.device") {
		t.Fatalf("deleted user's device with an expired identity: %v", err)
	}
	if _, err := ended.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "com.apple.unrecognized.device") {
		t.Fatalf("ended enrollment with an expired identity: %v", err)
	}
	if _, err := expired.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "expired on") {
		t.Fatalf("a device merely expired: %v", err)
	}
}
