package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

// Groups and configuration profiles (docs/profiles.md): thin handlers over
// app.Profiles.

// MaxProfileBody bounds a profile upload's JSON body: the largest file
// mobileconfig.Read takes (app.MaxProfileFile, 2 MiB) in base64, with
// 64 KiB for the other fields. A larger body is 413 body_too_large.
const MaxProfileBody = app.MaxProfileFile/3*4 + 4 + 64<<10

// decodeProfile is DecodeJSON of a profile upload: a body over
// MaxProfileBody says what the file's limit is and how to send it.
func decodeProfile(w http.ResponseWriter, r *http.Request, v any) error {
	err := httpx.DecodeJSON(w, r, MaxProfileBody, v)
	if problem.KindOf(err) == problem.TooLarge {
		return problem.Coded(problem.TooLarge, "body_too_large", "request body is larger than %d bytes: a configuration profile is at most %d MiB (signed) or 1 MiB (unsigned), sent in content as base64 without line breaks",
			MaxProfileBody, app.MaxProfileFile>>20)
	}
	return err
}

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
		{"PATCH /api/v1/profiles/{id}", a.patchProfile},
		{"DELETE /api/v1/profiles/{id}", a.deleteProfile},
		{"POST /api/v1/profiles/{id}/versions", a.uploadVersion},
		{"POST /api/v1/profiles/{id}/assignments", a.assignProfile},
		{"DELETE /api/v1/profiles/{id}/assignments/{group}", a.unassignProfile},
		{"GET /api/v1/profiles/{id}/status", a.profileStatus},
		{"POST /api/v1/devices/{id}/profiles/{profile}/retry", a.retryProfile},
		{"GET /api/v1/devices/{id}/certificates", a.deviceCertificates},
		{"POST /api/v1/devices/{id}/certificates/{serial}/revoke", a.revokeCertificate},
	}
}

func groupView(g *store.Group) apitypes.Group {
	return apitypes.Group{ID: g.ID, TenantID: g.TenantID, Name: g.Name, Source: g.Source, Members: g.Members, CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt}
}

func profileState(it *store.ProfileItem) apitypes.ProfileState {
	return apitypes.ProfileState{ProfileID: it.ProfileID, Identifier: it.Identifier, State: it.State, Version: it.Version, Attempts: it.Attempts,
		Error: it.Error, NextRetry: apitypes.Opt(it.NextRetry), UpdatedAt: it.UpdatedAt}
}

func profileView(p *store.ConfigProfile) apitypes.Profile {
	plats, types := p.Platforms, p.PayloadTypes
	if plats == nil {
		plats = []string{}
	}
	if types == nil {
		types = []string{}
	}
	return apitypes.Profile{ID: p.ID, TenantID: p.TenantID, Identifier: p.Identifier, Name: p.Name, Platforms: plats, MinOSVersion: p.MinOS, Sign: p.Sign,
		Version: p.Version, Hash: p.Hash, PayloadTypes: types, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

// refused answers a profile a user enrollment would reject: 422
// user_enrollment_refused with every violation (platform, payload, key,
// reason). Other errors go to the one renderer.
func (a *API) refused(w http.ResponseWriter, r *http.Request, err error) error {
	var ref *app.RefusedError
	if !errors.As(err, &ref) {
		return err
	}
	a.Log.Info("request failed", "method", r.Method, "path", r.URL.Path, "status", http.StatusUnprocessableEntity,
		"code", "user_enrollment_refused", "err", err.Error(), "remote", r.RemoteAddr)
	vs := make([]apitypes.ProfileViolation, len(ref.Violations))
	for i, v := range ref.Violations {
		vs[i] = apitypes.ProfileViolation{Platform: v.Platform, PayloadType: v.PayloadType, PayloadIdentifier: v.PayloadIdentifier, Key: v.Key, Reason: v.Reason}
	}
	httpx.WriteJSON(w, http.StatusUnprocessableEntity, struct {
		apitypes.Error
		Violations []apitypes.ProfileViolation `json:"violations"`
	}{apitypes.Error{Error: err.Error(), Code: "user_enrollment_refused"}, vs})
	return nil
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
	g, err := a.App.Profiles.CreateGroup(r.Context(), in.TenantID, in.Name)
	if err != nil {
		return err
	}
	auditCreated(r, g.ID)
	httpx.WriteJSON(w, http.StatusCreated, groupView(g))
	return nil
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request) error {
	gs, err := a.App.Profiles.Groups(r.Context(), r.URL.Query().Get("tenant_id"))
	if err != nil {
		return err
	}
	out := make([]apitypes.Group, len(gs))
	for i := range gs {
		out[i] = groupView(&gs[i])
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"groups": out})
	return nil
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) error {
	n, err := limitParam(r)
	if err != nil {
		return err
	}
	g, ms, err := a.App.Profiles.GroupDetail(r.Context(), r.PathValue("id"), r.URL.Query().Get("after"), n)
	if err != nil {
		return err
	}
	members := make([]apitypes.User, len(ms))
	for i := range ms {
		members[i] = user(&ms[i])
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"group": groupView(g), "members": members})
	return nil
}

