package app

// Desired state for configuration profiles (docs/profiles.md): groups of
// users, the tenant's profile library (upload with Apple's user-enrollment
// check, versions), assignments and the per-device status. The reconciler
// that makes every enrolled device's installed set equal its desired set
// is the job in package profiles; the rules are in pure packages:
// mdm/payloads (Apple's schema), mdm/mobileconfig (the file and its
// variables), reconcile (plans and verification).

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
	"github.com/pomona-mdm/pomona/mdm/payloads"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
)

// ProfileStore is what the profile use cases need from storage.
type ProfileStore interface {
	store.GroupStore
	store.ProfileStore
	store.ProfileCertStore
	store.ProfileAdminStore
	Tenant(ctx context.Context, id string) (*store.Tenant, error)
	User(ctx context.Context, id string) (*store.User, error)
	UserByEmail(ctx context.Context, email string) (*store.User, error)
	store.ProfileDeliveryStore
}

// Profiles runs the use cases of groups and configuration profiles.
type Profiles struct {
	Store ProfileStore
	Rules *payloads.Rules
	// Tenants resolves a tenant named by id, name or domain.
	Tenants *Tenants
	Now     func() time.Time
	// Changed, when set, is told that devices were marked for the
	// reconciler (the job then runs at once rather than at its next tick).
	Changed func()
}

func (s *Profiles) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

func (s *Profiles) changed() {
	if s.Changed != nil {
		s.Changed()
	}
}

// MaxGroupName bounds a group's name in characters.
const MaxGroupName = 100

// hasControl says whether s holds a control character: C0 (line breaks
// and tabs among them), DEL or C1. Only line breaks and tabs were
// refused, so a name could carry ESC or the one-character CSI U+009B,
// which drive the terminal of whoever prints it (pomona group show).
func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

func groupName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len([]rune(name)) > MaxGroupName || hasControl(name) {
		return "", problem.FieldError(problem.Invalid, "name", "a group name is 1–%d characters on one line", MaxGroupName)
	}
	if strings.EqualFold(name, store.AllUsersName) {
		return "", problem.FieldError(problem.Conflict, "name", "%q is the tenant's implicit group", store.AllUsersName)
	}
	return name, nil
}

// CreateGroup makes a static group in a tenant.
func (s *Profiles) CreateGroup(ctx context.Context, tenantRef, name string) (*store.Group, error) {
	name, err := groupName(name)
	if err != nil {
		return nil, err
	}
	tenantID, err := s.tenantID(ctx, tenantRef)
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.AllUsersGroup(ctx, tenantID, s.now()); err != nil {
		return nil, err
	}
	g := &store.Group{ID: directory.NewID("gr"), TenantID: tenantID, Name: name, Source: store.GroupStatic, CreatedAt: s.now(), UpdatedAt: s.now()}
	if err := s.Store.CreateGroup(ctx, g); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, problem.FieldError(problem.Conflict, "name", "the tenant has a group named %q already", name)
		}
		return nil, err
	}
	return g, nil
}

// tenantID resolves a tenant id, name or domain.
func (s *Profiles) tenantID(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", problem.FieldError(problem.Invalid, "tenant_id", "tenant_id is required")
	}
	if s.Tenants == nil {
		return ref, nil
	}
	t, err := s.Tenants.Resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

// Groups lists a tenant's groups (id, name or domain), the implicit
// all-users group first.
func (s *Profiles) Groups(ctx context.Context, tenantRef string) ([]store.Group, error) {
	tenantID, err := s.tenantID(ctx, tenantRef)
	if err != nil {
		return nil, err
	}
	if _, err := s.Store.AllUsersGroup(ctx, tenantID, s.now()); err != nil {
		return nil, err
	}
	return s.Store.Groups(ctx, tenantID)
}

func (s *Profiles) staticGroup(ctx context.Context, id string) (*store.Group, error) {
	g, err := s.Store.Group(ctx, id)
	if err != nil {
		return nil, err
	}
	if g.Source != store.GroupStatic {
		return nil, problem.New(problem.Conflict, "group %s (%s) is the %s group: its membership is not managed here", g.ID, g.Name, g.Source)
	}
	return g, nil
}

// RenameGroup renames a static group.
func (s *Profiles) RenameGroup(ctx context.Context, id, name string) (*store.Group, error) {
	name, err := groupName(name)
	if err != nil {
		return nil, err
	}
	if _, err := s.staticGroup(ctx, id); err != nil {
		return nil, err
	}
	g, err := s.Store.RenameGroup(ctx, id, name, s.now())
	if errors.Is(err, store.ErrConflict) {
		return nil, problem.FieldError(problem.Conflict, "name", "the tenant has a group named %q already", name)
	}
	return g, err
}

