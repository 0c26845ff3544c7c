package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/pomona-mdm/pomona/apitypes"
)

// abmCommands are the Apple Business Manager commands; commands() merges
// them in.
func abmCommands() map[string]command {
	return map[string]command{
		"abm": {summary: "Apple Business Manager: server tokens (GetToken for Managed Apple Accounts) and fallback discovery", run: runABM, subs: []sub{
			{"token", "server tokens: create, list, show, cert, import, remove"},
			{"discovery", "the fallback discovery URL registered with Apple: register, show, remove"},
		}},
	}
}

const (
	abmTokenUsage = "abm token create --tenant <id|domain> --name <label> [--out cert.pem] | list [--tenant <id|domain>] | show <id> | " +
		"cert <id> [--out cert.pem] | import <id> <file.p7m> | remove <id>"
	abmDiscoveryUsage = "abm discovery register <token id> | show <token id> | remove <token id>"
)

var abmSubs = map[string][]sub{
	"token": {
		{"create", "make the key pair of a new ABM MDM server and print the certificate to upload to ABM"},
		{"list", "list the server tokens"},
		{"show", "show one server token: organisation, MDM server, server_uuid, expiry"},
		{"cert", "print the public-key certificate to upload to ABM"},
		{"import", "import (or renew) the server token ABM downloaded (.p7m)"},
		{"remove", "remove a server token"},
	},
	"discovery": {
		{"register", "register the tenant's fallback discovery URL with Apple"},
		{"show", "what Apple has registered"},
		{"remove", "remove the registration at Apple"},
	},
}

