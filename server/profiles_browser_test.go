package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/internal/browser"
)

// TestProfilesInChromium: an administrator makes a group, uploads a Wi-Fi
// profile (a forbidden one first: the check is shown on the page), assigns
// it, and sees it installed on the device page — in real headless
// Chromium, every page axe-checked.
func TestProfilesInChromium(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	ctx := browser.StartDesktop(t, e.Server.TLSConfig().Certificates[0].Leaf)
	run := browserStep(t, ctx, 15*time.Second, "main", "")
	text := browserText(t, run)
	signInOwnerByKeyboard(t, ctx, w, clk, run)

	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	dev, err := e.Server.Store.EnrollmentByAppleID(context.Background(), d.MDM.EnrollmentID)
	if err != nil {
		t.Fatal(err)
	}

	// A group with alice.
	run("new group", chromedp.Navigate(e.URL+"/console/groups?tenant="+w.tenant), chromedp.WaitVisible("#name", chromedp.ByID))
	a11yCheck(t, ctx, "groups page")
	run("create group", chromedp.SendKeys("#name", "Wi-Fi users", chromedp.ByID), chromedp.Click(`form[method=post][action="/console/groups"] button`, chromedp.ByQuery),
		chromedp.WaitVisible("#users", chromedp.ByID))
	run("add alice", chromedp.SendKeys("#users", "alice@example.com", chromedp.ByID), chromedp.Click(`form[action$="/members"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery))
	if got := text("main table"); !strings.Contains(got, "alice@example.com") {
		t.Fatalf("members: %s", got)
	}
	a11yCheck(t, ctx, "group page")

	// Upload: the forbidden one is refused on the page, the Wi-Fi profile is kept.
	dir := t.TempDir()
	vpn, wifi := filepath.Join(dir, "vpn.mobileconfig"), filepath.Join(dir, "wifi.mobileconfig")
	os.WriteFile(vpn, []byte(vpnProfile), 0o600)
	os.WriteFile(wifi, wifiProfile("v1"), 0o600)
	run("profiles", chromedp.Navigate(e.URL+"/console/profiles?tenant="+w.tenant), chromedp.WaitVisible("#file", chromedp.ByID))
	a11yCheck(t, ctx, "profiles page")
	run("upload forbidden", chromedp.SetUploadFiles("#file", []string{vpn}, chromedp.ByID), chromedp.Click(`form[method=post][action="/console/profiles"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(`[role=alert] table`, chromedp.ByQuery))
	if got := text(`[role=alert]`); !strings.Contains(got, "com.apple.vpn.managed (com.example.vpn.payload)") || !strings.Contains(got, "forbidden for a user enrollment on iOS") {
		t.Fatalf("refusal: %s", got)
	}
	a11yCheck(t, ctx, "profiles page with a refusal")
	run("upload", chromedp.SetUploadFiles("#file", []string{wifi}, chromedp.ByID), chromedp.Click(`form[method=post][action="/console/profiles"] button`, chromedp.ByQuery),
		chromedp.WaitVisible("#group", chromedp.ByID))
	run("assign", chromedp.SetValue("#group", groupID(t, w, "Wi-Fi users"), chromedp.ByID), chromedp.Click(`form[action$="/assignments"] button`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash.ok", chromedp.ByQuery))

	// The device installs it without anyone acting; the device page says so.
	converge(t, []*devicesim.Device{d}, "installed", func() bool {
		items, _ := e.Server.Store.ProfileItems(context.Background(), dev.ID)
		return len(items) == 1 && items[0].State == "installed"
	})
	run("device page", chromedp.Navigate(e.URL+"/console/devices/"+dev.ID), chromedp.WaitVisible("#command", chromedp.ByID))
	if got := text("main"); !strings.Contains(got, "com.example.wifi version 1: installed") {
		t.Fatalf("device page: %.1500s", got)
	}
	a11yCheck(t, ctx, "device page with profiles")
	run("profile page", chromedp.Navigate(e.URL+"/console/devices/"+dev.ID), chromedp.Click(`a[href^="/console/profiles/pr_"]`, chromedp.ByQuery),
		chromedp.WaitVisible("svg.rollout", chromedp.ByQuery))
	if got := text("main"); !strings.Contains(got, "1 installed") {
		t.Fatalf("profile page: %.1500s", got)
	}
	a11yCheck(t, ctx, "profile page")
}

func groupID(t *testing.T, w *world, name string) string {
	gs, err := w.e.Server.Store.Groups(context.Background(), w.tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gs {
		if g.Name == name {
			return g.ID
		}
	}
	t.Fatalf("no group %s", name)
	return ""
}
