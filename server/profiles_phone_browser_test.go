package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/internal/browser"
	"github.com/pomona-mdm/pomona/totp"
)

// tabStopJS describes the focused element after a Tab: what it is, its
// label, where it is, and NO-FOCUS-RING, LOW-CONTRAST-RING (the ring's
// colour against what lies behind it under WCAG 1.4.11's 3:1), OFF-SCREEN
// or EMPTY-REGION (a focusable region holding no table: a Tab stop with
// nothing to scroll) when it fails.
const tabStopJS = `(() => { const e = document.activeElement; if (!e || e === document.body) return "body";
  const r = e.getBoundingClientRect(), cs = getComputedStyle(e);
  let label = e.getAttribute("aria-label") || (e.labels && e.labels[0] ? e.labels[0].textContent : "") || e.textContent || e.value || "";
  label = label.replace(/\s+/g, " ").trim().slice(0, 50);
  const ring = cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) >= 2, focus = ring || cs.boxShadow !== "none";
  const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  let bg = [255, 255, 255];
  for (let p = e.parentElement; p; p = p.parentElement) { const c = rgb(getComputedStyle(p).backgroundColor); if (c.length === 3 || c[3] > 0) { bg = c; break; } }
  const a = lum(rgb(cs.outlineColor)), b = lum(bg), contrast = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  return e.tagName.toLowerCase() + (e.type ? "[" + e.type + "]" : "") + (e.id ? "#" + e.id : "") + " «" + label + "»" +
    " x=" + Math.round(r.left) + ".." + Math.round(r.right) + " h=" + Math.round(r.height) + (focus ? "" : " NO-FOCUS-RING") +
    (ring && contrast < 3 ? " LOW-CONTRAST-RING " + contrast.toFixed(1) + ":1" : "") +
    (e.getAttribute("role") === "region" && !e.querySelector("table") ? " EMPTY-REGION" : "") +
    (r.left < -1 || r.right > document.documentElement.clientWidth + 1 || r.height === 0 ? " OFF-SCREEN" : ""); })()`

// tabWalk presses Tab from the top of the page until the focus leaves it
// (at most 120 stops) and fails the test on every stop tabStopJS marks
// and when there are fewer than min stops (the walk went wrong; the
// console's header alone has four).
func tabWalk(t *testing.T, run func(string, ...chromedp.Action), page string, min int) {
	t.Helper()
	run(page+": top", chromedp.Evaluate(`document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)`, nil))
	seen := 0
	for i := 0; i < 120; i++ {
		var st string
		run(page+": tab", chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(tabStopJS, &st))
		if st == "body" {
			if seen > 0 {
				break
			}
			continue
		}
		seen++
		for _, bad := range []string{"NO-FOCUS-RING", "LOW-CONTRAST-RING", "EMPTY-REGION", "OFF-SCREEN"} {
			if strings.Contains(st, bad) {
				t.Errorf("%s: Tab stop %d: %s", page, seen, st)
				break
			}
		}
	}
	if seen < min {
		t.Errorf("%s: only %d Tab stops", page, seen)
	}
}

// signInOwnerByKeyboard sets up the first owner from the start-up link and
// signs in with the next code, typing and pressing Return only.
func signInOwnerByKeyboard(t *testing.T, ctx context.Context, w *world, clk *consoleClock, run func(string, ...chromedp.Action)) {
	t.Helper()
	var s string
	run("setup page", chromedp.Navigate(w.e.Server.OwnerSetupURL()), chromedp.WaitVisible("#secret", chromedp.ByID), chromedp.Text("#secret", &s, chromedp.ByID))
	secret, err := totp.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	run("setup", chromedp.SendKeys("#email", "owner@ops.example", chromedp.ByID),
		chromedp.SendKeys("#password", "owner password 123", chromedp.ByID), chromedp.SendKeys("#password2", "owner password 123", chromedp.ByID),
		chromedp.SendKeys("#code", totp.Code(secret, clk.now())+kb.Enter, chromedp.ByID), chromedp.WaitVisible(".flash", chromedp.ByQuery))
	run("sign in", chromedp.SendKeys("#email", "owner@ops.example", chromedp.ByID), chromedp.SendKeys("#password", "owner password 123", chromedp.ByID),
		chromedp.SendKeys("#code", clk.nextCode(secret)+kb.Enter, chromedp.ByID), chromedp.WaitVisible("svg.chart", chromedp.ByQuery))
}

