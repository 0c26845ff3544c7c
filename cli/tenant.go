package cli

import (
	"bufio"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/pomona-mdm/pomona/apiclient"
	"github.com/pomona-mdm/pomona/branding"
)

// --- tenant ---

const tenantUsage = "tenant add|list|show|update|branding|delete ..."

func runTenant(env *Env, args []string) error {
	sub, args, err := subcommand(args, tenantUsage)
	if err != nil {
		return err
	}
	var cf clientFlags
	switch sub {
	case "add":
		fs := newFlags(env, "tenant add", `tenant add "<name>" --domain <domain> [--domain <domain>...] [--second-factor=false]`)
		cf.register(fs)
		var domains multiFlag
		fs.Var(&domains, "domain", "an enterprise email domain of the tenant (repeat for more)")
		twoFA := fs.Bool("second-factor", true, "require a second factor (TOTP) at sign-in")
		pos, err := parse(env, fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef(`give the tenant's name: pomona tenant add "Example Corp" --domain example.com`)
		}
		if len(domains) == 0 {
			return usagef("give at least one --domain")
		}
		c, err := cf.client(env)
		if err != nil {
			return err
		}
		var t apiclient.Tenant
		if err := c.Do(env.Ctx, http.MethodPost, "/api/v1/tenants", map[string]any{"name": pos[0], "domains": domains, "require_second_factor": *twoFA}, &t); err != nil {
			return err
		}
		return showTenant(env, &cf, &t)
	case "list":
		fs := newFlags(env, "tenant list", "tenant list")
		cf.register(fs)
		if _, err := parse(env, fs, args); err != nil {
			return err
		}
		c, err := cf.client(env)
		if err != nil {
			return err
		}
		var out struct {
			Tenants []apiclient.Tenant `json:"tenants"`
		}
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/tenants", nil, &out); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.Stdout, out)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tDOMAINS\t2FA\tENROLLMENT URL")
		for _, t := range out.Tenants {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Domains, ","), onOff(t.RequireSecondFactor), t.EnrollmentURL)
		}
		return tw.Flush()
	case "show":
		fs := newFlags(env, "tenant show", "tenant show <id or domain>")
		cf.register(fs)
		pos, err := parse(env, fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("give one tenant id or domain")
		}
		c, err := cf.client(env)
		if err != nil {
			return err
		}
		t, err := c.Tenant(env.Ctx, pos[0])
		if err != nil {
			return err
		}
		return showTenant(env, &cf, t)
	case "update":
		fs := newFlags(env, "tenant update", "tenant update <id or domain> [--name N] [--add-domain D] [--remove-domain D] [--second-factor=true|false]")
		cf.register(fs)
		name := fs.String("name", "", "new name")
		var add, remove multiFlag
		fs.Var(&add, "add-domain", "domain to add (repeatable)")
		fs.Var(&remove, "remove-domain", "domain to remove (repeatable; refused while users are in it)")
		twoFA := fs.String("second-factor", "", "true or false: require a second factor at sign-in")
		pos, err := parse(env, fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("give one tenant id or domain")
		}
		c, err := cf.client(env)
		if err != nil {
			return err
		}
		patch := map[string]any{}
		if *name != "" {
			patch["name"] = *name
		}
		if *twoFA != "" {
			b, err := strconv.ParseBool(*twoFA)
			if err != nil {
				return usagef("--second-factor must be true or false")
			}
			patch["require_second_factor"] = b
		}
		cur, err := c.Tenant(env.Ctx, pos[0])
		if err != nil {
			return err
		}
		if len(add) > 0 || len(remove) > 0 {
			drop := map[string]bool{}
			for _, d := range remove {
				drop[strings.ToLower(d)] = true
			}
			var ds []string
			for _, d := range cur.Domains {
				if !drop[d] {
					ds = append(ds, d)
				}
			}
			patch["domains"] = append(ds, add...)
		}
		if len(patch) == 0 {
			return usagef("nothing to change: give --name, --add-domain, --remove-domain or --second-factor")
		}
		var t apiclient.Tenant
		if err := c.Do(env.Ctx, http.MethodPatch, "/api/v1/tenants/"+url.PathEscape(cur.ID), patch, &t); err != nil {
			return err
		}
		return showTenant(env, &cf, &t)
	case "branding":
		return runTenantBranding(env, &cf, args)
	case "delete":
		fs := newFlags(env, "tenant delete", "tenant delete <id or domain> [--cascade [--yes]]")
		cf.register(fs)
		cascade := fs.Bool("cascade", false, "also delete the tenant's users (their enrolled devices are told to remove their enrollment)")
		yes := fs.Bool("yes", false, "confirm that the users' enrolled devices are unenrolled")
		pos, err := parse(env, fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("give one tenant id or domain")
		}
		c, err := cf.client(env)
		if err != nil {
			return err
		}
		path := "/api/v1/tenants/" + url.PathEscape(pos[0])
		n := 0
		if *cascade {
			path += "?cascade=true"
			if n, err = confirmEnding(env, c, path, "tenant "+pos[0], *yes); err != nil {
				return err
			}
		}
		if err := c.Do(env.Ctx, http.MethodDelete, path, nil, nil); err != nil {
			var ae *apiclient.Error
			if errors.As(err, &ae) && ae.Code == "in_use" {
				// The API's message names its parameter (cascade=true).
				return fmt.Errorf("tenant %s still has users: delete them first, or give --cascade to delete them with it", pos[0])
			}
			return err
		}
		fmt.Fprintf(env.Stdout, "deleted tenant %s%s\n", pos[0], unenrolledNote(n))
		return nil
	}
	return usagef("unknown subcommand %q\nUsage: pomona %s", sub, tenantUsage)
}