// DeleteGroup deletes a static group; its devices lose what it gave them.
func (s *Profiles) DeleteGroup(ctx context.Context, id string) error {
	if _, err := s.staticGroup(ctx, id); err != nil {
		return err
	}
	if err := s.Store.DeleteGroup(ctx, id, s.now()); err != nil {
		return err
	}
	s.changed()
	return nil
}

// MemberRow is the outcome of one requested member (the per-row report of
// an import).
type MemberRow struct {
	Ref    string `json:"ref"` // as given: user id or email
	UserID string `json:"user_id,omitempty"`
	Result string `json:"result"` // added, already, error
	Error  string `json:"error,omitempty"`
}

// AddMembers adds users, named by id or email, to a static group. Unknown
// users or users of another tenant are reported per row and not added;
// the others are added in one transaction.
func (s *Profiles) AddMembers(ctx context.Context, groupID string, refs []string) ([]MemberRow, error) {
	g, err := s.staticGroup(ctx, groupID)
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 || len(refs) > 10000 {
		return nil, problem.FieldError(problem.Invalid, "users", "give 1–10000 users (ids or emails)")
	}
	rows := make([]MemberRow, len(refs))
	var ids []string
	seen := map[string]bool{}
	for i, ref := range refs {
		ref = strings.TrimSpace(ref)
		rows[i] = MemberRow{Ref: ref}
		var u *store.User
		if strings.Contains(ref, "@") {
			u, err = s.Store.UserByEmail(ctx, strings.ToLower(ref))
		} else {
			u, err = s.Store.User(ctx, ref)
		}
		switch {
		case errors.Is(err, store.ErrNotFound) || err == nil && u.TenantID != g.TenantID:
			rows[i].Result, rows[i].Error = "error", "no such user in the group's tenant"
			continue
		case err != nil:
			return nil, err
		}
		rows[i].UserID = u.ID
		if !seen[u.ID] {
			seen[u.ID] = true
			ids = append(ids, u.ID)
		}
	}
	if len(ids) > 0 {
		before := map[string]bool{}
		ms, err := s.allMembers(ctx, groupID)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			before[m] = true
		}
		if _, err := s.Store.AddGroupMembers(ctx, groupID, ids, s.now()); err != nil {
			return nil, err
		}
		for i := range rows {
			if rows[i].Result == "" {
				rows[i].Result = map[bool]string{true: "already", false: "added"}[before[rows[i].UserID]]
			}
		}
		s.changed()
	}
	return rows, nil
}

func (s *Profiles) allMembers(ctx context.Context, groupID string) ([]string, error) {
	var out []string
	after := ""
	for {
		us, err := s.Store.GroupMembers(ctx, groupID, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			out = append(out, u.ID)
		}
		if len(us) < 1000 {
			return out, nil
		}
		after = us[len(us)-1].Email
	}
}

// RemoveMember removes a user (id or email) from a static group.
func (s *Profiles) RemoveMember(ctx context.Context, groupID, ref string) error {
	if _, err := s.staticGroup(ctx, groupID); err != nil {
		return err
	}
	uid := ref
	if strings.Contains(ref, "@") {
		u, err := s.Store.UserByEmail(ctx, strings.ToLower(ref))
		if err != nil {
			return err
		}
		uid = u.ID
	}
	if err := s.Store.RemoveGroupMember(ctx, groupID, uid, s.now()); err != nil {
		return err
	}
	s.changed()
	return nil
}

// ProfileUpload is a .mobileconfig for a tenant's library.
type ProfileUpload struct {
	TenantID string
	// ProfileID, when set, makes the upload the next version of that
	// profile (same PayloadIdentifier); otherwise a new profile.
	ProfileID string
	Content   []byte
	// Platforms it applies to (iOS, macOS); empty: every platform on which
	// all its payload types exist.
	Platforms []string
	MinOS     string
	// Sign: Pomona signs the delivered profile with its profile signer.
	Sign bool
}

// RefusedError is an upload a user enrollment would reject: every
// violation, per platform, with the payload and the key.
type RefusedError struct {
	Violations []payloads.Violation
}

func (e *RefusedError) Error() string {
	return "a user enrollment would refuse this profile: " + payloads.Summary(e.Violations)
}

