package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/mdm/payloads"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/profiles"
	"github.com/pomona-mdm/pomona/store"
)

// MaxProfileBody bounds a profile upload: a 1 MiB .mobileconfig in
// base64 inside JSON.
const MaxProfileBody = 3 << 19

func (a *API) profileRoutes() []route {
	return []route{
		{"POST /api/v1/groups", a.createGroup},
		{"GET /api/v1/groups", a.listGroups},
		{"GET /api/v1/groups/{id}", a.getGroup},
		{"PATCH /api/v1/groups/{id}", a.patchGroup},
		{"DELETE /api/v1/groups/{id}", a.deleteGroup},
		{"POST /api/v1/groups/{id}/members", a.addMembers},
		{"DELETE /api/v1/groups/{id}/members/{user}", a.removeMember},
		{"POST /api/v1/profiles", a.uploadProfile},
		{"GET /api/v1/profiles", a.listProfiles},
		{"GET /api/v1/profiles/{id}", a.getProfile},
		{"POST /api/v1/profiles/{id}/versions", a.uploadVersion},
		{"POST /api/v1/profiles/{id}/assignments", a.assignProfile},
		{"DELETE /api/v1/profiles/{id}/assignments/{group}", a.unassignProfile},
		{"GET /api/v1/profiles/{id}/status", a.profileStatus},
		{"POST /api/v1/devices/{id}/profiles/{profile}/retry", a.retryProfile},
		{"GET /api/v1/devices/{id}/certificates", a.deviceCertificates},
		{"POST /api/v1/devices/{id}/certificates/{serial}/revoke", a.revokeCertificate},
	}
}

// Group is the API form of a group.
type Group struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id"`
	Name      string    `json:"name"`
	Source    string    `json:"source"` // static, all
	Members   int       `json:"members"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func group(g *store.Group) Group {
	return Group{ID: g.ID, TenantID: g.TenantID, Name: g.Name, Source: g.Source, Members: g.Members, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt}
}

// Profile is the API form of a configuration profile.
type Profile struct {
	ID           string       `json:"id"`
	TenantID     string       `json:"tenant_id"`
	Identifier   string       `json:"identifier"`
	Name         string       `json:"name"`
	Platforms    []string     `json:"platforms"`
	MinOSVersion string       `json:"min_os_version,omitempty"`
	Sign         bool         `json:"sign"`
	Version      int          `json:"version"`
	Hash         string       `json:"hash"`
	PayloadTypes []string     `json:"payload_types"`
	CreatedAt    time.Time    `json:"created_at"`
	UpdatedAt    time.Time    `json:"updated_at"`
	Versions     []Version    `json:"versions,omitempty"`
	Assignments  []Assignment `json:"assignments,omitempty"`
}

// Version is one uploaded version.
type Version struct {
	Version   int       `json:"version"`
	Hash      string    `json:"hash"`
	Signed    bool      `json:"signed"`
	CreatedAt time.Time `json:"created_at"`
}

// Assignment is the API form of an assignment.
type Assignment struct {
	GroupID string `json:"group_id"`
	Exclude bool   `json:"exclude"`
}

// ProfileState is one device's state of one profile.
type ProfileState struct {
	ProfileID  string     `json:"profile_id"`
	Identifier string     `json:"identifier"`
	State      string     `json:"state"` // pending, installing, installed, failed, removing
	Version    int        `json:"version"`
	Attempts   int        `json:"attempts,omitempty"`
	Error      string     `json:"error,omitempty"` // Apple's error chain
	NextRetry  *time.Time `json:"next_retry,omitempty"`
	UpdatedAt  time.Time  `json:"updated_at"`
	// Set in a profile's status list.
	Device     string `json:"device,omitempty"`
	UserID     string `json:"user_id,omitempty"`
	Email      string `json:"email,omitempty"`
	Platform   string `json:"platform,omitempty"`
	DeviceName string `json:"device_name,omitempty"`
}

func profileState(it *store.ProfileItem) ProfileState {
	return ProfileState{ProfileID: it.ProfileID, Identifier: it.Identifier, State: it.State, Version: it.Version, Attempts: it.Attempts,
		Error: it.Error, NextRetry: opt(it.NextRetry), UpdatedAt: it.UpdatedAt}
}

func profileOut(p *store.ConfigProfile) Profile {
	plats, types := p.Platforms, p.PayloadTypes
	if plats == nil {
		plats = []string{}
	}
	if types == nil {
		types = []string{}
	}
	return Profile{ID: p.ID, TenantID: p.TenantID, Identifier: p.Identifier, Name: p.Name, Platforms: plats, MinOSVersion: p.MinOS, Sign: p.Sign,
		Version: p.Version, Hash: p.Hash, PayloadTypes: types, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

// profileErr turns the use cases' typed errors into the API's: a profile a
// user enrollment would refuse is a 422 listing every violation.
func (a *API) profileErr(w http.ResponseWriter, r *http.Request, err error) error {
	var ref *profiles.RefusedError
	if errors.As(err, &ref) {
		a.Log.Info("request failed", "method", r.Method, "path", r.URL.Path, "status", http.StatusUnprocessableEntity,
			"code", "user_enrollment_refused", "err", err.Error(), "remote", r.RemoteAddr)
		httpx.WriteJSON(w, http.StatusUnprocessableEntity, struct {
			httpx.Body
			Violations []payloads.Violation `json:"violations"`
		}{httpx.Body{Error: err.Error(), Code: "user_enrollment_refused"}, ref.Violations})
		return nil
	}
	if p, ok := problem.As(err); ok {
		status := map[problem.Kind]int{problem.Invalid: 400, problem.NotFound: 404, problem.Conflict: 409, problem.Unprocessable: 422,
			problem.Forbidden: 403, problem.TooLarge: 413}[p.Kind]
		if status == 0 {
			status = http.StatusInternalServerError
		}
		return &httpx.Error{Status: status, Code: p.Code, Message: p.Message, Err: p.Err}
	}
	return err
}

func (a *API) tenantParam(r *http.Request, v string) (string, error) {
	if v == "" {
		return "", httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "tenant_id is required")
	}
	t, err := a.Dir.ResolveTenant(r.Context(), v)
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

// --- groups ---

func (a *API) createGroup(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		TenantID string `json:"tenant_id"`
		Name     string `json:"name"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	tid, err := a.tenantParam(r, in.TenantID)
	if err != nil {
		return err
	}
	g, err := a.Profiles.CreateGroup(r.Context(), tid, in.Name)
	if err != nil {
		return a.profileErr(w, r, err)
	}
	httpx.WriteJSON(w, http.StatusCreated, group(g))
	return nil
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) error {
	tid, err := a.tenantParam(r, r.URL.Query().Get("tenant_id"))
	if err != nil {
		return err
	}
	gs, err := a.Profiles.Groups(r.Context(), tid)
	if err != nil {
		return a.profileErr(w, r, err)
	}
	out := make([]Group, len(gs))
	for i := range gs {
		out[i] = group(&gs[i])
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"groups": out})
	return nil
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := a.Store.Group(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		if limit, err = strconv.Atoi(l); err != nil || limit < 1 || limit > 1000 {
			return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "limit must be a number from 1 to 1000")
		}
	}
	ms, err := a.Store.GroupMembers(r.Context(), g.ID, r.URL.Query().Get("after"), limit)
	if err != nil {
		return err
	}
	members := make([]User, len(ms))
	for i := range ms {
		members[i] = user(&ms[i])
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"group": group(g), "members": members})
	return nil
}

