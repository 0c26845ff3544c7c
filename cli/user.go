package cli

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/pomona-mdm/pomona/apiclient"
	"github.com/pomona-mdm/pomona/apitypes"
)

// pomona user add|list|show|update|enable|disable|set-password|reset-2fa|
// reauthenticate|delete (import: userimport.go): users through the admin
// API (/api/v1/users).

func userAdd(fs *flag.FlagSet) func(*call) error {
	tenant := fs.String("tenant", "", "tenant id or domain (default: the tenant owning the email's domain)")
	name := fs.String("name", "", "display name")
	maid := fs.String("managed-apple-id", "", "Managed Apple Account (default: the email)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	gen := fs.Bool("generate-password", false, "generate a password and print it once")
	disabled := fs.Bool("disabled", false, "create the user disabled")
	return func(c *call) error {
		email, err := c.one("give the user's email: pomona user add alice@example.com")
		if err != nil {
			return err
		}
		pw, generated, err := readPassword(c.Env, *pwStdin, *gen, true)
		if err != nil {
			return err
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		in := apitypes.UserInput{Tenant: *tenant, Email: email, Name: *name, ManagedAppleID: *maid, Password: pw}
		if *disabled {
			f := false
			in.Enabled = &f
		}
		u, err := api.CreateUser(c.Ctx, in)
		if err != nil {
			return err
		}
		if !generated {
			pw = ""
		}
		if err := showUserPassword(c, u, pw); err != nil {
			return err
		}
		if pw == "" && !c.json() {
			fmt.Fprintf(c.Stderr, "note: %s has no password and cannot sign in yet: pomona user set-password %s\n", u.Email, u.Email)
		}
		return nil
	}
}

func userList(fs *flag.FlagSet) func(*call) error {
	tenant := fs.String("tenant", "", "only users of this tenant (id or domain)")
	email := fs.String("email", "", "only the user with this email")
	limit := fs.Int("limit", 0, "at most this many users (default: all)")
	return func(c *call) error {
		api, err := c.client()
		if err != nil {
			return err
		}
		var all []apitypes.User
		after := ""
		for {
			q := url.Values{"limit": {"1000"}}
			if *tenant != "" {
				q.Set("tenant", *tenant)
			}
			if *email != "" {
				q.Set("email", *email)
			}
			if after != "" {
				q.Set("after", after)
			}
			var page struct {
				Users     []apitypes.User `json:"users"`
				NextAfter string          `json:"next_after"`
			}
			if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/users?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			all = append(all, page.Users...)
			if page.NextAfter == "" || (*limit > 0 && len(all) >= *limit) {
				break
			}
			after = page.NextAfter
		}
		if *limit > 0 && len(all) > *limit {
			all = all[:*limit]
		}
		return c.print(map[string]any{"users": all}, func(w io.Writer) {
			fmt.Fprintln(w, "ID\tEMAIL\tNAME\tMANAGED APPLE ACCOUNT\tENABLED\tPASSWORD\t2FA\tLAST SIGN-IN")
			for _, u := range all {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\n", u.ID, u.Email, u.Name, u.ManagedAppleID, u.Enabled,
					setNone(u.PasswordSet), u.SecondFactor, lastSignIn(u.LastSignInAt))
			}
		})
	}
}

// oneUser is the single positional argument of a user subcommand
// without flags of its own, and the API client.
func oneUser(c *call) (*apiclient.Client, string, error) {
	ref, api, err := c.oneClient("give one user id or email")
	return api, ref, err
}

func userShow(c *call) error {
	api, ref, err := oneUser(c)
	if err != nil {
		return err
	}
	u, err := api.User(c.Ctx, ref)
	if err != nil {
		return err
	}
	return showUser(c, u)
}

func userUpdate(fs *flag.FlagSet) func(*call) error {
	email := fs.String("email", "", "new email")
	name := fs.String("name", "", "new display name")
	maid := fs.String("managed-apple-id", "", "new Managed Apple Account")
	return func(c *call) error {
		ref, err := c.one("give one user id or email")
		if err != nil {
			return err
		}
		patch := map[string]any{}
		if *email != "" {
			patch["email"] = *email
		}
		if *name != "" {
			patch["name"] = *name
		}
		if *maid != "" {
			patch["managed_apple_id"] = *maid
		}
		if len(patch) == 0 {
			return usagef("nothing to change: give --email, --name or --managed-apple-id")
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		var u apitypes.User
		if err := api.Do(c.Ctx, http.MethodPatch, "/api/v1/users/"+url.PathEscape(ref), patch, &u); err != nil {
			return err
		}
		return showUser(c, &u)
	}
}

// userEnable is `user enable` (enabled) or `user disable`.
func userEnable(enabled bool) func(*call) error {
	verb := map[bool]string{true: "enabled", false: "disabled"}[enabled]
	return func(c *call) error {
		api, ref, err := oneUser(c)
		if err != nil {
			return err
		}
		var u apitypes.User
		if err := api.Do(c.Ctx, http.MethodPatch, "/api/v1/users/"+url.PathEscape(ref), map[string]any{"enabled": enabled}, &u); err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.Stdout, u)
		}
		fmt.Fprintf(c.Stdout, "%s %s\n", verb, u.Email)
		return nil
	}
}

