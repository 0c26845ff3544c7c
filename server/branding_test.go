package server_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/branding"
)

// testPNG is a small valid PNG logo.
func testPNG(t testing.TB, w, h int) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := 0; x < w; x++ {
		m.Set(x, h/2, color.RGBA{0x00, 0x57, 0xb8, 0xff})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestTenantBranding sets a tenant's branding through the API, sees it on
// the device sign-in page, and the refusals: a light accent (with its
// ratio), a non-https link, SVG under any name, a logo too large.
func TestTenantBranding(t *testing.T) {
	w := newWorld(t, false)
	e := w.e
	tp := "/api/v1/tenants/" + w.tenant

	for _, tc := range []struct {
		name  string
		patch map[string]any
		field string
		msg   string
	}{
		{"light accent", map[string]any{"accent_color": "#6cb4ff"}, "accent_color", "2.19:1"},
		{"not a colour", map[string]any{"accent_color": "blue; background:url(x)"}, "accent_color", "#rrggbb"},
		{"http link", map[string]any{"privacy_url": "http://example.com/privacy"}, "privacy_url", "https"},
		{"script link", map[string]any{"privacy_url": "javascript:alert(1)"}, "privacy_url", "https"},
		{"two-line contact", map[string]any{"contact": "a\nb"}, "contact", "one line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, e, "PATCH", tp, tc.patch, e.APIKey)
			mustStatus(t, a, 422)
			if !strings.Contains(string(a.body), tc.field) || !strings.Contains(string(a.body), tc.msg) {
				t.Fatalf("refusal does not say why: %s", a.body)
			}
		})
	}
	a := do(t, e, "PATCH", tp, map[string]any{"accent_color": "#0B5D1E", "contact": "Questions? IT help desk, extension 4357",
		"privacy_url": "https://example.com/privacy#devices"}, e.APIKey)
	mustStatus(t, a, 200)
	if j := a.json(t); j["accent_color"] != "#0b5d1e" || j["contact"] != "Questions? IT help desk, extension 4357" || j["logo_url"] != nil {
		t.Fatalf("patched tenant %s", a.body)
	}

	// The logo: refused as SVG (whatever the Content-Type says), too large,
	// or not an image; accepted as PNG.
	svg := `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>`
	mustStatus(t, do(t, e, "PUT", tp+"/logo", svg, e.APIKey, "Content-Type", "image/svg+xml"), 415)
	if a := do(t, e, "PUT", tp+"/logo", svg, e.APIKey, "Content-Type", "image/png"); a.status != 422 || !strings.Contains(string(a.body), "SVG") {
		t.Fatalf("SVG as image/png: %d %s", a.status, a.body)
	}
	big := append(testPNG(t, 10, 10), make([]byte, branding.MaxLogoBytes)...)
	mustStatus(t, do(t, e, "PUT", tp+"/logo", big, e.APIKey, "Content-Type", "image/png"), 413)
	logo := testPNG(t, 160, 48)
	mustStatus(t, do(t, e, "PUT", tp+"/logo", logo, e.APIKey, "Content-Type", "image/jpeg"), 422) // type mismatch
	a = do(t, e, "PUT", tp+"/logo", logo, e.APIKey, "Content-Type", "image/png")
	mustStatus(t, a, 200)
	logoURL, _ := a.json(t)["logo_url"].(string)
	if logoURL != e.URL+"/login/"+w.tenant+"/logo" {
		t.Fatalf("logo_url %q", logoURL)
	}

	// The logo is public and inert.
	a = do(t, e, "GET", "/login/"+w.tenant+"/logo", nil, "")
	mustStatus(t, a, 200)
	if !bytes.Equal(a.body, logo) || a.header.Get("Content-Type") != "image/png" || a.header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.Contains(a.header.Get("Content-Security-Policy"), "sandbox") {
		t.Fatalf("logo answer: %v", a.header)
	}

	// The sign-in page shows all of it.
	a = do(t, e, "GET", "/login/"+w.tenant+"?user-identifier=alice%40example.com", nil, "")
	mustStatus(t, a, 200)
	page := string(a.body)
	for _, want := range []string{`<img class="logo" src="/login/` + w.tenant + `/logo?v=`, `alt="Example Corp"`, "button.primary { background: #0b5d1e",
		"Questions? IT help desk, extension 4357", `href="https://example.com/privacy#devices"`} {
		if !strings.Contains(page, want) {
			t.Errorf("sign-in page lacks %q", want)
		}
	}
	if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self'") || strings.Contains(csp, "script-src") {
		t.Errorf("sign-in CSP %q", csp)
	}

	// Removed again: the page is back to the default look.
	mustStatus(t, do(t, e, "DELETE", tp+"/logo", nil, e.APIKey), 204)
	mustStatus(t, do(t, e, "GET", "/login/"+w.tenant+"/logo", nil, ""), 404)
	mustStatus(t, do(t, e, "PATCH", tp, map[string]any{"accent_color": "", "contact": "", "privacy_url": ""}, e.APIKey), 200)
	page = string(do(t, e, "GET", "/login/"+w.tenant, nil, "").body)
	if strings.Contains(page, `class="logo"`) || strings.Contains(page, "#0b5d1e") || strings.Contains(page, "4357") {
		t.Fatal("branding left on the page after removal")
	}
}
