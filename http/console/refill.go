package console

import (
	"net/http"
	"net/url"
	"strings"
)

// A refused form comes back filled in: the page it was on shows the
// message and the administrator's input, to correct rather than to type
// again. After a redirect (handleError) the values ride in a cookie one
// redirect long, like the flash; a refusal rendered in place (a profile
// upload's violations) takes them from the request itself.

const refillCookie = "pomona_console_refill"

// refillFields are the fields a refused form gets back: an allow list, so
// that a secret field (a password, a TOTP code, a .p12 password, a
// command's plist that may hold one) never goes into a cookie, nor one
// added later by default. Files are never refilled: a page cannot give a
// browser a file.
var refillFields = map[string]bool{
	"name": true, "domains": true, "second_factor": true, // tenants, groups, keys, tokens
	"email": true, "managed_apple_id": true, // users, console accounts
	"role": true, "tenant": true, "users": true, "url": true, "events": true,
	"platforms": true, "min_os": true, "sign": true, "group": true, "mode": true, // profiles
	"accent_color": true, "contact": true, "privacy_url": true, // branding
}

// maxRefill bounds the cookie's value (browsers keep about 4 KB a
// cookie, name and attributes included): a larger form is not refilled.
const maxRefill = 3000

// refill is a refused form's values, for the form that posts to Action.
// Its zero value refills nothing.
type refill struct {
	Action string
	Values url.Values
}

// For reports whether the form posting to action is the refused one
// (templates then take its fields from the refill, checkboxes included:
// unchecked ones are absent from a form).
func (f refill) For(action string) bool { return f.Action != "" && f.Action == action }

// Value is the field's refused value, or def when the form posting to
// action was not refused.
func (f refill) Value(action, name, def string) string {
	if !f.For(action) {
		return def
	}
	return f.Values.Get(name)
}

// Checked reports whether the checkbox (or option) name=value was sent by
// the refused form posting to action; def when that form was not refused.
func (f refill) Checked(action, name, value string, def bool) bool {
	if !f.For(action) {
		return def
	}
	for _, v := range f.Values[name] {
		if v == value {
			return true
		}
	}
	return false
}

// refillOf is r's form reduced to the fields that may come back.
func refillOf(r *http.Request) refill {
	vs := url.Values{}
	for k, v := range r.PostForm {
		if refillFields[k] {
			vs[k] = v
		}
	}
	return refill{Action: r.URL.Path, Values: vs}
}

// setRefill keeps r's refusable fields for the page the refusal
// redirects to.
func (c *Console) setRefill(w http.ResponseWriter, r *http.Request) {
	f := refillOf(r)
	v := url.QueryEscape(f.Action + "?" + f.Values.Encode())
	if len(v) > maxRefill {
		return
	}
	http.SetCookie(w, &http.Cookie{Name: refillCookie, Value: v, Path: Prefix, HttpOnly: true,
		Secure: c.Secure, SameSite: http.SameSiteStrictMode, MaxAge: 60})
}

// takeRefill returns the values a refusal left for this page (and
// forgets them). A page rendered as the answer to a refused POST itself
// refills from that POST.
func (c *Console) takeRefill(w http.ResponseWriter, r *http.Request, status int) refill {
	if r.Method == http.MethodPost {
		if status >= 400 {
			return refillOf(r)
		}
		return refill{}
	}
	ck, err := r.Cookie(refillCookie)
	if err != nil {
		return refill{}
	}
	http.SetCookie(w, &http.Cookie{Name: refillCookie, Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteStrictMode})
	s, err := url.QueryUnescape(ck.Value)
	if err != nil {
		return refill{}
	}
	action, query, ok := strings.Cut(s, "?")
	if !ok || !strings.HasPrefix(action, Prefix+"/") {
		return refill{}
	}
	vs, err := url.ParseQuery(query)
	if err != nil {
		return refill{}
	}
	for k := range vs {
		if !refillFields[k] {
			delete(vs, k)
		}
	}
	return refill{Action: action, Values: vs}
}