func runABM(env *Env, args []string) error {
	group, args := args[0], args[1:]
	usage := map[string]string{"token": abmTokenUsage, "discovery": abmDiscoveryUsage}[group]
	if len(args) == 0 || isHelp(args[0]) {
		w := env.Stderr
		if len(args) > 0 {
			w = env.Stdout
		}
		fmt.Fprintf(w, "Usage: pomona %s\n\nSubcommands:\n", usage)
		for _, s := range abmSubs[group] {
			fmt.Fprintf(w, "  %-10s %s\n", s.name, s.summary)
		}
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	known := false
	for _, s := range abmSubs[group] {
		known = known || s.name == sub
	}
	if !known {
		return usagef("unknown subcommand %q\nUsage: pomona %s", sub, usage)
	}
	var cf clientFlags
	fs := newFlags(env, "abm "+group+" "+sub, usage)
	cf.register(fs)
	tenant := fs.String("tenant", "", "create, list: tenant id or one of its domains")
	name := fs.String("name", "", "create: a label for this ABM MDM server, e.g. \"Main\"")
	out := fs.String("out", "", "create, cert: write the certificate to this file (default: stdout)")
	pos, err := parse(env, fs, args)
	if err != nil {
		return err
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	needID := func() (string, error) {
		if len(pos) < 1 {
			return "", usagef("give the server token's id (pomona abm token list)\nUsage: pomona %s", usage)
		}
		return url.PathEscape(pos[0]), nil
	}
	var v apitypes.ABMServerToken
	switch group + " " + sub {
	case "token create":
		if *tenant == "" || *name == "" {
			return usagef("give --tenant and --name\nUsage: pomona %s", abmTokenUsage)
		}
		if err := c.Do(env.Ctx, http.MethodPost, "/api/v1/abm/tokens", apitypes.ABMServerTokenCreate{Tenant: *tenant, Name: *name}, &v); err != nil {
			return err
		}
		if err := writeOut(env, *out, v.Certificate); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "created %s. Next: in Apple Business Manager, Preferences → Your MDM Servers → Add (or edit) → Upload Public Key: "+
			"upload this certificate, save, click Download Token, then: pomona abm token import %s <file.p7m>\n", v.ID, v.ID)
		return nil
	case "token list":
		q := ""
		if *tenant != "" {
			q = "?tenant=" + url.QueryEscape(*tenant)
		}
		var resp apitypes.ABMServerTokenList
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/abm/tokens"+q, nil, &resp); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.Stdout, resp.Tokens)
		}
		fmt.Fprintf(env.Stdout, "%-24s %-22s %-18s %-20s %-37s %s\n", "ID", "TENANT", "STATUS", "NAME", "SERVER UUID", "EXPIRES")
		for _, t := range resp.Tokens {
			exp := "-"
			if t.ExpiresAt != nil {
				exp = t.ExpiresAt.Local().Format("2006-01-02")
			}
			fmt.Fprintf(env.Stdout, "%-24s %-22s %-18s %-20s %-37s %s\n", t.ID, t.TenantID, t.Status, t.Name, orDash(t.ServerUUID), exp)
		}
		return nil
	case "token show":
		id, err := needID()
		if err != nil {
			return err
		}
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/abm/tokens/"+id, nil, &v); err != nil {
			return err
		}
		return showABM(env, &cf, &v)
	case "token cert":
		id, err := needID()
		if err != nil {
			return err
		}
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/abm/tokens/"+id, nil, &v); err != nil {
			return err
		}
		return writeOut(env, *out, v.Certificate)
	case "token import":
		id, err := needID()
		if err != nil {
			return err
		}
		if len(pos) < 2 {
			return usagef("give the .p7m file ABM downloaded\nUsage: pomona %s", abmTokenUsage)
		}
		b, err := os.ReadFile(pos[1])
		if err != nil {
			return err
		}
		if err := c.Do(env.Ctx, http.MethodPut, "/api/v1/abm/tokens/"+id+"/token", apitypes.ABMServerTokenImport{ServerToken: b}, &v); err != nil {
			return err
		}
		return showABM(env, &cf, &v)
	case "token remove":
		id, err := needID()
		if err != nil {
			return err
		}
		if err := c.Do(env.Ctx, http.MethodDelete, "/api/v1/abm/tokens/"+id, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "removed %s\n", pos[0])
		return nil
	case "discovery register", "discovery remove":
		id, err := needID()
		if err != nil {
			return err
		}
		method := map[string]string{"register": http.MethodPost, "remove": http.MethodDelete}[sub]
		if err := c.Do(env.Ctx, method, "/api/v1/abm/tokens/"+id+"/discovery", nil, &v); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.Stdout, v)
		}
		if sub == "register" {
			fmt.Fprintf(env.Stdout, "registered with Apple: %s\n(re-asserted every hour; devices on iOS 18.2, macOS 15.2 and later reach it when the company domain does not answer)\n", v.DiscoveryURL)
		} else {
			fmt.Fprintln(env.Stdout, "removed at Apple")
		}
		return nil
	case "discovery show":
		id, err := needID()
		if err != nil {
			return err
		}
		var d apitypes.ABMDiscovery
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/abm/tokens/"+id+"/discovery", nil, &d); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.Stdout, d)
		}
		switch {
		case !d.Registered:
			fmt.Fprintf(env.Stdout, "nothing registered at Apple (pomona abm discovery register %s registers %s)\n", pos[0], d.Want)
		case d.Current:
			fmt.Fprintf(env.Stdout, "registered   %s\nupdated      %s\n", d.URL, d.LastUpdated)
		default:
			fmt.Fprintf(env.Stdout, "registered   %s (not this tenant's %s: register again)\nupdated      %s\n", d.URL, d.Want, d.LastUpdated)
		}
		return nil
	}
	return usagef("unknown subcommand %q\nUsage: pomona %s", sub, usage)
}

func writeOut(env *Env, file, content string) error {
	if file == "" {
		fmt.Fprint(env.Stdout, content)
		return nil
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stderr, "certificate written to %s (public: it is uploaded to ABM; the key stays sealed on the server)\n", file)
	return nil
}

func showABM(env *Env, cf *clientFlags, v *apitypes.ABMServerToken) error {
	if cf.json {
		return printJSON(env.Stdout, v)
	}
	p := func(k, val string) {
		if val != "" {
			fmt.Fprintf(env.Stdout, "%-13s %s\n", k, val)
		}
	}
	p("id", v.ID)
	p("tenant", v.TenantID)
	p("name", v.Name)
	p("status", v.Status)
	p("organisation", v.OrgName)
	p("MDM server", v.ServerName)
	p("server_uuid", v.ServerUUID)
	if v.ExpiresAt != nil && v.DaysLeft != nil {
		p("expires", fmt.Sprintf("%s (%d days)", v.ExpiresAt.Local().Format("2006-01-02"), *v.DaysLeft))
	}
	p("discovery", v.DiscoveryURL)
	if v.DiscoveryError != "" {
		p("discovery err", v.DiscoveryError)
	}
	if len(v.Warnings) > 0 {
		p("warnings", strings.Join(v.Warnings, "\n              "))
	}
	return nil
}
