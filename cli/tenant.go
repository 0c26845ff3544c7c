package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/apiclient"
	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/branding"
)

// pomona tenant add|list|show|update|branding|delete: tenants through the
// admin API (/api/v1/tenants).

func tenantAdd(fs *flag.FlagSet) func(*call) error {
	var domains multiFlag
	fs.Var(&domains, "domain", "an enterprise email domain of the tenant (repeat for more)")
	twoFA := fs.Bool("second-factor", true, "require a second factor (TOTP) at sign-in")
	return func(c *call) error {
		name, err := c.one(`give the tenant's name: pomona tenant add "Example Corp" --domain example.com`)
		if err != nil {
			return err
		}
		if len(domains) == 0 {
			return usagef("give at least one --domain")
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		var t apitypes.Tenant
		if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/tenants", map[string]any{"name": name, "domains": domains, "require_second_factor": *twoFA}, &t); err != nil {
			return err
		}
		return showTenant(c, &t)
	}
}

func tenantList(c *call) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	var out struct {
		Tenants []apitypes.Tenant `json:"tenants"`
	}
	if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/tenants", nil, &out); err != nil {
		return err
	}
	return c.print(out, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tNAME\tDOMAINS\t2FA\tENROLLMENT URL")
		for _, t := range out.Tenants {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, strings.Join(t.Domains, ","), onOff(t.RequireSecondFactor), t.EnrollmentURL)
		}
	})
}

func tenantShow(c *call) error {
	ref, api, err := c.oneClient("give one tenant id or domain")
	if err != nil {
		return err
	}
	t, err := api.Tenant(c.Ctx, ref)
	if err != nil {
		return err
	}
	return showTenant(c, t)
}

func tenantUpdate(fs *flag.FlagSet) func(*call) error {
	name := fs.String("name", "", "new name")
	var add, remove multiFlag
	fs.Var(&add, "add-domain", "domain to add (repeatable)")
	fs.Var(&remove, "remove-domain", "domain to remove (repeatable; refused while users are in it)")
	twoFA := fs.String("second-factor", "", "true or false: require a second factor at sign-in")
	return func(c *call) error {
		ref, api, err := c.oneClient("give one tenant id or domain")
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
		cur, err := api.Tenant(c.Ctx, ref)
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
		var t apitypes.Tenant
		if err := api.Do(c.Ctx, http.MethodPatch, "/api/v1/tenants/"+url.PathEscape(cur.ID), patch, &t); err != nil {
			return err
		}
		return showTenant(c, &t)
	}
}

// tenantBranding shows or changes the branding of a tenant's device
// sign-in pages. A flag given with an empty value removes that item.
func tenantBranding(fs *flag.FlagSet) func(*call) error {
	accent := fs.String("accent-color", "", "accent colour, #rrggbb, at least 4.5:1 against white (\"\" removes it)")
	contact := fs.String("contact", "", "one line telling people how to reach IT (\"\" removes it)")
	privacy := fs.String("privacy-url", "", "https link to the statement of what IT can see on a device (\"\" removes it)")
	logo := fs.String("logo", "", "PNG or JPEG logo file (at most 256 KiB, 2048 px a side; no SVG)")
	removeLogo := fs.Bool("remove-logo", false, "remove the logo")
	return func(c *call) error {
		ref, err := c.one("give one tenant id or domain")
		if err != nil {
			return err
		}
		if *logo != "" && *removeLogo {
			return usagef("give --logo or --remove-logo, not both")
		}
		given := map[string]bool{}
		c.flags.Visit(func(f *flag.Flag) { given[f.Name] = true })
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
		api, err := c.client()
		if err != nil {
			return err
		}
		var t apitypes.Tenant
		if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/tenants/"+url.PathEscape(ref), nil, &t); err != nil {
			return err
		}
		patch := map[string]any{}
		for flagName, v := range map[string]*string{"accent-color": accent, "contact": contact, "privacy-url": privacy} {
			if given[flagName] { // also when set by POMONA_<FLAG>: parse sets those through the flag set
				patch[strings.ReplaceAll(flagName, "-", "_")] = *v
			}
		}
		if len(patch) > 0 {
			if err := api.Do(c.Ctx, http.MethodPatch, "/api/v1/tenants/"+url.PathEscape(t.ID), patch, &t); err != nil {
				return err // Main names the flag (--accent-color) for the API's field
			}
		}
		switch {
		case logoData != nil:
			if err := api.Do(c.Ctx, http.MethodPut, "/api/v1/tenants/"+url.PathEscape(t.ID)+"/logo", apiclient.Raw{ContentType: logoType, Data: logoData}, &t); err != nil {
				return err
			}
		case *removeLogo:
			if err := api.Do(c.Ctx, http.MethodDelete, "/api/v1/tenants/"+url.PathEscape(t.ID)+"/logo", nil, nil); err != nil {
				return err
			}
			t.LogoURL = ""
		}
		none := func(s string) string {
			if s == "" {
				return "(none)"
			}
			return s
		}
		return c.print(t, func(w io.Writer) {
			fmt.Fprintf(w, "tenant\t%s (%s)\naccent colour\t%s\ncontact\t%s\nprivacy link\t%s\nlogo\t%s\n",
				t.Name, t.ID, none(t.AccentColor), none(t.Contact), none(t.PrivacyURL), none(t.LogoURL))
		})
	}
}