// Upload checks a .mobileconfig against Apple's user-enrollment rules for
// each platform it applies to and stores it as a new profile or a new
// version. Errors: problem Invalid (unreadable file, bad platform or
// version), *RefusedError (422), Conflict (identifier taken, or another
// identifier than the profile's), NotFound.
func (s *Profiles) Upload(ctx context.Context, u ProfileUpload) (*store.ConfigProfile, error) {
	p, err := mobileconfig.Read(u.Content)
	if errors.Is(err, mobileconfig.ErrTooLarge) {
		return nil, ProfileTooLarge()
	}
	if err != nil {
		return nil, problem.FieldError(problem.Unprocessable, "content", "%s", err.Error())
	}
	var cur *store.ConfigProfile
	if u.ProfileID != "" {
		if cur, err = s.Store.ConfigProfile(ctx, u.ProfileID); err != nil {
			return nil, err
		}
		if cur.Identifier != p.Identifier {
			return nil, problem.FieldError(problem.Conflict, "content", "a new version must keep the PayloadIdentifier %s (the upload has %s)", cur.Identifier, p.Identifier)
		}
		u.TenantID, u.Platforms, u.MinOS = cur.TenantID, cur.Platforms, cur.MinOS
	}
	if u.TenantID, err = s.tenantID(ctx, u.TenantID); err != nil {
		return nil, err
	}
	if _, err := s.Store.Tenant(ctx, u.TenantID); err != nil {
		return nil, err
	}
	plats, err := s.platforms(u.Platforms, p)
	if err != nil {
		return nil, err
	}
	if u.MinOS != "" && !reconcile.ValidVersion(u.MinOS) {
		return nil, problem.FieldError(problem.Invalid, "min_os_version", "%q is not a version such as 17.0", u.MinOS)
	}
	var vs []payloads.Violation
	for _, pl := range plats {
		vs = append(vs, s.Rules.Check(p.Doc, pl)...)
	}
	if len(vs) > 0 {
		return nil, &RefusedError{Violations: vs}
	}
	now := s.now()
	v := &store.ProfileVersion{Plist: p.Plist, Hash: mobileconfig.Hash(p.Plist), Signed: p.Signed, CreatedAt: now}
	if cur != nil {
		v.ProfileID = cur.ID
		if cur.Hash == v.Hash {
			return cur, nil // the same content again: nothing changes on any device
		}
		out, err := s.Store.AddProfileVersion(ctx, v)
		if err == nil {
			s.changed()
		}
		return out, err
	}
	name := p.DisplayName
	if name == "" {
		name = p.Identifier
	}
	cp := &store.ConfigProfile{ID: directory.NewID("pr"), TenantID: u.TenantID, Identifier: p.Identifier, Name: name, Platforms: plats,
		MinOS: u.MinOS, Sign: u.Sign, PayloadTypes: p.PayloadTypes, CreatedAt: now, UpdatedAt: now}
	// A deleted profile's identifier is free once no device has it.
	left, err := s.Store.PurgeDeletedProfiles(ctx, u.TenantID, p.Identifier)
	if err != nil {
		return nil, err
	}
	if left > 0 {
		return nil, problem.FieldError(problem.Conflict, "content", "the profile %s was deleted and is still being removed from %d devices: upload it again when they have removed it", p.Identifier, left)
	}
	if err := s.Store.CreateProfile(ctx, cp, v); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, problem.FieldError(problem.Conflict, "content", "the tenant has a profile with the identifier %s already: upload a new version of it", p.Identifier)
		}
		return nil, err
	}
	return cp, nil
}

// platforms checks the requested platforms, or chooses those on which
// every payload type of p exists.
func (s *Profiles) platforms(req []string, p *mobileconfig.Profile) ([]string, error) {
	if len(req) > 0 {
		var out []string
		for _, x := range req {
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "ios", "ipados":
				out = append(out, payloads.IOS)
			case "macos":
				out = append(out, payloads.MacOS)
			default:
				return nil, problem.FieldError(problem.Invalid, "platforms", "unknown platform %q (iOS or macOS)", x)
			}
		}
		sort.Strings(out)
		return compact(out), nil
	}
	var out []string
	for _, pl := range []string{payloads.IOS, payloads.MacOS} {
		ok := true
		for _, t := range p.PayloadTypes {
			r, found := s.Rules.Payload(t)
			if !found {
				continue // Check names it
			}
			if x := r.Platforms[pl]; x.Introduced == "" || x.Introduced == "n/a" {
				ok = false
			}
		}
		if ok {
			out = append(out, pl)
		}
	}
	if len(out) == 0 {
		return nil, problem.FieldError(problem.Unprocessable, "content", "the payloads (%s) do not all exist on one platform: split the profile", strings.Join(p.PayloadTypes, ", "))
	}
	return out, nil
}

