// Package apitypes holds the wire types of Pomona's admin API under
// /api/v1 (docs/api.md, http/api/openapi.json): the JSON request and
// response bodies. The server (http/api) encodes them and the Go client
// (apiclient) decodes them, so both sides share one declaration.
//
// The package is a leaf: it imports only the standard library, so a client
// of the API pulls in no server package. Field names on the wire are
// stable; Go names follow Pomona's vocabulary (a device is named by its
// DeviceID, "en_…"; EnrollmentID is only Apple's value).
package apitypes

import (
	"encoding/json"
	"time"
)

// Error is the body of every error answer: {"error": "...", "code": "...",
// "field": "..."}. Code is stable and machine-readable (validation_failed,
// not_found, conflict, in_use, command_refused, …); Field names the
// offending input of a validation error.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Field string `json:"field,omitempty"`
}

// ServerInfo is GET /api/v1/server.
type ServerInfo struct {
	Version       string `json:"version"`
	PublicURL     string `json:"public_url"`
	Store         string `json:"store"` // "sqlite" or "postgres"
	Tenants       int    `json:"tenants"`
	Users         int    `json:"users"`
	DiscoveryPath string `json:"discovery_path,omitempty"`
}

// Tenant is the API form of a tenant.
type Tenant struct {
	ID                  string    `json:"id"`
	Name                string    `json:"name"`
	Domains             []string  `json:"domains"`
	RequireSecondFactor bool      `json:"require_second_factor"`
	EnrollmentURL       string    `json:"enrollment_url"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
	// Branding of the device sign-in pages; "" when not set.
	AccentColor string `json:"accent_color"`
	Contact     string `json:"contact"`
	PrivacyURL  string `json:"privacy_url"`
	LogoURL     string `json:"logo_url,omitempty"` // public URL of the logo; absent without one
}

// TenantInput is the body of POST /api/v1/tenants. RequireSecondFactor
// defaults to true.
type TenantInput struct {
	Name                string   `json:"name"`
	Domains             []string `json:"domains"`
	RequireSecondFactor *bool    `json:"require_second_factor,omitempty"`
}

// TenantPatch is the body of PATCH /api/v1/tenants/{id}: the fields that
// are set change; "" removes a branding field.
type TenantPatch struct {
	Name                *string   `json:"name,omitempty"`
	Domains             *[]string `json:"domains,omitempty"`
	RequireSecondFactor *bool     `json:"require_second_factor,omitempty"`
	AccentColor         *string   `json:"accent_color,omitempty"`
	Contact             *string   `json:"contact,omitempty"`
	PrivacyURL          *string   `json:"privacy_url,omitempty"`
}

// User is the API form of a user. Secrets never leave the server.
type User struct {
	ID             string     `json:"id"`
	TenantID       string     `json:"tenant_id"`
	Email          string     `json:"email"`
	ManagedAppleID string     `json:"managed_apple_id"`
	Name           string     `json:"name"`
	Enabled        bool       `json:"enabled"`
	PasswordSet    bool       `json:"password_set"`
	SecondFactor   string     `json:"second_factor"` // none, pending, active
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	LastSignInAt   *time.Time `json:"last_sign_in_at,omitempty"`
}

// UserInput is the body of POST /api/v1/users. Tenant is a tenant id or
// one of its domains (default: the tenant of the email's domain).
type UserInput struct {
	Tenant         string `json:"tenant,omitempty"`
	Email          string `json:"email"`
	ManagedAppleID string `json:"managed_apple_id,omitempty"`
	Name           string `json:"name,omitempty"`
	Password       string `json:"password,omitempty"`
	Enabled        *bool  `json:"enabled,omitempty"`
}

// UserPatch is the body of PATCH /api/v1/users/{id}.
type UserPatch struct {
	Email          *string `json:"email,omitempty"`
	ManagedAppleID *string `json:"managed_apple_id,omitempty"`
	Name           *string `json:"name,omitempty"`
	Enabled        *bool   `json:"enabled,omitempty"`
}

// PasswordInput is the body of POST /api/v1/users/{id}/password.
type PasswordInput struct {
	Password string `json:"password"`
}

// Deletion is the answer of a deletion with ?dry_run=true: how many
// enrolled devices the deletion would unenroll (RemoveProfile, then a
// tombstone; docs/lifecycle.md).
type Deletion struct {
	DevicesToUnenroll int `json:"devices_to_unenroll"`
}

// APIKey is the API form of an admin key; Key is only set on creation.
type APIKey struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Key        string     `json:"key,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// APIKeyInput is the body of POST /api/v1/apikeys.
type APIKeyInput struct {
	Name string `json:"name"`
}

// Device is the API form of an enrollment: what a user enrollment
// reveals. ID is Pomona's device id ("en_…"); EnrollmentID is Apple's.
type Device struct {
	ID           string `json:"id"`
	EnrollmentID string `json:"enrollment_id,omitempty"` // Apple's EnrollmentID (not a hardware identifier)
	TenantID     string `json:"tenant_id"`
	UserID       string `json:"user_id"`
	// UserEmail is the email of the device's user ("" once the user is
	// deleted): a user enrollment reveals no device name, so the email is
	// what tells an administrator's devices apart (console and CLI show it
	// as "user").
	UserEmail         string     `json:"user_email,omitempty"`
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
	// Profiles are the configuration profiles Pomona manages on the
	// device, with their state (single device only).
	Profiles []ProfileState `json:"profiles,omitempty"`
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

// Channel is a device or user channel (the push token itself stays
// inside). ID is the channel's Apple identifier (EnrollmentID or
// EnrollmentUserID).
type Channel struct {
	ID            string     `json:"id"`
	Kind          string     `json:"kind"` // device or user
	UserShortName string     `json:"user_short_name,omitempty"`
	Pushable      bool       `json:"pushable"`
	LastPushAt    *time.Time `json:"last_push_at,omitempty"`
	LastSeenAt    *time.Time `json:"last_seen_at,omitempty"`
}

// CommandQueued is the answer of POST /api/v1/devices/{id}/commands.
type CommandQueued struct {
	CommandUUID string `json:"command_uuid"`
}

// CommandStatus is a command in a device's queue with its result.
type CommandStatus struct {
	CommandUUID string     `json:"command_uuid"`
	RequestType string     `json:"request_type"`
	Channel     string     `json:"channel"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	SentAt      *time.Time `json:"sent_at,omitempty"`
	UpdatedAt   time.Time  `json:"updated_at"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	// Result is the device's answer; in a list only when ResultSize is at
	// most 64 KiB (app.HistoryResultMax), always on the single command
	// (GET /api/v1/devices/{id}/commands/{uuid}).
	Result map[string]any `json:"result,omitempty"`
	// ResultSize is the stored answer's size in bytes (0: none yet).
	ResultSize int `json:"result_size,omitempty"`
}

// BulkCommand is the body of POST /api/v1/commands: one command for many
// devices. Command is a typed command ({"request_type": …}) or Plist the
// command dictionary as XML; ExpiresIn is in seconds (0: never).
type BulkCommand struct {
	Targets   Targets        `json:"targets"`
	Command   map[string]any `json:"command,omitempty"`
	Plist     string         `json:"plist,omitempty"`
	Push      *bool          `json:"push,omitempty"`
	ExpiresIn float64        `json:"expires_in,omitempty"`
}

// Targets selects devices: by DeviceID (or Apple's EnrollmentID), by user
// (id or email) or by tenant (id or domain); the union is taken.
type Targets struct {
	Devices []string `json:"devices,omitempty"`
	Users   []string `json:"users,omitempty"`
	Tenant  string   `json:"tenant,omitempty"`
}

// BulkResult says what a bulk command did.
type BulkResult struct {
	CommandUUID string         `json:"command_uuid"`
	Queued      int            `json:"queued"`
	Skipped     []BulkSkip     `json:"skipped"`
	ByPlatform  map[string]int `json:"by_platform"`
}

// BulkSkip counts targets left out and why.
type BulkSkip struct {
	Platform string `json:"platform"`
	Count    int    `json:"count"`
	Reason   string `json:"reason"`
}

// UnenrollInput is the (optional) body of POST /api/v1/devices/{id}/unenroll.
type UnenrollInput struct {
	Immediately bool `json:"immediately"`
}

// Unenrolled is the answer of POST /api/v1/devices/{id}/unenroll.
// Status is "unenrolled" when the server forgot the device at once.
type Unenrolled struct {
	DeviceID    string `json:"device"`
	CommandUUID string `json:"command_uuid,omitempty"`
	Status      string `json:"status,omitempty"`
}

// Push is one channel's answer from APNs in POST /api/v1/devices/{id}/push.
type Push struct {
	Channel   string `json:"channel"`
	OK        bool   `json:"ok"`
	Status    int    `json:"status"`
	Reason    string `json:"reason,omitempty"`
	DeadToken bool   `json:"dead_token,omitempty"`
	Error     string `json:"error,omitempty"`
}

// AuditEntry is the API form of an audit record.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Status int       `json:"status"`
	Remote string    `json:"remote,omitempty"`
}

// PushCert is the API form of the push certificate. The key never leaves.
type PushCert struct {
	Topic         string    `json:"topic"`
	Subject       string    `json:"subject"`
	Issuer        string    `json:"issuer"`
	IssuedByApple bool      `json:"issued_by_apple"`
	NotBefore     time.Time `json:"not_before"`
	NotAfter      time.Time `json:"not_after"`
	DaysLeft      int       `json:"days_left"`
	Warnings      []string  `json:"warnings"`
}

// PushCertUpload is the body of PUT /api/v1/push-certificate: Certificate
// (PEM) with PrivateKey (PEM, unless the CSR was made by the server), or
// PKCS12 (base64) with Password.
type PushCertUpload struct {
	Certificate string `json:"certificate,omitempty"`
	PrivateKey  string `json:"private_key,omitempty"`
	PKCS12      string `json:"pkcs12,omitempty"`
	Password    string `json:"password,omitempty"`
	// AllowTopicChange must be set to replace a certificate with one of
	// another topic: every enrolled device would stop answering pushes.
	AllowTopicChange bool `json:"allow_topic_change,omitempty"`
}

// Webhook is the API form of a subscription; Secret only on creation.
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// WebhookInput is the body of POST /api/v1/webhooks (Secret: at least 16
// characters; made by the server when empty).
type WebhookInput struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret string   `json:"secret,omitempty"`
}

