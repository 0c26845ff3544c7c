package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/pomona-mdm/pomona/internal/browser"
	"github.com/pomona-mdm/pomona/totp"
)

// a11yCheck runs axe-core over the page the browser shows, in light and
// dark mode at the window's width and at a 390 px phone width, and fails
// the test on any serious or critical violation. It also checks that no
// form's implicit submission (Return) is a cancel button. The page is
// not reloaded between the four views (emulation applies live), so pages
// reached by a POST are checked too.
func a11yCheck(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	var cancelFirst []string
	if err := chromedp.Run(ctx, chromedp.Evaluate(browser.CancelFirst, &cancelFirst)); err != nil {
		t.Fatalf("%s: %v", page, err)
	}
	if len(cancelFirst) > 0 {
		t.Errorf("%s: Return would cancel in the forms %q: the primary button must come first", page, cancelFirst)
	}
	for _, width := range []string{"desktop", "phone"} {
		size := browser.Desktop()
		if width == "phone" {
			size = browser.Phone()
		}
		for _, scheme := range []string{"light", "dark"} {
			var vs []browser.Violation
			err := chromedp.Run(ctx, size, browser.Scheme(scheme), chromedp.ActionFunc(func(ctx context.Context) error {
				var err error
				vs, err = browser.Axe(ctx)
				return err
			}))
			if err != nil {
				t.Fatalf("%s (%s, %s): %v", page, scheme, width, err)
			}
			for _, v := range vs {
				t.Errorf("%s (%s, %s): %s", page, scheme, width, v)
			}
		}
	}
	chromedp.Run(ctx, browser.Desktop(), browser.Scheme("light"))
}

