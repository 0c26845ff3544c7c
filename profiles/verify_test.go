package profiles

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/store"
)

// The ProfileList that verifies an acknowledged install (AckInResult's
// Verify, in the result's transaction on the writer) is the command
// Commands.Record makes — a new time-ordered CommandUUID, the same
// plist bytes — without a catalogue check and a plist encoding per
// answer: at most 8 allocations (Record: 67).
func TestVerifyCommandIsRecordsWithoutTheEncoding(t *testing.T) {
	now := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	j := &Job{Commands: &app.Commands{Catalog: catalog.Default(), Now: func() time.Time { return now }}, Log: slog.New(slog.DiscardHandler), Now: time.Now}
	for _, platform := range []string{"iOS", "macOS"} {
		enr := &store.Enrollment{ID: "en_1", Platform: platform}
		ack, _ := j.AckInResult(context.Background(), enr, &mdm.Result{Status: mdm.Acknowledged, RequestType: "InstallProfile"})
		seen := map[string]bool{}
		for range 3 {
			rec := ack.Verify()
			if rec == nil || seen[rec.UUID] || len(rec.UUID) != 36 || rec.RequestType != "ProfileList" || rec.CreatedBy != "profiles" || !rec.CreatedAt.Equal(now) {
				t.Fatalf("%s: verify command %+v (seen %v)", platform, rec, seen)
			}
			seen[rec.UUID] = true
			want, err := mdm.Command{CommandUUID: rec.UUID, Command: map[string]any{"RequestType": "ProfileList", "ManagedOnly": true}}.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec.Payload, want) {
				t.Fatalf("%s: payload\n%s\nwant Record's\n%s", platform, rec.Payload, want)
			}
		}
		if n := testing.AllocsPerRun(100, func() { ack.Verify() }); n > 8 {
			t.Errorf("%s: %.0f allocations per verifying ProfileList, want at most 8", platform, n)
		}
	}
}
