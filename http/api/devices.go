package api

import (
	"net/http"
	"time"

	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

func renewal(r *store.Renewal) *apitypes.Renewal {
	return &apitypes.Renewal{Status: r.Status, Error: r.Error, Attempts: r.Attempts, CommandUUID: r.CommandUUID, Serial: r.Serial,
		NewSerial: r.NewSerial, QueuedAt: r.QueuedAt, UpdatedAt: r.UpdatedAt}
}

func device(e *store.Enrollment) apitypes.Device {
	return apitypes.Device{ID: e.ID, EnrollmentID: e.AppleEnrollmentID, TenantID: e.TenantID, UserID: e.UserID, Status: e.Status, Platform: e.Platform,
		Product: e.Product, Model: e.Model, ModelName: e.ModelName, DeviceName: e.DeviceName, OSVersion: e.OSVersion, BuildVersion: e.BuildVersion,
		Language: e.Language, DeviceSignature: e.DeviceSignature, CreatedAt: e.CreatedAt, EnrolledAt: apitypes.Opt(e.EnrolledAt),
		UnenrolledAt: apitypes.Opt(e.UnenrolledAt), LastSeenAt: apitypes.Opt(e.LastSeenAt), ProfileIdentifier: e.ProfileID, Inventory: e.Inventory}
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) error {
	q, err := queryParams(r, "tenant", "user", "status", "platform", "before", "limit", "silent")
	if err != nil {
		return err
	}
	n, err := limitParam(r)
	if err != nil {
		return err
	}
	silent, err := boolParam(r, "silent")
	if err != nil {
		return err
	}
	es, next, err := a.App.Devices.List(r.Context(), app.DeviceQuery{Status: q.Get("status"), Platform: q.Get("platform"), Before: q.Get("before"),
		Tenant: q.Get("tenant"), User: q.Get("user"), Limit: n, Silent: silent})
	if err != nil {
		return err
	}
	ids := make([]string, len(es))
	for i := range es {
		ids[i] = es[i].UserID
	}
	emails, err := a.App.Users.Emails(r.Context(), ids)
	if err != nil {
		return err
	}
	out := apitypes.Devices{Devices: make([]apitypes.Device, 0, len(es)), NextBefore: next}
	for i := range es {
		d := a.lifecycleFields(device(&es[i]), &es[i])
		d.UserEmail = emails[es[i].UserID]
		out.Devices = append(out.Devices, d)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request) error {
	dt, err := a.App.Devices.Detail(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	d := a.lifecycleFields(device(dt.Device), dt.Device)
	d.Predecessor, d.Successor = deviceID(dt.Predecessor), deviceID(dt.Successor)
	emails, err := a.App.Users.Emails(r.Context(), []string{dt.Device.UserID})
	if err != nil {
		return err
	}
	d.UserEmail = emails[dt.Device.UserID]
	for _, c := range dt.Channels {
		d.Channels = append(d.Channels, apitypes.Channel{ID: c.ID, Kind: c.Kind, UserShortName: c.UserShortName, Pushable: len(c.PushToken) > 0 && !c.PushDead,
			LastPushAt: apitypes.Opt(c.LastPushAt), LastSeenAt: apitypes.Opt(c.LastSeenAt)})
	}
	if dt.Renewal != nil {
		d.Renewal = renewal(dt.Renewal)
	}
	if d.Profiles, err = a.deviceProfiles(r, dt.Device.ID); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, d)
	return nil
}

// enqueueCommand queues one command: the body is a typed command
// ({"request_type": …}) or {"plist": "<XML>"}, with the options channel,
// expires_in (seconds) and push beside the command's keys.
func (a *API) enqueueCommand(w http.ResponseWriter, r *http.Request) error {
	var in map[string]any
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	idem, err := idempotency(r, in)
	if err != nil {
		return err
	}
	req := app.EnqueueRequest{CreatedBy: Principal(r.Context()), Idempotency: idem}
	// Options travel beside the command's own keys.
	if v, ok := in["channel"]; ok {
		req.Channel, _ = v.(string)
		delete(in, "channel")
	}
	if v, ok := in["expires_in"]; ok {
		n, ok := v.(float64)
		if !ok || n <= 0 {
			return problem.Coded(problem.Invalid, "invalid_parameter", "expires_in must be a positive number of seconds")
		}
		req.ExpiresAt = a.Now().Add(time.Duration(n) * time.Second)
		delete(in, "expires_in")
	}
	if v, ok := in["push"]; ok {
		b, ok := v.(bool)
		if !ok {
			return problem.Coded(problem.Invalid, "invalid_parameter", "push must be true or false")
		}
		req.NoPush = !b
		delete(in, "push")
	}
	if p, ok := in["plist"]; ok {
		s, _ := p.(string)
		if s == "" || len(in) != 1 {
			return problem.Coded(problem.Invalid, "invalid_request", "plist must be the only command field: the command dictionary as XML text")
		}
		req.Plist = []byte(s)
	} else {
		req.JSON = in
	}
	auditOnSuccess(r, http.StatusCreated)
	e, id, err := a.App.Devices.Enqueue(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return a.commandRefused(r, r.PathValue("id"), err)
	}
	a.Metrics.Commands.WithLabelValues("queued").Inc()
	a.Log.Info("command queued", "device", e.ID, "command", id, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusCreated, apitypes.CommandQueued{CommandUUID: id})
	return nil
}

// commandRefused counts and logs a command Apple's rules refused.
func (a *API) commandRefused(r *http.Request, target string, err error) error {
	if pe, ok := problem.As(err); ok && pe.Code == "command_refused" {
		a.Metrics.Commands.WithLabelValues("refused").Inc()
		a.Log.Info("command refused", "target", target, "reason", pe.Message, "by", Principal(r.Context()))
	}
	return err
}

// deviceCommands lists the device's latest commands (200 per channel)
// as summaries: a result over app.HistoryResultMax is left out (its size
// is given), so that one request decodes at most 200 × 64 KiB whatever
// the devices answered; deviceCommand has it whole.
func (a *API) deviceCommands(w http.ResponseWriter, r *http.Request) error {
	e, err := a.App.Devices.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	hist, err := a.App.Devices.History(r.Context(), e, 200, false)
	if err != nil {
		return err
	}
	out := apitypes.Commands{Commands: []apitypes.CommandStatus{}}
	for i := range hist {
		out.Commands = append(out.Commands, commandStatus(&hist[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// deviceCommand is one command of the device with its full result.
func (a *API) deviceCommand(w http.ResponseWriter, r *http.Request) error {
	_, q, err := a.App.Devices.Command(r.Context(), r.PathValue("id"), r.PathValue("uuid"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, commandStatus(q))
	return nil
}

// commandStatus is q on the wire, with its result decoded when q carries
// it. JSON-safe by construction (mdm.DecodeValue): data as base64, dates
// as RFC 3339, NaN and ±Inf as strings.
func commandStatus(q *app.QueuedCommand) apitypes.CommandStatus {
	cs := apitypes.CommandStatus{CommandUUID: q.UUID, RequestType: q.RequestType, Channel: q.Channel, Status: q.Status, CreatedAt: q.CreatedAt,
		SentAt: apitypes.Opt(q.SentAt), UpdatedAt: q.UpdatedAt, ExpiresAt: apitypes.Opt(q.ExpiresAt), ResultSize: q.ResultSize}
	if len(q.Result) > 0 {
		if m, err := mdm.DecodeDict(q.Result); err == nil {
			cs.Result = m
		}
	}
	return cs
}

func (a *API) pushDevice(w http.ResponseWriter, r *http.Request) error {
	e, res, err := a.App.Devices.Push(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := apitypes.Pushes{Pushes: []apitypes.Push{}}
	for _, p := range res {
		ps := apitypes.Push{Channel: p.ID, OK: p.OK(), Status: p.Status, Reason: p.Reason, DeadToken: p.Dead}
		if p.Err != nil && p.Status == 0 {
			ps.Error = p.Err.Error()
		}
		out.Pushes = append(out.Pushes, ps)
	}
	a.Log.Info("device pushed", "device", e.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// unenrollDevice removes the enrollment profile through RemoveProfile (the
// device removes its managed data and checks out). With "immediately" the
// server also forgets the device at once: its next request is answered
// com.apple.unrecognized.device, which unenrolls iOS 17+ / macOS 14+.
func (a *API) unenrollDevice(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.UnenrollInput
	if r.ContentLength != 0 {
		if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
			return err
		}
	}
	e, u, err := a.App.Devices.Unenroll(r.Context(), r.PathValue("id"), in.Immediately, Principal(r.Context()))
	if err != nil {
		return err
	}
	out := apitypes.Unenrolled{DeviceID: e.ID, CommandUUID: u.CommandUUID}
	if u.Forgotten {
		out.Status = store.EnrollmentUnenrolled
	}
	a.Log.Info("device unenroll requested", "device", e.ID, "immediately", in.Immediately, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusAccepted, out)
	return nil
}

// bulkCommand queues one command for many devices:
// {"targets": {"devices": [...], "users": [...], "tenant": "..."}, "command": {...}}.
func (a *API) bulkCommand(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.BulkCommand
	// Up to 100,000 device ids fit comfortably.
	if err := httpx.DecodeJSON(w, r, 16<<20, &in); err != nil {
		return err
	}
	idem, err := idempotency(r, in)
	if err != nil {
		return err
	}
	req := app.EnqueueRequest{JSON: in.Command, CreatedBy: Principal(r.Context()), Idempotency: idem}
	if in.Plist != "" {
		req.JSON, req.Plist = nil, []byte(in.Plist)
	}
	if in.Push != nil && !*in.Push {
		req.NoPush = true
	}
	if in.ExpiresIn < 0 {
		return problem.Coded(problem.Invalid, "invalid_parameter", "expires_in must be positive")
	} else if in.ExpiresIn > 0 {
		req.ExpiresAt = a.Now().Add(time.Duration(in.ExpiresIn * float64(time.Second)))
	}
	auditOnSuccess(r, http.StatusCreated)
	res, err := a.App.Devices.EnqueueBulk(r.Context(), app.Targets{Devices: in.Targets.Devices, Users: in.Targets.Users, Tenant: in.Targets.Tenant}, req)
	if err != nil {
		return a.commandRefused(r, "bulk", err)
	}
	a.Metrics.Commands.WithLabelValues("queued").Add(float64(res.Queued))
	a.Log.Info("bulk command queued", "command", res.CommandUUID, "targets", res.Queued, "by", Principal(r.Context()))
	out := apitypes.BulkResult{CommandUUID: res.CommandUUID, Queued: res.Queued, Skipped: []apitypes.BulkSkip{}, ByPlatform: res.ByPlatform}
	for _, s := range res.Skipped {
		out.Skipped = append(out.Skipped, apitypes.BulkSkip(s))
	}
	httpx.WriteJSON(w, http.StatusCreated, out)
	return nil
}