const brandingUsage = `tenant branding <id or domain> [--accent-color '#rrggbb'] [--contact "text"] [--privacy-url https://…] [--logo logo.png | --remove-logo]`

// runTenantBranding shows or changes the branding of a tenant's device
// sign-in pages. A flag given with an empty value removes that item.
func runTenantBranding(env *Env, cf *clientFlags, args []string) error {
	fs := newFlags(env, "tenant branding", brandingUsage)
	cf.register(fs)
	accent := fs.String("accent-color", "", "accent colour, #rrggbb, at least 4.5:1 against white (\"\" removes it)")
	contact := fs.String("contact", "", "one line telling people how to reach IT (\"\" removes it)")
	privacy := fs.String("privacy-url", "", "https link to the statement of what IT can see on a device (\"\" removes it)")
	logo := fs.String("logo", "", "PNG or JPEG logo file (at most 256 KiB, 2048 px a side; no SVG)")
	removeLogo := fs.Bool("remove-logo", false, "remove the logo")
	pos, err := parse(env, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("give one tenant id or domain\nUsage: pomona %s", brandingUsage)
	}
	if *logo != "" && *removeLogo {
		return usagef("give --logo or --remove-logo, not both")
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var logoData []byte
	var logoType string
	if *logo != "" {
		if logoData, err = os.ReadFile(*logo); err != nil {
			return err
		}
		// Checked here too, to say what is wrong before sending anything.
		if logoType, err = branding.Logo(logoData); err != nil {
			return usagef("--logo %s: %s", *logo, strings.TrimPrefix(err.Error(), branding.ErrInvalid.Error()+": logo: "))
		}
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	var t apiclient.Tenant
	if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/tenants/"+url.PathEscape(pos[0]), nil, &t); err != nil {
		return err
	}
	patch := map[string]any{}
	for flagName, v := range map[string]*string{"accent-color": accent, "contact": contact, "privacy-url": privacy} {
		if given[flagName] { // also when set by POMONA_<FLAG>: parse sets those through the flag set
			patch[strings.ReplaceAll(flagName, "-", "_")] = *v
		}
	}
	if len(patch) > 0 {
		if err := c.Do(env.Ctx, http.MethodPatch, "/api/v1/tenants/"+url.PathEscape(t.ID), patch, &t); err != nil {
			return err // Main names the flag (--accent-color) for the API's field
		}
	}
	switch {
	case logoData != nil:
		if err := c.Do(env.Ctx, http.MethodPut, "/api/v1/tenants/"+url.PathEscape(t.ID)+"/logo", apiclient.Raw{ContentType: logoType, Data: logoData}, &t); err != nil {
			return err
		}
	case *removeLogo:
		if err := c.Do(env.Ctx, http.MethodDelete, "/api/v1/tenants/"+url.PathEscape(t.ID)+"/logo", nil, nil); err != nil {
			return err
		}
		t.LogoURL = ""
	}
	if cf.json {
		return printJSON(env.Stdout, t)
	}
	none := func(s string) string {
		if s == "" {
			return "(none)"
		}
		return s
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "tenant\t%s (%s)\naccent colour\t%s\ncontact\t%s\nprivacy link\t%s\nlogo\t%s\n",
		t.Name, t.ID, none(t.AccentColor), none(t.Contact), none(t.PrivacyURL), none(t.LogoURL))
	return tw.Flush()
}

func showTenant(env *Env, cf *clientFlags, t *apiclient.Tenant) error {
	if cf.json {
		return printJSON(env.Stdout, t)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\nname\t%s\ndomains\t%s\nsecond factor\t%s\nenrollment URL\t%s\ncreated\t%s\n",
		t.ID, t.Name, strings.Join(t.Domains, ", "), map[bool]string{true: "required", false: "optional"}[t.RequireSecondFactor],
		t.EnrollmentURL, t.CreatedAt.Local().Format(time.RFC3339))
	return tw.Flush()
}

func onOff(b bool) string {
	if b {
		return "required"
	}
	return "optional"
}

type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*m = append(*m, p)
		}
	}
	return nil
}

