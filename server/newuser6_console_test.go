package server_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pomona-mdm/pomona/internal/browser"
)

// TestConsoleTextsANewAdminReads (newuser6 findings, each fails on the
// old code): the dashboard counts in words ("users in 2 tenant(s)",
// "0 enrollment(s) started"; for a first tenant "1 users in 1
// tenant(s)"); the device page's command history names the command on
// each Resend and Show result (a screen reader heard "Resend, Resend,
// Resend" with nothing to tell them apart); what the device reported is
// dated like every other time on the page (it was the raw
// 2026-12-02T14:28:03Z under "Enrolled 2026-12-02 14:27 UTC").
func TestConsoleTextsANewAdminReads(t *testing.T) {
	w, clk := consoleWorld(t)
	ctx := context.Background()
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	for _, c := range []map[string]any{{"request_type": "ProfileList"}, {"request_type": "DeviceInformation", "queries": []string{"OSVersion"}}} {
		c["push"] = false
		mustStatus(t, do(t, w.e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", c, w.e.APIKey), 201)
	}
	cmd, err := d.Poll(ctx, nil, false)
	for err == nil && cmd != nil {
		cmd, err = d.Poll(ctx, d.Answer(cmd), false)
	}
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := w.e.Server.Store.EnrollmentByAppleID(ctx, d.MDM.EnrollmentID)
	u := newConsoleUser(t, w, clk, "owner@ops.example", "owner")

	_, dash := u.get("/console/")
	for _, want := range []string{"users in 2 tenants", "No enrollments started but not completed"} {
		if !strings.Contains(dash, want) {
			t.Errorf("dashboard: no %q", want)
		}
	}
	if strings.Contains(dash, "(s)") {
		t.Errorf("dashboard still counts with (s): %s", regexp.MustCompile(`[^>]*\(s\)[^<]*`).FindString(dash))
	}

	_, page := u.get("/console/devices/" + dev.ID)
	names := regexp.MustCompile(`<button type="submit" class="secondary"[^>]*>Resend</button>`).FindAllString(page, -1)
	labels := map[string]bool{}
	for _, b := range names {
		m := regexp.MustCompile(`aria-label="Resend (\w+) [0-9A-F-]{36}"`).FindStringSubmatch(b)
		if m == nil {
			t.Errorf("a Resend button does not name its command: %s", b)
			continue
		}
		labels[m[1]] = true
	}
	if len(names) < 2 || !labels["ProfileList"] || !labels["DeviceInformation"] {
		t.Errorf("Resend buttons: %q", names)
	}
	for _, s := range regexp.MustCompile(`<summary[^>]*>Show result</summary>`).FindAllString(page, -1) {
		if !strings.Contains(s, `aria-label="Show result of `) {
			t.Errorf("a Show result does not name its command: %s", s)
		}
	}
	if m := regexp.MustCompile(`reported ([^<]+)</p>`).FindStringSubmatch(page); m == nil || !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d UTC$`).MatchString(m[1]) {
		t.Errorf("what the device reported is dated %q (want 2006-01-02 15:04 UTC)", m)
	}
}

// TestConsolePlaceholdersFitAPhone: at 390 px no placeholder of the
// console's forms is cut off (the tenant's contact line "Questions? IT
// help desk, extension 4357" ended at "435", the audit log's actor
// "console:ops@example.com or key:…" at "or"; newuser6 finding, fails on
// the old code). A placeholder is the example of what to type: cut, it is a
// wrong example.
func TestConsolePlaceholdersFitAPhone(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	ctx := browser.Start(t, e.Server.TLSConfig().Certificates[0].Leaf)
	run := browserStep(t, ctx, 30*time.Second, "main", "placeholders-failed")
	run("phone", browser.Phone())
	signInOwnerByKeyboard(t, ctx, w, clk, run)
	for _, p := range []string{"/console/tenants/" + w.tenant, "/console/tenants", "/console/users", "/console/profiles", "/console/webhooks", "/console/audit"} {
		var cut []string
		run(p, chromedp.Navigate(e.URL+p), chromedp.WaitVisible("main h1", chromedp.ByQuery),
			chromedp.Evaluate(`(() => { const c = document.createElement("canvas").getContext("2d");
  return [...document.querySelectorAll("main input[placeholder]")].filter(i => { const cs = getComputedStyle(i);
    c.font = cs.fontStyle + " " + cs.fontWeight + " " + cs.fontSize + " " + cs.fontFamily;
    const room = i.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    return c.measureText(i.placeholder).width > room + 1; }).map(i => i.name + ": " + i.placeholder); })()`, &cut))
		if len(cut) > 0 {
			t.Errorf("%s: placeholders cut off at 390 px: %q", p, cut)
		}
	}
}
