package cli

import (
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"
)

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

// runAdmin manages web-console accounts through the API: an invitation
// or a reset prints a one-time setup link where the person chooses a
// password and sets up their authenticator app.
func runAdmin(env *Env, args []string) error {
	sub, args, err := subcommand(args, adminUsage)
	if err != nil {
		return err
	}
	var cf clientFlags
	fs := newFlags(env, "admin "+sub, adminUsage)
	cf.register(fs)
	email := fs.String("email", "", "the administrator's email (create)")
	name := fs.String("name", "", "their name (create)")
	role := fs.String("role", "owner", "owner, admin, helpdesk or auditor (create)")
	pos, err := parse(env, fs, args)
	if err != nil {
		return err
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	printLink := func(a consoleAdmin) error {
		if cf.json {
			return printJSON(env.Stdout, a)
		}
		fmt.Fprintf(env.Stdout, "Console account %s (%s). Send this one-time setup link to them over a trusted channel; it works once, until %s:\n\n  %s\n",
			a.Email, a.Role, a.SetupExpiresAt.Local().Format(time.RFC1123), a.SetupURL)
		return nil
	}
	switch sub {
	case "create":
		if *email == "" && len(pos) == 1 {
			*email = pos[0]
		}
		if *email == "" {
			return usagef("give the administrator's --email")
		}
		var a consoleAdmin
		if err := c.Do(env.Ctx, http.MethodPost, "/api/v1/admins", map[string]string{"email": *email, "name": *name, "role": *role}, &a); err != nil {
			return err
		}
		return printLink(a)
	case "reset":
		if len(pos) != 1 {
			return usagef("give the id of the account to reset (pomona admin list)")
		}
		var a consoleAdmin
		if err := c.Do(env.Ctx, http.MethodPost, "/api/v1/admins/"+pos[0]+"/reset", nil, &a); err != nil {
			return err
		}
		return printLink(a)
	case "list":
		var out struct {
			Admins []consoleAdmin `json:"admins"`
		}
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/admins", nil, &out); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.Stdout, out)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tROLE\tSTATE\tLAST SIGN-IN")
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
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, orDash(a.Email), a.Role, state, last)
		}
		return tw.Flush()
	}
	return usagef("unknown subcommand %q: %s", sub, adminUsage)
}
