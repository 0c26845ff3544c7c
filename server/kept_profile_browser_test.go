package server_test

import (
	"bytes"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/internal/browser"
)

// calendarProfile is an iOS-only payload (a subscribed calendar: macOS
// has no such payload): refused when macOS is among the chosen platforms,
// accepted for iOS alone.
const calendarProfile = `<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>com.example.calendar</string>
<key>PayloadUUID</key><string>7A0B0C5E-1111-4222-8333-444455556666</string>
<key>PayloadDisplayName</key><string>Team calendar</string>
<key>PayloadContent</key><array><dict>
	<key>PayloadType</key><string>com.apple.subscribedcalendar.account</string>
	<key>PayloadIdentifier</key><string>com.example.calendar.payload</string>
	<key>PayloadUUID</key><string>6A0B0C5E-1111-4222-8333-444455556666</string>
	<key>PayloadVersion</key><integer>1</integer>
	<key>SubCalAccountHostName</key><string>calendar.example.com</string>
</dict></array>
</dict></plist>`

// TestConsoleRefusedUploadKeepsTheFile: on a 390 px phone, by keyboard,
// a profile refused in place keeps its file (session 14's newuser6 left
// it: "the file chooser is empty again, the text says to upload it
// again"). An iOS-only profile uploaded for iOS and macOS is refused on
// macOS; the page names the kept file, the file chooser is optional and
// says so; Space unchecks macOS and Return uploads the kept file, which
// is accepted. Nothing on the page is wider than the phone. Fails on the
// old code (no kept file: the chooser is required and empty, the browser
// stops the form).
func TestConsoleRefusedUploadKeepsTheFile(t *testing.T) {
	w, clk := consoleWorld(t)
	e := w.e
	ctx := browser.Start(t, e.Server.TLSConfig().Certificates[0].Leaf)
	run := browserStep(t, ctx, 30*time.Second, "main", "kept-file-failed")
	run("phone", browser.Phone())
	signInOwnerByKeyboard(t, ctx, w, clk, run)

	cal := filepath.Join(t.TempDir(), "team-calendar.mobileconfig")
	os.WriteFile(cal, []byte(calendarProfile), 0o600)
	form := `form[method=post][action="/console/profiles"]`
	run("profiles", chromedp.Navigate(e.URL+"/console/profiles?tenant="+w.tenant), chromedp.WaitVisible("#file", chromedp.ByID))
	run("choose the file", chromedp.SetUploadFiles("#file", []string{cal}, chromedp.ByID)) // the file chooser is the OS's
	run("tick iOS", chromedp.Focus(form+` input[value=iOS]`, chromedp.ByQuery), chromedp.KeyEvent(" "))
	run("tick macOS", chromedp.Focus(form+` input[value=macOS]`, chromedp.ByQuery), chromedp.KeyEvent(" "))
	run("upload", chromedp.Focus(form+" button", chromedp.ByQuery), chromedp.KeyEvent(kb.Enter))
	waitMain := func(what, want string) string {
		t.Helper()
		js := fmt.Sprintf(`document.readyState === "complete" && document.querySelector("main").textContent.includes(%q)`, want)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			var ok bool
			if err := chromedp.Run(ctx, chromedp.Evaluate(js, &ok)); err == nil && ok {
				var got string
				chromedp.Run(ctx, chromedp.Text("main", &got, chromedp.ByQuery))
				return got
			}
			if time.Now().After(deadline) {
				var got string
				chromedp.Run(ctx, chromedp.Text("main", &got, chromedp.ByQuery))
				screenshot(t, ctx, "kept-file-"+what)
				t.Fatalf("%s: %q not shown\npage: %.1500s", what, want, got)
			}
		}
	}
	waitMain("refusal", "is not available on macOS")

	var note, label string
	var required bool
	var overflow int
	run("read the form", chromedp.Text("#kept-file", &note, chromedp.ByID), chromedp.Text(`label[for=file]`, &label, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector("#file").required`, &required),
		chromedp.Evaluate(`document.documentElement.scrollWidth - window.innerWidth`, &overflow))
	if !strings.Contains(note, "team-calendar.mobileconfig") || required || !strings.Contains(label, "team-calendar.mobileconfig") {
		t.Errorf("refused upload: kept note %q, label %q, file required %v (want the file named and kept, the chooser optional)", note, label, required)
	}
	if overflow > 0 {
		screenshot(t, ctx, "kept-file-wide")
		t.Errorf("the refused upload's page is %d px wider than the phone", overflow)
	}

	// Only the platform changes: uncheck macOS, Return on Upload.
	run("untick macOS", chromedp.Focus(form+` input[value=macOS]`, chromedp.ByQuery), chromedp.KeyEvent(" "))
	run("upload again", chromedp.Focus(form+" button", chromedp.ByQuery), chromedp.KeyEvent(kb.Enter))
	got := waitMain("upload of the kept file", "com.example.calendar uploaded")
	if !strings.Contains(got, "Team calendar") {
		t.Errorf("after the kept file's upload: %.800s", got)
	}
}

// TestConsoleKeptProfileFile: the kept file by HTTP, as a browser posts
// it. A refused new version keeps its file on the profile's page; a
// corrected file chosen beside a kept one wins; a kept_file that is not
// base64 (a tampered form) is a clear 4xx naming what to do, never a
// crash; a form with neither says to choose a file.
func TestConsoleKeptProfileFile(t *testing.T) {
	w, clk := consoleWorld(t)
	u := newConsoleUser(t, w, clk, "owner@ops.example", "owner")
	u.get("/console/profiles?tenant=" + w.tenant)
	code, body := u.postMultipart("/console/profiles", map[string]string{"tenant": w.tenant}, map[string][]byte{"file": wifiProfile("v1")})
	m := regexp.MustCompile(`/console/profiles/(pr_[a-z0-9]+)`).FindStringSubmatch(body)
	if code != 200 || !strings.Contains(body, "uploaded") || m == nil {
		t.Fatalf("upload: %d %.500s", code, body)
	}
	// A new version with a payload a user enrollment forbids (the same
	// PayloadIdentifier): refused on the profile's page, the file kept.
	bad := strings.ReplaceAll(vpnProfile, "com.example.vpn", "com.example.wifi")
	code, body = u.postMultipart("/console/profiles/"+m[1]+"/versions", map[string]string{}, map[string][]byte{"file": []byte(bad)})
	kept := regexp.MustCompile(`name="kept_file" value="([^"]+)"`).FindStringSubmatch(body)
	if code != 422 || kept == nil || !strings.Contains(body, `id="kept-file"`) || !strings.Contains(body, "file.bin") {
		t.Fatalf("refused version: %d, want the file kept:\n%.3000s", code, body)
	}
	kept[1] = html.UnescapeString(kept[1]) // as a browser posts the attribute
	// The kept file alone is refused again (it is checked as any upload).
	code, body = u.postMultipart("/console/profiles/"+m[1]+"/versions", map[string]string{"kept_file": kept[1], "kept_name": "file.bin"}, nil)
	if code != 422 || !strings.Contains(body, "is forbidden for a user enrollment") {
		t.Errorf("the kept file again: %d %.1500s", code, body)
	}
	// A corrected file beside the kept one wins.
	code, body = u.postMultipart("/console/profiles/"+m[1]+"/versions", map[string]string{"kept_file": kept[1], "kept_name": "file.bin"},
		map[string][]byte{"file": wifiProfile("v2")})
	if code != 200 || !strings.Contains(body, "Version 2 uploaded") {
		t.Errorf("a corrected file beside the kept one: %d %.1500s", code, body)
	}
	// A file one byte over the limit is refused as too large (it was cut
	// at the limit and refused as an unreadable profile), on both pages:
	// the console's refusal (a 413 in the log) returns to the page with
	// the message, and no version is made.
	big := append(bytes.Repeat([]byte{' '}, app.MaxProfileFile-len(wifiProfile("v3"))+1), wifiProfile("v3")...)
	for _, path := range []string{"/console/profiles", "/console/profiles/" + m[1] + "/versions"} {
		code, body = u.postMultipart(path, map[string]string{"tenant": w.tenant}, map[string][]byte{"file": big})
		if code >= 500 || !strings.Contains(body, "The file is larger than 2 MiB") || strings.Contains(body, "Version 3 uploaded") {
			t.Errorf("%s with a file of %d bytes: %d, want the page saying it is too large:\n%.3000s", path, len(big), code, body)
		}
	}
	// A tampered kept file, and no file at all.
	for kf, want := range map[string]string{"not base64 <>": "The kept file could not be read: choose the .mobileconfig file again.", "": "Choose a .mobileconfig file."} {
		code, body = u.postMultipart("/console/profiles", map[string]string{"tenant": w.tenant, "kept_file": kf}, nil)
		if code >= 500 || !strings.Contains(body, want) {
			t.Errorf("kept_file %q: %d, want %q:\n%.1500s", kf, code, want, body)
		}
	}
}
