package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/pomona-mdm/pomona/internal/browser"
	"github.com/pomona-mdm/pomona/totp"
)

// TestConsoleInChromium walks the console the way an administrator does,
// in real headless Chromium: set up the first owner from the start-up
// link, sign in with the second factor, create a tenant and a user, watch
// a simulated device enroll, send DeviceInformation and read its result,
// see a forbidden command refused and force a re-authentication.
// POMONA_SCREENSHOTS=dir keeps a screenshot of each main page (make
// screenshots refreshes docs/screenshots).
func TestConsoleInChromium(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	ctx := browser.StartDesktop(t, e.Server.TLSConfig().Certificates[0].Leaf)
	bg := context.Background()
	run := browserStep(t, ctx, 15*time.Second, "main", "failed")
	text := browserText(t, run)
	submit := func(form string) chromedp.Action {
		return chromedp.Click(`form[method=post][action="`+form+`"] button[type=submit]`, chromedp.NodeVisible, chromedp.ByQuery)
	}
	flash := func(want string) {
		t.Helper()
		run("flash", chromedp.WaitVisible(".flash", chromedp.ByQuery))
		if got := text(".flash"); !strings.Contains(got, want) {
			t.Fatalf("message %q, want %q", got, want)
		}
	}

	// The first owner sets up their account from the link printed at start.
	run("setup page", chromedp.Navigate(e.Server.OwnerSetupURL()), chromedp.WaitVisible("#secret", chromedp.ByID))
	secret, err := totp.Decode(text("#secret"))
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "console-setup")
	run("setup", chromedp.SendKeys("#email", "owner@ops.example", chromedp.ByID),
		chromedp.SendKeys("#password", "owner password 123", chromedp.ByID), chromedp.SendKeys("#password2", "owner password 123", chromedp.ByID),
		chromedp.SendKeys("#code", totp.Code(secret, clk.now()), chromedp.ByID), submit("/console/setup"))
	flash("Your account is ready")

	// Sign in with the password and the next code.
	run("sign in", chromedp.SendKeys("#email", "owner@ops.example", chromedp.ByID), chromedp.SendKeys("#password", "owner password 123", chromedp.ByID),
		chromedp.SendKeys("#code", clk.nextCode(secret), chromedp.ByID), submit("/console/login"), chromedp.WaitVisible("svg.chart", chromedp.ByQuery))

	// A tenant with its domain, created from the form.
	run("new tenant", chromedp.Navigate(e.URL+"/console/tenants"), chromedp.SendKeys("#name", "Acme Corp", chromedp.ByID),
		chromedp.SendKeys("#domains", "acme.example", chromedp.ByID), submit("/console/tenants"))
	flash("Tenant Acme Corp created")
	var all string
	run("snippets", chromedp.TextContent("main", &all, chromedp.ByQuery))
	if !strings.Contains(all, "acme.example") || !strings.Contains(all, "location = /.well-known/com.apple.remotemanagement") {
		t.Fatal("the tenant page lacks the redirect snippets")
	}
	// The live discovery check of example.com (resolved to this server).
	run("discovery check", chromedp.Navigate(e.URL+"/console/tenants/"+w.tenant),
		chromedp.Click(`#domain-example\.com button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(".report", chromedp.ByQuery))
	if rep := text(".report"); !strings.Contains(rep, "https://example.com/.well-known/com.apple.remotemanagement") {
		t.Fatalf("check report: %s", rep)
	}
	screenshot(t, ctx, "console-tenant")

	// A user, created from the form.
	run("new user", chromedp.Navigate(e.URL+"/console/users"), chromedp.SendKeys("#u-email", "carol@acme.example", chromedp.ByID),
		chromedp.SendKeys("#u-name", "Carol Example", chromedp.ByID), chromedp.SendKeys("#u-password", "carol password 1", chromedp.ByID), submit("/console/users"))
	flash("User carol@acme.example created")

	// Carol enrolls her iPhone (simulated) and it appears in the list.
	d := enrolledDevice(t, w, "iPhone", "carol@acme.example", "carol password 1")
	dev, err := e.Server.Store.EnrollmentByAppleID(bg, d.MDM.EnrollmentID)
	if err != nil {
		t.Fatal(err)
	}
	run("devices", chromedp.Navigate(e.URL+"/console/devices"), chromedp.WaitVisible(`a[href="/console/devices/`+dev.ID+`"]`, chromedp.ByQuery))
	screenshot(t, ctx, "console-devices")
	run("open device", chromedp.Click(`a[href="/console/devices/`+dev.ID+`"]`, chromedp.ByQuery), chromedp.WaitVisible("#command", chromedp.ByID))

	// DeviceInformation from the catalogue-built form.
	run("choose command", chromedp.SetValue("#command", "DeviceInformation", chromedp.ByID),
		chromedp.Click(`form[method=get] button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible(`#key-Queries`, chromedp.ByID),
		chromedp.SendKeys("#key-Queries", `["OSVersion", "ModelName", "DeviceName"]`, chromedp.ByID),
		chromedp.Click(`input[value=DeviceInformation] ~ div.actions button`, chromedp.ByQuery))
	flash("queued")
	cmd, err := d.Poll(bg, nil, false)
	if err != nil || cmd == nil || cmd.RequestType() != "DeviceInformation" {
		t.Fatalf("device poll: %+v %v", cmd, err)
	}
	if _, err := d.Poll(bg, d.Answer(cmd), false); err != nil {
		t.Fatal(err)
	}
	run("result", chromedp.Reload(), chromedp.WaitVisible("main details summary", chromedp.ByQuery))
	history := text("main")
	if !strings.Contains(history, "Acknowledged") || !strings.Contains(history, "Simulated iPhone") {
		t.Fatalf("result not shown: %.1500s", history)
	}
	run("open result", chromedp.Click(`td details summary`, chromedp.ByQuery))
	screenshot(t, ctx, "console-device")

	// A forbidden command is refused before it is queued.
	run("forbidden", chromedp.Click(`#send details summary`, chromedp.ByQuery), chromedp.WaitVisible("#plist", chromedp.ByID),
		chromedp.SendKeys("#plist", `<plist version="1.0"><dict><key>RequestType</key><string>EraseDevice</string></dict></plist>`, chromedp.ByID),
		chromedp.Click(`#send details button[type=submit]`, chromedp.ByQuery))
	flash("Refused")
	if !strings.Contains(text(".flash"), "forbids") {
		t.Fatalf("refusal reason: %s", text(".flash"))
	}

	// Force re-authentication: the device's next request must sign in again.
	run("reauth", chromedp.Navigate(e.URL+"/console/devices/"+dev.ID),
		chromedp.Click(`form[action$="/reauthenticate"] button`, chromedp.ByQuery))
	flash("must sign in again")
	if _, err := d.Poll(bg, nil, false); err == nil || !strings.Contains(err.Error(), "sign in again") {
		t.Fatalf("after re-authentication the device is not challenged: %v", err)
	}

	// The other pages, for the record.
	for _, p := range []struct{ path, name, wait string }{
		{"/console/", "console-dashboard", "svg.chart"},
		{"/console/users", "console-users", "table"},
		{"/console/push", "console-push", "main h1"},
		{"/console/audit", "console-audit", "table"},
		{"/console/admins", "console-admins", "table"},
	} {
		run(p.path, chromedp.Navigate(e.URL+p.path), chromedp.WaitVisible(p.wait, chromedp.ByQuery))
		screenshot(t, ctx, p.name)
	}
	// On a phone-sized screen the pages fit without sideways scrolling.
	for _, p := range []string{"/console/", "/console/devices/" + dev.ID, "/console/users"} {
		var overflow bool
		run("phone "+p, emulation.SetDeviceMetricsOverride(390, 844, 3, true), chromedp.Navigate(e.URL+p), chromedp.WaitVisible("main h1", chromedp.ByQuery),
			chromedp.Evaluate(`document.documentElement.scrollWidth > 391`, &overflow))
		if overflow {
			screenshot(t, ctx, "console-phone-overflow")
			t.Errorf("%s scrolls sideways on a phone", p)
		}
	}
	// On the phone, the command history's result column is not cut off
	// (the table fits its card, no sideways scrolling inside it) and the
	// chart's labels render at 12 px or more.
	var cut bool
	run("phone history", chromedp.Navigate(e.URL+"/console/devices/"+dev.ID), chromedp.WaitVisible("td details summary", chromedp.ByQuery),
		chromedp.Click(`td details summary`, chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll('.table-wrap')].some(w => w.scrollWidth > w.clientWidth + 1)`, &cut))
	screenshot(t, ctx, "console-phone-device")
	if cut {
		t.Error("the command history is cut off on a phone (its table is wider than the card)")
	}
	var labels []float64
	run("phone chart", chromedp.Navigate(e.URL+"/console/"), chromedp.WaitVisible("svg.chart", chromedp.ByQuery),
		chromedp.Evaluate(`[...document.querySelectorAll('svg.chart text, .chart-axis span')].map(e => {
  const fs = parseFloat(getComputedStyle(e).fontSize), svg = e.closest('svg');
  return svg ? fs * svg.getScreenCTM().a : fs; })`, &labels))
	if len(labels) < 2 {
		t.Errorf("chart labels: %v", labels)
	}
	for _, px := range labels {
		if px < 12 {
			t.Errorf("a chart label renders at %.1f px on a phone, want at least 12", px)
		}
	}
	screenshot(t, ctx, "console-phone-users")
	run("desktop again", emulation.ClearDeviceMetricsOverride(), chromedp.Navigate(e.URL+"/console/admins"), chromedp.WaitVisible("table", chromedp.ByQuery))
	if audit := text("main"); !strings.Contains(audit, "owner@ops.example") {
		t.Fatal("console account not listed")
	}
	run("audit", chromedp.Navigate(e.URL+"/console/audit?actor=console:owner@ops.example"), chromedp.WaitVisible("table", chromedp.ByQuery))
	if a := text("table"); !strings.Contains(a, "POST /console/devices/{id}/commands") || !strings.Contains(a, "422") {
		t.Fatalf("audit log lacks the refused command: %.1000s", a)
	}
}
