package cli

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// pomona admin create|list|reset: web-console accounts through the API
// (/api/v1/admins). An invitation or a reset prints a one-time setup link
// where the person chooses a password and sets up their authenticator
// app.

const adminUsage = "admin create --email E [--role owner|admin|helpdesk|auditor] [--name N] | list | reset <id>"

// consoleAdmin is the API form of a web-console account.
type consoleAdmin struct {
	ID             string     `json:"id"`
	Email          string     `json:"email"`
	Name           string     `json:"name"`
	Role           string     `json:"role"`
	Enabled        bool       `json:"enabled"`
	SetupPending   bool       `json:"setup_pending"`
	LastSignInAt   *time.Time `json:"last_sign_in_at"`
	SetupURL       string     `json:"setup_url"`
	SetupExpiresAt *time.Time `json:"setup_expires_at"`
}

// adminOptions are the flags of every admin subcommand (read by create).
type adminOptions struct{ email, name, role *string }

func adminFlags(fs *flag.FlagSet) adminOptions {
	return adminOptions{
		email: fs.String("email", "", "the administrator's email (create)"),
		name:  fs.String("name", "", "their name (create)"),
		role:  fs.String("role", "owner", "owner, admin, helpdesk or auditor (create)"),
	}
}

func adminCreate(c *call, o adminOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	if *o.email == "" && len(c.args) == 1 {
		*o.email = c.args[0]
	}
	if *o.email == "" {
		return usagef("give the administrator's --email")
	}
	var a consoleAdmin
	if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/admins", map[string]string{"email": *o.email, "name": *o.name, "role": *o.role}, &a); err != nil {
		return err
	}
	return printSetupLink(c, a)
}

func adminReset(c *call, _ adminOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	id, err := c.one("give the id of the account to reset (pomona admin list)")
	if err != nil {
		return err
	}
	var a consoleAdmin
	if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/admins/"+id+"/reset", nil, &a); err != nil {
		return err
	}
	return printSetupLink(c, a)
}

func adminList(c *call, _ adminOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	var out struct {
		Admins []consoleAdmin `json:"admins"`
	}
	if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/admins", nil, &out); err != nil {
		return err
	}
	return c.print(out, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tEMAIL\tROLE\tSTATE\tLAST SIGN-IN")
		for _, a := range out.Admins {
			state, last := "active", "never"
			switch {
			case !a.Enabled:
				state = "disabled"
			case a.SetupPending:
				state = "setup pending"
			}
			if a.LastSignInAt != nil {
				last = a.LastSignInAt.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.ID, orDash(a.Email), a.Role, state, last)
		}
	})
}

// printSetupLink shows the one-time setup link of a new or reset account.
func printSetupLink(c *call, a consoleAdmin) error {
	if c.json() {
		return printJSON(c.Stdout, a)
	}
	fmt.Fprintf(c.Stdout, "Console account %s (%s). Send this one-time setup link to them over a trusted channel; it works once, until %s:\n\n  %s\n",
		a.Email, a.Role, a.SetupExpiresAt.Local().Format(time.RFC1123), a.SetupURL)
	return nil
}
