package apitypes

import "time"

// Group is the API form of a group of users (docs/profiles.md).
type Group struct {
	ID        string    `json:"id"`
	TenantID  string    `json:"tenant_id"`
	Name      string    `json:"name"`
	Source    string    `json:"source"` // static, all
	Members   int       `json:"members"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Profile is the API form of a configuration profile.
type Profile struct {
	ID           string              `json:"id"`
	TenantID     string              `json:"tenant_id"`
	Identifier   string              `json:"identifier"` // PayloadIdentifier
	Name         string              `json:"name"`
	Platforms    []string            `json:"platforms"`
	MinOSVersion string              `json:"min_os_version,omitempty"`
	Sign         bool                `json:"sign"`
	Version      int                 `json:"version"`
	Hash         string              `json:"hash"` // hex SHA-256 of the stored plist
	PayloadTypes []string            `json:"payload_types"`
	CreatedAt    time.Time           `json:"created_at"`
	UpdatedAt    time.Time           `json:"updated_at"`
	Versions     []ProfileVersion    `json:"versions,omitempty"`
	Assignments  []ProfileAssignment `json:"assignments,omitempty"`
	// Content is the current version's XML (placeholders kept), with
	// GET /api/v1/profiles/{id}?content=true only (pomona export).
	Content []byte `json:"content,omitempty"`
}

// ProfileVersion is one uploaded version.
type ProfileVersion struct {
	Version   int       `json:"version"`
	Hash      string    `json:"hash"`
	Signed    bool      `json:"signed"` // the upload was CMS-signed
	CreatedAt time.Time `json:"created_at"`
}

// ProfileAssignment assigns a profile to a group, or excludes the group.
type ProfileAssignment struct {
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
	Error      string     `json:"error,omitempty"` // Apple's error chain, or why the profile cannot be made
	NextRetry  *time.Time `json:"next_retry,omitempty"`
	UpdatedAt  time.Time  `json:"updated_at"`
	// Set in a profile's status list.
	Device     string `json:"device,omitempty"`
	UserID     string `json:"user_id,omitempty"`
	UserEmail  string `json:"user_email,omitempty"` // as Device.UserEmail
	Platform   string `json:"platform,omitempty"`
	DeviceName string `json:"device_name,omitempty"`
}

// ProfileStatus is GET /api/v1/profiles/{id}/status.
type ProfileStatus struct {
	Counts    map[string]int `json:"counts"`
	Devices   []ProfileState `json:"devices"`
	NextAfter string         `json:"next_after,omitempty"`
}

// ProfileViolation is one thing a user enrollment would refuse in an
// uploaded profile (the 422 user_enrollment_refused lists them).
type ProfileViolation struct {
	Platform          string `json:"platform"`
	PayloadType       string `json:"payload_type"`
	PayloadIdentifier string `json:"payload_identifier"`
	Key               string `json:"key,omitempty"`
	Reason            string `json:"reason"`
}

// MemberRow is the outcome of one requested group member.
type MemberRow struct {
	Ref    string `json:"ref"`
	UserID string `json:"user_id,omitempty"`
	Result string `json:"result"` // added, already, error
	Error  string `json:"error,omitempty"`
}

// Certificate is a user certificate issued to a device through a
// profile's SCEP payload.
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

// ProfileDeletion is the answer of DELETE /api/v1/profiles/{id}?dry_run=true:
// the devices that would lose the profile (RemoveProfile through the
// reconciler, only where Pomona installed it).
type ProfileDeletion struct {
	DevicesLosingIt int `json:"devices_losing_it"`
}

// ProfileUpdate is the body of PATCH /api/v1/profiles/{id}: the fields to
// change (absent: unchanged).
type ProfileUpdate struct {
	Name         *string   `json:"name,omitempty"`
	Platforms    *[]string `json:"platforms,omitempty"`
	MinOSVersion *string   `json:"min_os_version,omitempty"` // "" removes the minimum
	Sign         *bool     `json:"sign,omitempty"`
}
