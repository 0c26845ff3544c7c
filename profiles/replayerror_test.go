package profiles

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
)

// barrierStore holds every ProfileItemForCommand until n of them have
// read: n answers that read the item before any of them writes it.
type barrierStore struct {
	store.Store
	reads sync.WaitGroup
}

func (b *barrierStore) ProfileItemForCommand(ctx context.Context, enrollmentID, commandUUID string) (*store.ProfileItem, error) {
	it, err := b.Store.ProfileItemForCommand(ctx, enrollmentID, commandUUID)
	b.reads.Done()
	b.reads.Wait()
	return it, err
}

// A device's Error answer to an install arriving several times at once (a
// replay beside the original, two instances answering it): the failure is
// recorded and announced once, as for a replay that comes later
// (TestRepeatedErrorsBackOffBounded) — the repeat check is not a read
// that each copy passes before any of them writes.
func TestConcurrentRepeatedErrorAnnouncedOnce(t *testing.T) {
	ctx := context.Background()
	st := emptyStore(t)
	fleet(t, st, 1)
	clock := time.Now().UTC().Truncate(time.Microsecond).Add(time.Second)
	const copies = 4
	bs := &barrierStore{Store: st}
	j := job(st, "A")
	j.Now = func() time.Time { return clock }
	var failed atomic.Int32
	j.Notify = func(_ context.Context, event string, _ *store.Enrollment, _ *store.ProfileItem) {
		if event == EventFailed {
			failed.Add(1)
		}
	}
	enr, err := st.Enrollment(ctx, "en_0")
	if err != nil {
		t.Fatal(err)
	}
	runUntilIdle(t, j)
	q, err := st.NextCommand(ctx, enr.ID, "ch_0", true, clock)
	if err != nil || q.RequestType != "InstallProfile" {
		t.Fatalf("next: %+v %v", q, err)
	}
	res, err := mdm.DecodeResult([]byte(`<plist version="1.0"><dict><key>Status</key><string>Error</string><key>CommandUUID</key><string>` + q.UUID +
		`</string><key>EnrollmentID</key><string>APPLE-0</string><key>ErrorChain</key><array><dict><key>ErrorDomain</key><string>MCProfileErrorDomain</string>` +
		`<key>ErrorCode</key><integer>1009</integer><key>LocalizedDescription</key><string>The user declined the profile.</string></dict></array></dict></plist>`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordResult(ctx, enr.ID, "ch_0", q.UUID, res.Status, res.Raw, clock, nil); err != nil {
		t.Fatal(err)
	}
	j.Store = bs
	bs.reads.Add(copies)
	var wg sync.WaitGroup
	for i := 0; i < copies; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.Result(ctx, enr, "ch_0", "InstallProfile", res)
		}()
	}
	wg.Wait()
	items, err := st.ProfileItems(ctx, enr.ID)
	if err != nil || len(items) != 1 || items[0].State != reconcile.Failed || items[0].Attempts != 1 {
		t.Fatalf("items: %+v %v", items, err)
	}
	if n := failed.Load(); n != 1 {
		t.Fatalf("one refused install announced %d times by %d copies of its answer, want once", n, copies)
	}
}
