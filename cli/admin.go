package cli

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// pomona admin create|list|reset: web-console accounts through the API
// (/api/v1/admins). An invitation or a reset prints a one-time setup link
// where the person chooses a password and sets up their authenticator
// app.

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

func adminCreate(fs *flag.FlagSet) func(*call) error {
	email := fs.String("email", "", "the administrator's email (also as the only argument)")
	name := fs.String("name", "", "their name")
	role := fs.String("role", "owner", "owner, admin, helpdesk or auditor")
	return func(c *call) error {
		e := *email
		if e == "" && len(c.args) == 1 {
			e = c.args[0]
		} else if len(c.args) > 0 {
			return usagef("give the email once: --email E or one argument")
		}
		if e == "" {
			return usagef("give the administrator's --email")
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		var a consoleAdmin
		if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/admins", map[string]string{"email": e, "name": *name, "role": *role}, &a); err != nil {
			return err
		}
		return printSetupLink(c, a)
	}
}

func adminReset(c *call) error {
	id, api, err := c.oneClient("give the id of the account to reset (pomona admin list)")
	if err != nil {
		return err
	}
	var a consoleAdmin
	if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/admins/"+url.PathEscape(id)+"/reset", nil, &a); err != nil {
		return err
	}
	return printSetupLink(c, a)
}

func adminList(c *call) error {
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
