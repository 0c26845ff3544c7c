package mdmservice

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// ackStore is a CoreStore whose RecordResultNext records the
// store.ProfileAck it was given and reports it done (or not) as told.
type ackStore struct {
	CoreStore // nil: any other call panics
	done      bool
	got       *store.ProfileAck
	next      *store.QueuedCommand
}

func (s *ackStore) RecordResultNext(_ context.Context, _, _, _, _ string, _ []byte, _ time.Time, _ store.InventoryFunc,
	ack *store.ProfileAck) (string, *store.QueuedCommand, error) {
	s.got = ack
	if ack != nil {
		ack.Done = s.done
	}
	return "InstallProfile", s.next, nil
}

func (s *ackStore) NextCommand(context.Context, string, string, bool, time.Time) (*store.QueuedCommand, error) {
	return nil, store.ErrNotFound
}

// The profile acknowledgement in the result's transaction: asked only for
// an Acknowledged result on the device channel; when the store did it,
// the AfterResult hook is not called (it would acknowledge again, in a
// second commit); when it did not, the hook runs as before.
func TestCoreProfileAckInResult(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		status    string
		userID    string // EnrollmentUserID: a Mac's user channel
		storeDone bool
		wantAsked bool
		wantHook  bool
	}{
		{"acknowledged, done in the transaction", mdm.Acknowledged, "", true, true, false},
		{"acknowledged, failed in the transaction: the hook does it", mdm.Acknowledged, "", false, true, true},
		{"error: the hook only", mdm.Error, "", false, false, true},
		{"not now: the hook only", mdm.NotNow, "", false, false, true},
		{"user channel: the hook only", mdm.Acknowledged, "U1", false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &ackStore{done: tc.storeDone, next: &store.QueuedCommand{CommandRecord: store.CommandRecord{UUID: "PL-1", Payload: []byte("<plist/>")}}}
			asked, hooked, followed := false, false, false
			c := &Core{Store: st, Log: slog.New(slog.DiscardHandler), Now: time.Now,
				ProfileAck: func(context.Context, *store.Enrollment, *mdm.Result) (*store.ProfileAck, func(context.Context, *store.ProfileAck)) {
					asked = true
					return &store.ProfileAck{}, func(context.Context, *store.ProfileAck) { followed = true }
				},
				AfterResult: func(context.Context, *store.Enrollment, string, string, *mdm.Result) bool {
					hooked = true
					return false
				},
			}
			r := deviceRequest("E1")
			r.Device.Channel = &store.Channel{ID: "ch_1", Kind: mdm.DeviceChannel, LastSeenAt: time.Now()}
			res := &mdm.Result{Identity: mdm.Identity{EnrollmentID: "E1", EnrollmentUserID: tc.userID}, Status: tc.status, CommandUUID: "IP-1"}
			a, err := c.CommandAndReportResults(ctx, r, res)
			if err != nil {
				t.Fatal(err)
			}
			if asked != tc.wantAsked || (st.got != nil) != tc.wantAsked {
				t.Errorf("asked for the acknowledgement: %v (store got %v), want %v", asked, st.got != nil, tc.wantAsked)
			}
			if hooked != tc.wantHook {
				t.Errorf("AfterResult called: %v, want %v", hooked, tc.wantHook)
			}
			if want := tc.wantAsked && tc.storeDone; followed != want {
				t.Errorf("follow-up after the commit called: %v, want %v", followed, want)
			}
			if a.RequestType != "InstallProfile" || a.Reason != "command PL-1" {
				t.Errorf("answer: %+v", a)
			}
		})
	}
}