// --- user ---

const userUsage = "user add|list|show|update|enable|disable|set-password|reset-2fa|reauthenticate|delete|import ..."

func runUser(env *Env, args []string) error {
	sub, args, err := subcommand(args, userUsage)
	if err != nil {
		return err
	}
	var cf clientFlags
	one := func(usage string, fs func(*clientFlags)) (*apiclient.Client, string, error) {
		f := newFlags(env, "user "+sub, usage)
		cf.register(f)
		pos, err := parse(env, f, args)
		if err != nil {
			return nil, "", err
		}
		if len(pos) != 1 {
			return nil, "", usagef("give one user id or email\nUsage: pomona %s", usage)
		}
		c, err := cf.client(env)
		return c, pos[0], err
	}
	switch sub {
	case "add":
		fs := newFlags(env, "user add", "user add <email> [--tenant T] [--name N] [--managed-apple-id A] [--password-stdin | --generate-password] [--disabled]")
		cf.register(fs)
		tenant := fs.String("tenant", "", "tenant id or domain (default: the tenant owning the email's domain)")
		name := fs.String("name", "", "display name")
		maid := fs.String("managed-apple-id", "", "Managed Apple Account (default: the email)")
		pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
		gen := fs.Bool("generate-password", false, "generate a password and print it once")
		disabled := fs.Bool("disabled", false, "create the user disabled")
		pos, err := parse(env, fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("give the user's email: pomona user add alice@example.com")
		}
		pw, generated, err := readPassword(env, *pwStdin, *gen, true)
		if err != nil {
			return err
		}
		c, err := cf.client(env)
		if err != nil {
			return err
		}
		in := apiclient.UserInput{Tenant: *tenant, Email: pos[0], Name: *name, ManagedAppleID: *maid, Password: pw}
		if *disabled {
			f := false
			in.Enabled = &f
		}
		u, err := c.CreateUser(env.Ctx, in)
		if err != nil {
			return err
		}
		if err := showUser(env, &cf, u); err != nil {
			return err
		}
		if generated && !cf.json {
			fmt.Fprintf(env.Stdout, "password\t%s   (shown once)\n", pw)
		}
		if pw == "" && !cf.json {
			fmt.Fprintf(env.Stderr, "note: %s has no password and cannot sign in yet: pomona user set-password %s\n", u.Email, u.Email)
		}
		return nil
	case "list":
		fs := newFlags(env, "user list", "user list [--tenant T] [--email E] [--limit N]")
		cf.register(fs)
		tenant := fs.String("tenant", "", "only users of this tenant (id or domain)")
		email := fs.String("email", "", "only the user with this email")
		limit := fs.Int("limit", 0, "at most this many users (default: all)")
		if _, err := parse(env, fs, args); err != nil {
			return err
		}
		c, err := cf.client(env)
		if err != nil {
			return err
		}
		var all []apiclient.User
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
				Users     []apiclient.User `json:"users"`
				NextAfter string           `json:"next_after"`
			}
			if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/users?"+q.Encode(), nil, &page); err != nil {
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
		if cf.json {
			return printJSON(env.Stdout, map[string]any{"users": all})
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tNAME\tMANAGED APPLE ACCOUNT\tENABLED\tPASSWORD\t2FA\tLAST SIGN-IN")
		for _, u := range all {
			last := "never"
			if u.LastSignInAt != nil {
				last = u.LastSignInAt.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\t%s\n", u.ID, u.Email, u.Name, u.ManagedAppleID, u.Enabled,
				map[bool]string{true: "set", false: "none"}[u.PasswordSet], u.SecondFactor, last)
		}
		return tw.Flush()
	case "show":
		c, ref, err := one("user show <id or email>", nil)
		if err != nil {
			return err
		}
		u, err := c.User(env.Ctx, ref)
		if err != nil {
			return err
		}
		return showUser(env, &cf, u)
	case "update":
		fs := newFlags(env, "user update", "user update <id or email> [--email E] [--name N] [--managed-apple-id A]")
		cf.register(fs)
		email := fs.String("email", "", "new email")
		name := fs.String("name", "", "new display name")
		maid := fs.String("managed-apple-id", "", "new Managed Apple Account")
		pos, err := parse(env, fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("give one user id or email")
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
		c, err := cf.client(env)
		if err != nil {
			return err
		}
		var u apiclient.User
		if err := c.Do(env.Ctx, http.MethodPatch, "/api/v1/users/"+url.PathEscape(pos[0]), patch, &u); err != nil {
			return err
		}
		return showUser(env, &cf, &u)
	case "enable", "disable":
		c, ref, err := one("user "+sub+" <id or email>", nil)
		if err != nil {
			return err
		}
		var u apiclient.User
		if err := c.Do(env.Ctx, http.MethodPatch, "/api/v1/users/"+url.PathEscape(ref), map[string]any{"enabled": sub == "enable"}, &u); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.Stdout, u)
		}
		fmt.Fprintf(env.Stdout, "%sd %s\n", sub, u.Email)
		return nil
	case "set-password":
		fs := newFlags(env, "user set-password", "user set-password <id or email> [--password-stdin | --generate-password]")
		cf.register(fs)
		pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
		gen := fs.Bool("generate-password", false, "generate a password and print it once")
		pos, err := parse(env, fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("give one user id or email")
		}
		pw, generated, err := readPassword(env, *pwStdin, *gen, false)
		if err != nil {
			return err
		}
		c, err := cf.client(env)
		if err != nil {
			return err
		}
		var u apiclient.User
		if err := c.Do(env.Ctx, http.MethodPost, "/api/v1/users/"+url.PathEscape(pos[0])+"/password", map[string]string{"password": pw}, &u); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "password set for %s; every session of the user has ended\n", u.Email)
		if generated {
			fmt.Fprintf(env.Stdout, "password: %s   (shown once)\n", pw)
		}
		return nil
	case "reset-2fa":
		c, ref, err := one("user reset-2fa <id or email>", nil)
		if err != nil {
			return err
		}
		var u apiclient.User
		if err := c.Do(env.Ctx, http.MethodDelete, "/api/v1/users/"+url.PathEscape(ref)+"/totp", nil, &u); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "second factor reset for %s: the next sign-in sets up a new one\n", u.Email)
		return nil
	case "reauthenticate":
		c, ref, err := one("user reauthenticate <id or email>", nil)
		if err != nil {
			return err
		}
		var u apiclient.User
		if err := c.Do(env.Ctx, http.MethodPost, "/api/v1/users/"+url.PathEscape(ref)+"/reauthenticate", nil, &u); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "%s must sign in again on every device (the devices ask; they stay enrolled)\n", u.Email)
		return nil
	case "delete":
		f := newFlags(env, "user delete", "user delete <id or email> [--yes]")
		cf.register(f)
		yes := f.Bool("yes", false, "confirm that the user's enrolled devices are unenrolled")
		pos, err := parse(env, f, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usagef("give one user id or email\nUsage: pomona user delete <id or email> [--yes]")
		}
		c, err := cf.client(env)
		if err != nil {
			return err
		}
		path := "/api/v1/users/" + url.PathEscape(pos[0])
		n, err := confirmEnding(env, c, path, "user "+pos[0], *yes)
		if err != nil {
			return err
		}
		if err := c.Do(env.Ctx, http.MethodDelete, path, nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "deleted user %s%s\n", pos[0], unenrolledNote(n))
		return nil
	case "import":
		return runImport(env, args)
	}
	return usagef("unknown subcommand %q\nUsage: pomona %s", sub, userUsage)
}

