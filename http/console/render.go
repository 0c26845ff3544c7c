package console

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		d := time.Since(t)
		switch {
		case d < time.Minute:
			return "just now"
		case d < time.Hour:
			return fmt.Sprintf("%d min ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%d h ago", int(d.Hours()))
		}
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	},
	"role": adminaccount.RoleTitle,
	// minPassword is the shortest password a device user may have (the
	// forms' labels and minlength say what the directory enforces).
	"minPassword": func() int { return directory.MinPassword },
	// minAdminPassword is the shortest console password.
	"minAdminPassword": func() int { return adminaccount.MinPassword },
	"join":             strings.Join,
	"can": func(a *store.Admin, p int) bool {
		return a != nil && adminaccount.Can(a.Role, adminaccount.Permission(p))
	},
	"status": statusClass,
	// count is n with its noun: "1 user", "2 users" ("1 users in 1
	// tenant(s)" was the dashboard's first line for a new server).
	"count": func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	},
	"list": func(s ...string) []string { return s },
}

func statusClass(s string) string {
	switch s {
	case mdm.Acknowledged, store.EnrollmentEnrolled, "ok", "delivered", "installed":
		return "good"
	case mdm.Error, mdm.CommandFormatError, "error", "failed", store.EnrollmentUnenrolled, store.QueueUndeliverable:
		return "bad"
	case mdm.NotNow, "warning", store.QueueExpired:
		return "warn"
	}
	return "neutral"
}

// parsePages builds one template set per page: the layout plus the page.
func parsePages() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	names, _ := fs.Glob(templateFS, "templates/*.html")
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		out[base] = template.Must(template.Must(layout.Clone()).ParseFS(templateFS, n))
	}
	return out
}

// page is what every console page template receives.
type page struct {
	Title   string
	Section string
	Admin   *store.Admin
	CSRF    string
	Flash   *flash
	// Refill is a refused form's input, for the form to show again.
	Refill  refill
	Version string
	Data    any
}

// Permission levels for templates ({{if can .Admin 2}}).
const (
	permRead = iota
	permSupport
	permManage
	permAccounts
)

func (c *Console) render(w http.ResponseWriter, r *Request, status int, name, title string, data any) {
	section := strings.SplitN(strings.TrimPrefix(r.URL.Path, Prefix+"/"), "/", 2)[0]
	c.write(w, status, name, page{Title: title, Section: section, Admin: r.Admin, CSRF: r.CSRF, Flash: c.takeFlash(w, r.Request),
		Refill: c.takeRefill(w, r.Request, status), Version: c.Version, Data: data})
}

func (c *Console) renderPublic(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	c.write(w, status, name, page{Title: title, Version: c.Version, Data: data})
}

func (c *Console) write(w http.ResponseWriter, status int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		c.Log.Error("console: no template", "name", name)
		http.Error(w, "missing page template", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		c.Log.Error("console: template failed", "name", name, "err", err)
		http.Error(w, "the page could not be rendered; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func encodeSealed(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func decodeSealed(s string, o adminaccount.Sealer, context string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	return o.Open(b, context)
}

// --- charts (inline SVG, no script) ---

// barChart draws one bar per day for the last n days ending today (UTC).
func barChart(days []store.DayCount, n int, now time.Time) template.HTML {
	today := now.UTC().Truncate(24 * time.Hour)
	counts := make([]int, n)
	max := 0
	for _, d := range days {
		i := n - 1 - int(today.Sub(d.Day.UTC().Truncate(24*time.Hour)).Hours()/24)
		if i >= 0 && i < n {
			counts[i] += d.Count
		}
	}
	total := 0
	for _, v := range counts {
		total += v
		if v > max {
			max = v
		}
	}
	const w, h = 600, 140
	bw := float64(w) / float64(n)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="Enrollments per day, last %d days: %d in total">`, w, h, n, total)
	for i, v := range counts {
		bh := 0.0
		if max > 0 {
			bh = float64(h) * float64(v) / float64(max)
		}
		day := today.AddDate(0, 0, i-n+1)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d</title></rect>`, float64(i)*bw+1, float64(h)-bh, bw-2, bh, day.Format("Jan 2"), v)
	}
	// The axis labels are HTML below the drawing, not SVG text: the drawing
	// scales down with the screen (to about half on a phone), text must not.
	fmt.Fprintf(&b, `</svg><div class="chart-axis" aria-hidden="true"><span>%s</span><span>today</span></div>`, today.AddDate(0, 0, 1-n).Format("Jan 2"))
	return template.HTML(b.String())
}

// --- readable command results ---

// skipResultKeys are protocol bookkeeping, not information.
var skipResultKeys = map[string]bool{"CommandUUID": true, "Status": true, "UDID": true, "EnrollmentID": true, "EnrollmentUserID": true, "UserID": true}

// renderValue renders a decoded plist value as nested definition lists.
func renderValue(v any, depth int) string {
	if depth > 8 {
		return "…"
	}
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			if depth == 0 && skipResultKeys[k] {
				continue
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) == 0 {
			return `<span class="muted">(empty)</span>`
		}
		var b strings.Builder
		b.WriteString(`<dl class="kv">`)
		for _, k := range keys {
			fmt.Fprintf(&b, "<dt>%s</dt><dd>%s</dd>", html.EscapeString(k), renderValue(x[k], depth+1))
		}
		b.WriteString("</dl>")
		return b.String()
	case []any:
		if len(x) == 0 {
			return `<span class="muted">(none)</span>`
		}
		var b strings.Builder
		b.WriteString(`<ol class="items">`)
		for _, it := range x {
			fmt.Fprintf(&b, "<li>%s</li>", renderValue(it, depth+1))
		}
		b.WriteString("</ol>")
		return b.String()
	case []byte:
		return fmt.Sprintf(`<span class="muted">%d bytes of data</span>`, len(x))
	case time.Time:
		return html.EscapeString(x.UTC().Format("2006-01-02 15:04:05 UTC"))
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case string:
		return html.EscapeString(x)
	case nil:
		return ""
	}
	return html.EscapeString(fmt.Sprint(v))
}

// renderInventory renders the device's inventory: one titled list per
// section ("device_information" → "Device information") with its time.
func renderInventory(inv map[string]any) string {
	names := make([]string, 0, len(inv))
	for k := range inv {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		title := strings.ReplaceAll(n, "_", " ")
		if title != "" {
			title = strings.ToUpper(title[:1]) + title[1:]
		}
		sec, _ := inv[n].(map[string]any)
		fmt.Fprintf(&b, "<h3>%s</h3>", html.EscapeString(title))
		if at, ok := sec["updated_at"].(string); ok {
			// As every other time on the console's pages (was the raw
			// 2026-12-02T14:28:03Z under "Enrolled 2026-12-02 14:27 UTC").
			if t, err := time.Parse(time.RFC3339Nano, at); err == nil {
				at = t.UTC().Format("2006-01-02 15:04 UTC")
			}
			fmt.Fprintf(&b, `<p class="small muted">reported %s</p>`, html.EscapeString(at))
		}
		if data, ok := sec["data"]; ok {
			b.WriteString(renderValue(data, 1))
		} else {
			b.WriteString(renderValue(sec, 1))
		}
	}
	return b.String()
}
