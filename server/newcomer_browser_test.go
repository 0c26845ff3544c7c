package server_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/pomona-mdm/pomona/internal/browser"
)

// TestNewcomerTenantChoiceOnAPhoneByKeyboard: on a 390 px phone, from the
// keyboard only, an administrator chooses a tenant that is not the first
// on the Groups page (typing its initial in the list, Tab, Return), creates
// a group, and creates it again: the refusal comes back on the same
// tenant's page (it showed the first tenant's, with nothing of the group);
// on the Groups and Profiles pages the tenant choice keeps a gap above the
// card under it (the card's border touched the Show button); on the
// Profiles page, a refused upload answered in place and then a second
// refusal (the same profile again) come back on the chosen tenant (the
// second showed the first tenant: "com.example.wifi already" over its
// "No profiles yet"). Fails on the old code at the gaps and at the tenant
// after the second refusal.
func TestNewcomerTenantChoiceOnAPhoneByKeyboard(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	do(t, e, "POST", "/api/v1/tenants", map[string]any{"name": "AAA listed first", "domains": []string{"first.example"}}, e.APIKey)
	ctx := browser.Start(t, e.Server.TLSConfig().Certificates[0].Leaf)
	run := browserStep(t, ctx, 30*time.Second, "main", "newcomer-phone")
	run("phone", browser.Phone())
	signInOwnerByKeyboard(t, ctx, w, clk, run)

	// gap is the distance from the tenant form's bottom to the next card's top.
	gap := func(page string) {
		t.Helper()
		var px float64
		run(page+": gap", chromedp.Evaluate(`(() => { const f = document.querySelector("main > form.inline"), c = f.nextElementSibling;
  return c.getBoundingClientRect().top - f.getBoundingClientRect().bottom; })()`, &px))
		if px < 8 {
			t.Errorf("%s: the tenant choice is %.0f px above the card under it (want a gap of at least 8)", page, px)
		}
	}
	waitFor := func(what, js string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var ok bool
			if err := chromedp.Run(ctx, chromedp.Evaluate(js, &ok)); err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				var got string
				chromedp.Run(ctx, chromedp.Text("main", &got, chromedp.ByQuery))
				t.Fatalf("%s: not shown\npage: %.1500s", what, got)
			}
		}
	}
	chosen := fmt.Sprintf(`document.readyState === "complete" && document.querySelector("#tenant") && document.querySelector("#tenant").value === %q`, w.tenant)

	run("groups", chromedp.Navigate(e.URL+"/console/groups"), chromedp.WaitVisible("#tenant", chromedp.ByID))
	gap("groups page")
	run("choose Example Corp", chromedp.Focus("#tenant", chromedp.ByID), chromedp.KeyEvent("E"), chromedp.KeyEvent(kb.Tab))
	var stop string
	run("on Show", chromedp.Evaluate(`document.activeElement.textContent.trim()`, &stop))
	if stop != "Show" {
		t.Fatalf("Tab from the tenant list reached %q, want Show", stop)
	}
	run("show", chromedp.KeyEvent(kb.Enter))
	waitFor("Example Corp's groups", chosen+` && location.search.includes("tenant=")`)
	run("create", chromedp.Focus("#name", chromedp.ByID), chromedp.KeyEvent("Phones"+kb.Enter))
	waitFor("the group created", `document.readyState === "complete" && !!document.querySelector(".flash") && document.querySelector(".flash").textContent.includes("Group Phones created.")`)
	run("groups again", chromedp.Navigate(e.URL+"/console/groups?tenant="+w.tenant), chromedp.WaitVisible("#name", chromedp.ByID))
	run("create again", chromedp.Focus("#name", chromedp.ByID), chromedp.KeyEvent("Phones"+kb.Enter))
	waitFor("the refusal", `document.readyState === "complete" && !!document.querySelector(".flash.error") && document.querySelector(".flash.error").textContent.includes("already")`)
	var value, listed string
	run("after the refusal", chromedp.Value("#tenant", &value, chromedp.ByID), chromedp.Text("main", &listed, chromedp.ByQuery))
	if value != w.tenant || !strings.Contains(listed, "Phones") {
		t.Errorf("after a refused group the page shows tenant %s (want %s, Example Corp) listing: %.600s", value, w.tenant, listed)
	}
	gap("groups page with a refusal")

	// The Profiles page: a refused upload is answered in place, at
	// /console/profiles without ?tenant=; the next refusal from there (the
	// same profile again) must still come back on Example Corp's page.
	do(t, e, "POST", "/api/v1/profiles", map[string]any{"tenant_id": w.tenant, "content": base64.StdEncoding.EncodeToString(wifiProfile("v1"))}, e.APIKey)
	dir := t.TempDir()
	vpn, wifi := filepath.Join(dir, "vpn.mobileconfig"), filepath.Join(dir, "wifi.mobileconfig")
	os.WriteFile(vpn, []byte(vpnProfile), 0o600)
	os.WriteFile(wifi, wifiProfile("v1"), 0o600)
	upload := `form[method=post][action="/console/profiles"] button`
	run("profiles", chromedp.Navigate(e.URL+"/console/profiles?tenant="+w.tenant), chromedp.WaitVisible("#file", chromedp.ByID))
	gap("profiles page")
	run("choose forbidden", chromedp.SetUploadFiles("#file", []string{vpn}, chromedp.ByID)) // the file chooser is the OS's
	run("upload forbidden", chromedp.Focus(upload, chromedp.ByQuery), chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(`[role=alert] table`, chromedp.ByQuery))
	gap("profiles page with a refused upload")
	run("choose again", chromedp.SetUploadFiles("#file", []string{wifi}, chromedp.ByID))
	run("upload again", chromedp.Focus(upload, chromedp.ByQuery), chromedp.KeyEvent(kb.Enter))
	waitFor("the refusal", `document.readyState === "complete" && !!document.querySelector(".flash.error") && document.querySelector(".flash.error").textContent.includes("com.example.wifi already")`)
	run("after the refusal", chromedp.Value("#tenant", &value, chromedp.ByID), chromedp.Text("main", &listed, chromedp.ByQuery))
	if value != w.tenant || !strings.Contains(listed, "com.example.wifi") {
		t.Errorf("after a refused upload the page shows tenant %s (want %s, Example Corp) listing: %.600s", value, w.tenant, listed)
	}
}
