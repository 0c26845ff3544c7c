package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/push"
	"github.com/pomona-mdm/pomona/store"
)

// Device is the API form of an enrollment: what a user enrollment reveals.
type Device struct {
	ID                string     `json:"id"`
	EnrollmentID      string     `json:"enrollment_id,omitempty"` // Apple's EnrollmentID (not a hardware identifier)
	TenantID          string     `json:"tenant_id"`
	UserID            string     `json:"user_id"`
	Status            string     `json:"status"`
	Platform          string     `json:"platform"`
	Product           string     `json:"product"`
	Model             string     `json:"model,omitempty"`
	ModelName         string     `json:"model_name,omitempty"`
	DeviceName        string     `json:"device_name,omitempty"`
	OSVersion         string     `json:"os_version,omitempty"`
	BuildVersion      string     `json:"build_version,omitempty"`
	Language          string     `json:"language,omitempty"`
	DeviceSignature   string     `json:"device_signature"`
	CreatedAt         time.Time  `json:"created_at"`
	EnrolledAt        *time.Time `json:"enrolled_at,omitempty"`
	UnenrolledAt      *time.Time `json:"unenrolled_at,omitempty"`
	LastSeenAt        *time.Time `json:"last_seen_at,omitempty"`
	Channels          []Channel  `json:"channels,omitempty"`
	ProfileIdentifier string     `json:"profile_identifier"`
	// Inventory is what the device's answers revealed, by section.
	Inventory json.RawMessage `json:"inventory,omitempty"`
	// Renewal is the latest renewal of the identity certificate (single
	// device only; absent before the first one).
	Renewal *Renewal `json:"renewal,omitempty"`
	// Silent: enrolled and not seen for serve --silent-after.
	Silent bool `json:"silent"`
	// Predecessor is the device id of the enrollment this one likely
	// replaces (the same user's device re-enrolled); Successor, on a
	// single device, the one that likely replaced it (docs/lifecycle.md).
	Predecessor string `json:"predecessor,omitempty"`
	Successor   string `json:"successor,omitempty"`
}

