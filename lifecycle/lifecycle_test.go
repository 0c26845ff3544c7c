package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/store"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

func enr(id string, enrolled, seen time.Time, mod func(*store.Enrollment)) store.Enrollment {
	e := store.Enrollment{ID: id, UserID: "us_a", Platform: "iOS", Product: "iPhone15,3", Status: store.EnrollmentEnrolled,
		AppleEnrollmentID: "APPLE-" + id, EnrolledAt: enrolled, LastSeenAt: seen}
	if mod != nil {
		mod(&e)
	}
	return e
}

func TestLikelyPredecessor(t *testing.T) {
	n := enr("new", t0, t0, nil)
	old := enr("old", t0.Add(-300*day), t0.Add(-2*day), nil)
	for _, tc := range []struct {
		name   string
		others []store.Enrollment
		taken  map[string]bool
		want   string
	}{
		{"same device re-enrolled", []store.Enrollment{old}, nil, "old"},
		{"itself only", []store.Enrollment{n}, nil, ""},
		{"another user", []store.Enrollment{enr("x", old.EnrolledAt, old.LastSeenAt, func(e *store.Enrollment) { e.UserID = "us_b" })}, nil, ""},
		{"another platform", []store.Enrollment{enr("x", old.EnrolledAt, old.LastSeenAt, func(e *store.Enrollment) { e.Platform = "macOS" })}, nil, ""},
		{"another model", []store.Enrollment{enr("x", old.EnrolledAt, old.LastSeenAt, func(e *store.Enrollment) { e.Product = "iPhone14,5" })}, nil, ""},
		{"device name unknown on one side", []store.Enrollment{enr("x", old.EnrolledAt, old.LastSeenAt, func(e *store.Enrollment) { e.DeviceName = "Bob's" })}, nil, "x"},
		{"never enrolled", []store.Enrollment{enr("x", time.Time{}, time.Time{}, func(e *store.Enrollment) { e.AppleEnrollmentID = "" })}, nil, ""},
		{"seen after the new one enrolled", []store.Enrollment{enr("x", old.EnrolledAt, t0.Add(time.Minute), nil)}, nil, ""},
		{"silent too long", []store.Enrollment{enr("x", old.EnrolledAt, t0.Add(-31*day), nil)}, nil, ""},
		{"claimed already", []store.Enrollment{old}, map[string]bool{"old": true}, ""},
		{"checked out recently", []store.Enrollment{enr("x", old.EnrolledAt, t0.Add(-60*day), func(e *store.Enrollment) {
			e.Status, e.UnenrolledAt = store.EnrollmentUnenrolled, t0.Add(-time.Hour)
		})}, nil, "x"},
		{"the one heard of last", []store.Enrollment{old, enr("later", t0.Add(-100*day), t0.Add(-time.Hour), nil)}, nil, "later"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := LikelyPredecessor(&n, tc.others, tc.taken, 30*day)
			switch {
			case got == nil && tc.want != "":
				t.Fatalf("no predecessor, want %s", tc.want)
			case got != nil && got.ID != tc.want:
				t.Fatalf("predecessor %s, want %q", got.ID, tc.want)
			}
		})
	}
	// A Mac reports its name at Authenticate: another name is another Mac.
	mac := enr("mac", t0, t0, func(e *store.Enrollment) { e.Platform, e.Product, e.DeviceName = "macOS", "Mac14,2", "Alice's MacBook" })
	other := enr("x", old.EnrolledAt, old.LastSeenAt, func(e *store.Enrollment) { e.Platform, e.Product, e.DeviceName = "macOS", "Mac14,2", "Studio" })
	if got := LikelyPredecessor(&mac, []store.Enrollment{other}, nil, 30*day); got != nil {
		t.Fatalf("a Mac with another name was linked: %s", got.ID)
	}
}

type fakeStore struct {
	enrolled []store.Enrollment
	queries  []store.EnrollmentFilter
}

func (f *fakeStore) Enrollments(ctx context.Context, q store.EnrollmentFilter) ([]store.Enrollment, error) {
	f.queries = append(f.queries, q)
	var out []store.Enrollment
	for _, e := range f.enrolled {
		if e.Status == q.Status && e.LastSeenAt.Before(q.SeenBefore) && len(out) < q.Limit {
			out = append(out, e)
		}
	}
	return out, nil
}

type events []map[string]any

func (ev *events) Publish(ctx context.Context, event string, data any) {
	if event == EventEnded {
		*ev = append(*ev, data.(map[string]any))
	}
}

func TestSilenceRetires(t *testing.T) {
	st := &fakeStore{enrolled: []store.Enrollment{enr("quiet", t0.Add(-200*day), t0.Add(-91*day), nil), enr("fine", t0.Add(-200*day), t0.Add(-day), nil),
		enr("failing", t0.Add(-200*day), t0.Add(-100*day), nil)}}
	var ended []string
	var ev events
	s := &Silence{Store: st, SilentAfter: 30 * day, Now: func() time.Time { return t0 }, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Events: &ev,
		End: func(ctx context.Context, e *store.Enrollment, by string) error {
			if e.ID == "failing" {
				return errors.New("queue full")
			}
			ended = append(ended, e.ID+" by "+by)
			return nil
		}}
	// Off by default: no query at all.
	if n, err := s.Run(context.Background()); n != 0 || err != nil || len(st.queries) != 0 {
		t.Fatalf("retirement off: %d retired, %v, %d queries", n, err, len(st.queries))
	}
	s.RetireAfter = 90 * day
	n, err := s.Run(context.Background())
	if err != nil || n != 1 || len(ended) != 1 || ended[0] != "quiet by policy: silent for 90 days" {
		t.Fatalf("retired %d %v: %v", n, err, ended)
	}
	if len(st.queries) != 1 || !st.queries[0].SeenBefore.Equal(t0.Add(-90*day)) || st.queries[0].Status != store.EnrollmentEnrolled {
		t.Fatalf("queries %+v, want one for enrolled devices seen before %v", st.queries, t0.Add(-90*day))
	}
	if len(ev) != 1 || ev[0]["reason"] != EndRetired || ev[0]["device"] != "quiet" {
		t.Fatalf("events %v", ev)
	}
	if !s.Silent(&st.enrolled[0], t0) || s.Silent(&st.enrolled[1], t0) {
		t.Fatal("silent flag wrong")
	}
	s.RetireAfter = 10 * day
	if s.Check() == nil {
		t.Fatal("retiring before the silence threshold was accepted")
	}
}