func compact(s []string) []string {
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// Assign assigns a profile to a group (or excludes the group).
func (s *Profiles) Assign(ctx context.Context, profileID, groupID string, exclude bool) error {
	err := s.Store.Assign(ctx, &store.Assignment{ProfileID: profileID, GroupID: groupID, Exclude: exclude, CreatedAt: s.now()}, s.now())
	if err != nil {
		return err
	}
	s.changed()
	return nil
}

// Unassign removes an assignment: the group's devices lose the profile.
func (s *Profiles) Unassign(ctx context.Context, profileID, groupID string) error {
	if err := s.Store.Unassign(ctx, profileID, groupID, s.now()); err != nil {
		return err
	}
	s.changed()
	return nil
}

// States a status filter may name.
var States = []string{reconcile.Pending, reconcile.Installing, reconcile.Installed, reconcile.Failed, reconcile.Removing}

// Rollout is a profile's status: counts by state and a page of devices.
type Rollout struct {
	Counts  map[string]int
	Devices []store.ProfileDevice
}

// Status counts the profile's devices by state and lists a page of them.
func (s *Profiles) Status(ctx context.Context, profileID, state, after string, limitN int) (*Rollout, error) {
	if state != "" && !containsString(States, state) {
		return nil, problem.FieldError(problem.Invalid, "state", "state is one of %s", strings.Join(States, ", "))
	}
	if _, err := s.Store.ConfigProfile(ctx, profileID); err != nil {
		return nil, err
	}
	counts, devs, err := s.Store.ProfileStatus(ctx, profileID, state, after, limit(limitN))
	if err != nil {
		return nil, err
	}
	for _, st := range States {
		if _, ok := counts[st]; !ok {
			counts[st] = 0
		}
	}
	return &Rollout{Counts: counts, Devices: devs}, nil
}

func containsString(s []string, x string) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}

// Retry makes a failed item of a device try again now, with a fresh
// count of attempts. NotFound: the profile is deleted (a retry racing the
// deletion never brings the item back) or the device has none of it;
// Conflict: the item is not failed.
func (s *Profiles) Retry(ctx context.Context, enrollmentID, profileID string) error {
	if err := s.Store.RetryProfileItem(ctx, enrollmentID, profileID, s.now()); err != nil {
		return err
	}
	s.changed()
	return nil
}

// DeviceProfiles lists the profiles Pomona manages on a device (en_…),
// with their state.
func (s *Profiles) DeviceProfiles(ctx context.Context, enrollmentID string) ([]store.ProfileItem, error) {
	return s.Store.ProfileItems(ctx, enrollmentID)
}

// Certificates lists the user certificates issued to a device through
// profiles' SCEP payloads.
func (s *Profiles) Certificates(ctx context.Context, enrollmentID string) ([]store.ProfileCert, error) {
	return s.Store.ProfileCerts(ctx, enrollmentID)
}

// RevokeCertificate marks one of the device's user certificates revoked
// by the caller (NotFound: not the device's).
func (s *Profiles) RevokeCertificate(ctx context.Context, enrollmentID, serial, by string) error {
	return s.Store.RevokeProfileCert(ctx, enrollmentID, serial, by, s.now())
}