func tenantDelete(fs *flag.FlagSet) func(*call) error {
	cascade := fs.Bool("cascade", false, "also delete the tenant's users (their enrolled devices are told to remove their enrollment)")
	yes := fs.Bool("yes", false, "confirm that the users' enrolled devices are unenrolled")
	return func(c *call) error {
		ref, api, err := c.oneClient("give one tenant id or domain")
		if err != nil {
			return err
		}
		path := "/api/v1/tenants/" + url.PathEscape(ref)
		n := 0
		if *cascade {
			path += "?cascade=true"
			if n, err = confirmEnding(c, path, "tenant "+ref, *yes); err != nil {
				return err
			}
		}
		if err := api.Do(c.Ctx, http.MethodDelete, path, nil, nil); err != nil {
			var ae *apiclient.Error
			if errors.As(err, &ae) && ae.Code == "in_use" {
				// The API's message names its parameter (cascade=true).
				return fmt.Errorf("tenant %s still has users: delete them first, or give --cascade to delete them with it", ref)
			}
			return err
		}
		return printDeleted(c, "tenant", ref, n)
	}
}

func showTenant(c *call, t *apitypes.Tenant) error {
	return c.print(t, func(w io.Writer) {
		fmt.Fprintf(w, "id\t%s\nname\t%s\ndomains\t%s\nsecond factor\t%s\nenrollment URL\t%s\ncreated\t%s\n",
			t.ID, t.Name, strings.Join(t.Domains, ", "), onOff(t.RequireSecondFactor),
			t.EnrollmentURL, t.CreatedAt.Local().Format(time.RFC3339))
	})
}

// onOff says whether a tenant requires a second factor.
func onOff(b bool) string {
	if b {
		return "required"
	}
	return "optional"
}

// confirmEnding asks the API (?dry_run=true on path) how many enrolled
// devices deleting what would unenroll; with any and no --yes it says so
// and refuses (exit 1), so a deletion never unenrolls devices unawares.
func confirmEnding(c *call, path, what string, yes bool) (int, error) {
	api, err := c.client()
	if err != nil {
		return 0, err
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var dry struct {
		Devices int `json:"devices_to_unenroll"`
	}
	if err := api.Do(c.Ctx, http.MethodDelete, path+sep+"dry_run=true", nil, &dry); err != nil {
		return 0, err
	}
	if dry.Devices > 0 && !yes {
		return 0, fmt.Errorf("deleting %s unenrolls %d device(s): each is sent RemoveProfile and loses its managed apps, accounts and data; give --yes to go ahead", what, dry.Devices)
	}
	return dry.Devices, nil
}

// printDeleted reports that the kind ("tenant", "user") ref was deleted and
// n of its devices told to unenroll: an actionResult with --json, else one
// line.
func printDeleted(c *call, kind, ref string, n int) error {
	if c.json() {
		return printJSON(c.Stdout, actionResult{ID: ref, Action: "deleted", DevicesUnenrolled: &n})
	}
	note := ""
	if n != 0 {
		note = fmt.Sprintf(" (%d device(s) told to remove their enrollment)", n)
	}
	fmt.Fprintf(c.Stdout, "deleted %s %s%s\n", kind, ref, note)
	return nil
}

// multiFlag is a repeatable flag; each value may also list several,
// comma-separated.
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
