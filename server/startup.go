package server

import "github.com/pomona-mdm/pomona/pushcert"

// startup collects what New learned, for the start-up summary.
type startup struct {
	storeDesc    string
	caCreated    bool
	keyCreated   bool
	firstAPIKey  string // shown once
	ownerSetup   string // first owner's console setup link, shown once
	pendingOwner string // id of the first owner when no console account is set up yet (later starts)
	tlsDesc      string
	caFile       string
	devTLS       bool
	sealKeyDesc  string
	tenants      int
	users        int
	publicHTTP   bool
	bootstrapKey bool
	push         *pushcert.Cert
	pushErr      error
	demo         bool
	demoDir      string
	demoABM      string   // the demo tenant's ABM server token
	abm          string   // the ABM line
	abmProblems  []string // server-token warnings (expiry from 30 days)
}