// Renewal is the state of an identity renewal (docs/lifecycle.md).
type Renewal struct {
	Status      string    `json:"status"` // queued, done or failed
	Error       string    `json:"error,omitempty"`
	Attempts    int       `json:"attempts"`
	CommandUUID string    `json:"command_uuid,omitempty"` // the InstallProfile
	Serial      string    `json:"certificate_serial"`     // the certificate being renewed (hex)
	NewSerial   string    `json:"new_certificate_serial,omitempty"`
	QueuedAt    time.Time `json:"queued_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

func renewal(r *store.Renewal) *Renewal {
	return &Renewal{Status: r.Status, Error: r.Error, Attempts: r.Attempts, CommandUUID: r.CommandUUID, Serial: r.Serial,
		NewSerial: r.NewSerial, QueuedAt: r.QueuedAt, UpdatedAt: r.UpdatedAt}
}

// Channel is a device or user channel (the push token itself stays inside).
type Channel struct {
	ID            string     `json:"id"`
	Kind          string     `json:"kind"`
	UserShortName string     `json:"user_short_name,omitempty"`
	Pushable      bool       `json:"pushable"`
	LastPushAt    *time.Time `json:"last_push_at,omitempty"`
	LastSeenAt    *time.Time `json:"last_seen_at,omitempty"`
}

func device(e *store.Enrollment) Device {
	return Device{ID: e.ID, EnrollmentID: e.AppleEnrollmentID, TenantID: e.TenantID, UserID: e.UserID, Status: e.Status, Platform: e.Platform,
		Product: e.Product, Model: e.Model, ModelName: e.ModelName, DeviceName: e.DeviceName, OSVersion: e.OSVersion, BuildVersion: e.BuildVersion,
		Language: e.Language, DeviceSignature: e.DeviceSignature, CreatedAt: e.CreatedAt, EnrolledAt: opt(e.EnrolledAt),
		UnenrolledAt: opt(e.UnenrolledAt), LastSeenAt: opt(e.LastSeenAt), ProfileIdentifier: e.ProfileID, Inventory: e.Inventory}
}

// deviceRef finds an enrollment by Pomona's id (en_…) or Apple's EnrollmentID.
func (a *API) deviceRef(r *http.Request) (*store.Enrollment, error) {
	id := r.PathValue("id")
	if strings.HasPrefix(id, "en_") {
		return a.Store.Enrollment(r.Context(), id)
	}
	e, err := a.Store.EnrollmentByAppleID(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, httpx.Errorf(http.StatusNotFound, "not_found", "no device with id or EnrollmentID %q", id)
	}
	return e, err
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.EnrollmentFilter{Status: q.Get("status"), Platform: q.Get("platform"), Before: q.Get("before"), Limit: 100}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "limit must be a number from 1 to 1000")
		}
		f.Limit = n
	}
	if t := q.Get("tenant"); t != "" {
		tn, err := a.Dir.ResolveTenant(r.Context(), t)
		if err != nil {
			return err
		}
		f.TenantID = tn.ID
	}
	if u := q.Get("user"); u != "" {
		r2 := r.Clone(r.Context())
		r2.SetPathValue("id", u)
		usr, err := a.userRef(r2)
		if err != nil {
			return err
		}
		f.UserID = usr.ID
	}
	f, err := a.silentFilter(r, f)
	if err != nil {
		return err
	}
	es, err := a.Store.Enrollments(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]Device, 0, len(es))
	for i := range es {
		out = append(out, a.lifecycleFields(device(&es[i]), &es[i]))
	}
	resp := map[string]any{"devices": out}
	if len(es) == f.Limit {
		resp["next_before"] = es[len(es)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request) error {
	e, err := a.deviceRef(r)
	if err != nil {
		return err
	}
	d := a.lifecycleFields(device(e), e)
	if err := a.links(r.Context(), &d, e); err != nil {
		return err
	}
	chs, err := a.Store.Channels(r.Context(), e.ID)
	if err != nil {
		return err
	}
	for _, c := range chs {
		d.Channels = append(d.Channels, Channel{ID: c.ID, Kind: c.Kind, UserShortName: c.UserShortName, Pushable: len(c.PushToken) > 0 && !c.PushDead,
			LastPushAt: opt(c.LastPushAt), LastSeenAt: opt(c.LastSeenAt)})
	}
	if rn, err := a.Store.LatestRenewal(r.Context(), e.ID); err == nil {
		d.Renewal = renewal(rn)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, d)
	return nil
}

func (a *API) enqueueCommand(w http.ResponseWriter, r *http.Request) error {
	var in map[string]any
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	idem, err := idempotency(r, in)
	if err != nil {
		return err
	}
	e, err := a.deviceRef(r)
	if err != nil {
		return err
	}
	req := mdmservice.EnqueueRequest{CreatedBy: Principal(r.Context()), Idempotency: idem}
	// Options travel beside the command's own keys.
	if v, ok := in["channel"]; ok {
		req.Channel, _ = v.(string)
		delete(in, "channel")
	}
	if v, ok := in["expires_in"]; ok {
		n, ok := v.(float64)
		if !ok || n <= 0 {
			return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "expires_in must be a positive number of seconds")
		}
		req.ExpiresAt = a.Now().Add(time.Duration(n) * time.Second)
		delete(in, "expires_in")
	}
	if v, ok := in["push"]; ok {
		b, ok := v.(bool)
		if !ok {
			return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "push must be true or false")
		}
		req.NoPush = !b
		delete(in, "push")
	}
	if p, ok := in["plist"]; ok {
		s, _ := p.(string)
		if s == "" || len(in) != 1 {
			return httpx.Errorf(http.StatusBadRequest, "invalid_request", "plist must be the only command field: the command dictionary as XML text")
		}
		req.Plist = []byte(s)
	} else {
		req.JSON = in
	}
	id, err := a.Commands.Enqueue(r.Context(), e, req)
	if err != nil {
		return a.commandError(r, e.ID, err)
	}
	a.Metrics.Commands.WithLabelValues("queued").Inc()
	a.Log.Info("command queued", "device", e.ID, "command", id, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusCreated, map[string]string{"command_uuid": id})
	return nil
}

// commandError maps what queueing a command can fail with: Apple's rules
// refuse it (422), or the device cannot take commands (409).
func (a *API) commandError(r *http.Request, target string, err error) error {
	var ref *catalog.Refusal
	switch {
	case errors.As(err, &ref):
		a.Metrics.Commands.WithLabelValues("refused").Inc()
		a.Log.Info("command refused", "target", target, "reason", ref.Error(), "by", Principal(r.Context()))
		return &httpx.Error{Status: http.StatusUnprocessableEntity, Code: "command_refused", Message: ref.Error()}
	case errors.Is(err, mdmservice.ErrIdempotencyKeyReused):
		return &httpx.Error{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused", Message: err.Error() +
			"; send a new key for a new request"}
	case errors.Is(err, mdmservice.ErrNotEnrolled), errors.Is(err, mdmservice.ErrNoChannel), errors.Is(err, mdmservice.ErrUnenrolled):
		return &httpx.Error{Status: http.StatusConflict, Code: "not_enrolled", Message: err.Error()}
	}
	return err
}

// CommandStatus is a command in a device's queue with its result.
type CommandStatus struct {
	CommandUUID string         `json:"command_uuid"`
	RequestType string         `json:"request_type"`
	Channel     string         `json:"channel"`
	Status      string         `json:"status"`
	CreatedAt   time.Time      `json:"created_at"`
	SentAt      *time.Time     `json:"sent_at,omitempty"`
	UpdatedAt   time.Time      `json:"updated_at"`
	ExpiresAt   *time.Time     `json:"expires_at,omitempty"`
	Result      map[string]any `json:"result,omitempty"`
}

func (a *API) deviceCommands(w http.ResponseWriter, r *http.Request) error {
	e, err := a.deviceRef(r)
	if err != nil {
		return err
	}
	chs, err := a.Store.Channels(r.Context(), e.ID)
	if err != nil {
		return err
	}
	out := []CommandStatus{}
	for _, c := range chs {
		qs, err := a.Store.QueuedCommands(r.Context(), c.ID, 200)
		if err != nil {
			return err
		}
		for _, q := range qs {
			cs := CommandStatus{CommandUUID: q.UUID, RequestType: q.RequestType, Channel: c.Kind, Status: q.Status, CreatedAt: q.CreatedAt,
				SentAt: opt(q.SentAt), UpdatedAt: q.UpdatedAt, ExpiresAt: opt(q.ExpiresAt)}
			if len(q.Result) > 0 {
				// JSON-safe by construction (mdm.DecodeValue): data as
				// base64, dates as RFC 3339, NaN and ±Inf as strings.
				if m, err := mdm.DecodeDict(q.Result); err == nil {
					cs.Result = m
				}
			}
			out = append(out, cs)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"commands": out})
	return nil
}

// DevicePusher wakes a device's channels now.
type DevicePusher interface {
	PushNow(ctx context.Context, chs []store.Channel) ([]push.Result, error)
}

func (a *API) pushDevice(w http.ResponseWriter, r *http.Request) error {
	e, err := a.deviceRef(r)
	if err != nil {
		return err
	}
	chs, err := a.Store.Channels(r.Context(), e.ID)
	if err != nil {
		return err
	}
	res, err := a.Pusher.PushNow(r.Context(), chs)
	if err != nil {
		return &httpx.Error{Status: http.StatusConflict, Code: "cannot_push", Message: err.Error()}
	}
	out := []map[string]any{}
	for _, p := range res {
		m := map[string]any{"channel": p.ID, "ok": p.OK(), "status": p.Status}
		if p.Reason != "" {
			m["reason"] = p.Reason
		}
		if p.Dead {
			m["dead_token"] = true
		}
		if p.Err != nil && p.Status == 0 {
			m["error"] = p.Err.Error()
		}
		out = append(out, m)
	}
	a.Log.Info("device pushed", "device", e.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"pushes": out})
	return nil
}

// unenroll removes the enrollment profile through RemoveProfile (the device
// removes its managed data and checks out). With "immediately" the server
// also forgets the device at once: its next request is answered
// com.apple.unrecognized.device, which unenrolls iOS 17+ / macOS 14+.
func (a *API) unenrollDevice(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Immediately bool `json:"immediately"`
	}
	if r.ContentLength != 0 {
		if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
			return err
		}
	}
	e, err := a.deviceRef(r)
	if err != nil {
		return err
	}
	u, err := a.Commands.Unenroll(r.Context(), e, in.Immediately, Principal(r.Context()))
	if err != nil {
		return err
	}
	resp := map[string]any{"device": e.ID}
	if u.CommandUUID != "" {
		resp["command_uuid"] = u.CommandUUID
	}
	if u.Forgotten {
		resp["status"] = store.EnrollmentUnenrolled
	}
	a.Log.Info("device unenroll requested", "device", e.ID, "immediately", in.Immediately, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusAccepted, resp)
	return nil
}

// bulkCommand queues one command for many devices:
// {"targets": {"devices": [...], "users": [...], "tenant": "..."}, "command": {...}}.
func (a *API) bulkCommand(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Targets struct {
			Devices []string `json:"devices"`
			Users   []string `json:"users"`
			Tenant  string   `json:"tenant"`
		} `json:"targets"`
		Command   map[string]any `json:"command"`
		Plist     string         `json:"plist"`
		Push      *bool          `json:"push"`
		ExpiresIn float64        `json:"expires_in"`
	}
	// Up to 100,000 device ids fit comfortably.
	if err := httpx.DecodeJSON(w, r, 16<<20, &in); err != nil {
		return err
	}
	idem, err := idempotency(r, in)
	if err != nil {
		return err
	}
	f := store.TargetFilter{EnrollmentIDs: in.Targets.Devices}
	if in.Targets.Tenant != "" {
		t, err := a.Dir.ResolveTenant(r.Context(), in.Targets.Tenant)
		if err != nil {
			return err
		}
		f.TenantID = t.ID
	}
	for _, u := range in.Targets.Users {
		r2 := r.Clone(r.Context())
		r2.SetPathValue("id", u)
		usr, err := a.userRef(r2)
		if err != nil {
			return err
		}
		f.UserIDs = append(f.UserIDs, usr.ID)
	}
	if f.TenantID == "" && len(f.UserIDs) == 0 && len(f.EnrollmentIDs) == 0 {
		return httpx.Errorf(http.StatusBadRequest, "invalid_request", "targets needs devices, users or a tenant")
	}
	req := mdmservice.EnqueueRequest{JSON: in.Command, CreatedBy: Principal(r.Context()), Idempotency: idem}
	if in.Plist != "" {
		req.JSON, req.Plist = nil, []byte(in.Plist)
	}
	if in.Push != nil && !*in.Push {
		req.NoPush = true
	}
	if in.ExpiresIn < 0 {
		return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "expires_in must be positive")
	} else if in.ExpiresIn > 0 {
		req.ExpiresAt = a.Now().Add(time.Duration(in.ExpiresIn * float64(time.Second)))
	}
	res, err := a.Commands.EnqueueBulk(r.Context(), f, req)
	if err != nil {
		return a.commandError(r, "bulk", err)
	}
	a.Metrics.Commands.WithLabelValues("queued").Add(float64(res.Queued))
	a.Log.Info("bulk command queued", "command", res.CommandUUID, "targets", res.Queued, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusCreated, res)
	return nil
}
