package discovery

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// SnippetKinds lists what Snippet can produce.
var SnippetKinds = []string{"nginx", "apache", "caddy", "json"}

// Snippet returns the configuration a company web server needs so that
// https://<domain>/.well-known/com.apple.remotemanagement reaches Pomona
// with its query string intact (the device does not re-add it after a
// redirect), or, for "json", the static document for those who host the
// file themselves (pure JSON; JSONNote says how to serve it).
func Snippet(kind, publicURL, baseURL, domain string) (string, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("public URL %q is not an absolute URL", publicURL)
	}
	origin := u.Scheme + "://" + u.Host
	target := strings.TrimRight(publicURL, "/") + Path
	if domain == "" {
		domain = "company.example"
	}
	switch kind {
	case "nginx":
		return fmt.Sprintf(`# nginx: in the server block for %[1]s (port 443).
# $is_args$args keeps user-identifier and model-family: Apple devices do not
# re-add them after a redirect.
location = %[2]s {
    return 302 %[3]s$is_args$args;
}
`, domain, Path, target), nil
	case "apache":
		return fmt.Sprintf(`# Apache httpd (mod_rewrite): in the <VirtualHost *:443> for %[1]s.
# A rewrite without its own query string passes the original one on, which
# keeps user-identifier and model-family.
RewriteEngine On
RewriteRule ^%[2]s$ %[3]s [R=302,L]
`, domain, regexpPath(Path), target), nil
	case "caddy":
		return fmt.Sprintf(`# Caddy: in the site block for %[1]s.
# {uri} is the path with its query string, so nothing is dropped.
redir %[2]s %[3]s{uri} 302
`, domain, Path, origin+strings.TrimRight(u.Path, "/")), nil
	case "json":
		if baseURL == "" {
			return "", fmt.Errorf("the json snippet needs a tenant: name a domain the tenant owns")
		}
		b, err := json.MarshalIndent(Answer(baseURL), "", "  ")
		if err != nil {
			return "", err
		}
		return string(b) + "\n", nil
	}
	kinds := append([]string(nil), SnippetKinds...)
	sort.Strings(kinds)
	return "", fmt.Errorf("unknown snippet kind %q (use one of %s)", kind, strings.Join(kinds, ", "))
}

func regexpPath(p string) string {
	return strings.ReplaceAll(p, ".", `\.`)
}

// JSONNote tells how to serve the static document of Snippet("json").
func JSONNote(domain string) string {
	return "Serve this document at https://" + domain + Path + " with \"Content-Type: application/json\" " +
		"(octet-stream makes the device reject it), for every query string. A static file cannot refuse " +
		"unknown users or unsupported devices; the redirect snippets can."
}
