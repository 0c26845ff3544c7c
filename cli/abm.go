package cli

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/pomona-mdm/pomona/apitypes"
)

// abmCommand is `pomona abm`: Apple Business Manager server tokens (for
// GetToken com.apple.maid under "Managed devices only") and the fallback
// discovery registration (docs/apple-business-manager.md).
func abmCommand() *command {
	return &command{name: "abm", synopsis: "Apple Business Manager: server tokens (GetToken for Managed Apple Accounts) and fallback discovery", children: []*command{
		{name: "token", synopsis: "server tokens: create, list, show, cert, import, remove", children: []*command{
			{name: "create", synopsis: "make the key pair of a new ABM MDM server and print the certificate to upload to ABM", api: true, flags: abmTokenCreate, noArgs: true,
				usage: "abm token create --tenant <id or domain> --name <label> [--out cert.pem]"},
			{name: "list", synopsis: "list the server tokens", api: true, flags: abmTokenList, noArgs: true,
				usage: "abm token list [--tenant <id or domain>]"},
			{name: "show", synopsis: "show one server token: organisation, MDM server, server_uuid, expiry", api: true, run: abmTokenShow,
				usage: "abm token show <token id>"},
			{name: "cert", synopsis: "print the public-key certificate to upload to ABM", api: true, flags: abmTokenCert,
				usage: "abm token cert <token id> [--out cert.pem]"},
			{name: "import", synopsis: "import (or renew) the server token ABM downloaded (.p7m)", api: true, run: abmTokenImport,
				usage: "abm token import <token id> <file.p7m>"},
			{name: "remove", synopsis: "remove a server token", api: true, run: abmTokenRemove,
				usage: "abm token remove <token id>"},
		}},
		{name: "discovery", synopsis: "the fallback discovery URL registered with Apple: register, show, remove", children: []*command{
			{name: "register", synopsis: "register the tenant's fallback discovery URL with Apple", api: true, run: abmDiscovery(http.MethodPost),
				usage: "abm discovery register <token id>"},
			{name: "show", synopsis: "what Apple has registered", api: true, run: abmDiscoveryShow,
				usage: "abm discovery show <token id>"},
			{name: "remove", synopsis: "remove the registration at Apple", api: true, run: abmDiscovery(http.MethodDelete),
				usage: "abm discovery remove <token id>"},
		}},
	}}
}

// abmTokenPath is the API path of the token the first of want positional
// arguments names (the command takes exactly want).
func abmTokenPath(c *call, want int) (string, error) {
	if len(c.args) < 1 {
		return "", usagef("give the server token's id (pomona abm token list)")
	}
	if len(c.args) > want {
		return "", usagef("too many arguments: %q", strings.Join(c.args[want:], " "))
	}
	return "/api/v1/abm/tokens/" + url.PathEscape(c.args[0]), nil
}

// abmTokenDo sends method to the server token named by the one argument
// (c.args[0]), at its path plus suffix ("" or "/discovery"), without a
// body, and decodes the answer into v (nil: no answer wanted). Errors:
// usage errors from abmTokenPath, the client's configuration, the API's
// problem.
func abmTokenDo(c *call, method, suffix string, v any) error {
	path, err := abmTokenPath(c, 1)
	if err != nil {
		return err
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	return api.Do(c.Ctx, method, path+suffix, nil, v)
}

func abmTokenCreate(fs *flag.FlagSet) func(*call) error {
	tenant := fs.String("tenant", "", "tenant id or one of its domains")
	name := fs.String("name", "", "a label for this ABM MDM server, e.g. \"Main\"")
	out := fs.String("out", "", "write the certificate to this file (default: stdout)")
	return func(c *call) error {
		if *tenant == "" || *name == "" {
			return usagef("give --tenant and --name")
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		var v apitypes.ABMServerToken
		if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/abm/tokens", apitypes.ABMServerTokenCreate{Tenant: *tenant, Name: *name}, &v); err != nil {
			return err
		}
		if err := writeCert(c, *out, v.Certificate); err != nil {
			return err
		}
		fmt.Fprintf(c.Stderr, "created %s. Next: in Apple Business Manager, Preferences → Your MDM Servers → Add (or edit) → Upload Public Key: "+
			"upload this certificate, save, click Download Token, then: pomona abm token import %s <file.p7m>\n", v.ID, v.ID)
		return nil
	}
}

func abmTokenList(fs *flag.FlagSet) func(*call) error {
	tenant := fs.String("tenant", "", "only this tenant's (id or one of its domains)")
	return func(c *call) error {
		api, err := c.client()
		if err != nil {
			return err
		}
		q := ""
		if *tenant != "" {
			q = "?tenant=" + url.QueryEscape(*tenant)
		}
		var out apitypes.ABMServerTokenList
		if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/abm/tokens"+q, nil, &out); err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.Stdout, out.Tokens)
		}
		return c.print(out, func(w io.Writer) {
			fmt.Fprintln(w, "ID\tTENANT\tSTATUS\tNAME\tSERVER UUID\tEXPIRES")
			for _, t := range out.Tokens {
				exp := "-"
				if t.ExpiresAt != nil {
					exp = t.ExpiresAt.Local().Format("2006-01-02")
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.TenantID, t.Status, t.Name, orDash(t.ServerUUID), exp)
			}
		})
	}
}