// GroupDetail is a group with a page of its members (by email after
// after, at most n).
func (s *Profiles) GroupDetail(ctx context.Context, id, after string, n int) (*store.Group, []store.User, error) {
	g, err := s.Store.Group(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	ms, err := s.Store.GroupMembers(ctx, g.ID, after, limit(n))
	return g, ms, err
}

// Group returns one group.
func (s *Profiles) Group(ctx context.Context, id string) (*store.Group, error) {
	return s.Store.Group(ctx, id)
}

// List lists the profiles of a tenant (id, name or domain; "" for all).
func (s *Profiles) List(ctx context.Context, tenantRef string) ([]store.ConfigProfile, error) {
	tid := ""
	if tenantRef != "" {
		var err error
		if tid, err = s.tenantID(ctx, tenantRef); err != nil {
			return nil, err
		}
	}
	return s.Store.ConfigProfiles(ctx, tid)
}

// ProfileDetail is a profile with its versions (newest first) and
// assignments.
type ProfileDetail struct {
	Profile     *store.ConfigProfile
	Versions    []store.ProfileVersion
	Assignments []store.Assignment
}

// Profile returns a profile with its versions and assignments.
func (s *Profiles) Profile(ctx context.Context, id string) (*ProfileDetail, error) {
	p, err := s.Store.ConfigProfile(ctx, id)
	if err != nil {
		return nil, err
	}
	vs, err := s.Store.ProfileVersions(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	as, err := s.Store.Assignments(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	return &ProfileDetail{Profile: p, Versions: vs, Assignments: as}, nil
}

// DeleteProfile deletes a profile from the library: every device that has
// it gets RemoveProfile through the reconciler (only where Pomona
// installed it), its items go as the devices confirm, its assignments go
// now — all marked in one transaction. dryRun only counts the devices
// that will lose it. Errors: NotFound.
func (s *Profiles) DeleteProfile(ctx context.Context, id string, dryRun bool) (devices int, err error) {
	n, err := s.Store.ProfileOnDevices(ctx, id)
	if err != nil || dryRun {
		return n, err
	}
	if err := s.Store.DeleteProfile(ctx, id, s.now()); err != nil {
		return 0, err
	}
	s.changed()
	return n, nil
}

// ProfileSettings is an edit of a profile's settings; nil fields are left
// as they are.
type ProfileSettings struct {
	Name      *string
	Platforms *[]string // iOS, macOS (iPadOS is iOS)
	MinOS     *string   // "" removes the minimum
	Sign      *bool
}

// MaxProfileFile is the largest .mobileconfig an upload may carry, in
// bytes (mobileconfig.MaxFile: 2 MiB signed, 1 MiB for the property list).
const MaxProfileFile = mobileconfig.MaxFile

// ProfileTooLarge is the refusal of a file over MaxProfileFile, the same
// on every surface (API, console, CLI): 413 body_too_large, on "content".
func ProfileTooLarge() *problem.Error {
	return &problem.Error{Kind: problem.TooLarge, Code: "body_too_large", Field: "content",
		Message: mobileconfig.TooLarge}
}

// MaxProfileName bounds a profile's name in characters.
const MaxProfileName = 200

// UpdateProfile changes a profile's name, platforms, minimum OS version or
// signing. The devices it concerns are marked in the same transaction: a
// platform removed or a higher minimum gets RemoveProfile on the devices
// it no longer applies to, a platform added or a lower minimum installs
// it, a signing change reinstalls it everywhere (the delivered bytes
// change). Platforms are checked against Apple's user-enrollment rules
// again, like an upload (*RefusedError). Errors: Invalid, NotFound,
// *RefusedError.
func (s *Profiles) UpdateProfile(ctx context.Context, id string, in ProfileSettings) (*store.ConfigProfile, error) {
	var ch store.ProfileChange
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		if name == "" || len([]rune(name)) > MaxProfileName || hasControl(name) {
			return nil, problem.FieldError(problem.Invalid, "name", "a profile name is 1–%d characters on one line", MaxProfileName)
		}
		ch.Name = &name
	}
	if in.MinOS != nil {
		v := strings.TrimSpace(*in.MinOS)
		if v != "" && !reconcile.ValidVersion(v) {
			return nil, problem.FieldError(problem.Invalid, "min_os_version", "%q is not a version such as 17.0", v)
		}
		ch.MinOS = &v
	}
	ch.Sign = in.Sign
	if in.Platforms != nil {
		if len(*in.Platforms) == 0 {
			return nil, problem.FieldError(problem.Invalid, "platforms", "give at least one platform (iOS, macOS); delete the profile to take it off every device")
		}
		cur, err := s.Store.ConfigProfile(ctx, id)
		if err != nil {
			return nil, err
		}
		vs, err := s.Store.ProfileVersions(ctx, cur.ID)
		if err != nil {
			return nil, err
		}
		if len(vs) == 0 {
			return nil, fmt.Errorf("profile %s has no version", cur.ID)
		}
		p, err := mobileconfig.Read(vs[0].Plist)
		if err != nil {
			return nil, err
		}
		plats, err := s.platforms(*in.Platforms, p)
		if err != nil {
			return nil, err
		}
		var viol []payloads.Violation
		for _, pl := range plats {
			viol = append(viol, s.Rules.Check(p.Doc, pl)...)
		}
		if len(viol) > 0 {
			return nil, &RefusedError{Violations: viol}
		}
		ch.Platforms = &plats
	}
	if ch == (store.ProfileChange{}) {
		return nil, problem.New(problem.Invalid, "nothing to change: give name, platforms, min_os_version or sign")
	}
	p, err := s.Store.UpdateProfile(ctx, id, ch, s.now())
	if err != nil {
		return nil, err
	}
	if ch.Platforms != nil || ch.MinOS != nil || ch.Sign != nil {
		s.changed()
	}
	return p, nil
}
