package server_test

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/pomona-mdm/pomona/internal/browser"
)

// TestConsoleNewAdminByKeyboard is what a new administrator with a
// keyboard met on a new server's pages (session 8), at 1280 px and at a
// phone's 390 px: every Tab stop of the header shows a focus ring that
// stands out from the dark header (the accent blue on it was 2.1:1), a
// list with nothing in it is no Tab stop (an empty region had the focus,
// with nothing to scroll), no list scrolls sideways (on a phone the
// devices', the audit log's and the console accounts' did, the audit log's
// actions cut to two letters a line), and an open Menu keeps Sign out in the top row.
func TestConsoleNewAdminByKeyboard(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	ctx := browser.StartDesktop(t, e.Server.TLSConfig().Certificates[0].Leaf)
	run := browserStep(t, ctx, 30*time.Second, "main", "newadmin-failed")
	signInOwnerByKeyboard(t, ctx, w, clk, run)

	// Empty lists: a group without members, no unenrolled devices, no
	// profiles.
	g := do(t, e, "POST", "/api/v1/groups", map[string]any{"tenant_id": w.tenant, "name": "Nobody yet"}, e.APIKey)
	mustStatus(t, g, 201)
	enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	pages := []struct{ name, path string }{
		{"devices", "/console/devices"},
		{"audit log", "/console/audit"},
		{"console accounts", "/console/admins"},
		{"dashboard", "/console/"},
		{"group without members", "/console/groups/" + g.json(t)["id"].(string)},
		{"no unenrolled devices", "/console/devices?status=unenrolled"},
		{"no profiles", "/console/profiles?tenant=" + w.tenant},
	}
	for _, size := range []string{"desktop", "phone"} {
		view := browser.Desktop()
		if size == "phone" {
			view = browser.Phone()
		}
		run(size, view)
		for _, p := range pages {
			run(p.name, chromedp.Navigate(e.URL+p.path), chromedp.WaitVisible("main h1", chromedp.ByQuery))
			tabWalk(t, run, p.name+" ("+size+")", 4)
			var cut []string
			run(p.name+": cut", chromedp.Evaluate(`[...document.querySelectorAll('main .table-wrap, main .card, html')].filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.tagName + " " + e.textContent.trim().slice(0, 40))`, &cut))
			if len(cut) > 0 {
				t.Errorf("%s (%s): scrolls sideways or is cut off: %q", p.name, size, cut)
			}
		}
	}

	// On a phone, Return on Menu opens the column of links; Sign out stays
	// beside Menu at the top instead of moving to the column's middle.
	var open bool
	var signOutTop, menuTop float64
	run("open the menu", chromedp.Focus("header.top button.menu", chromedp.ByQuery), chromedp.KeyEvent(kb.Enter),
		chromedp.Evaluate(`document.querySelector("#menu").matches(":popover-open")`, &open),
		chromedp.Evaluate(`document.querySelector("header.top .who button").getBoundingClientRect().top`, &signOutTop),
		chromedp.Evaluate(`document.querySelector("header.top button.menu").getBoundingClientRect().top`, &menuTop))
	if !open || signOutTop-menuTop > 16 {
		t.Errorf("open Menu: open %v; Sign out at %.0f px, Menu at %.0f px (want them in one row)", open, signOutTop, menuTop)
	}
}
