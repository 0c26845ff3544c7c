package mdmservice

import (
	"context"
	"errors"
	"testing"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// innermost is a Service that records what reached it and answers err.
type innermost struct {
	calls []string
	err   error
}

func (s *innermost) answer(name string) (*Answer, error) {
	s.calls = append(s.calls, name)
	if s.err != nil {
		return nil, s.err
	}
	return &Answer{ChannelID: "ch_1", RequestType: "DeviceInformation"}, nil
}
func (s *innermost) Authenticate(context.Context, *Request, *mdm.Checkin) (*Answer, error) {
	return s.answer("Authenticate")
}
func (s *innermost) TokenUpdate(context.Context, *Request, *mdm.Checkin) (*Answer, error) {
	return s.answer("TokenUpdate")
}
func (s *innermost) CheckOut(context.Context, *Request, *mdm.Checkin) (*Answer, error) {
	return s.answer("CheckOut")
}
func (s *innermost) UserAuthenticate(context.Context, *Request, *mdm.Checkin) (*Answer, error) {
	return s.answer("UserAuthenticate")
}
func (s *innermost) GetToken(context.Context, *Request, *mdm.Checkin) (*Answer, error) {
	return s.answer("GetToken")
}
func (s *innermost) DeclarativeManagement(context.Context, *Request, *mdm.Checkin) (*Answer, error) {
	return s.answer("DeclarativeManagement")
}
func (s *innermost) BootstrapToken(context.Context, *Request, *mdm.Checkin) (*Answer, error) {
	return s.answer("BootstrapToken")
}
func (s *innermost) CommandAndReportResults(context.Context, *Request, *mdm.Result) (*Answer, error) {
	return s.answer("CommandAndReportResults")
}

func deviceRequest(appleID string) *Request {
	return &Request{Device: &Device{Enrollment: store.Enrollment{ID: "en_1", AppleEnrollmentID: appleID, Platform: "iOS"}}}
}

// CertAuth lets through only messages whose EnrollmentID is the one bound
// to the certificate's enrollment (Authenticate makes the binding).
func TestCertAuth(t *testing.T) {
	ctx := context.Background()
	in := &innermost{}
	c := CertAuth{Next: in}
	msg := func(id string) *mdm.Checkin { return &mdm.Checkin{Identity: mdm.Identity{EnrollmentID: id}} }
	if _, err := c.TokenUpdate(ctx, deviceRequest("E1"), msg("E2")); problem.KindOf(err) != problem.Forbidden {
		t.Errorf("another EnrollmentID: %v, want Forbidden", err)
	}
	if _, err := c.CheckOut(ctx, deviceRequest(""), msg("E1")); problem.KindOf(err) != problem.Forbidden {
		t.Errorf("before Authenticate: %v, want Forbidden", err)
	}
	if _, err := c.CommandAndReportResults(ctx, deviceRequest("E1"), &mdm.Result{Identity: mdm.Identity{EnrollmentID: "E2"}}); problem.KindOf(err) != problem.Forbidden {
		t.Errorf("result for another EnrollmentID: %v, want Forbidden", err)
	}
	if len(in.calls) != 0 {
		t.Fatalf("refused messages reached the core: %v", in.calls)
	}
	if _, err := c.Authenticate(ctx, deviceRequest(""), msg("E1")); err != nil {
		t.Errorf("Authenticate: %v", err)
	}
	if _, err := c.TokenUpdate(ctx, deviceRequest("E1"), msg("E1")); err != nil {
		t.Errorf("bound TokenUpdate: %v", err)
	}
	if len(in.calls) != 2 {
		t.Fatalf("calls %v", in.calls)
	}
}

// Events emits only what succeeded; Metrics counts every outcome by code.
func TestEventsAndMetrics(t *testing.T) {
	ctx := context.Background()
	in := &innermost{}
	var events []Event
	var seen [][2]string
	svc := Metrics{Next: Events{Next: in, Emit: func(_ context.Context, e Event) { events = append(events, e) }},
		Observe: func(m, o string) { seen = append(seen, [2]string{m, o}) }}
	tu := &mdm.Checkin{MessageType: mdm.TokenUpdate}
	if _, err := svc.TokenUpdate(ctx, deviceRequest("E1"), tu); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CommandAndReportResults(ctx, deviceRequest("E1"), &mdm.Result{Status: "Acknowledged", CommandUUID: "C1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CommandAndReportResults(ctx, deviceRequest("E1"), &mdm.Result{Status: mdm.Idle}); err != nil {
		t.Fatal(err)
	}
	in.err = problem.Coded(problem.Forbidden, UnrecognizedDevice, "ended")
	svc.TokenUpdate(ctx, deviceRequest("E1"), tu)
	in.err = errors.New("disk full")
	svc.CommandAndReportResults(ctx, deviceRequest("E1"), &mdm.Result{Status: "Acknowledged"})

	if len(events) != 2 || events[0].Kind != "token-update" || events[0].ChannelID != "ch_1" || events[0].Enrollment.ID != "en_1" ||
		events[1].Kind != "result" || events[1].RequestType != "DeviceInformation" || events[1].CommandUUID != "C1" {
		t.Errorf("events %+v: want token-update and one result (no event for an idle poll or a failure)", events)
	}
	want := [][2]string{{"TokenUpdate", "ok"}, {"Result", "ok"}, {"Idle", "ok"}, {"TokenUpdate", UnrecognizedDevice}, {"Result", "error"}}
	if len(seen) != len(want) {
		t.Fatalf("observed %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("observation %d: %v, want %v", i, seen[i], want[i])
		}
	}
}
