package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/pomona-mdm/pomona/internal/browser"
)

// TestConsoleRefusedFormComesBackFilledByKeyboard: on a 390 px phone,
// from the keyboard only, an administrator's refused form comes back with
// what they typed (newuser6 finding: "a refused console form comes back
// empty"): a tenant whose domain is taken keeps its name, domains and
// the unticked second factor; a user of an unknown domain keeps email and
// name but never the password; a profile refused in place for a forbidden
// payload keeps its platform, minimum OS and signing choices (the file
// must be chosen again: a page cannot choose one). The values come back
// once: the page opened again is empty. The refusal takes the focus, so
// that Tab goes on in the page rather than from its top. Fails on the old
// code at every field and at the focus.
func TestConsoleRefusedFormComesBackFilledByKeyboard(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	ctx := browser.Start(t, e.Server.TLSConfig().Certificates[0].Leaf)
	run := browserStep(t, ctx, 30*time.Second, "main", "refill-failed")
	run("phone", browser.Phone())
	signInOwnerByKeyboard(t, ctx, w, clk, run)

	// typeInto focuses a field (where Tab would bring it) and types.
	typeInto := func(sel, text string) {
		t.Helper()
		run("type into "+sel, chromedp.Focus(sel, chromedp.ByQuery), chromedp.KeyEvent(text))
	}
	refusal := func(what, want string) {
		t.Helper()
		js := fmt.Sprintf(`document.readyState === "complete" && !!document.querySelector(".flash.error, [role=alert]") && document.querySelector("main").textContent.includes(%q)`, want)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var ok bool
			if err := chromedp.Run(ctx, chromedp.Evaluate(js, &ok)); err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				var got string
				chromedp.Run(ctx, chromedp.Text("main", &got, chromedp.ByQuery))
				screenshot(t, ctx, "refill-"+what)
				t.Fatalf("%s: refusal %q not shown\npage: %.1500s", what, want, got)
			}
		}
	}
	// fields reads a form's fields as name=value (checkboxes: name=on or
	// name=off), in page order.
	fields := func(form string) string {
		t.Helper()
		var s string
		run("read "+form, chromedp.Evaluate(fmt.Sprintf(`[...document.querySelectorAll(%q)].filter(i => i.type !== "hidden" && i.type !== "file")
  .map(i => i.name + "=" + (i.type === "checkbox" ? (i.checked ? "on" : "off") + (i.value !== "on" ? "(" + i.value + ")" : "") : i.value)).join(" ")`, form+" input"), &s))
		return s
	}

	// A tenant whose domain another tenant has.
	tenantForm := `form[method=post][action="/console/tenants"]`
	run("tenants", chromedp.Navigate(e.URL+"/console/tenants"), chromedp.WaitVisible("#name", chromedp.ByID))
	typeInto("#name", "Second Corp")
	typeInto("#domains", "second.example, example.com")
	run("untick second factor", chromedp.Focus(tenantForm+` input[name=second_factor]`, chromedp.ByQuery), chromedp.KeyEvent(" "))
	run("create", chromedp.Focus(tenantForm+" button", chromedp.ByQuery), chromedp.KeyEvent(kb.Enter))
	refusal("tenant", "already belongs to another tenant")
	// The refusal has the focus: the next Tab goes on in the page (it
	// started from the top, the skip link and the header, again).
	var onFlash bool
	var next string
	run("focus on the refusal", chromedp.Evaluate(`document.activeElement.matches(".flash.error")`, &onFlash),
		chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(`document.activeElement.closest("main") ? "main" : document.activeElement.outerHTML.slice(0, 80)`, &next))
	if !onFlash || next != "main" {
		t.Errorf("after a refusal: focus on the message %v, next Tab stop %s (want the message, then main)", onFlash, next)
	}
	if got, want := fields(tenantForm), "name=Second Corp domains=second.example, example.com second_factor=off"; got != want {
		t.Errorf("refused tenant form: %q, want %q", got, want)
	}
	run("tenants again", chromedp.Navigate(e.URL+"/console/tenants"), chromedp.WaitVisible("#name", chromedp.ByID))
	if got, want := fields(tenantForm), "name= domains= second_factor=on"; got != want {
		t.Errorf("the tenants page opened again: %q, want the empty form %q", got, want)
	}

	// A user of a domain no tenant has: the password is not given back.
	userForm := `form[method=post][action="/console/users"]`
	run("users", chromedp.Navigate(e.URL+"/console/users"), chromedp.WaitVisible("#u-email", chromedp.ByID))
	typeInto("#u-email", "dave@nowhere.example")
	typeInto("#u-name", "Dave Doe")
	typeInto("#u-password", "dave-password-1")
	run("create user", chromedp.Focus(userForm+" button", chromedp.ByQuery), chromedp.KeyEvent(kb.Enter))
	refusal("user", "no tenant owns the domain nowhere.example")
	if got, want := fields(userForm), "email=dave@nowhere.example name=Dave Doe managed_apple_id= password="; got != want {
		t.Errorf("refused user form: %q, want %q", got, want)
	}

	// A profile with a payload a user enrollment refuses, answered in place.
	dir := t.TempDir()
	vpn := filepath.Join(dir, "vpn.mobileconfig")
	os.WriteFile(vpn, []byte(vpnProfile), 0o600)
	profileForm := `form[method=post][action="/console/profiles"]`
	run("profiles", chromedp.Navigate(e.URL+"/console/profiles?tenant="+w.tenant), chromedp.WaitVisible("#file", chromedp.ByID))
	run("choose the file", chromedp.SetUploadFiles("#file", []string{vpn}, chromedp.ByID)) // the file chooser is the OS's
	run("tick iOS", chromedp.Focus(profileForm+` input[value=iOS]`, chromedp.ByQuery), chromedp.KeyEvent(" "))
	run("tick sign", chromedp.Focus(profileForm+` input[name=sign]`, chromedp.ByQuery), chromedp.KeyEvent(" "))
	typeInto("#min_os", "17.0")
	run("upload", chromedp.Focus(profileForm+" button", chromedp.ByQuery), chromedp.KeyEvent(kb.Enter))
	refusal("profile", "is forbidden for a user enrollment")
	if got, want := fields(profileForm), "platforms=on(iOS) platforms=off(macOS) min_os=17.0 sign=on"; got != want {
		t.Errorf("refused profile form: %q, want %q", got, want)
	}
}

// TestConsoleRefillKeepsNoSecret: the values a refused form gets back ride
// in a cookie for one redirect; a password typed into the refused form is
// never among them, nor is the CSRF token.
func TestConsoleRefillKeepsNoSecret(t *testing.T) {
	w, clk := consoleWorld(t)
	u := newConsoleUser(t, w, clk, "owner@ops.example", "owner")
	u.get("/console/users")
	c := *u.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	form := url.Values{"csrf": {u.csrf}, "email": {"dave@nowhere.example"}, "name": {"Dave"}, "password": {"dave-password-1"}}
	req, _ := http.NewRequest("POST", w.e.URL+"/console/users", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", w.e.URL)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var refill string
	for _, ck := range resp.Cookies() {
		if ck.Name == "pomona_console_refill" {
			refill, _ = url.QueryUnescape(ck.Value)
		}
	}
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(refill, "dave%40nowhere.example") ||
		strings.Contains(refill, "dave-password-1") || strings.Contains(refill, "password") || strings.Contains(refill, "csrf") {
		t.Errorf("refused user: %d, refill cookie %q (want the email, no password, no csrf)", resp.StatusCode, refill)
	}
}
