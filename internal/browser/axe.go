package browser

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// axeSource is axe-core (MPL-2.0), see axe/README.md.
//
//go:embed axe/axe.min.js
var axeSource string

// Violation is one axe-core rule that failed on a page, with the elements
// (CSS selectors) where it failed.
type Violation struct {
	ID      string   `json:"id"`
	Impact  string   `json:"impact"` // minor, moderate, serious or critical
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
	Detail  string   `json:"detail"` // axe's summary for the first element
}

func (v Violation) String() string {
	return fmt.Sprintf("%s [%s] %s at %s: %s", v.ID, v.Impact, v.Help, strings.Join(v.Targets, ", "), v.Detail)
}

// Axe runs axe-core's WCAG 2.x A and AA rules over the current page and
// returns the violations of impact "serious" or "critical". The script is
// evaluated through the DevTools protocol, which a page's
// Content-Security-Policy does not govern (script-src 'none' blocks the
// page's own scripts, not the debugger's), so the pages are checked exactly
// as served.
func Axe(ctx context.Context) ([]Violation, error) {
	var loaded bool
	if err := chromedp.Run(ctx, chromedp.Evaluate(`typeof axe === "object"`, &loaded)); err != nil {
		return nil, err
	}
	if !loaded {
		if err := chromedp.Run(ctx, chromedp.Evaluate(axeSource+"\n;true", &loaded)); err != nil {
			return nil, fmt.Errorf("load axe-core: %w", err)
		}
	}
	const run = `axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]}, resultTypes: ["violations"]}).then(r =>
  JSON.stringify(r.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map(n => n.target.join(" ")),
    detail: v.nodes.length ? v.nodes[0].failureSummary : ""}))))`
	var out string
	err := chromedp.Run(ctx, chromedp.Evaluate(run, &out, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
	if err != nil {
		return nil, fmt.Errorf("run axe-core: %w", err)
	}
	var vs []Violation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		return nil, err
	}
	return vs, nil
}

// Scheme emulates prefers-color-scheme: "light" or "dark".
func Scheme(scheme string) chromedp.Action {
	return emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}})
}

// Phone emulates a 390 × 844 CSS-pixel phone screen (iPhone 12 to 15);
// Desktop removes the emulation again.
func Phone() chromedp.Action { return emulation.SetDeviceMetricsOverride(390, 844, 3, true) }

// Desktop ends Phone's emulation: the window's own size applies again.
func Desktop() chromedp.Action { return emulation.ClearDeviceMetricsOverride() }

// CancelFirst is a script returning the action attributes of the forms whose
// first submit button (the one implicit submission, Return, sends) is a
// cancel button: it must be the primary action.
const CancelFirst = `[...document.forms].filter(f => {
  const b = f.querySelector('button:not([type]), button[type=submit], input[type=submit]');
  return b && (/cancel/i.test(b.value || "") || /cancel/i.test(b.textContent || "") || b.classList.contains("secondary") && f.querySelectorAll('button:not([type]), button[type=submit], input[type=submit]').length > 1);
}).map(f => f.getAttribute("action"))`
