package apitypes

import "time"

// ABMServerToken is an Apple Business Manager server token
// (/api/v1/abm/tokens): one ABM "MDM server" of a tenant. Keys and OAuth
// credentials never leave the server; Certificate is public (it is the
// public key uploaded to ABM).
type ABMServerToken struct {
	ID       string `json:"id"`
	TenantID string `json:"tenant_id"`
	Name     string `json:"name"`
	// Status: waiting_for_token, active, expiring (within 30 days), expired.
	Status              string     `json:"status"`
	OrgName             string     `json:"org_name,omitempty"`
	OrgID               string     `json:"org_id,omitempty"`
	ServerName          string     `json:"server_name,omitempty"`
	ServerUUID          string     `json:"server_uuid,omitempty"`
	ExpiresAt           *time.Time `json:"expires_at,omitempty"`
	DaysLeft            *int       `json:"days_left,omitempty"`
	ImportedAt          *time.Time `json:"imported_at,omitempty"`
	DiscoveryURL        string     `json:"discovery_url,omitempty"`
	DiscoveryAssertedAt *time.Time `json:"discovery_asserted_at,omitempty"`
	DiscoveryError      string     `json:"discovery_error,omitempty"`
	Certificate         string     `json:"certificate"`
	Warnings            []string   `json:"warnings"`
	CreatedAt           time.Time  `json:"created_at"`
}

// ABMServerTokenList is GET /api/v1/abm/tokens.
type ABMServerTokenList struct {
	Tokens []ABMServerToken `json:"tokens"`
}

// ABMServerTokenCreate is POST /api/v1/abm/tokens.
type ABMServerTokenCreate struct {
	Tenant string `json:"tenant"` // id or one of its domains
	Name   string `json:"name"`
}

// ABMServerTokenImport is PUT /api/v1/abm/tokens/{id}/token.
type ABMServerTokenImport struct {
	// ServerToken is the .p7m file ABM downloaded (base64 in JSON).
	ServerToken []byte `json:"server_token"`
}

// ABMDiscovery is GET /api/v1/abm/tokens/{id}/discovery: what Apple has
// registered for the MDM server, and the URL Pomona registers.
type ABMDiscovery struct {
	Registered  bool   `json:"registered"`
	URL         string `json:"url,omitempty"`
	LastUpdated string `json:"last_updated,omitempty"`
	Want        string `json:"want"`
	// Current: what Apple has is this tenant's discovery URL.
	Current bool `json:"current"`
}
