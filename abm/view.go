package abm

import (
	"time"

	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/store"
)

// View is the API and console form of t at now: status, days left,
// warnings, the certificate; never the key or the credentials.
func View(t *store.ABMServerToken, now time.Time) apitypes.ABMServerToken {
	cert, _ := CertificatePEM(t)
	v := apitypes.ABMServerToken{ID: t.ID, TenantID: t.TenantID, Name: t.Name, OrgName: t.OrgName, OrgID: t.OrgID, ServerName: t.ServerName,
		ServerUUID: t.ServerUUID, ImportedAt: timePtr(t.ImportedAt), DiscoveryURL: t.DiscoveryURL, DiscoveryAssertedAt: timePtr(t.DiscoveryAssertedAt),
		DiscoveryError: t.DiscoveryError, Certificate: string(cert), CreatedAt: t.CreatedAt, Warnings: Problems([]store.ABMServerToken{*t}, now)}
	if v.Warnings == nil {
		v.Warnings = []string{}
	}
	switch left := t.AccessTokenExpiry.Sub(now); {
	case !t.Imported():
		v.Status = "waiting_for_token"
	case left <= 0:
		v.Status = "expired"
	case left < WarnBefore:
		v.Status = "expiring"
	default:
		v.Status = "active"
	}
	if t.Imported() {
		days := int(t.AccessTokenExpiry.Sub(now).Hours() / 24)
		v.ExpiresAt, v.DaysLeft = timePtr(t.AccessTokenExpiry), &days
	}
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// DiscoveryView is the API form of a DiscoveryStatus.
func DiscoveryView(st *DiscoveryStatus) apitypes.ABMDiscovery {
	out := apitypes.ABMDiscovery{Want: st.Want}
	if st.Registered != nil {
		out.Registered, out.URL, out.LastUpdated, out.Current = true, st.Registered.URL, st.Registered.LastUpdated, st.Registered.URL == st.Want
	}
	return out
}