func userSetPassword(fs *flag.FlagSet) func(*call) error {
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	gen := fs.Bool("generate-password", false, "generate a password and print it once")
	return func(c *call) error {
		ref, err := c.one("give one user id or email")
		if err != nil {
			return err
		}
		pw, generated, err := readPassword(c.Env, *pwStdin, *gen, false)
		if err != nil {
			return err
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		var u apitypes.User
		if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/users/"+url.PathEscape(ref)+"/password", map[string]string{"password": pw}, &u); err != nil {
			return err
		}
		if c.json() {
			// The user, and the generated password (shown once) when one was.
			return printJSON(c.Stdout, struct {
				*apitypes.User
				Password string `json:"password,omitempty"`
			}{&u, map[bool]string{true: pw}[generated]})
		}
		fmt.Fprintf(c.Stdout, "password set for %s; every session of the user has ended\n", u.Email)
		if generated {
			fmt.Fprintf(c.Stdout, "password: %s   (shown once)\n", pw)
		}
		return nil
	}
}

func userReset2FA(c *call) error {
	api, ref, err := oneUser(c)
	if err != nil {
		return err
	}
	var u apitypes.User
	if err := api.Do(c.Ctx, http.MethodDelete, "/api/v1/users/"+url.PathEscape(ref)+"/totp", nil, &u); err != nil {
		return err
	}
	if c.json() {
		return printJSON(c.Stdout, u)
	}
	fmt.Fprintf(c.Stdout, "second factor reset for %s: the next sign-in sets up a new one\n", u.Email)
	return nil
}

func userReauthenticate(c *call) error {
	api, ref, err := oneUser(c)
	if err != nil {
		return err
	}
	var u apitypes.User
	if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/users/"+url.PathEscape(ref)+"/reauthenticate", nil, &u); err != nil {
		return err
	}
	if c.json() {
		return printJSON(c.Stdout, u)
	}
	fmt.Fprintf(c.Stdout, "%s must sign in again on every device (the devices ask; they stay enrolled)\n", u.Email)
	return nil
}

func userDelete(fs *flag.FlagSet) func(*call) error {
	yes := fs.Bool("yes", false, "confirm that the user's enrolled devices are unenrolled")
	return func(c *call) error {
		api, ref, err := oneUser(c)
		if err != nil {
			return err
		}
		path := "/api/v1/users/" + url.PathEscape(ref)
		n, err := confirmEnding(c, path, "user "+ref, *yes)
		if err != nil {
			return err
		}
		if err := api.Do(c.Ctx, http.MethodDelete, path, nil, nil); err != nil {
			return err
		}
		return printDeleted(c, "user", ref, n)
	}
}

func showUser(c *call, u *apitypes.User) error { return showUserPassword(c, u, "") }

// showUserPassword is showUser with the password Pomona generated for the
// user (empty: none), the one time it is shown: in the password row of
// the text, as "password" in the JSON (as user set-password does). It was
// a second, misaligned password row under "password set", and missing
// from --json: a script that added users with --json never saw their
// passwords.
func showUserPassword(c *call, u *apitypes.User, generated string) error {
	pwRow := setNone(u.PasswordSet)
	if generated != "" {
		pwRow = generated + "   (shown once)"
	}
	return c.print(struct {
		*apitypes.User
		Password string `json:"password,omitempty"`
	}{u, generated}, func(w io.Writer) {
		fmt.Fprintf(w, "id\t%s\nemail\t%s\nname\t%s\nmanaged apple account\t%s\ntenant\t%s\nenabled\t%v\npassword\t%s\nsecond factor\t%s\nlast sign-in\t%s\n",
			u.ID, u.Email, u.Name, u.ManagedAppleID, u.TenantID, u.Enabled, pwRow, u.SecondFactor, lastSignIn(u.LastSignInAt))
	})
}

// setNone says whether a user has a password.
func setNone(set bool) string {
	if set {
		return "set"
	}
	return "none"
}

func lastSignIn(at *time.Time) string {
	if at == nil {
		return "never"
	}
	return at.Local().Format(time.RFC3339)
}

// readPassword gets a password from stdin (--password-stdin), generates one
// (--generate-password), or prompts twice without echo on a terminal.
// optional allows no password at all when none of these applies.
func readPassword(env *Env, fromStdin, generate, optional bool) (pw string, generated bool, err error) {
	switch {
	case fromStdin && generate:
		return "", false, usagef("--password-stdin and --generate-password exclude each other")
	case generate:
		pw, err := randomString(generatedPasswordLen, lowerBase32)
		return pw, err == nil, err
	case fromStdin:
		line, err := bufio.NewReader(env.Stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", false, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return "", false, usagef("--password-stdin: stdin had no password")
		}
		return line, false, nil
	case env.StdinTerminal:
		f, ok := env.Stdin.(*os.File)
		if !ok {
			break
		}
		fmt.Fprint(env.Stderr, "Password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", false, err
		}
		if len(a) == 0 && optional {
			return "", false, nil
		}
		fmt.Fprint(env.Stderr, "Repeat: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(env.Stderr)
		if err != nil {
			return "", false, err
		}
		if string(a) != string(b) {
			return "", false, fmt.Errorf("the passwords differ")
		}
		return string(a), false, nil
	}
	if optional {
		return "", false, nil
	}
	return "", false, usagef("give the password with --password-stdin or --generate-password")
}
