package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browserStep returns the browser tests' step runner: each call runs its
// actions with its own timeout and, on failure, fails the test with the
// step's name, the page's <scope> HTML (up to 2,000 characters) and, when
// shot is not empty, a screenshot of that name (POMONA_SCREENSHOTS).
func browserStep(t *testing.T, ctx context.Context, timeout time.Duration, scope, shot string) func(what string, actions ...chromedp.Action) {
	return func(what string, actions ...chromedp.Action) {
		t.Helper()
		step, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := chromedp.Run(step, actions...); err != nil {
			if shot != "" {
				screenshot(t, ctx, shot)
			}
			var html string
			chromedp.Run(ctx, chromedp.OuterHTML(scope, &html, chromedp.ByQuery))
			t.Fatalf("%s: %v\npage: %.2000s", what, err, html)
		}
	}
}

// browserText returns a reader of a visible element's text through run.
func browserText(t *testing.T, run func(what string, actions ...chromedp.Action)) func(sel string) string {
	return func(sel string) string {
		t.Helper()
		var s string
		run("read "+sel, chromedp.Text(sel, &s, chromedp.NodeVisible, chromedp.ByQuery))
		return s
	}
}