func abmTokenShow(c *call) error {
	var v apitypes.ABMServerToken
	if err := abmTokenDo(c, http.MethodGet, "", &v); err != nil {
		return err
	}
	return showABM(c, &v)
}

func abmTokenCert(fs *flag.FlagSet) func(*call) error {
	out := fs.String("out", "", "write the certificate to this file (default: stdout)")
	return func(c *call) error {
		var v apitypes.ABMServerToken
		if err := abmTokenDo(c, http.MethodGet, "", &v); err != nil {
			return err
		}
		return writeCert(c, *out, v.Certificate)
	}
}

func abmTokenImport(c *call) error {
	path, err := abmTokenPath(c, 2)
	if err != nil {
		return err
	}
	if len(c.args) != 2 {
		return usagef("give the token id and the .p7m file ABM downloaded")
	}
	b, err := os.ReadFile(c.args[1])
	if err != nil {
		return err
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	var v apitypes.ABMServerToken
	if err := api.Do(c.Ctx, http.MethodPut, path+"/token", apitypes.ABMServerTokenImport{ServerToken: b}, &v); err != nil {
		return err
	}
	return showABM(c, &v)
}

func abmTokenRemove(c *call) error {
	if err := abmTokenDo(c, http.MethodDelete, "", nil); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "removed %s\n", c.args[0])
	return nil
}

// abmDiscovery registers (POST) or removes (DELETE) the fallback
// discovery URL at Apple.
func abmDiscovery(method string) func(*call) error {
	return func(c *call) error {
		var v apitypes.ABMServerToken
		if err := abmTokenDo(c, method, "/discovery", &v); err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.Stdout, v)
		}
		if method == http.MethodPost {
			fmt.Fprintf(c.Stdout, "registered with Apple: %s\n(re-asserted every hour; devices on iOS 18.2, macOS 15.2 and later reach it when the company domain does not answer)\n", v.DiscoveryURL)
		} else {
			fmt.Fprintln(c.Stdout, "removed at Apple")
		}
		return nil
	}
}

func abmDiscoveryShow(c *call) error {
	var d apitypes.ABMDiscovery
	if err := abmTokenDo(c, http.MethodGet, "/discovery", &d); err != nil {
		return err
	}
	if c.json() {
		return printJSON(c.Stdout, d)
	}
	switch {
	case !d.Registered:
		fmt.Fprintf(c.Stdout, "nothing registered at Apple (pomona abm discovery register %s registers %s)\n", c.args[0], d.Want)
	case d.Current:
		fmt.Fprintf(c.Stdout, "registered   %s\nupdated      %s\n", d.URL, d.LastUpdated)
	default:
		fmt.Fprintf(c.Stdout, "registered   %s (not this tenant's %s: register again)\nupdated      %s\n", d.URL, d.Want, d.LastUpdated)
	}
	return nil
}

func writeCert(c *call, file, content string) error {
	if file == "" {
		fmt.Fprint(c.Stdout, content)
		return nil
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.Stderr, "certificate written to %s (public: it is uploaded to ABM; the key stays sealed on the server)\n", file)
	return nil
}

func showABM(c *call, v *apitypes.ABMServerToken) error {
	if c.json() {
		return printJSON(c.Stdout, v)
	}
	p := func(k, val string) {
		if val != "" {
			fmt.Fprintf(c.Stdout, "%-13s %s\n", k, val)
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
	p("discovery err", v.DiscoveryError)
	if len(v.Warnings) > 0 {
		p("warnings", strings.Join(v.Warnings, "\n              "))
	}
	return nil
}
