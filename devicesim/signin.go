package devicesim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/html"

	"github.com/pomona-mdm/pomona/totp"
)

// form is a parsed HTML form.
type form struct {
	action string
	fields map[string]string // hidden and prefilled inputs
	inputs map[string]bool   // every named input
}

// page is what the web view shows.
type page struct {
	forms   []form
	links   []string
	text    string
	alerts  []string
	otpauth string
}

func parsePage(b []byte) (*page, error) {
	doc, err := html.Parse(strings.NewReader(string(b)))
	if err != nil {
		return nil, err
	}
	p := &page{}
	var text strings.Builder
	var cur *form
	var walk func(n *html.Node, inAlert bool)
	walk = func(n *html.Node, inAlert bool) {
		if n.Type == html.ElementNode {
			attr := map[string]string{}
			for _, a := range n.Attr {
				attr[a.Key] = a.Val
			}
			if attr["role"] == "alert" {
				inAlert = true
				p.alerts = append(p.alerts, nodeText(n))
			}
			switch n.Data {
			case "form":
				p.forms = append(p.forms, form{action: attr["action"], fields: map[string]string{}, inputs: map[string]bool{}})
				cur = &p.forms[len(p.forms)-1]
			case "input":
				if cur != nil && attr["name"] != "" {
					cur.inputs[attr["name"]] = true
					if attr["type"] == "hidden" || attr["value"] != "" {
						cur.fields[attr["name"]] = attr["value"]
					}
				}
			case "a":
				p.links = append(p.links, attr["href"])
				if strings.HasPrefix(attr["href"], "otpauth://") {
					p.otpauth = attr["href"]
				}
			}
		}
		if n.Type == html.TextNode {
			text.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inAlert)
		}
	}
	walk(doc, false)
	p.text = strings.Join(strings.Fields(text.String()), " ")
	return p, nil
}

func nodeText(n *html.Node) string {
	var b strings.Builder
	var f func(*html.Node)
	f = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			f(c)
		}
	}
	f(n)
	return strings.TrimSpace(b.String())
}

// SignInError is a refusal shown on the sign-in page.
type SignInError struct {
	Status int
	Shown  string // the message the person sees
}

func (e *SignInError) Error() string {
	return fmt.Sprintf("the sign-in page said (HTTP %d): %s", e.Status, e.Shown)
}

// ErrNoTOTPSecret: the sign-in page asks for a verification code (the
// account has a second factor already) and Credentials.TOTPSecret is empty.
var ErrNoTOTPSecret = errors.New("the page asks for a verification code but the device has no TOTP secret")

// Credentials answer the sign-in page.
type Credentials struct {
	User     string
	Password string
	// TOTPSecret answers a code page; when empty and the page offers
	// first-time setup, the secret is read from the otpauth link.
	TOTPSecret []byte
}

// SignIn performs the web sign-in at LoginURL as the authentication sheet
// would (the device appends user-identifier, replacing any query) and
// returns the access token from the 308 to Apple's callback scheme.
func (d *Device) SignIn(ctx context.Context, c Credentials) (string, error) {
	const step = "sign-in"
	if c.TOTPSecret != nil {
		d.TOTPSecret = c.TOTPSecret
	}
	u, err := url.Parse(d.LoginURL)
	if err != nil {
		return "", stepErr(step, "login URL %q: %v", d.LoginURL, err)
	}
	u.RawQuery = url.Values{"user-identifier": {c.User}}.Encode()
	resp, body, err := d.do(ctx, http.MethodGet, u.String(), nil, map[string]string{"User-Agent": d.UserAgent})
	if err != nil {
		return "", stepErr(step, "GET %s: %v", u, err)
	}
	codeRetries := 0
	for round := 0; round < 6; round++ {
		if resp.StatusCode == http.StatusPermanentRedirect || resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound {
			return d.callback(resp)
		}
		p, err := parsePage(body)
		if err != nil {
			return "", stepErr(step, "cannot parse the page: %v", err)
		}
		if len(p.forms) == 0 {
			return "", &StepError{Step: step, Err: &SignInError{Status: resp.StatusCode, Shown: p.text}}
		}
		f := p.forms[0]
		if len(p.alerts) > 0 && round > 0 {
			// A code refused as used: a person waits for the next one.
			if !(f.inputs["code"] && codeRetries < 1 && strings.Contains(strings.Join(p.alerts, " "), "already used")) {
				return "", &StepError{Step: step, Err: &SignInError{Status: resp.StatusCode, Shown: strings.Join(p.alerts, " ")}}
			}
			codeRetries++
		}
		vals := url.Values{}
		for k, v := range f.fields {
			vals.Set(k, v)
		}
		vals.Set("action", "continue")
		switch {
		case f.inputs["password"]:
			vals.Set("identifier", c.User)
			vals.Set("password", c.Password)
		case f.inputs["code"] && p.otpauth != "":
			secret, err := secretFromURI(p.otpauth)
			if err != nil {
				return "", stepErr(step, "setup page: %v", err)
			}
			d.TOTPSecret = secret
			vals.Set("code", d.nextCode())
		case f.inputs["code"]:
			if d.TOTPSecret == nil {
				return "", &StepError{Step: step, Err: ErrNoTOTPSecret}
			}
			vals.Set("code", d.nextCode())
		default:
			return "", stepErr(step, "unexpected form with fields %v", f.inputs)
		}
		action, err := u.Parse(f.action)
		if err != nil {
			return "", stepErr(step, "form action %q: %v", f.action, err)
		}
		resp, body, err = d.do(ctx, http.MethodPost, action.String(), []byte(vals.Encode()), map[string]string{
			"Content-Type": "application/x-www-form-urlencoded", "User-Agent": d.UserAgent, "Origin": u.Scheme + "://" + u.Host})
		if err != nil {
			return "", stepErr(step, "POST %s: %v", action, err)
		}
	}
	return "", stepErr(step, "the sign-in did not finish")
}

// nextCode returns a code for a time step later than the last one this
// device used: servers accept each code once and allow one step of skew.
func (d *Device) nextCode() string {
	step := totp.Step(d.Now())
	if step <= d.lastTOTPStep {
		step = d.lastTOTPStep + 1
	}
	d.lastTOTPStep = step
	return totp.CodeAt(d.TOTPSecret, step, totp.Digits)
}

func secretFromURI(s string) ([]byte, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		return nil, fmt.Errorf("not an otpauth://totp link: %q", s)
	}
	q := u.Query()
	if q.Get("digits") != "6" || q.Get("period") != "30" || (q.Get("algorithm") != "" && q.Get("algorithm") != "SHA1") {
		return nil, fmt.Errorf("unsupported TOTP parameters in %q", s)
	}
	return totp.Decode(q.Get("secret"))
}

func (d *Device) callback(resp *http.Response) (string, error) {
	const step = "sign-in callback"
	if resp.StatusCode != http.StatusPermanentRedirect {
		return "", stepErr(step, "Apple expects 308, got %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Scheme != "apple-remotemanagement-user-login" {
		return "", stepErr(step, "Location %q is not apple-remotemanagement-user-login://", resp.Header.Get("Location"))
	}
	if loc.Host != "authentication-results" {
		return "", stepErr(step, "Location host %q, want authentication-results", loc.Host)
	}
	t := loc.Query().Get("access-token")
	if t == "" {
		return "", stepErr(step, "no access-token in %q", loc)
	}
	d.AccessToken = t
	return t, nil
}

// ErrRefused marks an enrollment refused by the server (as opposed to a
// transport failure).
var ErrRefused = errors.New("refused")
