package app

import (
	"context"

	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/store"
)

// Accounts are the console account use cases: those of adminaccount.Service
// (Invite, ResetSetup, Update — with their problem errors: validation on
// email, role and name; Conflict last_owner and self) and the list.
type Accounts struct {
	*adminaccount.Service
	Store interface {
		Admins(ctx context.Context) ([]store.Admin, error)
	}
}

// List returns every console account.
func (a *Accounts) List(ctx context.Context) ([]store.Admin, error) { return a.Store.Admins(ctx) }
