package mdmservice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

// queueOnly is a CoreStore whose queue hands out one given command.
type queueOnly struct {
	CoreStore
	q *store.QueuedCommand
}

func (s *queueOnly) NextCommand(context.Context, string, string, bool, time.Time) (*store.QueuedCommand, error) {
	if s.q == nil {
		return nil, store.ErrNotFound
	}
	q := *s.q
	return &q, nil
}

func (s *queueOnly) RecordResultNext(context.Context, string, string, string, string, []byte, time.Time, store.InventoryFunc, *store.ProfileAck) (string, *store.QueuedCommand, error) {
	q, err := s.NextCommand(context.Background(), "", "", false, time.Time{})
	if errors.Is(err, store.ErrNotFound) {
		q = nil
	}
	return "ProfileList", q, nil
}

func (s *queueOnly) TouchChannel(context.Context, string, string, time.Time) error { return nil }

// Core hands out a template command only through Render — on the Idle
// answer and on the answer to a result — and a render failure is an
// error (a 5xx for the device), never the stored template bytes. A ready
// command goes out as stored, without Render.
func TestCoreRendersTemplates(t *testing.T) {
	tmpl := &store.QueuedCommand{CommandRecord: store.CommandRecord{UUID: "T1", RequestType: "InstallProfile", Payload: []byte("TEMPLATE $EMAIL"),
		Render: store.RenderProfile}, ChannelID: "ch_1", Vars: `{"EMAIL":"a@b"}`}
	ready := &store.QueuedCommand{CommandRecord: store.CommandRecord{UUID: "R1", RequestType: "ProfileList", Payload: []byte("READY")}, ChannelID: "ch_1"}
	idle, err1 := mdm.DecodeResult([]byte(`<plist version="1.0"><dict><key>Status</key><string>Idle</string><key>EnrollmentID</key><string>x</string></dict></plist>`))
	ack, err2 := mdm.DecodeResult([]byte(`<plist version="1.0"><dict><key>Status</key><string>Acknowledged</string><key>CommandUUID</key><string>P</string><key>EnrollmentID</key><string>x</string></dict></plist>`))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	var rendered []string
	good := func(_ context.Context, q *store.QueuedCommand) ([]byte, error) {
		rendered = append(rendered, q.UUID+" "+q.Vars)
		return []byte("RENDERED " + q.Vars), nil
	}
	bad := func(context.Context, *store.QueuedCommand) ([]byte, error) {
		return nil, errors.New("no value for $EMAIL")
	}
	for _, c := range []struct {
		name   string
		q      *store.QueuedCommand
		render func(context.Context, *store.QueuedCommand) ([]byte, error)
		res    *mdm.Result
		want   string // body; "" = an error
	}{
		{"idle, template", tmpl, good, idle, `RENDERED {"EMAIL":"a@b"}`},
		{"result, template", tmpl, good, ack, `RENDERED {"EMAIL":"a@b"}`},
		{"idle, ready", ready, good, idle, "READY"},
		{"result, ready, no renderer", ready, nil, ack, "READY"},
		{"idle, render fails", tmpl, bad, idle, ""},
		{"result, render fails", tmpl, bad, ack, ""},
		{"result, no renderer", tmpl, nil, ack, ""},
	} {
		rendered = nil
		core := &Core{Store: &queueOnly{q: c.q}, Render: c.render, Log: slog.New(slog.DiscardHandler), Now: time.Now}
		r := &Request{Device: &Device{Enrollment: store.Enrollment{ID: "en_1"}, Channel: &store.Channel{ID: "ch_1", LastSeenAt: time.Now()}, CommandWaiting: true}}
		a, err := core.CommandAndReportResults(context.Background(), r, c.res)
		switch {
		case c.want == "" && err == nil:
			t.Fatalf("%s: answered %q", c.name, a.Body)
		case c.want != "" && (err != nil || string(a.Body) != c.want):
			t.Fatalf("%s: %v %v", c.name, a, err)
		case c.q == ready && len(rendered) != 0:
			t.Fatalf("%s: a ready command went through Render", c.name)
		}
	}
}

