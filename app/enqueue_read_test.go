package app_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/store/sqlite"
)

// deviceReads is a store counting the reads that find a device and its
// channels.
type deviceReads struct {
	store.Store
	mu    sync.Mutex
	reads []string
}

func (d *deviceReads) read(name string) {
	d.mu.Lock()
	d.reads = append(d.reads, name)
	d.mu.Unlock()
}

func (d *deviceReads) take() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := d.reads
	d.reads = nil
	return r
}

func (d *deviceReads) Enrollment(ctx context.Context, id string) (*store.Enrollment, error) {
	d.read("Enrollment")
	return d.Store.Enrollment(ctx, id)
}

func (d *deviceReads) EnrollmentByAppleID(ctx context.Context, id string) (*store.Enrollment, error) {
	d.read("EnrollmentByAppleID")
	return d.Store.EnrollmentByAppleID(ctx, id)
}

func (d *deviceReads) Channels(ctx context.Context, ref string) ([]store.Channel, error) {
	d.read("Channels")
	return d.Store.Channels(ctx, ref)
}

func (d *deviceReads) Channel(ctx context.Context, ref, kind, euid string) (*store.Channel, error) {
	d.read("Channel")
	return d.Store.Channel(ctx, ref, kind, euid)
}

func (d *deviceReads) EnrollmentForCommand(ctx context.Context, ref string, byAppleID bool, kind string) (*store.Enrollment, *store.Channel, error) {
	d.read("EnrollmentForCommand")
	return d.Store.EnrollmentForCommand(ctx, ref, byAppleID, kind)
}

// Enqueueing a command for one device reads the device and its channel in
// one statement (EnrollmentForCommand; before: EnrollmentByAppleID or
// Enrollment, then Channels), by either of its names, with the same
// answers as before for every device that cannot take the command.
func TestEnqueueReadsTheDeviceOnce(t *testing.T) {
	ctx := context.Background()
	sq, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sq.Close() })
	st := &deviceReads{Store: sq}
	a := app.New(st, app.Config{Directory: directory.New(st), Catalog: catalog.Default()})
	tn, err := a.Tenants.Create(ctx, directory.TenantInput{Name: "Example", Domains: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	u, err := a.Users.Create(ctx, directory.UserInput{Email: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	e := &store.Enrollment{ID: directory.NewID("en"), TenantID: tn.ID, UserID: u.ID, TokenHash: []byte("t"), Platform: "iOS", Product: "iPhone15,3",
		Status: store.EnrollmentPending, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := sq.CreateEnrollment(ctx, e, nil); err != nil {
		t.Fatal(err)
	}
	cmd := func() app.EnqueueRequest {
		return app.EnqueueRequest{NoPush: true, JSON: map[string]any{"request_type": "DeviceInformation", "queries": []any{"OSVersion"}}}
	}
	enqueue := func(ref string, r app.EnqueueRequest) (string, error) {
		t.Helper()
		st.take()
		got, id, err := a.Devices.Enqueue(ctx, ref, r)
		if reads := st.take(); !reflect.DeepEqual(reads, []string{"EnrollmentForCommand"}) {
			t.Fatalf("Enqueue(%s) read %v, want one EnrollmentForCommand", ref, reads)
		}
		if err == nil && got.ID != e.ID {
			t.Fatalf("Enqueue(%s) returned device %s", ref, got.ID)
		}
		return id, err
	}

	// Unknown device: NotFound by EnrollmentID, store.ErrNotFound by DeviceID (as Get).
	_, err = enqueue("3A1B2C3D-NOT-AN-ENROLLMENT", cmd())
	if pe, ok := problem.As(err); !ok || pe.Kind != problem.NotFound {
		t.Fatalf("unknown EnrollmentID: %v", err)
	}
	if _, err := enqueue("en_nope", cmd()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown DeviceID: %v", err)
	}
	// No Authenticate yet.
	if _, err := enqueue(e.ID, cmd()); !errors.Is(err, app.ErrNotEnrolled) {
		t.Fatalf("pending device: %v", err)
	}
	if err := sq.BindAppleEnrollment(ctx, e.ID, "APPLE-RT5", store.DeviceInfo{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// No TokenUpdate yet: no channel.
	if _, err := enqueue("APPLE-RT5", cmd()); !errors.Is(err, app.ErrNoChannel) {
		t.Fatalf("device without a channel: %v", err)
	}
	if err := sq.PutChannel(ctx, &store.Channel{ID: "APPLE-RT5", DeviceID: e.ID, Kind: "device", PushToken: []byte{1}, PushMagic: "m",
		CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// A user channel only on a Mac's user enrollment: none here.
	r := cmd()
	r.Channel = "user"
	if _, err := enqueue("APPLE-RT5", r); !errors.Is(err, app.ErrNoChannel) {
		t.Fatalf("user channel: %v", err)
	}
	// Queued on the device channel, by either name.
	for _, ref := range []string{"APPLE-RT5", e.ID} {
		id, err := enqueue(ref, cmd())
		if err != nil {
			t.Fatalf("Enqueue(%s): %v", ref, err)
		}
		if q, _, err := sq.ChannelCommand(ctx, e.ID, id); err != nil || q.RequestType != "DeviceInformation" {
			t.Fatalf("Enqueue(%s): %+v %v", ref, q, err)
		}
	}
	// Refused by the catalogue after the read.
	if _, err := enqueue("APPLE-RT5", app.EnqueueRequest{NoPush: true, JSON: map[string]any{"request_type": "EraseDevice"}}); err == nil {
		t.Fatal("EraseDevice queued for a user enrollment")
	}
	// An idempotent repeat replays its first answer even once the device
	// has ended; a new command is refused.
	r = cmd()
	r.Idempotency = &app.Idempotency{Key: "k-rt5", Principal: "test"}
	first, err := enqueue("APPLE-RT5", r)
	if err != nil {
		t.Fatal(err)
	}
	if err := sq.EndEnrollment(ctx, e.ID, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	r = cmd()
	r.Idempotency = &app.Idempotency{Key: "k-rt5", Principal: "test"}
	if again, err := enqueue("APPLE-RT5", r); err != nil || again != first {
		t.Fatalf("replay after the ending: %q %v, want %q", again, err, first)
	}
	if _, err := enqueue("APPLE-RT5", cmd()); !errors.Is(err, app.ErrUnenrolled) {
		t.Fatalf("ended device: %v", err)
	}
}
