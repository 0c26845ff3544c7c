package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestBackIsAPage: every POST route returns, on a refusal, to a GET page
// (without a Referer: a proxy or a browser setting may strip it).
// Before, the fallback cut one segment, so a refused
// /profiles/{id}/assignments/{group}/remove landed on a 404.
func TestBackIsAPage(t *testing.T) {
	c := &Console{}
	c.Register(http.NewServeMux())
	ids := strings.NewReplacer("{id}", "x_1", "{group}", "gr_1", "{user}", "us_1", "{uuid}", "c-1", "{device}", "en_1")
	for _, rt := range c.routes() {
		method, p, _ := strings.Cut(rt.pattern, " ")
		if method != http.MethodPost {
			continue
		}
		p = ids.Replace(p)
		back := c.pageAbove(p)
		if _, pattern := c.getPages.Handler(&http.Request{Method: http.MethodGet, Host: "console", URL: mustURL(back)}); pattern == "" && back != Prefix+"/" {
			t.Errorf("POST %s returns to %s, which is no page", p, back)
		}
		if !strings.HasPrefix(p, back) {
			t.Errorf("POST %s returns to %s, not above it", p, back)
		}
	}
	for p, want := range map[string]string{
		Prefix + "/profiles/pr_1/assignments/gr_1/remove": Prefix + "/profiles/pr_1",
		Prefix + "/profiles/pr_1/devices/en_1/retry":      Prefix + "/profiles/pr_1",
		Prefix + "/groups/gr_1/members/us_1/remove":       Prefix + "/groups/gr_1",
		Prefix + "/devices/en_1/commands/c-1/resend":      Prefix + "/devices/en_1",
		Prefix + "/tenants/te_1/delete":                   Prefix + "/tenants/te_1/delete",
		Prefix + "/groups":                                Prefix + "/groups",
		Prefix + "/tenants/te_1":                          Prefix + "/tenants/te_1",
		Prefix + "/admins/ad_1/reset":                     Prefix + "/admins",
		Prefix + "/logout":                                Prefix + "/",
	} {
		if got := c.pageAbove(p); got != want {
			t.Errorf("pageAbove(%s) = %s, want %s", p, got, want)
		}
	}
}

func mustURL(p string) *url.URL { return &url.URL{Path: p} }