// TestSignInAccessibilityInChromium checks every state of the device
// sign-in pages with axe-core: the password page (fresh and after a wrong
// password), the second-factor setup and code pages, and the messages.
func TestSignInAccessibilityInChromium(t *testing.T) {
	w := newWorld(t, true)
	ctx := browser.Start(t, w.e.Server.TLSConfig().Certificates[0].Leaf)
	var cb callbackCatcher
	cb.listen(ctx)
	login := w.e.URL + "/login/" + w.tenant + "?user-identifier=alice%40example.com"
	run := browserStep(t, ctx, 45*time.Second, "body", "")
	// Branded, as a company would: the checks cover the tenant's accent in
	// both schemes, the logo, the contact line and the privacy link.
	tp := "/api/v1/tenants/" + w.tenant
	mustStatus(t, do(t, w.e, "PATCH", tp, map[string]any{"accent_color": "#0b5d1e", "contact": "Questions? IT help desk, extension 4357",
		"privacy_url": "https://example.com/privacy"}, w.e.APIKey), 200)
	mustStatus(t, do(t, w.e, "PUT", tp+"/logo", testPNG(t, 160, 48), w.e.APIKey, "Content-Type", "image/png"), 200)
	var logoLoaded bool
	run("branded page", chromedp.Navigate(w.e.URL+"/login/"+w.tenant), chromedp.WaitVisible("img.logo", chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("img.logo").complete && document.querySelector("img.logo").naturalWidth === 160`, &logoLoaded))
	if !logoLoaded {
		t.Fatal("the logo did not load under the page's CSP")
	}
	run("password page", fetch.Enable().WithPatterns([]*fetch.RequestPattern{{URLPattern: "*/login/*", RequestStage: fetch.RequestStageResponse}}),
		chromedp.Navigate(login), chromedp.WaitVisible(`#password`, chromedp.ByQuery))
	a11yCheck(t, ctx, "password page")
	run("wrong password", chromedp.SendKeys(`#password`, "wrong"+kb.Enter, chromedp.ByQuery), chromedp.WaitVisible(`[role=alert]`, chromedp.ByQuery))
	a11yCheck(t, ctx, "password page with an error")
	var secret string
	run("setup page", chromedp.SendKeys(`#password`, "alice-password"+kb.Enter, chromedp.ByQuery), chromedp.WaitVisible(`#secret`, chromedp.ByQuery),
		chromedp.Text(`#secret`, &secret, chromedp.ByQuery))
	a11yCheck(t, ctx, "second-factor setup page")
	run("wrong code", chromedp.SendKeys(`#code`, "000000"+kb.Enter, chromedp.ByQuery), chromedp.WaitVisible(`[role=alert]`, chromedp.ByQuery))
	a11yCheck(t, ctx, "second-factor setup page with an error")
	key, err := totp.Decode(secret)
	if err != nil {
		t.Fatal(err)
	}
	run("setup code", chromedp.SendKeys(`#code`, totp.Code(key, time.Now())+kb.Enter, chromedp.ByQuery))
	deadline := time.Now().Add(10 * time.Second)
	for loc, _ := cb.get(); loc == "" && time.Now().Before(deadline); loc, _ = cb.get() {
		time.Sleep(50 * time.Millisecond)
	}
	run("code page", chromedp.Navigate(login), chromedp.WaitVisible(`#password`, chromedp.ByQuery),
		chromedp.SendKeys(`#password`, "alice-password"+kb.Enter, chromedp.ByQuery), chromedp.WaitVisible(`#code`, chromedp.ByQuery))
	a11yCheck(t, ctx, "code page")
	run("cancel", chromedp.Click(`button[value=cancel]`, chromedp.ByQuery), chromedp.WaitVisible(`[role=status]`, chromedp.ByQuery))
	a11yCheck(t, ctx, "cancelled page")
	run("unknown page", chromedp.Navigate(w.e.URL+"/login/no-such-tenant"), chromedp.WaitVisible(`h1`, chromedp.ByQuery))
	a11yCheck(t, ctx, "unknown sign-in page")
}

// TestConsoleAccessibilityInChromium checks every page of the console
// with axe-core, signed in as the owner, with a tenant, users, an enrolled
// device and a command result on record.
func TestConsoleAccessibilityInChromium(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	ctx := browser.StartDesktop(t, e.Server.TLSConfig().Certificates[0].Leaf)
	bg := context.Background()
	run := browserStep(t, ctx, 45*time.Second, "body", "")
	var s string
	run("setup page", chromedp.Navigate(e.Server.OwnerSetupURL()), chromedp.WaitVisible("#secret", chromedp.ByID), chromedp.Text("#secret", &s, chromedp.ByID))
	a11yCheck(t, ctx, "console setup page")
	secret, err := totp.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	run("setup", chromedp.SendKeys("#email", "owner@ops.example", chromedp.ByID),
		chromedp.SendKeys("#password", "owner password 123", chromedp.ByID), chromedp.SendKeys("#password2", "owner password 123", chromedp.ByID),
		chromedp.SendKeys("#code", totp.Code(secret, clk.now())+kb.Enter, chromedp.ByID), chromedp.WaitVisible(".flash", chromedp.ByQuery))
	a11yCheck(t, ctx, "console sign-in page")
	run("wrong sign-in", chromedp.SendKeys("#email", "owner@ops.example", chromedp.ByID), chromedp.SendKeys("#password", "wrong password 123", chromedp.ByID),
		chromedp.SendKeys("#code", "000000"+kb.Enter, chromedp.ByID), chromedp.WaitVisible(".flash.error", chromedp.ByQuery))
	a11yCheck(t, ctx, "console sign-in page with an error")
	// Keyboard only: Return in the last field signs in.
	// (The email stays filled in after the failed attempt.)
	run("sign in", chromedp.SendKeys("#password", "owner password 123", chromedp.ByID),
		chromedp.SendKeys("#code", clk.nextCode(secret)+kb.Enter, chromedp.ByID), chromedp.WaitVisible("svg.chart", chromedp.ByQuery))

	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	dev, err := e.Server.Store.EnrollmentByAppleID(bg, d.MDM.EnrollmentID)
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "DeviceInformation", "queries": []string{"OSVersion", "ModelName"}}, e.APIKey), 201)
	cmd, err := d.Poll(bg, nil, false)
	if err != nil || cmd == nil {
		t.Fatalf("poll: %v", err)
	}
	if _, err := d.Poll(bg, d.Answer(cmd), false); err != nil {
		t.Fatal(err)
	}
	// Branding from the tenant page: a light accent is refused with the
	// reason, then a dark one and a logo are saved.
	logo := filepath.Join(t.TempDir(), "logo.png")
	os.WriteFile(logo, testPNG(t, 160, 48), 0o600)
	run("branding refused", chromedp.Navigate(e.URL+"/console/tenants/"+w.tenant), chromedp.WaitVisible("#accent_color", chromedp.ByID),
		chromedp.SendKeys("#accent_color", "#6cb4ff", chromedp.ByID), chromedp.Click(`form[action$="/branding"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash.error", chromedp.ByQuery))
	var flash string
	run("refusal", chromedp.Text(".flash", &flash, chromedp.ByQuery))
	if !strings.Contains(flash, "2.19:1") {
		t.Fatalf("refusal %q", flash)
	}
	run("branding", chromedp.Navigate(e.URL+"/console/tenants/"+w.tenant), chromedp.WaitVisible("#accent_color", chromedp.ByID),
		chromedp.SendKeys("#accent_color", "#0b5d1e", chromedp.ByID), chromedp.SendKeys("#contact", "IT help desk: extension 4357", chromedp.ByID),
		chromedp.SendKeys("#privacy_url", "https://example.com/privacy", chromedp.ByID), chromedp.SetUploadFiles("#logo", []string{logo}, chromedp.ByID),
		chromedp.Click(`form[action$="/branding"] button`, chromedp.ByQuery), chromedp.WaitVisible(".flash.ok", chromedp.ByQuery))
	if tn, _ := e.Server.Store.Tenant(bg, w.tenant); tn.AccentColor != "#0b5d1e" || tn.Contact != "IT help desk: extension 4357" || tn.LogoUpdatedAt.IsZero() {
		t.Fatalf("branding not saved: %+v", tn)
	}

	alice, _ := e.Server.Store.UserByEmail(bg, "alice@example.com")
	for _, p := range []struct{ path, wait string }{
		{"/console/", "svg.chart"},
		{"/console/tenants", "main h1"},
		{"/console/tenants/" + w.tenant + "#branding", "img.logo-preview"},
		{"/console/users", "table"},
		{"/console/users/" + alice.ID, "main h1"},
		{"/console/devices", "table"},
		{"/console/devices/" + dev.ID, "#command"},
		{"/console/devices/" + dev.ID + "?command=DeviceInformation", "#key-Queries"},
		{"/console/push", "main h1"},
		{"/console/abm", "main h1"},
		{"/console/apikeys", "main h1"},
		{"/console/webhooks", "main h1"},
		{"/console/audit", "table"},
		{"/console/admins", "table"},
		{"/console/devices/no-such-device", ".flash, main h1"},
		{"/console/users/" + alice.ID + "/delete", "#consequence"},
		{"/console/tenants/" + w.tenant + "/delete", "#confirm"},
	} {
		run(p.path, chromedp.Navigate(e.URL+p.path), chromedp.WaitVisible(p.wait, chromedp.ByQuery))
		if strings.HasPrefix(p.path, "/console/devices/dv") || strings.HasPrefix(p.path, "/console/devices/"+dev.ID) {
			run("open result", chromedp.Click(`td details summary`, chromedp.ByQuery))
		}
		a11yCheck(t, ctx, p.path)
	}
	// Pages that answer a form: a new API key (shown once) and an import
	// report with failed rows.
	run("new key", chromedp.Navigate(e.URL+"/console/apikeys"), chromedp.SendKeys("#name", "ci"+kb.Enter, chromedp.ByID),
		chromedp.WaitVisible("#new-key", chromedp.ByID))
	a11yCheck(t, ctx, "new API key page")
	csv := filepath.Join(t.TempDir(), "users.csv")
	os.WriteFile(csv, []byte("email,name,password\nnew@example.com,New,new-password-1\nbad-email,X,\n"), 0o600)
	run("import", chromedp.Navigate(e.URL+"/console/users"), chromedp.SetUploadFiles("#csv", []string{csv}, chromedp.ByID),
		chromedp.Click(`form[action="/console/users/import"] button`, chromedp.ByQuery), chromedp.WaitVisible(`[aria-label="Rows not imported"]`, chromedp.ByQuery))
	a11yCheck(t, ctx, "import report")

	// Deleting with the keyboard alone: the confirmation's button takes
	// Return; the tenant's form submits from the typed name.
	run("delete user by keyboard", chromedp.Navigate(e.URL+"/console/users/"+alice.ID+"/delete"), chromedp.WaitVisible("#consequence", chromedp.ByID),
		chromedp.Focus(`form button.danger`, chromedp.ByQuery), chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(".flash.ok", chromedp.ByQuery))
	if _, err := e.Server.Store.User(bg, alice.ID); err == nil {
		t.Fatal("the user was not deleted from the keyboard")
	}
	run("delete tenant by keyboard", chromedp.Navigate(e.URL+"/console/tenants/"+w.tenant+"/delete"), chromedp.WaitVisible("#confirm", chromedp.ByID),
		chromedp.SendKeys("#confirm", "Example Corp"+kb.Enter, chromedp.ByID), chromedp.WaitVisible(".flash.ok", chromedp.ByQuery))
	if _, err := e.Server.Store.Tenant(bg, w.tenant); err == nil {
		t.Fatal("the tenant was not deleted from the keyboard")
	}
}