func (a *API) patchGroup(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name string `json:"name"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	g, err := a.App.Profiles.RenameGroup(r.Context(), r.PathValue("id"), in.Name)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, groupView(g))
	return nil
}

func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	if err := a.App.Profiles.DeleteGroup(r.Context(), r.PathValue("id")); err != nil {
		return err
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
	rows, err := a.App.Profiles.AddMembers(r.Context(), r.PathValue("id"), in.Users)
	if err != nil {
		return err
	}
	added, failed := 0, 0
	out := make([]apitypes.MemberRow, len(rows))
	for i, x := range rows {
		out[i] = apitypes.MemberRow{Ref: x.Ref, UserID: x.UserID, Result: x.Result, Error: x.Error}
		switch x.Result {
		case "added":
			added++
		case "error":
			failed++
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"added": added, "failed": failed, "rows": out})
	return nil
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request) error {
	if err := a.App.Profiles.RemoveMember(r.Context(), r.PathValue("id"), r.PathValue("user")); err != nil {
		return err
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
	if err := decodeProfile(w, r, &in); err != nil {
		return err
	}
	p, err := a.App.Profiles.Upload(r.Context(), app.ProfileUpload{TenantID: in.TenantID, Content: in.Content, Platforms: in.Platforms, MinOS: in.MinOSVersion, Sign: in.Sign})
	if err != nil {
		return a.refused(w, r, err)
	}
	auditCreated(r, p.ID)
	httpx.WriteJSON(w, http.StatusCreated, profileView(p))
	return nil
}

func (a *API) uploadVersion(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Content []byte `json:"content"`
	}
	if err := decodeProfile(w, r, &in); err != nil {
		return err
	}
	p, err := a.App.Profiles.Upload(r.Context(), app.ProfileUpload{ProfileID: r.PathValue("id"), Content: in.Content})
	if err != nil {
		return a.refused(w, r, err)
	}
	httpx.WriteJSON(w, http.StatusCreated, profileView(p))
	return nil
}

func (a *API) listProfiles(w http.ResponseWriter, r *http.Request) error {
	ps, err := a.App.Profiles.List(r.Context(), r.URL.Query().Get("tenant_id"))
	if err != nil {
		return err
	}
	out := make([]apitypes.Profile, len(ps))
	for i := range ps {
		out[i] = profileView(&ps[i])
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"profiles": out})
	return nil
}

func (a *API) getProfile(w http.ResponseWriter, r *http.Request) error {
	d, err := a.App.Profiles.Profile(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := profileView(d.Profile)
	for _, v := range d.Versions {
		out.Versions = append(out.Versions, apitypes.ProfileVersion{Version: v.Version, Hash: v.Hash, Signed: v.Signed, CreatedAt: v.CreatedAt})
	}
	out.Assignments = []apitypes.ProfileAssignment{}
	for _, x := range d.Assignments {
		out.Assignments = append(out.Assignments, apitypes.ProfileAssignment{GroupID: x.GroupID, Exclude: x.Exclude})
	}
	if r.URL.Query().Get("content") == "true" && len(d.Versions) > 0 {
		out.Content = d.Versions[0].Plist
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) assignProfile(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.ProfileAssignment
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	if in.GroupID == "" {
		return problem.FieldError(problem.Invalid, "group_id", "group_id is required")
	}
	if err := a.App.Profiles.Assign(r.Context(), r.PathValue("id"), in.GroupID, in.Exclude); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, in)
	return nil
}

func (a *API) unassignProfile(w http.ResponseWriter, r *http.Request) error {
	if err := a.App.Profiles.Unassign(r.Context(), r.PathValue("id"), r.PathValue("group")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) profileStatus(w http.ResponseWriter, r *http.Request) error {
	n, err := limitParam(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	st, err := a.App.Profiles.Status(r.Context(), r.PathValue("id"), q.Get("state"), q.Get("after"), n)
	if err != nil {
		return err
	}
	out := apitypes.ProfileStatus{Counts: st.Counts, Devices: make([]apitypes.ProfileState, len(st.Devices))}
	for i := range st.Devices {
		d := &st.Devices[i]
		out.Devices[i] = profileState(&d.ProfileItem)
		out.Devices[i].Device, out.Devices[i].UserID, out.Devices[i].UserEmail, out.Devices[i].Platform, out.Devices[i].DeviceName = d.DeviceID, d.UserID, d.UserEmail, d.Platform, d.DeviceName
	}
	if n == 0 {
		n = app.DefaultLimit
	}
	if len(out.Devices) == n {
		out.NextAfter = out.Devices[len(out.Devices)-1].Device
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) retryProfile(w http.ResponseWriter, r *http.Request) error {
	e, err := a.App.Devices.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := a.App.Profiles.Retry(r.Context(), e.ID, r.PathValue("profile")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deviceProfiles is the Profiles field of a single device.
func (a *API) deviceProfiles(r *http.Request, deviceID string) ([]apitypes.ProfileState, error) {
	its, err := a.App.Profiles.DeviceProfiles(r.Context(), deviceID)
	if err != nil {
		return nil, err
	}
	var out []apitypes.ProfileState
	for i := range its {
		out = append(out, profileState(&its[i]))
	}
	return out, nil
}

func (a *API) deviceCertificates(w http.ResponseWriter, r *http.Request) error {
	e, err := a.App.Devices.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	cs, err := a.App.Profiles.Certificates(r.Context(), e.ID)
	if err != nil {
		return err
	}
	out := make([]apitypes.Certificate, len(cs))
	for i, c := range cs {
		out[i] = apitypes.Certificate{Serial: c.Serial, ProfileID: c.ProfileID, Subject: c.Subject, Email: c.Email, SHA256: fmt.Sprintf("%x", c.SHA256),
			NotBefore: c.NotBefore, NotAfter: c.NotAfter, IssuedAt: c.IssuedAt, RevokedAt: apitypes.Opt(c.RevokedAt), RevokedBy: c.RevokedBy}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"certificates": out})
	return nil
}

func (a *API) revokeCertificate(w http.ResponseWriter, r *http.Request) error {
	e, err := a.App.Devices.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := a.App.Profiles.RevokeCertificate(r.Context(), e.ID, r.PathValue("serial"), Principal(r.Context())); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// patchProfile changes a profile's name, platforms, minimum OS version or
// signing; the devices concerned are marked in the same transaction.
func (a *API) patchProfile(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.ProfileUpdate
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	p, err := a.App.Profiles.UpdateProfile(r.Context(), r.PathValue("id"), app.ProfileSettings{Name: in.Name, Platforms: in.Platforms, MinOS: in.MinOSVersion, Sign: in.Sign})
	if err != nil {
		return a.refused(w, r, err)
	}
	a.Log.Info("profile updated", "profile", p.ID, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusOK, profileView(p))
	return nil
}

// deleteProfile deletes a profile (its devices get RemoveProfile through
// the reconciler); ?dry_run=true only counts the devices that would lose
// it.
func (a *API) deleteProfile(w http.ResponseWriter, r *http.Request) error {
	dry, err := boolParam(r, "dry_run")
	if err != nil {
		return err
	}
	n, err := a.App.Profiles.DeleteProfile(r.Context(), r.PathValue("id"), dry)
	if err != nil {
		return err
	}
	if dry {
		httpx.WriteJSON(w, http.StatusOK, apitypes.ProfileDeletion{DevicesLosingIt: n})
		return nil
	}
	a.Log.Info("profile deleted", "profile", r.PathValue("id"), "devices_losing_it", n, "by", Principal(r.Context()))
	w.WriteHeader(http.StatusNoContent)
	return nil
}
