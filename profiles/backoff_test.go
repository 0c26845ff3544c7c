package profiles

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
)

// countingPusher counts the pushes the reconciler asks for.
type countingPusher struct {
	mu sync.Mutex
	n  int
}

func (p *countingPusher) Push(_ context.Context, chs []store.Channel) {
	p.mu.Lock()
	p.n += len(chs)
	p.mu.Unlock()
}

// A device that answers Error to every InstallProfile of a profile (issue
// 15 item 5: "retries with backoff, bounded"): each attempt is one install
// and one push, the next one only after reconcile.Backoff of the attempts
// so far (nothing in between however often the reconciler runs), and after
// reconcile.MaxAttempts none at all — the item stays failed with the
// device's reason. The device sending the same Error again (its answer's
// acknowledgement lost) is a repeat: it neither moves the retry later nor
// announces the failure again.
func TestRepeatedErrorsBackOffBounded(t *testing.T) {
	ctx := context.Background()
	st := emptyStore(t)
	fleet(t, st, 1)
	clock := time.Now().UTC().Truncate(time.Microsecond).Add(time.Second)
	j := job(st, "A")
	j.Now = func() time.Time { return clock }
	pushes := &countingPusher{}
	j.Commands.Push = pushes
	failedEvents := 0
	j.Notify = func(_ context.Context, event string, _ *store.Enrollment, _ *store.ProfileItem) {
		if event == EventFailed {
			failedEvents++
		}
	}
	enr, err := st.Enrollment(ctx, "en_0")
	if err != nil {
		t.Fatal(err)
	}
	refuse := func(uuid string) *mdm.Result {
		res, err := mdm.DecodeResult([]byte(`<plist version="1.0"><dict><key>Status</key><string>Error</string><key>CommandUUID</key><string>` + uuid +
			`</string><key>EnrollmentID</key><string>APPLE-0</string><key>ErrorChain</key><array><dict><key>ErrorDomain</key><string>MCProfileErrorDomain</string>` +
			`<key>ErrorCode</key><integer>1009</integer><key>LocalizedDescription</key><string>The user declined the profile.</string></dict></array></dict></plist>`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.RecordResult(ctx, enr.ID, "ch_0", uuid, res.Status, res.Raw, clock, nil); err != nil {
			t.Fatal(err)
		}
		return res
	}
	item := func() store.ProfileItem {
		items, err := st.ProfileItems(ctx, enr.ID)
		if err != nil || len(items) != 1 {
			t.Fatalf("items: %+v %v", items, err)
		}
		return items[0]
	}
	verifies := 0
	// run runs the reconciler until nothing is due at clock; it returns
	// the InstallProfile handed to the device, if any.
	run := func() *store.QueuedCommand {
		t.Helper()
		runUntilIdle(t, j)
		for {
			q, err := st.NextCommand(ctx, enr.ID, "ch_0", true, clock)
			if err != nil {
				return nil
			}
			switch q.RequestType {
			case "InstallProfile":
				return q
			case "ProfileList": // the periodic verification: nothing installed
				verifies++
				res, err := mdm.DecodeResult([]byte(`<plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>` + q.UUID +
					`</string><key>EnrollmentID</key><string>APPLE-0</string><key>ProfileList</key><array/></dict></plist>`))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.RecordResult(ctx, enr.ID, "ch_0", q.UUID, res.Status, res.Raw, clock, nil); err != nil {
					t.Fatal(err)
				}
				j.Result(ctx, enr, "ch_0", "ProfileList", res)
			default:
				t.Fatalf("handed out %s", q.RequestType)
			}
		}
	}
	installs := 0
	for attempt := 1; attempt <= reconcile.MaxAttempts; attempt++ {
		before := pushes.n
		q := run()
		if q == nil {
			t.Fatalf("attempt %d: no install at %v (item %+v)", attempt, clock, item())
		}
		if pushes.n != before+1 {
			t.Fatalf("attempt %d: %d pushes, want one", attempt, pushes.n-before)
		}
		installs++
		j.Result(ctx, enr, "ch_0", "InstallProfile", refuse(q.UUID))
		it := item()
		if it.State != reconcile.Failed || it.Attempts != attempt || it.Error == "" {
			t.Fatalf("attempt %d: item %+v", attempt, it)
		}
		wantRetry := clock.Add(reconcile.Backoff(attempt))
		if attempt == reconcile.MaxAttempts {
			wantRetry = time.Time{}
		}
		if !it.NextRetry.Equal(wantRetry) {
			t.Fatalf("attempt %d: next retry %v, want %v", attempt, it.NextRetry, wantRetry)
		}
		// The same answer again, a little later: a repeat.
		events := failedEvents
		clock = clock.Add(10 * time.Second)
		j.Result(ctx, enr, "ch_0", "InstallProfile", refuse(q.UUID))
		if it2 := item(); !it2.NextRetry.Equal(it.NextRetry) || failedEvents != events {
			t.Fatalf("attempt %d: a repeated Error moved the retry %v → %v or was announced again (%d → %d events)", attempt, it.NextRetry, it2.NextRetry, events, failedEvents)
		}
		if attempt == reconcile.MaxAttempts {
			break
		}
		// Nothing before the backoff has passed.
		clock = it.NextRetry.Add(-time.Second)
		before = pushes.n
		if q := run(); q != nil || pushes.n != before {
			t.Fatalf("attempt %d: installed again (%v) or pushed (%d) before the backoff", attempt, q != nil, pushes.n-before)
		}
		clock = it.NextRetry
	}
	// Bounded: no attempt after the last, however long it waits (the
	// periodic ProfileList still comes, one push a day).
	for range 3 {
		clock = clock.Add(2 * reconcile.BackoffMax)
		if q := run(); q != nil {
			t.Fatalf("an install after %d attempts", reconcile.MaxAttempts)
		}
	}
	if it := item(); it.State != reconcile.Failed || it.Attempts != reconcile.MaxAttempts {
		t.Fatalf("after the last attempt: %+v", it)
	}
	if pushes.n > installs+verifies || failedEvents != installs {
		t.Fatalf("%d installs, %d verifications, %d pushes, %d failure events: want at most one push per command and one event per attempt", installs, verifies, pushes.n, failedEvents)
	}
}
