package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/pomona-mdm/pomona/internal/browser"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/totp"
)

// callbackCatcher records the Location of the 308 that ends the sign-in
// (Chromium cannot follow Apple's callback scheme, so the answer is caught
// at the response stage).
type callbackCatcher struct {
	mu       sync.Mutex
	location string
	status   int64
}

func (c *callbackCatcher) listen(ctx context.Context) {
	chromedp.ListenTarget(ctx, func(ev any) {
		e, ok := ev.(*fetch.EventRequestPaused)
		if !ok {
			return
		}
		c.mu.Lock()
		if e.ResponseStatusCode >= 300 && e.ResponseStatusCode < 400 {
			for _, h := range e.ResponseHeaders {
				if strings.EqualFold(h.Name, "Location") {
					c.location, c.status = h.Value, e.ResponseStatusCode
				}
			}
		}
		c.mu.Unlock()
		go chromedp.Run(ctx, fetch.ContinueRequest(e.RequestID))
	})
}

func (c *callbackCatcher) get() (string, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.location, c.status
}

func screenshot(t testing.TB, ctx context.Context, name string) {
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := os.Getenv("POMONA_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
}

func TestSignInInChromium(t *testing.T) {
	w := newWorld(t, true)
	ctx := browser.Start(t, w.e.Server.TLSConfig().Certificates[0].Leaf)
	var cb callbackCatcher
	cb.listen(ctx)
	login := w.e.URL + "/login/" + w.tenant + "?user-identifier=alice%40example.com"

	var account, ro, acUser, acPass string
	var okAcct bool
	err := chromedp.Run(ctx,
		network.Enable(),
		fetch.Enable().WithPatterns([]*fetch.RequestPattern{{URLPattern: "*/login/*", RequestStage: fetch.RequestStageResponse}}),
		chromedp.Navigate(login),
		chromedp.WaitVisible(`#password`, chromedp.ByQuery),
		chromedp.Value(`#identifier`, &account, chromedp.ByQuery),
		chromedp.AttributeValue(`#identifier`, "readonly", &ro, &okAcct, chromedp.ByQuery),
		chromedp.AttributeValue(`#identifier`, "autocomplete", &acUser, nil, chromedp.ByQuery),
		chromedp.AttributeValue(`#password`, "autocomplete", &acPass, nil, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if account != "alice@example.com" || !okAcct || acUser != "username" || acPass != "current-password" {
		t.Fatalf("account field %q readonly=%v autocomplete %q/%q", account, okAcct, acUser, acPass)
	}
	screenshot(t, ctx, "signin-password")

	// A wrong password shows the generic message, announced as an alert.
	var alert string
	err = chromedp.Run(ctx,
		chromedp.SendKeys(`#password`, "wrong password", chromedp.ByQuery),
		chromedp.Click(`button[value=continue]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[role=alert]`, chromedp.ByQuery),
		chromedp.Text(`[role=alert]`, &alert, chromedp.ByQuery),
	)
	if err != nil || !strings.Contains(alert, "account or password is not correct") {
		t.Fatalf("wrong password: %q %v", alert, err)
	}

	// The right password leads to the first-time second-factor setup.
	var secret, otpauth, acCode string
	var hasQR bool
	err = chromedp.Run(ctx,
		chromedp.SendKeys(`#password`, "alice-password", chromedp.ByQuery),
		chromedp.Click(`button[value=continue]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#secret`, chromedp.ByQuery),
		chromedp.Text(`#secret`, &secret, chromedp.ByQuery),
		chromedp.AttributeValue(`#otpauth`, "href", &otpauth, nil, chromedp.ByQuery),
		chromedp.AttributeValue(`#code`, "autocomplete", &acCode, nil, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('.qr svg') !== null`, &hasQR),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(otpauth, "otpauth://totp/") || acCode != "one-time-code" || !hasQR {
		t.Fatalf("setup page: otpauth %q autocomplete %q qr %v", otpauth, acCode, hasQR)
	}
	screenshot(t, ctx, "signin-setup")
	key, err := totp.Decode(secret)
	if err != nil {
		t.Fatalf("secret text %q: %v", secret, err)
	}
	err = chromedp.Run(ctx,
		chromedp.SendKeys(`#code`, totp.Code(key, time.Now()), chromedp.ByQuery),
		chromedp.Click(`button[value=continue]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if loc, _ := cb.get(); loc != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	loc, status := cb.get()
	const prefix = "apple-remotemanagement-user-login://authentication-results?access-token="
	if status != 308 || !strings.HasPrefix(loc, prefix) || !opaquetoken.Valid(strings.TrimPrefix(loc, prefix)) {
		t.Fatalf("sign-in ended with %d %q", status, loc)
	}
	u, _ := w.e.Server.Store.UserByEmail(context.Background(), "alice@example.com")
	if u.TOTPConfirmedAt.IsZero() {
		t.Fatal("TOTP not confirmed")
	}
}

func TestSignInCancelInChromium(t *testing.T) {
	w := newWorld(t, true)
	ctx := browser.Start(t, w.e.Server.TLSConfig().Certificates[0].Leaf)
	var msg string
	err := chromedp.Run(ctx,
		chromedp.Navigate(w.e.URL+"/login/"+w.tenant+"?user-identifier=alice%40example.com"),
		chromedp.WaitVisible(`#password`, chromedp.ByQuery),
		chromedp.SendKeys(`#password`, "alice-password", chromedp.ByQuery),
		chromedp.Click(`button[value=continue]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#secret`, chromedp.ByQuery),
		chromedp.Click(`button[value=cancel]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[role=status]`, chromedp.ByQuery),
		chromedp.Text(`[role=status]`, &msg, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "Nothing was changed") {
		t.Fatalf("cancel page: %q", msg)
	}
	// Cancelling during setup leaves nothing behind: no second factor stored.
	u, _ := w.e.Server.Store.UserByEmail(context.Background(), "alice@example.com")
	if u.TOTPSecret != nil || !u.LastSignInAt.IsZero() {
		t.Fatal("a cancelled sign-in left state behind")
	}
	var cookies []*network.Cookie
	chromedp.Run(ctx, chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().Do(ctx)
		return err
	}))
	for _, c := range cookies {
		if c.Name == "pomona_signin" {
			t.Fatal("the sign-in cookie survived the cancel")
		}
	}
}

// TestSignInWithEnterInChromium signs in with the keyboard only: type, then
// Return (what people press after a password, and what the iPhone's "Go"
// key does). Implicit submission sends the form's first submit button, so
// every page must put its primary button first; with Cancel first, Return
// cancelled the sign-in.
func TestSignInWithEnterInChromium(t *testing.T) {
	w := newWorld(t, true)
	ctx := browser.Start(t, w.e.Server.TLSConfig().Certificates[0].Leaf)
	var cb callbackCatcher
	cb.listen(ctx)
	login := w.e.URL + "/login/" + w.tenant + "?user-identifier=alice%40example.com"
	waitCallback := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if loc, _ := cb.get(); loc != "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		loc, status := cb.get()
		if status != 308 || !strings.HasPrefix(loc, "apple-remotemanagement-user-login://authentication-results?access-token=") {
			var body string
			chromedp.Run(ctx, chromedp.Text("body", &body, chromedp.ByQuery))
			t.Fatalf("%s: sign-in ended with %d %q; page: %.300s", what, status, loc, body)
		}
		cb.mu.Lock()
		cb.location, cb.status = "", 0
		cb.mu.Unlock()
	}

	// Each step gets 20 s: with Cancel first, Return cancels and the page
	// awaited never comes.
	step := func(actions ...chromedp.Action) error {
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		return chromedp.Run(sctx, actions...)
	}

	// First sign-in: password page, then the second-factor setup page.
	var secret string
	err := step(
		fetch.Enable().WithPatterns([]*fetch.RequestPattern{{URLPattern: "*/login/*", RequestStage: fetch.RequestStageResponse}}),
		chromedp.Navigate(login),
		chromedp.WaitVisible(`#password`, chromedp.ByQuery),
		chromedp.SendKeys(`#password`, "alice-password"+kb.Enter, chromedp.ByQuery),
		chromedp.WaitVisible(`#secret`, chromedp.ByQuery),
		chromedp.Text(`#secret`, &secret, chromedp.ByQuery),
	)
	if err != nil {
		var body string
		chromedp.Run(ctx, chromedp.Text("body", &body, chromedp.ByQuery))
		t.Fatalf("password + Return did not lead to the second-factor setup: %v; page: %.300s", err, body)
	}
	key, err := totp.Decode(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := step(chromedp.SendKeys(`#code`, totp.Code(key, time.Now())+kb.Enter, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	waitCallback("setup code + Return")

	// Second sign-in: password page, then the code page. The next step's
	// code: each code works once, and the window allows one step ahead.
	err = step(
		chromedp.Navigate(login),
		chromedp.WaitVisible(`#password`, chromedp.ByQuery),
		chromedp.SendKeys(`#password`, "alice-password"+kb.Enter, chromedp.ByQuery),
		chromedp.WaitVisible(`#code`, chromedp.ByQuery),
		chromedp.SendKeys(`#code`, totp.Code(key, time.Now().Add(totp.Period*time.Second))+kb.Enter, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	waitCallback("code + Return")
}

// TestSignInRetryWithKeyboardInChromium: in a browser (no identifier from a
// device), someone types the account, Tab, a wrong password and Return. The
// page comes back with the account kept and the focus in the password
// field, so that typing the right one and Return goes on; the focus used to
// land in the (filled) account field.
func TestSignInRetryWithKeyboardInChromium(t *testing.T) {
	w := newWorld(t, true)
	ctx := browser.Start(t, w.e.Server.TLSConfig().Certificates[0].Leaf)
	focused := func(want string) {
		t.Helper()
		var id string
		if err := chromedp.Run(ctx, chromedp.Evaluate(`document.activeElement ? document.activeElement.id : ""`, &id)); err != nil {
			t.Fatal(err)
		}
		if id != want {
			t.Fatalf("focus on %q, want %q", id, want)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(sctx,
		chromedp.Navigate(w.e.URL+"/login/"+w.tenant),
		chromedp.WaitVisible(`#identifier`, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	focused("identifier")
	var account string
	if err := chromedp.Run(sctx,
		chromedp.KeyEvent("alice@example.com"),
		chromedp.KeyEvent(kb.Tab),
		chromedp.KeyEvent("not-her-password"+kb.Enter),
		chromedp.WaitVisible(`#error`, chromedp.ByQuery),
		chromedp.Value(`#identifier`, &account, chromedp.ByQuery),
	); err != nil {
		t.Fatal(err)
	}
	if account != "alice@example.com" {
		t.Fatalf("the account field holds %q after a wrong password", account)
	}
	focused("password")
	screenshot(t, ctx, "signin-retry")
	if err := chromedp.Run(sctx,
		chromedp.KeyEvent("alice-password"+kb.Enter),
		chromedp.WaitVisible(`#secret`, chromedp.ByQuery),
	); err != nil {
		var body string
		chromedp.Run(ctx, chromedp.Text("body", &body, chromedp.ByQuery))
		t.Fatalf("the right password + Return did not lead on: %v; page: %.300s", err, body)
	}
}
