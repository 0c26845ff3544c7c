package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/pomona-mdm/pomona/abm"
	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/mdm/catalog"
	"github.com/pomona-mdm/pomona/mdm/payloads"
	"github.com/pomona-mdm/pomona/store"
)

// App is every use case, built over one store: what the API and the
// console hold.
type App struct {
	Tenants   *Tenants
	Users     *Users
	Devices   *Devices
	Commands  *Commands
	Endings   *Endings
	Keys      *Keys
	Webhooks  *Webhooks
	PushCerts *PushCerts
	Audit     *Audit
	Stats     *Stats
	Accounts  *Accounts
	// ABM is the Apple Business Manager connection (server tokens, GetToken,
	// fallback discovery): package abm's service, which the server builds
	// (it needs the device-assignment client and the public URL).
	ABM *abm.Service
	// Profiles: groups and configuration profiles (profiles.go).
	Profiles *Profiles
	// Revocation: the CRL and OCSP of Pomona's CA (revocation.go), which
	// the server builds (it needs the CA).
	Revocation *Revocation
}

// Store is the union of the narrow interfaces App's services take: what
// the server's store must offer to build them all.
type Store interface {
	TenantStore
	UserStore
	DeviceStore
	KeyStore
	WebhookStore
	AuditStore
	StatsStore
	Admins(ctx context.Context) ([]store.Admin, error)
	store.MDMStore
	store.EnrollmentStore
	store.IdempotencyStore
	ProfileStore
}

// Config is what New needs besides the store.
type Config struct {
	Directory *directory.Service
	Catalog   *catalog.Catalog
	// Pusher wakes channels: after a command is queued (Push) and on an
	// administrator's request (PushNow).
	Pusher interface {
		Pusher
		DevicePusher
	}
	PushCerts PushCertStore
	Sealer    Sealer
	// Lifecycle is the device-lifecycle clock (command queue, endings,
	// tombstones); Now is the wall clock of records such as API keys.
	Lifecycle, Now func() time.Time
	// Accounts manages console accounts.
	Accounts *adminaccount.Service
	Log      *slog.Logger
}

// New builds every service over st.
func New(st Store, c Config) *App {
	if c.Lifecycle == nil {
		c.Lifecycle = time.Now
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	a := &App{}
	var push Pusher
	var pushNow DevicePusher
	if c.Pusher != nil {
		push, pushNow = c.Pusher, c.Pusher
	}
	a.Commands = &Commands{Store: st, Catalog: c.Catalog, Push: push, Now: c.Lifecycle}
	a.Endings = &Endings{Store: st, Commands: a.Commands, Log: c.Log}
	a.Tenants = &Tenants{Dir: c.Directory, Store: st, Endings: a.Endings}
	a.Users = &Users{Dir: c.Directory, Store: st, Tenants: a.Tenants, Endings: a.Endings}
	a.Devices = &Devices{Store: st, Commands: a.Commands, Pusher: pushNow, Users: a.Users, Tenants: a.Tenants}
	a.Keys = &Keys{Store: st, Now: c.Now}
	a.Webhooks = &Webhooks{Store: st, Sealer: c.Sealer, Now: c.Now}
	a.PushCerts = &PushCerts{Store: c.PushCerts, Now: c.Now}
	a.Audit = &Audit{Store: st}
	a.Stats = &Stats{Store: st}
	a.Accounts = &Accounts{Service: c.Accounts, Store: st}
	a.Profiles = &Profiles{Store: st, Rules: payloads.Default(), Tenants: a.Tenants, Now: c.Lifecycle}
	return a
}