// onScreen is a script: the table cells holding text exist and lie
// wholly inside the window, wide enough to read (not cut at a card's
// edge inside a sideways-scrolling region).
func onScreen(text string) string {
	return fmt.Sprintf(`(() => { const cells = [...document.querySelectorAll("main td")].filter(td => td.textContent.includes(%q));
  return cells.length > 0 && cells.every(td => { const r = td.getBoundingClientRect(); return r.width >= 150 && r.left >= 0 && r.right <= document.documentElement.clientWidth; }); })()`, text)
}

// TestProfilesOnAPhoneByKeyboard walks the Groups and Profiles pages the
// way a new administrator with a keyboard and a 390 px wide window does
// (docs/console.md): every Tab stop shows a focus ring and lies on the
// screen, no page scrolls sideways, a refused upload's reasons and the
// failed devices' reasons are readable (not cut at the card's edge),
// the settings fields are full-size inputs, Retry, the settings form,
// the group's and the profile's deletions work from the keyboard, and a
// group is not deleted without ticking its confirmation.
func TestProfilesOnAPhoneByKeyboard(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	k := e.APIKey
	ctx := browser.Start(t, e.Server.TLSConfig().Certificates[0].Leaf)
	run := browserStep(t, ctx, 30*time.Second, "main", "phone-failed")
	text := browserText(t, run)
	// flash waits for the page a form's POST leads to, with its message
	// (the previous page may show a message too: wait for this one).
	flash := func(want string) {
		t.Helper()
		js := fmt.Sprintf(`document.readyState === "complete" && !!document.querySelector(".flash") && document.querySelector(".flash").textContent.includes(%q)`, want)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var ok bool
			step, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := chromedp.Run(step, chromedp.Evaluate(js, &ok)) // fails while the page navigates
			cancel()
			if err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				var got string
				chromedp.Run(ctx, chromedp.Text("main", &got, chromedp.ByQuery))
				t.Fatalf("message %q not shown: %v\npage: %.1500s", want, err, got)
			}
		}
	}
	// press focuses sel (as Tab would reach it) and presses key.
	press := func(what, sel, key string, more ...chromedp.Action) {
		t.Helper()
		run(what, append([]chromedp.Action{chromedp.Focus(sel, chromedp.ByQuery), chromedp.KeyEvent(key)}, more...)...)
	}
	// fits checks the page at phone width: no sideways scrolling, nothing
	// cut inside a card, and a Tab walk of the whole page whose every stop
	// has a visible focus ring and lies on the screen.
	fits := func(page string) {
		t.Helper()
		var sw int
		var cut []string
		run(page+": widths", chromedp.Evaluate(`document.documentElement.scrollWidth`, &sw),
			chromedp.Evaluate(`[...document.querySelectorAll('main td, main .table-wrap, main .card')].filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.tagName + " " + e.textContent.trim().slice(0, 40))`, &cut))
		if sw > 391 {
			t.Errorf("%s scrolls sideways on a phone (%d px)", page, sw)
		}
		if len(cut) > 0 {
			t.Errorf("%s: cut off on a phone: %q", page, cut)
		}
		tabWalk(t, run, page, 5)
	}
	run("phone", browser.Phone())
	signInOwnerByKeyboard(t, ctx, w, clk, run)

	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, k), 200)
	phone := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	refuser := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	refuser.RefuseInstall("com.example.wifi", "The user declined the profile.")
	ds := []*devicesim.Device{phone, refuser}

	// A group, created and filled from the keyboard.
	run("groups", chromedp.Navigate(e.URL+"/console/groups?tenant="+w.tenant), chromedp.WaitVisible("#name", chromedp.ByID))
	fits("groups page")
	// The header is one row on a phone (it wrapped to 250 of 844 px before
	// any content); its links are behind "Menu", opened with Return.
	var headerH int
	var open bool
	var stop string
	run("header height", chromedp.Evaluate(`Math.round(document.querySelector("header.top").getBoundingClientRect().height)`, &headerH))
	if headerH > 80 {
		t.Errorf("the console's header takes %d px of a phone's 844", headerH)
	}
	isOpen := `document.querySelector("#menu").matches(":popover-open")`
	press("open the menu", "header.top button.menu", kb.Enter)
	run("menu open", chromedp.Evaluate(isOpen, &open),
		chromedp.KeyEvent(kb.Tab), chromedp.Evaluate(tabStopJS, &stop))
	if !open || !strings.Contains(stop, "«Dashboard»") || strings.Contains(stop, "NO-FOCUS-RING") || strings.Contains(stop, "LOW-CONTRAST-RING") || strings.Contains(stop, "OFF-SCREEN") {
		t.Errorf("Return on Menu: open %v, next Tab stop %s (want the Dashboard link, on screen, with a focus ring)", open, stop)
	}
	// Escape closes it, from inside it, and focus goes back to Menu.
	var onMenu bool
	run("escape", chromedp.KeyEvent(kb.Escape), chromedp.Evaluate(isOpen, &open),
		chromedp.Evaluate(`document.activeElement === document.querySelector("header.top button.menu")`, &onMenu))
	if open || !onMenu {
		t.Errorf("Escape in the open Menu: open %v, focus back on Menu %v (want closed, on Menu)", open, onMenu)
	}
	press("open the menu again", "header.top button.menu", kb.Enter)
	press("close the menu", "header.top button.menu", kb.Enter)
	run("menu closed", chromedp.Evaluate(isOpen, &open))
	if open {
		t.Error("Return on an open Menu did not close it")
	}
	run("create group", chromedp.SendKeys("#name", "Wi-Fi users"+kb.Enter, chromedp.ByID), chromedp.WaitVisible("#users", chromedp.ByID))
	flash("Group Wi-Fi users created.")
	run("member", chromedp.SendKeys("#users", "alice@example.com", chromedp.ByID))
	press("add member", `form[action$="/members"] button`, kb.Enter)
	flash("1 added.")
	fits("group page")
	gid := groupID(t, w, "Wi-Fi users")

	// A refused upload: the reasons are on the page and readable.
	dir := t.TempDir()
	vpn, wifi := filepath.Join(dir, "vpn.mobileconfig"), filepath.Join(dir, "wifi.mobileconfig")
	os.WriteFile(vpn, []byte(vpnProfile), 0o600)
	os.WriteFile(wifi, wifiProfile("v1"), 0o600)
	run("profiles", chromedp.Navigate(e.URL+"/console/profiles?tenant="+w.tenant), chromedp.WaitVisible("#file", chromedp.ByID))
	fits("profiles page")
	run("choose forbidden", chromedp.SetUploadFiles("#file", []string{vpn}, chromedp.ByID)) // the file chooser is the OS's
	press("upload forbidden", `form[method=post][action="/console/profiles"] button`, kb.Enter, chromedp.WaitVisible(`[role=alert] table`, chromedp.ByQuery))
	if got := text(`[role=alert]`); !strings.Contains(got, "forbidden for a user enrollment on iOS") || !strings.Contains(got, "Nothing was saved") {
		t.Errorf("refusal: %s", got)
	}
	var reasonVisible bool
	run("reason on screen", chromedp.Evaluate(onScreen("forbidden for a user enrollment"), &reasonVisible))
	if !reasonVisible {
		t.Error("a refused upload's reason is cut off on a phone")
	}
	fits("profiles page with a refusal")
	screenshot(t, ctx, "console-phone-profile-refused")
	run("choose", chromedp.SetUploadFiles("#file", []string{wifi}, chromedp.ByID))
	press("upload", `form[method=post][action="/console/profiles"] button`, kb.Enter)
	flash("uploaded")

	// Assign to the group from the keyboard: type to choose the option.
	var chosen string
	run("choose group", chromedp.Focus("#group", chromedp.ByID), chromedp.KeyEvent("W"), chromedp.Value("#group", &chosen, chromedp.ByID))
	if chosen != gid {
		t.Fatalf("typing W in the group list chose %q, want %s", chosen, gid)
	}
	press("assign", `form[action$="/assignments"] button`, kb.Enter)
	flash("Assignment saved")
	var pid string
	run("profile id", chromedp.Evaluate(`location.pathname.split("/").pop()`, &pid))
	converge(t, ds, "installed on one, refused by the other", func() bool {
		c := do(t, e, "GET", "/api/v1/profiles/"+pid+"/status", nil, k).json(t)["counts"].(map[string]any)
		return c["installed"] == 1.0 && c["failed"] == 1.0
	})

	// The failed device with Apple's reason, readable, and Retry.
	run("profile page", chromedp.Navigate(e.URL+"/console/profiles/"+pid), chromedp.WaitVisible("svg.rollout", chromedp.ByQuery))
	if got := text("main"); !strings.Contains(got, "MCProfileErrorDomain 1009: The user declined the profile.") {
		t.Fatalf("failed devices: %.2000s", got)
	}
	run("reason on screen", chromedp.Evaluate(onScreen("MCProfileErrorDomain 1009"), &reasonVisible))
	if !reasonVisible {
		t.Error("Apple's reason of a failed device is cut off on a phone")
	}
	var widths []float64
	run("settings fields", chromedp.Evaluate(`["#pname", "#min_os", "#group"].map(s => document.querySelector(s).getBoundingClientRect().width)`, &widths))
	if len(widths) != 3 || widths[0] < 250 || widths[1] < 250 {
		t.Errorf("the settings form's text fields are %v px wide on a phone (unstyled inputs?)", widths)
	}
	fits("profile page")
	screenshot(t, ctx, "console-phone-profile")
	a11yCheck(t, ctx, "profile page with a failed device")
	run("phone again", browser.Phone())
	press("retry", `form[action$="/retry"] button`, kb.Enter)
	flash("Retry queued.")

	// Settings from the keyboard: replace the name, Return saves.
	run("rename", chromedp.Focus("#pname", chromedp.ByID), chromedp.Evaluate(`document.querySelector("#pname").select()`, nil),
		chromedp.KeyEvent("Phones Wi-Fi"+kb.Enter))
	flash("Settings saved")
	if h := text("main h1"); h != "Phones Wi-Fi" {
		t.Fatalf("renamed to %q", h)
	}

	// The device page lists the profile with its state.
	dev, _ := e.Server.Store.EnrollmentByAppleID(context.Background(), phone.MDM.EnrollmentID)
	run("device page", chromedp.Navigate(e.URL+"/console/devices/"+dev.ID), chromedp.WaitVisible("#command", chromedp.ByID))
	if got := text("main"); !strings.Contains(got, "com.example.wifi version 1: installed") {
		t.Fatalf("device page: %.1500s", got)
	}
	fits("device page")

	// Deleting the group: Return on its button does nothing until the
	// confirmation is ticked (Space).
	run("group page", chromedp.Navigate(e.URL+"/console/groups/"+gid), chromedp.WaitVisible(`form[action$="/delete"] button`, chromedp.ByQuery))
	press("delete unticked", `form[action$="/delete"] button.danger`, kb.Enter)
	time.Sleep(300 * time.Millisecond)
	if _, err := e.Server.Store.Group(context.Background(), gid); err != nil {
		t.Fatal("the group was deleted without its confirmation")
	}
	press("tick", `form[action$="/delete"] input[name=confirm]`, " ")
	press("delete group", `form[action$="/delete"] button.danger`, kb.Enter)
	flash("Group Wi-Fi users deleted.")

	// Deleting the profile: the dry run's count, a tick, Return.
	run("profile again", chromedp.Navigate(e.URL+"/console/profiles/"+pid), chromedp.WaitVisible(`form[action$="/delete"]`, chromedp.ByQuery))
	if got := text(`form[action$="/delete"]`); !strings.Contains(got, "device(s) lose Phones Wi-Fi") {
		t.Fatalf("delete form: %s", got)
	}
	press("tick", `form[action$="/delete"] input[name=confirm]`, " ")
	press("delete profile", `form[action$="/delete"] button.danger`, kb.Enter)
	flash("Profile Phones Wi-Fi deleted")
}
