package store

import (
	"context"
	"time"
)

// ABMServerToken is one Apple Business (or School) Manager "MDM server" of
// a tenant: the key pair Pomona made for it and, once the admin uploaded
// the public-key certificate to ABM and imported the server token ABM
// gave back, the token's OAuth credentials (sealed) and what Apple's
// account endpoint says about it. A tenant may have several.
type ABMServerToken struct {
	ID       string // "abm_…"
	TenantID string
	Name     string // the admin's label
	// Certificate is the DER public-key certificate uploaded to ABM; its
	// key (KeySealed, sealed PKCS #8 PEM) decrypts the server token and
	// signs the com.apple.maid JWTs.
	Certificate []byte
	KeySealed   []byte
	// TokenSealed is the sealed OAuth credentials JSON of the imported
	// server token; nil while waiting for the upload.
	TokenSealed []byte
	// From GET /account at import (Apple's device-assignment service).
	OrgName, OrgID, ServerName, ServerUUID string
	// AccessTokenExpiry is when the server token stops working (renewed by
	// importing a new one for the same key).
	AccessTokenExpiry time.Time
	// The fallback discovery URL registered with Apple for this server
	// ("" none), when it was last (re-)asserted, and Apple's last refusal.
	DiscoveryURL        string
	DiscoveryAssertedAt time.Time
	DiscoveryError      string
	ImportedAt          time.Time // zero: no token yet
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// Imported reports whether a server token was imported.
func (t *ABMServerToken) Imported() bool { return len(t.TokenSealed) > 0 }

// ABMStore keeps the ABM server tokens.
type ABMStore interface {
	// CreateABMServerToken stores t (ID set by the caller); an unknown
	// tenant gives ErrNotFound, a taken ID ErrConflict.
	CreateABMServerToken(ctx context.Context, t *ABMServerToken) error
	ABMServerToken(ctx context.Context, id string) (*ABMServerToken, error)
	// ABMServerTokens lists a tenant's tokens ("": every tenant's) by
	// creation time.
	ABMServerTokens(ctx context.Context, tenantID string) ([]ABMServerToken, error)
	// UpdateABMServerToken applies fn to the stored token in one
	// transaction (ID, TenantID, Certificate, KeySealed and CreatedAt are
	// kept). ErrNotFound when it does not exist.
	UpdateABMServerToken(ctx context.Context, id string, fn func(*ABMServerToken) error) (*ABMServerToken, error)
	DeleteABMServerToken(ctx context.Context, id string) error
	// WithoutGetToken lists, up to limit, the enrolled (not ended)
	// enrollments of tenantID whose last delivered profile does not
	// advertise com.apple.mdm.token (ProfileKeys.GetToken false or no keys
	// recorded), each with its newest identity certificate and that
	// certificate's renewal (nil: none) — the candidates for a re-delivery.
	WithoutGetToken(ctx context.Context, tenantID string, limit int) ([]RenewalCandidate, error)
}
