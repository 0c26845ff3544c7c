package console

import (
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/adminaccount"
	"github.com/pomona-mdm/pomona/credential"
	"github.com/pomona-mdm/pomona/directory"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/totp"
)

// Sign-in and setup pages have no session yet: their forms are protected
// by the same-origin check and a CSRF token in a short-lived cookie.
const preCookie = "pomona_console_pre"

func (c *Console) preToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(preCookie); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	tok := adminaccount.CSRFToken(directory.NewID("pre") + time.Now().String())
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: tok, Path: Prefix, HttpOnly: true, Secure: c.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	return tok
}

func (c *Console) checkPre(r *http.Request) bool {
	ck, err := r.Cookie(preCookie)
	if err != nil || !c.sameOrigin(r) {
		return false
	}
	return ck.Value != "" && ck.Value == r.PostFormValue("csrf")
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if strings.HasPrefix(next, Prefix+"/") && !strings.Contains(next, "//") && !strings.Contains(next, "\\") && !strings.Contains(next, "..") {
		return next
	}
	return Prefix + "/"
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	c.renderPublic(w, r, http.StatusOK, "login", "Sign in", map[string]any{
		"CSRF": c.preToken(w, r), "Next": safeNext(r.URL.Query().Get("next")), "Flash": c.takeFlash(w, r)})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	r.ParseForm()
	next := safeNext(r.PostFormValue("next"))
	email := r.PostFormValue("email")
	show := func(status int, msg string) {
		c.renderPublic(w, r, status, "login", "Sign in", map[string]any{"CSRF": c.preToken(w, r), "Next": next, "Email": email, "Error": msg})
	}
	if !c.checkPre(r) {
		c.Log.Warn("console: sign-in form refused (cross-site or stale)", "remote", r.RemoteAddr)
		show(http.StatusForbidden, "The sign-in form expired. Try again.")
		return
	}
	a, err := c.Admins.SignIn(r.Context(), email, r.PostFormValue("password"), strings.TrimSpace(r.PostFormValue("code")), httpx.ClientIP(r))
	var locked *credential.LockedError
	switch {
	case errors.As(err, &locked):
		c.Log.Warn("console: sign-in locked", "email", email, "remote", r.RemoteAddr, "scope", locked.Scope)
		show(http.StatusTooManyRequests, "Too many failed attempts. Try again in "+locked.RetryAfter.Round(time.Minute).String()+".")
		return
	case errors.Is(err, adminaccount.ErrBadCredentials):
		c.Log.Info("console: sign-in failed", "email", email, "remote", r.RemoteAddr)
		show(http.StatusUnauthorized, "The email, password or code is not right.")
		return
	case err != nil:
		c.Log.Error("console: sign-in error", "err", err)
		show(http.StatusInternalServerError, "Sign-in failed on the server; the log has the details.")
		return
	}
	cookie, err := c.Admins.StartSession(r.Context(), a, r.RemoteAddr)
	if err != nil {
		c.Log.Error("console: cannot start a session", "err", err)
		show(http.StatusInternalServerError, "Sign-in failed on the server; the log has the details.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: cookie, Path: Prefix, HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: preCookie, Path: Prefix, MaxAge: -1})
	c.Log.Info("console: signed in", "admin", a.Email, "role", a.Role, "remote", r.RemoteAddr)
	c.audit(r, a, http.StatusOK, "")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *Request) error {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		c.Admins.EndSession(r.Context(), ck.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: Prefix, MaxAge: -1, HttpOnly: true, Secure: c.Secure, SameSite: http.SameSiteStrictMode})
	c.setFlash(w, "ok", "Signed out.")
	http.Redirect(w, r.Request, Prefix+"/login", http.StatusSeeOther)
	return nil
}

type setupView struct {
	CSRF, Token, Email, Role, Sealed, SecretText, Error string
	AskEmail                                            bool
	TypedEmail                                          string // the first owner's email, kept after an error
	OTPAuthURL                                          template.URL
	QR                                                  template.HTML
}

func (c *Console) setupPage(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	c.showSetup(w, r, r.URL.Query().Get("token"), http.StatusOK, "", setupKept{})
}

// setupKept is what a setup form that failed keeps for the next try: the
// TOTP secret already shown (and perhaps already added to the app, so a
// mistyped code or password does not mean scanning again) and the email.
type setupKept struct {
	secret []byte
	email  string
}

// showSetup renders the setup form with kept.secret, or a fresh TOTP
// secret, sealed into the form so that the POST can check the code against
// it.
func (c *Console) showSetup(w http.ResponseWriter, r *http.Request, token string, status int, msg string, kept setupKept) {
	a, err := c.Admins.SetupAccount(r.Context(), token)
	if err != nil {
		if !errors.Is(err, adminaccount.ErrBadSetupLink) {
			c.Log.Error("console: setup lookup", "err", err)
		}
		c.renderPublic(w, r, http.StatusNotFound, "message", "Setup link", map[string]any{"Title": "This link does not work",
			"Message": adminaccount.ErrBadSetupLink.Error()})
		return
	}
	secret := kept.secret
	if secret == nil {
		secret = totp.NewSecret()
	}
	account := a.Email
	if account == "" {
		account = "owner"
	}
	uri := totp.URI(secret, "Pomona console", account)
	c.renderPublic(w, r, status, "setup", "Set up your account", setupView{
		CSRF: c.preToken(w, r), Token: token, Email: a.Email, AskEmail: a.Email == "", TypedEmail: kept.email, Role: adminaccount.RoleTitle(a.Role), Error: msg,
		Sealed:     encodeSealed(c.Admins.Sealer.Seal(secret, adminaccount.SetupContext(a.ID))),
		SecretText: totp.Encode(secret), OTPAuthURL: template.URL(uri), QR: template.HTML(totp.QRSVG(uri, "QR code for your authenticator app")),
	})
}

func (c *Console) setup(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	r.ParseForm()
	token := r.PostFormValue("token")
	if !c.checkPre(r) {
		c.showSetup(w, r, token, http.StatusForbidden, "The form expired. Enter the password and a new code again.", setupKept{})
		return
	}
	a, err := c.Admins.SetupAccount(r.Context(), token)
	if err != nil {
		c.showSetup(w, r, token, http.StatusNotFound, "", setupKept{})
		return
	}
	secret, err := decodeSealed(r.PostFormValue("sealed"), c.Admins.Sealer, adminaccount.SetupContext(a.ID))
	if err != nil {
		c.showSetup(w, r, token, http.StatusBadRequest, "The form was altered. Scan the new code and try again.", setupKept{})
		return
	}
	kept := setupKept{secret: secret, email: strings.TrimSpace(r.PostFormValue("email"))}
	if r.PostFormValue("password") != r.PostFormValue("password2") {
		c.showSetup(w, r, token, http.StatusUnprocessableEntity, "The two passwords differ.", kept)
		return
	}
	a, err = c.Admins.CompleteSetup(r.Context(), token, r.PostFormValue("email"), r.PostFormValue("password"), secret, strings.TrimSpace(r.PostFormValue("code")), httpx.ClientIP(r))
	if err != nil {
		var locked *credential.LockedError
		pe, isProblem := problem.As(err)
		msg := "Setup failed on the server; the log has the details."
		switch {
		case isProblem && pe.Kind == problem.Unprocessable:
			msg = pe.Message + "."
		case errors.As(err, &locked):
			msg = locked.Error()
		case errors.Is(err, adminaccount.ErrBadSetupLink):
			msg = err.Error()
		default:
			c.Log.Error("console: setup failed", "err", err)
		}
		c.showSetup(w, r, token, http.StatusUnprocessableEntity, msg, kept)
		return
	}
	c.Log.Info("console: account set up", "admin", a.Email, "role", a.Role)
	c.audit(r, a, http.StatusOK, a.ID)
	c.setFlash(w, "ok", "Your account is ready. Sign in with your password and a code from your authenticator app.")
	http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
}
