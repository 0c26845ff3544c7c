package cli

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/pomona-mdm/pomona/address"
	"github.com/pomona-mdm/pomona/discovery/check"
)

// pomona discovery check|snippet: a company domain's discovery redirect.

// discoveryCheck asks a company domain for its enrollment service as a
// device does, and says what to fix when the answer is not one a device
// accepts. It needs no API key; with one, it asks the server which
// BaseURL the answer must carry.
func discoveryCheck(fs *flag.FlagSet) func(*call) error {
	user := fs.String("user", "", "the identifier to ask for (default check@<domain>)")
	family := fs.String("model-family", "iPhone", "model family to send: iPhone, iPad or Mac")
	expect := fs.String("expect-base-url", "", "the BaseURL the answer must carry (default: asked from the Pomona server when an API key is set)")
	trust := fs.String("trust-ca", "", "PEM file of an extra CA to trust for the company domain (tests and private setups; devices only trust public CAs)")
	var resolve multiFlag
	fs.Var(&resolve, "resolve", "host:port:addr:port, connect there instead of resolving host (like curl --resolve; repeatable)")
	return func(c *call) error {
		arg, err := c.one("give the company domain: pomona discovery check example.com")
		if err != nil {
			return err
		}
		domain, err := address.Domain(arg)
		if err != nil {
			return usagef("%v", err)
		}
		opts := check.Options{Domain: domain, User: *user, ModelFamily: *family, ExpectBaseURL: *expect, Resolve: map[string]string{}}
		for _, r := range resolve {
			p := strings.Split(r, ":")
			if len(p) != 4 {
				return usagef("--resolve %q: use host:port:addr:port", r)
			}
			opts.Resolve[p[0]+":"+p[1]] = p[2] + ":" + p[3]
		}
		if *trust != "" {
			pool, ok, err := trustPool(*trust)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("--trust-ca %s holds no PEM certificate", *trust)
			}
			opts.RootCAs = pool
		}
		if opts.ExpectBaseURL == "" && c.api.apiKey != "" {
			// Ask Pomona which BaseURL it serves this domain at, so an answer
			// pointing elsewhere is caught.
			if api, err := c.client(); err == nil {
				var out struct {
					Tenants []struct {
						EnrollmentURL string `json:"enrollment_url"`
					} `json:"tenants"`
				}
				if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/tenants?domain="+url.QueryEscape(domain), nil, &out); err != nil {
					fmt.Fprintf(c.Stderr, "note: could not ask the Pomona server for the expected BaseURL: %v\n", err)
				} else if len(out.Tenants) == 0 {
					fmt.Fprintf(c.Stderr, "note: no tenant on %s owns %s (pomona tenant add ... --domain %s)\n", c.api.server, domain, domain)
				} else {
					opts.ExpectBaseURL = out.Tenants[0].EnrollmentURL
				}
			}
		}
		rep := check.Run(c.Ctx, opts)
		if c.json() {
			if err := printJSON(c.Stdout, rep); err != nil {
				return err
			}
		} else {
			w := c.Stdout
			fmt.Fprintf(w, "Checking %s as a device would (%s, %s)\n\n", domain, opts.ModelFamily, orDefault(opts.User, "check@"+domain))
			for i, h := range rep.Hops {
				fmt.Fprintf(w, "%d. GET %s\n", i+1, h.URL)
				switch {
				case h.Error != "":
					fmt.Fprintf(w, "   -> failed: %s\n", h.Error)
				case h.Location != "":
					fmt.Fprintf(w, "   -> %d, Location: %s\n", h.Status, h.Location)
				default:
					fmt.Fprintf(w, "   -> %d, Content-Type: %s\n", h.Status, orDefault(h.ContentType, "(none)"))
				}
			}
			fmt.Fprintln(w)
			for _, f := range rep.Findings {
				mark := map[check.Level]string{check.OK: "ok   ", check.Warn: "warn ", check.Error: "ERROR"}[f.Level]
				fmt.Fprintf(w, "%s %s\n", mark, f.Message)
				if f.Fix != "" {
					fmt.Fprintf(w, "      fix: %s\n", f.Fix)
				}
			}
			if rep.OK() {
				fmt.Fprintln(w, "\nDiscovery works for this domain.")
			} else {
				fmt.Fprintln(w, "\nDiscovery does NOT work for this domain yet.")
			}
		}
		if !rep.OK() {
			return errSilent
		}
		return nil
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// discoverySnippet prints the web-server configuration that redirects
// a company domain's discovery request to Pomona, as the server writes it.
func discoverySnippet(fs *flag.FlagSet) func(*call) error {
	domain := fs.String("domain", "", "a tenant's domain (required for json; names the server block otherwise)")
	return func(c *call) error {
		kind, api, err := c.oneClient("give the kind: nginx, apache, caddy or json")
		if err != nil {
			return err
		}
		q := url.Values{"kind": {kind}}
		if *domain != "" {
			q.Set("domain", *domain)
		}
		var out struct {
			Snippet string `json:"snippet"`
			Note    string `json:"note"`
		}
		if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/discovery/snippet?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		fmt.Fprint(c.Stdout, out.Snippet)
		if out.Note != "" {
			fmt.Fprintln(c.Stderr, out.Note)
		}
		return nil
	}
}