func (a *API) patchGroup(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	g, err := a.Profiles.RenameGroup(r.Context(), r.PathValue("id"), in.Name)
	if err != nil {
		return a.profileErr(w, r, err)
	}
	httpx.WriteJSON(w, http.StatusOK, group(g))
	return nil
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	if err := a.Profiles.DeleteGroup(r.Context(), r.PathValue("id")); err != nil {
		return a.profileErr(w, r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) addMembers(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Users []string `json:"users"` // ids or emails
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	rows, err := a.Profiles.AddMembers(r.Context(), r.PathValue("id"), in.Users)
	if err != nil {
		return a.profileErr(w, r, err)
	}
	added, failed := 0, 0
	for _, x := range rows {
		switch x.Result {
		case "added":
			added++
		case "error":
			failed++
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"added": added, "failed": failed, "rows": rows})
	return nil
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request) error {
	if err := a.Profiles.RemoveMember(r.Context(), r.PathValue("id"), r.PathValue("user")); err != nil {
		return a.profileErr(w, r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- profiles ---

func (a *API) uploadProfile(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		TenantID     string   `json:"tenant_id"`
		Content      []byte   `json:"content"` // the .mobileconfig, base64
		Platforms    []string `json:"platforms"`
		MinOSVersion string   `json:"min_os_version"`
		Sign         bool     `json:"sign"`
	}
	if err := httpx.DecodeJSON(w, r, MaxProfileBody, &in); err != nil {
		return err
	}
	tid, err := a.tenantParam(r, in.TenantID)
	if err != nil {
		return err
	}
	p, err := a.Profiles.Upload(r.Context(), profiles.Upload{TenantID: tid, Content: in.Content, Platforms: in.Platforms, MinOS: in.MinOSVersion, Sign: in.Sign})
	if err != nil {
		return a.profileErr(w, r, err)
	}
	httpx.WriteJSON(w, http.StatusCreated, profileOut(p))
	return nil
}

func (a *API) uploadVersion(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Content []byte `json:"content"`
	}
	if err := httpx.DecodeJSON(w, r, MaxProfileBody, &in); err != nil {
		return err
	}
	p, err := a.Profiles.Upload(r.Context(), profiles.Upload{ProfileID: r.PathValue("id"), Content: in.Content})
	if err != nil {
		return a.profileErr(w, r, err)
	}
	httpx.WriteJSON(w, http.StatusCreated, profileOut(p))
	return nil
}

func (a *API) listProfiles(w http.ResponseWriter, r *http.Request) error {
	tid := ""
	if t := r.URL.Query().Get("tenant_id"); t != "" {
		var err error
		if tid, err = a.tenantParam(r, t); err != nil {
			return err
		}
	}
	ps, err := a.Store.ConfigProfiles(r.Context(), tid)
	if err != nil {
		return err
	}
	out := make([]Profile, len(ps))
	for i := range ps {
		out[i] = profileOut(&ps[i])
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"profiles": out})
	return nil
}

func (a *API) getProfile(w http.ResponseWriter, r *http.Request) error {
	p, err := a.Store.ConfigProfile(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := profileOut(p)
	vs, err := a.Store.ProfileVersions(r.Context(), p.ID)
	if err != nil {
		return err
	}
	for _, v := range vs {
		out.Versions = append(out.Versions, Version{Version: v.Version, Hash: v.Hash, Signed: v.Signed, CreatedAt: v.CreatedAt})
	}
	as, err := a.Store.Assignments(r.Context(), p.ID)
	if err != nil {
		return err
	}
	out.Assignments = []Assignment{}
	for _, x := range as {
		out.Assignments = append(out.Assignments, Assignment{GroupID: x.GroupID, Exclude: x.Exclude})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) assignProfile(w http.ResponseWriter, r *http.Request) error {
	var in Assignment
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	if in.GroupID == "" {
		return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "group_id is required")
	}
	if err := a.Profiles.Assign(r.Context(), r.PathValue("id"), in.GroupID, in.Exclude); err != nil {
		return a.profileErr(w, r, err)
	}
	httpx.WriteJSON(w, http.StatusOK, in)
	return nil
}

func (a *API) unassignProfile(w http.ResponseWriter, r *http.Request) error {
	if err := a.Profiles.Unassign(r.Context(), r.PathValue("id"), r.PathValue("group")); err != nil {
		return a.profileErr(w, r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) profileStatus(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 100
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "limit must be a number from 1 to 1000")
		}
		limit = n
	}
	st, err := a.Profiles.Status(r.Context(), r.PathValue("id"), q.Get("state"), q.Get("after"), limit)
	if err != nil {
		return a.profileErr(w, r, err)
	}
	devs := make([]ProfileState, len(st.Devices))
	for i := range st.Devices {
		d := &st.Devices[i]
		devs[i] = profileState(&d.ProfileItem)
		devs[i].Device, devs[i].UserID, devs[i].Email, devs[i].Platform, devs[i].DeviceName = d.EnrollmentID, d.UserID, d.Email, d.Platform, d.DeviceName
	}
	out := map[string]any{"counts": st.Counts, "devices": devs}
	if len(devs) == limit {
		out["next_after"] = devs[len(devs)-1].Device
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) retryProfile(w http.ResponseWriter, r *http.Request) error {
	e, err := a.deviceRef(r)
	if err != nil {
		return err
	}
	if err := a.Profiles.Retry(r.Context(), e.ID, r.PathValue("profile")); err != nil {
		return a.profileErr(w, r, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deviceProfiles is the Profiles field of a single device.
func (a *API) deviceProfiles(r *http.Request, enrollmentID string) ([]ProfileState, error) {
	its, err := a.Store.ProfileItems(r.Context(), enrollmentID)
	if err != nil {
		return nil, err
	}
	out := make([]ProfileState, len(its))
	for i := range its {
		out[i] = profileState(&its[i])
	}
	return out, nil
}

// Certificate is a user certificate issued through a profile's SCEP payload.
type Certificate struct {
	Serial    string     `json:"serial"`
	ProfileID string     `json:"profile_id"`
	Subject   string     `json:"subject"`
	Email     string     `json:"email"`
	SHA256    string     `json:"sha256"`
	NotBefore time.Time  `json:"not_before"`
	NotAfter  time.Time  `json:"not_after"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	RevokedBy string     `json:"revoked_by,omitempty"`
}

func (a *API) deviceCertificates(w http.ResponseWriter, r *http.Request) error {
	e, err := a.deviceRef(r)
	if err != nil {
		return err
	}
	cs, err := a.Store.ProfileCerts(r.Context(), e.ID)
	if err != nil {
		return err
	}
	out := make([]Certificate, len(cs))
	for i, c := range cs {
		out[i] = Certificate{Serial: c.Serial, ProfileID: c.ProfileID, Subject: c.Subject, Email: c.Email, SHA256: fmt.Sprintf("%x", c.SHA256),
			NotBefore: c.NotBefore, NotAfter: c.NotAfter, IssuedAt: c.IssuedAt, RevokedAt: opt(c.RevokedAt), RevokedBy: c.RevokedBy}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"certificates": out})
	return nil
}

func (a *API) revokeCertificate(w http.ResponseWriter, r *http.Request) error {
	e, err := a.deviceRef(r)
	if err != nil {
		return err
	}
	if err := a.Store.RevokeProfileCert(r.Context(), e.ID, r.PathValue("serial"), Principal(r.Context()), a.Now().UTC().Truncate(time.Microsecond)); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