// listQueue is a CoreStore whose channel queue is a list: NextCommand hands
// out the first row not failed by SetUndeliverable.
type listQueue struct {
	CoreStore
	rows   []*store.QueuedCommand
	failed map[string]bool
}

func (s *listQueue) NextCommand(context.Context, string, string, bool, time.Time) (*store.QueuedCommand, error) {
	for _, q := range s.rows {
		if !s.failed[q.UUID] {
			c := *q
			return &c, nil
		}
	}
	return nil, store.ErrNotFound
}

func (s *listQueue) SetUndeliverable(_ context.Context, _, _, uuid string, _ time.Time) error {
	if s.failed[uuid] {
		return store.ErrNotFound
	}
	s.failed[uuid] = true
	return nil
}

func (s *listQueue) TouchChannel(context.Context, string, string, time.Time) error { return nil }

// A template that can never render for the device (store.ErrCannotRender)
// does not block its queue: the hook hears it, the row is failed and the
// command behind it is handed out with the same answer; a transient render
// error is still an error (5xx, the device retries) and fails nothing.
func TestCoreFailsUndeliverableTemplates(t *testing.T) {
	idle, err := mdm.DecodeResult([]byte(`<plist version="1.0"><dict><key>Status</key><string>Idle</string><key>EnrollmentID</key><string>x</string></dict></plist>`))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := func(uuid string) *store.QueuedCommand {
		return &store.QueuedCommand{CommandRecord: store.CommandRecord{UUID: uuid, RequestType: "InstallProfile", Payload: []byte("T"), Render: store.RenderProfile}, ChannelID: "ch_1"}
	}
	next := &store.QueuedCommand{CommandRecord: store.CommandRecord{UUID: "R1", RequestType: "DeviceInformation", Payload: []byte("NEXT")}, ChannelID: "ch_1"}
	permanent := func(context.Context, *store.QueuedCommand) ([]byte, error) {
		return nil, fmt.Errorf("%w: no value for $EMAIL", store.ErrCannotRender)
	}
	transient := func(context.Context, *store.QueuedCommand) ([]byte, error) {
		return nil, errors.New("sign the profile: signer unavailable")
	}
	for _, c := range []struct {
		name       string
		render     func(context.Context, *store.QueuedCommand) ([]byte, error)
		rows       []*store.QueuedCommand
		want       string // body; "" = an error
		wantFailed int
	}{
		{"permanent, then a ready command", permanent, []*store.QueuedCommand{tmpl("T1"), tmpl("T2"), next}, "NEXT", 2},
		{"permanent, nothing behind", permanent, []*store.QueuedCommand{tmpl("T1")}, "no command", 1},
		{"transient", transient, []*store.QueuedCommand{tmpl("T1"), next}, "", 0},
		{"more than the bound in one request", permanent, func() (rs []*store.QueuedCommand) {
			for i := range maxUndeliverable + 3 {
				rs = append(rs, tmpl(fmt.Sprint("T", i)))
			}
			return append(rs, next)
		}(), "", maxUndeliverable},
	} {
		st := &listQueue{rows: c.rows, failed: map[string]bool{}}
		var heard []string
		core := &Core{Store: st, Render: c.render, Log: slog.New(slog.DiscardHandler), Now: time.Now,
			Undeliverable: func(_ context.Context, _ *store.Enrollment, q *store.QueuedCommand, err error) {
				if !errors.Is(err, store.ErrCannotRender) {
					t.Errorf("%s: hook heard %v", c.name, err)
				}
				heard = append(heard, q.UUID)
			}}
		r := &Request{Device: &Device{Enrollment: store.Enrollment{ID: "en_1"}, Channel: &store.Channel{ID: "ch_1", LastSeenAt: time.Now()}, CommandWaiting: true}}
		a, err := core.CommandAndReportResults(context.Background(), r, idle)
		got := ""
		if err == nil {
			got = string(a.Body)
			if a.Body == nil {
				got = a.Reason
			}
		}
		if got != c.want || len(st.failed) != c.wantFailed || len(heard) != c.wantFailed {
			t.Fatalf("%s: answered %q (err %v), failed %v, hook heard %v", c.name, got, err, st.failed, heard)
		}
	}
}