// Admin is the API form of a console account.
type Admin struct {
	ID           string     `json:"id"`
	Email        string     `json:"email"`
	Name         string     `json:"name,omitempty"`
	Role         string     `json:"role"`
	Enabled      bool       `json:"enabled"`
	SetupPending bool       `json:"setup_pending"`
	CreatedAt    time.Time  `json:"created_at"`
	LastSignInAt *time.Time `json:"last_sign_in_at,omitempty"`
	SetupURL     string     `json:"setup_url,omitempty"`
	SetupExpires *time.Time `json:"setup_expires_at,omitempty"`
}

// AdminInput is the body of POST /api/v1/admins.
type AdminInput struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// Opt is t as an optional JSON time: nil for the zero time.
func Opt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Delivery is one webhook delivery in GET /api/v1/webhooks/{id}/deliveries.
type Delivery struct {
	ID          int64      `json:"id"`
	Event       string     `json:"event"`
	Status      string     `json:"status"` // pending, delivered or failed
	Attempts    int        `json:"attempts"`
	CreatedAt   time.Time  `json:"created_at"`
	LastError   string     `json:"last_error,omitempty"`
	NextAt      *time.Time `json:"next_attempt_at,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
}

// CSR is the answer of POST /api/v1/push-certificate/csr: the request to
// have signed (PEM) and what to do next.
type CSR struct {
	CSR  string `json:"csr"`
	Next string `json:"next"`
}

// Snippet is the answer of GET /api/v1/discovery/snippet.
type Snippet struct {
	Kind    string `json:"kind"`
	Snippet string `json:"snippet"`
	Note    string `json:"note,omitempty"`
}

// Lists. A page that is full carries the cursor of the next one.
type (
	Tenants struct {
		Tenants []Tenant `json:"tenants"`
	}
	Users struct {
		Users     []User `json:"users"`
		NextAfter string `json:"next_after,omitempty"` // an email
	}
	Devices struct {
		Devices    []Device `json:"devices"`
		NextBefore string   `json:"next_before,omitempty"` // a DeviceID
	}
	Commands struct {
		Commands []CommandStatus `json:"commands"`
	}
	Pushes struct {
		Pushes []Push `json:"pushes"`
	}
	APIKeys struct {
		APIKeys []APIKey `json:"api_keys"`
	}
	Audit struct {
		Entries    []AuditEntry `json:"entries"`
		NextBefore int64        `json:"next_before,omitempty"` // an entry id
	}
	Webhooks struct {
		Webhooks []Webhook `json:"webhooks"`
	}
	Deliveries struct {
		Deliveries []Delivery `json:"deliveries"`
	}
	Admins struct {
		Admins []Admin `json:"admins"`
	}
)
