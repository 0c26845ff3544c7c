package cli

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/pomona-mdm/pomona/address"
	"github.com/pomona-mdm/pomona/discovery/check"
)

const discoveryUsage = "discovery check <domain> [--user someone@domain] | snippet nginx|apache|caddy|json [--domain D]"

func runDiscovery(env *Env, args []string) error {
	sub, args, err := subcommand(args, discoveryUsage)
	if err != nil {
		return err
	}
	switch sub {
	case "check":
		return runDiscoveryCheck(env, args)
	case "snippet":
		return runSnippet(env, args)
	}
	return usagef("unknown subcommand %q\nUsage: pomona %s", sub, discoveryUsage)
}

func runDiscoveryCheck(env *Env, args []string) error {
	var cf clientFlags
	fs := newFlags(env, "discovery check", "discovery check <domain> [--user someone@domain] [--model-family iPhone|iPad|Mac] [--expect-base-url URL] [--resolve host:port:addr:port] [--trust-ca ca.pem]")
	cf.register(fs)
	user := fs.String("user", "", "the identifier to ask for (default check@<domain>)")
	family := fs.String("model-family", "iPhone", "model family to send: iPhone, iPad or Mac")
	expect := fs.String("expect-base-url", "", "the BaseURL the answer must carry (default: asked from the Pomona server when an API key is set)")
	trust := fs.String("trust-ca", "", "PEM file of an extra CA to trust for the company domain (tests and private setups; devices only trust public CAs)")
	var resolve multiFlag
	fs.Var(&resolve, "resolve", "host:port:addr:port, connect there instead of resolving host (like curl --resolve; repeatable)")
	pos, err := parse(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give the company domain: pomona discovery check example.com")
	}
	domain, err := address.Domain(pos[0])
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
		pem, err := os.ReadFile(*trust)
		if err != nil {
			return err
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--trust-ca %s holds no PEM certificate", *trust)
		}
		opts.RootCAs = pool
	}
	if opts.ExpectBaseURL == "" && cf.apiKey != "" {
		// Ask Pomona which BaseURL it serves this domain at, so an answer
		// pointing elsewhere is caught.
		if c, err := cf.client(env); err == nil {
			var out struct {
				Tenants []struct {
					EnrollmentURL string `json:"enrollment_url"`
				} `json:"tenants"`
			}
			if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/tenants?domain="+url.QueryEscape(domain), nil, &out); err != nil {
				fmt.Fprintf(env.Stderr, "note: could not ask the Pomona server for the expected BaseURL: %v\n", err)
			} else if len(out.Tenants) == 0 {
				fmt.Fprintf(env.Stderr, "note: no tenant on %s owns %s (pomona tenant add ... --domain %s)\n", cf.server, domain, domain)
			} else {
				opts.ExpectBaseURL = out.Tenants[0].EnrollmentURL
			}
		}
	}
	rep := check.Run(env.Ctx, opts)
	if cf.json {
		if err := printJSON(env.Stdout, rep); err != nil {
			return err
		}
	} else {
		w := env.Stdout
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

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func runSnippet(env *Env, args []string) error {
	var cf clientFlags
	fs := newFlags(env, "discovery snippet", "discovery snippet nginx|apache|caddy|json [--domain D]")
	cf.register(fs)
	domain := fs.String("domain", "", "a tenant's domain (required for json; names the server block otherwise)")
	pos, err := parse(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give the kind: nginx, apache, caddy or json")
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	q := url.Values{"kind": {pos[0]}}
	if *domain != "" {
		q.Set("domain", *domain)
	}
	var out struct {
		Snippet string `json:"snippet"`
		Note    string `json:"note"`
	}
	if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/discovery/snippet?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	fmt.Fprint(env.Stdout, out.Snippet)
	if out.Note != "" {
		fmt.Fprintln(env.Stderr, out.Note)
	}
	return nil
}