func showUser(env *Env, cf *clientFlags, u *apiclient.User) error {
	if cf.json {
		return printJSON(env.Stdout, u)
	}
	last := "never"
	if u.LastSignInAt != nil {
		last = u.LastSignInAt.Local().Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id\t%s\nemail\t%s\nname\t%s\nmanaged apple account\t%s\ntenant\t%s\nenabled\t%v\npassword\t%s\nsecond factor\t%s\nlast sign-in\t%s\n",
		u.ID, u.Email, u.Name, u.ManagedAppleID, u.TenantID, u.Enabled, map[bool]string{true: "set", false: "none"}[u.PasswordSet], u.SecondFactor, last)
	return tw.Flush()
}

// readPassword gets a password from stdin (--password-stdin), generates one
// (--generate-password), or prompts twice without echo on a terminal.
// optional allows no password at all when none of these applies.
func readPassword(env *Env, fromStdin, generate, optional bool) (pw string, generated bool, err error) {
	switch {
	case fromStdin && generate:
		return "", false, usagef("--password-stdin and --generate-password exclude each other")
	case generate:
		b := make([]byte, 15)
		if _, err := rand.Read(b); err != nil {
			return "", false, err
		}
		return strings.ToLower(base32.StdEncoding.EncodeToString(b)), true, nil
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

// --- apikey ---

const apikeyUsage = "apikey create --name N | list | revoke <id>"

func runAPIKey(env *Env, args []string) error {
	sub, args, err := subcommand(args, apikeyUsage)
	if err != nil {
		return err
	}
	var cf clientFlags
	fs := newFlags(env, "apikey "+sub, apikeyUsage)
	cf.register(fs)
	name := fs.String("name", "", "what the key is for (with create)")
	pos, err := parse(env, fs, args)
	if err != nil {
		return err
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		if *name == "" && len(pos) == 1 {
			*name = pos[0]
		}
		if *name == "" {
			return usagef("give the key a --name")
		}
		var k apiclient.APIKey
		if err := c.Do(env.Ctx, http.MethodPost, "/api/v1/apikeys", map[string]string{"name": *name}, &k); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.Stdout, k)
		}
		fmt.Fprintf(env.Stdout, "id    %s\nname  %s\nkey   %s\n\nThe key is shown only now; Pomona stores only its hash.\n", k.ID, k.Name, k.Key)
		return nil
	case "list":
		var out struct {
			Keys []apiclient.APIKey `json:"api_keys"`
		}
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/apikeys", nil, &out); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.Stdout, out)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tCREATED\tLAST USED\tSTATUS")
		for _, k := range out.Keys {
			used, status := "never", "active"
			if k.LastUsedAt != nil {
				used = k.LastUsedAt.Local().Format(time.RFC3339)
			}
			if k.RevokedAt != nil {
				status = "revoked " + k.RevokedAt.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.CreatedAt.Local().Format(time.RFC3339), used, status)
		}
		return tw.Flush()
	case "revoke":
		if len(pos) != 1 {
			return usagef("give the id of the key to revoke (pomona apikey list)")
		}
		if err := c.Do(env.Ctx, http.MethodDelete, "/api/v1/apikeys/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "revoked API key %s\n", pos[0])
		return nil
	}
	return usagef("unknown subcommand %q\nUsage: pomona %s", sub, apikeyUsage)
}

// confirmEnding asks the API (?dry_run=true on path) how many enrolled
// devices deleting what would unenroll; with any and no --yes it says so
// and refuses (exit 1), so a deletion never unenrolls devices unawares.
func confirmEnding(env *Env, c *apiclient.Client, path, what string, yes bool) (int, error) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var dry struct {
		Devices int `json:"devices_to_unenroll"`
	}
	if err := c.Do(env.Ctx, http.MethodDelete, path+sep+"dry_run=true", nil, &dry); err != nil {
		return 0, err
	}
	if dry.Devices > 0 && !yes {
		return 0, fmt.Errorf("deleting %s unenrolls %d device(s): each is sent RemoveProfile and loses its managed apps, accounts and data; give --yes to go ahead", what, dry.Devices)
	}
	return dry.Devices, nil
}

func unenrolledNote(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d device(s) told to remove their enrollment)", n)
}
