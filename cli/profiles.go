package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pomona-mdm/pomona/apiclient"
	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
)

// pomona group … and pomona profile …: desired state through the admin
// API (/api/v1/groups, /api/v1/profiles; docs/profiles.md).

func groupAdd(fs *flag.FlagSet) func(*call) error {
	tenant := fs.String("tenant", "", "tenant id, name or domain")
	return func(c *call) error {
		name, api, err := c.oneClient("give the group's name")
		if err != nil {
			return err
		}
		var g apitypes.Group
		if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/groups", map[string]any{"tenant_id": *tenant, "name": name}, &g); err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.Stdout, g)
		}
		fmt.Fprintf(controlEscaper{c.Stdout}, "group %s created: %s\n", g.ID, g.Name)
		return nil
	}
}

func groupList(fs *flag.FlagSet) func(*call) error {
	tenant := fs.String("tenant", "", "tenant id, name or domain")
	return func(c *call) error {
		api, err := c.client()
		if err != nil {
			return err
		}
		var res struct {
			Groups []apitypes.Group `json:"groups"`
		}
		if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/groups?tenant_id="+url.QueryEscape(*tenant), nil, &res); err != nil {
			return err
		}
		return c.print(res, func(w io.Writer) {
			fmt.Fprintln(w, "ID\tNAME\tSOURCE\tMEMBERS")
			for _, g := range res.Groups {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\n", g.ID, g.Name, g.Source, g.Members)
			}
		})
	}
}

func groupShow(c *call) error {
	id, api, err := c.oneClient("give the group id")
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/groups/"+url.PathEscape(id)+"?limit=1000", nil, &raw); err != nil {
		return err
	}
	if c.json() {
		var res map[string]any
		if err := json.Unmarshal(raw, &res); err != nil {
			return err
		}
		return printJSON(c.Stdout, res)
	}
	// Text, like every other show: the group, then its members by email
	// (it printed the API's JSON whether or not --json was given).
	var res struct {
		Group   apitypes.Group  `json:"group"`
		Members []apitypes.User `json:"members"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	return c.print(nil, func(w io.Writer) {
		g := res.Group
		fmt.Fprintf(w, "id\t%s\nname\t%s\ntenant\t%s\nsource\t%s\nmembers\t%d\ncreated\t%s\n", g.ID, g.Name, g.TenantID,
			map[string]string{"all": "all (every user of the tenant)", "static": "static (members added by hand)"}[g.Source], g.Members, g.CreatedAt.Local().Format(time.RFC3339))
		if len(res.Members) > 0 {
			fmt.Fprintln(w, "\nEMAIL\tNAME\tID")
			for _, u := range res.Members {
				fmt.Fprintf(w, "%s\t%s\t%s\n", u.Email, orDash(u.Name), u.ID)
			}
		}
		if len(res.Members) < g.Members {
			fmt.Fprintf(w, "(the first %d members; --json for the API's page)\n", len(res.Members))
		}
	})
}

func groupRename(c *call) error {
	if len(c.args) != 2 {
		return usagef("%s", "give the group id and its new name")
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	var g apitypes.Group
	if err := api.Do(c.Ctx, http.MethodPatch, "/api/v1/groups/"+url.PathEscape(c.args[0]), map[string]any{"name": c.args[1]}, &g); err != nil {
		return err
	}
	fmt.Fprintf(controlEscaper{c.Stdout}, "group %s renamed: %s\n", g.ID, g.Name)
	return nil
}

func groupDelete(c *call) error {
	id, api, err := c.oneClient("give the group id")
	if err != nil {
		return err
	}
	if err := api.Do(c.Ctx, http.MethodDelete, "/api/v1/groups/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "group %s deleted\n", id)
	return nil
}

func groupAddMembers(fs *flag.FlagSet) func(*call) error {
	csvFile := fs.String("csv", "", "a CSV file whose first column holds the emails (a header row named email is skipped)")
	return func(c *call) error {
		if len(c.args) < 1 {
			return usagef("%s", "give the group id, then emails or --csv")
		}
		users := c.args[1:]
		if *csvFile != "" {
			more, err := csvEmails(*csvFile)
			if err != nil {
				return err
			}
			users = append(users, more...)
		}
		if len(users) == 0 {
			return usagef("%s", "give the members' emails or ids, or --csv")
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		return addMembers(c.Ctx, api, c.Stdout, c.args[0], users, c.json())
	}
}

func groupRemoveMember(c *call) error {
	if len(c.args) != 2 {
		return usagef("%s", "give the group id and the member's email or id")
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	if err := api.Do(c.Ctx, http.MethodDelete, "/api/v1/groups/"+url.PathEscape(c.args[0])+"/members/"+url.PathEscape(c.args[1]), nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "%s removed from group %s\n", c.args[1], c.args[0])
	return nil
}

// csvEmails reads the first column of a CSV file, skipping a header.
func csvEmails(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	var out []string
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		v := strings.TrimSpace(rec[0])
		if v == "" || line == 1 && strings.EqualFold(v, "email") {
			continue
		}
		out = append(out, v)
	}
}

// addMembers adds users and prints the per-row report; rows that failed
// make the command fail after the report.
func addMembers(ctx context.Context, c *apiclient.Client, out io.Writer, group string, users []string, asJSON bool) error {
	var res struct {
		Added  int                  `json:"added"`
		Failed int                  `json:"failed"`
		Rows   []apitypes.MemberRow `json:"rows"`
	}
	if err := c.Do(ctx, http.MethodPost, "/api/v1/groups/"+url.PathEscape(group)+"/members", map[string]any{"users": users}, &res); err != nil {
		return err
	}
	if asJSON {
		if err := printJSON(out, res); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ROW\tUSER\tRESULT\tERROR")
		for i, r := range res.Rows {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", i+1, r.Ref, r.Result, orDash(r.Error))
		}
		tw.Flush()
		fmt.Fprintf(out, "%d added, %d failed\n", res.Added, res.Failed)
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d users were not added", res.Failed, len(users))
	}
	return nil
}

func profileUpload(fs *flag.FlagSet) func(*call) error {
	tenant := fs.String("tenant", "", "tenant id, name or domain")
	profileID := fs.String("profile", "", "make the file the next version of this profile")
	platforms := fs.String("platforms", "", "iOS, macOS or both, comma separated (default: every platform all its payloads exist on)")
	minOS := fs.String("min-os", "", "minimum OS version (e.g. 17.0)")
	sign := fs.Bool("sign", false, "Pomona signs the delivered profile with its profile signer")
	return func(c *call) error {
		file, err := c.one("give the .mobileconfig file")
		if err != nil {
			return err
		}
		content, err := readProfileFile(file)
		if err != nil {
			return err
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		var p apitypes.Profile
		if *profileID != "" {
			err = api.Do(c.Ctx, http.MethodPost, "/api/v1/profiles/"+url.PathEscape(*profileID)+"/versions", map[string]any{"content": content}, &p)
		} else {
			body := map[string]any{"tenant_id": *tenant, "content": content, "min_os_version": *minOS, "sign": *sign}
			if *platforms != "" {
				body["platforms"] = strings.Split(*platforms, ",")
			}
			err = api.Do(c.Ctx, http.MethodPost, "/api/v1/profiles", body, &p)
		}
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Code == "user_enrollment_refused" {
			return fmt.Errorf("refused: %s", ae.Message)
		}
		if err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.Stdout, p)
		}
		fmt.Fprintf(controlEscaper{c.Stdout}, "profile %s: %s version %d (%s)\n", p.ID, p.Identifier, p.Version, strings.Join(p.Platforms, ", "))
		return nil
	}
}

// readProfileFile reads a .mobileconfig to upload: a file over the
// server's limit (mobileconfig.MaxFile) is refused with it before it is
// read whole (a wrong path, /dev/zero, a disk image) and sent.
func readProfileFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, mobileconfig.MaxFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > mobileconfig.MaxFile {
		return nil, fmt.Errorf("%s: %s", name, mobileconfig.TooLarge)
	}
	return b, nil
}

func profileList(fs *flag.FlagSet) func(*call) error {
	tenant := fs.String("tenant", "", "tenant id, name or domain (default: every tenant)")
	return func(c *call) error {
		api, err := c.client()
		if err != nil {
			return err
		}
		q := ""
		if *tenant != "" {
			q = "?tenant_id=" + url.QueryEscape(*tenant)
		}
		var res struct {
			Profiles []apitypes.Profile `json:"profiles"`
		}
		if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/profiles"+q, nil, &res); err != nil {
			return err
		}
		return c.print(res, func(w io.Writer) {
			fmt.Fprintln(w, "ID\tIDENTIFIER\tNAME\tVERSION\tPLATFORMS\tPAYLOADS")
			for _, p := range res.Profiles {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", p.ID, p.Identifier, p.Name, p.Version, strings.Join(p.Platforms, ","), strings.Join(p.PayloadTypes, ","))
			}
		})
	}
}

func profileShow(c *call) error {
	id, api, err := c.oneClient("give the profile id")
	if err != nil {
		return err
	}
	var p apitypes.Profile
	if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/profiles/"+url.PathEscape(id), nil, &p); err != nil {
		return err
	}
	// Text unless --json (it printed the API's JSON either way).
	return c.print(p, func(w io.Writer) {
		minOS := p.MinOSVersion
		if minOS == "" {
			minOS = "-"
		}
		fmt.Fprintf(w, "id\t%s\nname\t%s\nidentifier\t%s\ntenant\t%s\nversion\t%d\nplatforms\t%s\nminimum OS\t%s\nsigned at delivery\t%s\npayloads\t%s\nupdated\t%s\n",
			p.ID, p.Name, p.Identifier, p.TenantID, p.Version, strings.Join(p.Platforms, ", "), minOS, map[bool]string{true: "yes", false: "no"}[p.Sign],
			strings.Join(p.PayloadTypes, ", "), p.UpdatedAt.Local().Format(time.RFC3339))
		if len(p.Assignments) == 0 {
			fmt.Fprintf(w, "assigned to\tnone: no device gets it (pomona profile assign %s --group G)\n", p.ID)
		}
		for _, a := range p.Assignments {
			fmt.Fprintf(w, "%s\t%s\n", map[bool]string{true: "excludes", false: "assigned to"}[a.Exclude], a.GroupID)
		}
	})
}

func profileAssign(fs *flag.FlagSet) func(*call) error {
	group := fs.String("group", "", "the group: its id (gr_…) or its name in the profile's tenant (pomona group list --tenant T)")
	exclude := fs.Bool("exclude", false, "keep the profile off the group's devices (exclusion wins)")
	return func(c *call) error {
		api, id, gid, err := profileAndGroup(c, *group)
		if err != nil {
			return err
		}
		if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/profiles/"+url.PathEscape(id)+"/assignments", apitypes.ProfileAssignment{GroupID: gid, Exclude: *exclude}, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "profile %s %s group %s\n", id, map[bool]string{true: "excludes", false: "assigned to"}[*exclude], gid)
		return nil
	}
}

func profileUnassign(fs *flag.FlagSet) func(*call) error {
	group := fs.String("group", "", "the group: its id (gr_…) or its name in the profile's tenant (pomona group list --tenant T)")
	return func(c *call) error {
		api, id, gid, err := profileAndGroup(c, *group)
		if err != nil {
			return err
		}
		if err := api.Do(c.Ctx, http.MethodDelete, "/api/v1/profiles/"+url.PathEscape(id)+"/assignments/"+url.PathEscape(gid), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "profile %s unassigned from group %s\n", id, gid)
		return nil
	}
}

// profileAndGroup reads the profile id (the one argument) and the group
// --group names (resolveGroup) for assign and unassign.
func profileAndGroup(c *call, group string) (api *apiclient.Client, id, gid string, err error) {
	if id, err = c.one("give the profile id"); err != nil {
		return nil, "", "", err
	}
	if group == "" {
		return nil, "", "", usagef("%s", "give --group")
	}
	if api, err = c.client(); err != nil {
		return nil, "", "", err
	}
	gid, err = resolveGroup(c.Ctx, api, id, group)
	return api, id, gid, err
}

// resolveGroup is the id of the group that --group names for profile
// profileID: a group of the profile's tenant with that id, else with that
// name — exactly (names are unique in a tenant as written), else ignoring
// case; a group named like an id ("gr_x") is found by its name. An id of
// no group of the tenant is passed on for the server to refuse. "sales" may fit both "Sales" and "SALES":
// a name that fits more than one group is an error listing their ids,
// never a guess.
func resolveGroup(ctx context.Context, api *apiclient.Client, profileID, group string) (string, error) {
	var p apitypes.Profile
	if err := api.Do(ctx, http.MethodGet, "/api/v1/profiles/"+url.PathEscape(profileID), nil, &p); err != nil {
		return "", err
	}
	var res struct {
		Groups []apitypes.Group `json:"groups"`
	}
	if err := api.Do(ctx, http.MethodGet, "/api/v1/groups?tenant_id="+url.QueryEscape(p.TenantID), nil, &res); err != nil {
		return "", err
	}
	var exact, folded []string
	for _, g := range res.Groups {
		if g.ID == group {
			return g.ID, nil
		}
		if g.Name == group {
			exact = append(exact, g.ID)
		} else if strings.EqualFold(g.Name, group) {
			folded = append(folded, g.ID)
		}
	}
	ids := exact
	if len(ids) == 0 {
		ids = folded
	}
	switch len(ids) {
	case 1:
		return ids[0], nil
	case 0:
		if strings.HasPrefix(group, "gr_") {
			// Not this tenant's: the server says why (another tenant's
			// group, or none).
			return group, nil
		}
		return "", fmt.Errorf("no group named %q in the profile's tenant %s (pomona group list --tenant %s)", group, p.TenantID, p.TenantID)
	}
	return "", fmt.Errorf("%d groups are named %q (ignoring case) in tenant %s (%s): give --group the id or the exact name", len(ids), group, p.TenantID, strings.Join(ids, ", "))
}

func profileStatusCmd(fs *flag.FlagSet) func(*call) error {
	state := fs.String("state", "", "only devices in this state (pending, installing, installed, failed, removing)")
	return func(c *call) error {
		id, api, err := c.oneClient("give the profile id")
		if err != nil {
			return err
		}
		return profileStatus(c.Ctx, api, c.Stdout, id, *state, c.json())
	}
}

// profileRetry asks for the profile again on one failed device (--device)
// or on every device the profile's status lists as failed (--failed):
// POST /api/v1/devices/{id}/profiles/{profile}/retry for each. A device
// that is no longer failed when its retry arrives is refused by the
// server (409) and reported; the others are still retried.
func profileRetry(fs *flag.FlagSet) func(*call) error {
	device := fs.String("device", "", "the failed device's id (en_…, from pomona profile status <id> --state failed)")
	failed := fs.Bool("failed", false, "every device the profile failed on")
	return func(c *call) error {
		id, api, err := c.oneClient("give the profile id")
		if err != nil {
			return err
		}
		if (*device == "") == !*failed {
			return usagef("%s", "give --device D or --failed")
		}
		devices := []string{*device}
		if *failed {
			var st bytes.Buffer
			if err := profileStatus(c.Ctx, api, &st, id, "failed", true); err != nil {
				return err
			}
			var all apitypes.ProfileStatus
			if err := json.Unmarshal(st.Bytes(), &all); err != nil {
				return err
			}
			devices = devices[:0]
			for _, d := range all.Devices {
				devices = append(devices, d.Device)
			}
		}
		var errs []error
		n := 0
		for _, d := range devices {
			if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(d)+"/profiles/"+url.PathEscape(id)+"/retry", nil, nil); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d, err))
				continue
			}
			n++
		}
		fmt.Fprintf(c.Stdout, "profile %s: retry queued on %d device(s)\n", id, n)
		return errors.Join(errs...)
	}
}

// profileStatus prints the counts and every device (all pages).
func profileStatus(ctx context.Context, c *apiclient.Client, out io.Writer, id, state string, asJSON bool) error {
	var all apitypes.ProfileStatus
	after := ""
	for {
		var res apitypes.ProfileStatus
		q := url.Values{"limit": {"1000"}, "after": {after}}
		if state != "" {
			q.Set("state", state)
		}
		if err := c.Do(ctx, http.MethodGet, "/api/v1/profiles/"+url.PathEscape(id)+"/status?"+q.Encode(), nil, &res); err != nil {
			return err
		}
		all.Counts = res.Counts
		all.Devices = append(all.Devices, res.Devices...)
		if res.NextAfter == "" {
			break
		}
		after = res.NextAfter
	}
	if asJSON {
		return printJSON(out, all)
	}
	n := all.Counts
	fmt.Fprintf(out, "installed %d, installing %d, pending %d, failed %d, removing %d\n", n["installed"], n["installing"], n["pending"], n["failed"], n["removing"])
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tUSER\tPLATFORM\tSTATE\tVERSION\tATTEMPTS\tERROR")
	for _, d := range all.Devices {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.Device, d.UserEmail, d.Platform, d.State, d.Version, d.Attempts, orDash(d.Error))
	}
	return tw.Flush()
}

func profileUpdate(fs *flag.FlagSet) func(*call) error {
	name := fs.String("name", "", "the profile's new name")
	platforms := fs.String("platforms", "", "the platforms it applies to, comma-separated (iOS, macOS)")
	minOS := fs.String("min-os", "", `the minimum OS version ("none" removes it)`)
	var sign optionalBool
	fs.Var(&sign, "sign", "sign the delivered profile with Pomona's profile signer (true or false)")
	return func(c *call) error {
		id, api, err := c.oneClient("give the profile id")
		if err != nil {
			return err
		}
		in := apitypes.ProfileUpdate{}
		if *name != "" {
			in.Name = name
		}
		if *platforms != "" {
			ps := strings.Split(*platforms, ",")
			in.Platforms = &ps
		}
		switch *minOS {
		case "":
		case "none":
			none := ""
			in.MinOSVersion = &none
		default:
			in.MinOSVersion = minOS
		}
		if sign.set {
			in.Sign = &sign.v
		}
		if in == (apitypes.ProfileUpdate{}) {
			return usagef("%s", "give --name, --platforms, --min-os or --sign")
		}
		var p apitypes.Profile
		if err := api.Do(c.Ctx, http.MethodPatch, "/api/v1/profiles/"+url.PathEscape(id), in, &p); err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.Stdout, p)
		}
		min := p.MinOSVersion
		if min == "" {
			min = "none"
		}
		fmt.Fprintf(controlEscaper{c.Stdout}, "profile %s updated: %s, platforms %s, minimum OS %s, signed %t (its devices are being brought in line)\n",
			p.ID, p.Name, strings.Join(p.Platforms, ","), min, p.Sign)
		return nil
	}
}

// optionalBool is a flag that records whether it was given.
type optionalBool struct{ set, v bool }

func (b *optionalBool) String() string {
	if b == nil || !b.set {
		return ""
	}
	return fmt.Sprint(b.v)
}

func (b *optionalBool) Set(s string) error {
	switch strings.ToLower(s) {
	case "true", "yes", "1":
		b.v = true
	case "false", "no", "0":
		b.v = false
	default:
		return fmt.Errorf("%q is not true or false", s)
	}
	b.set = true
	return nil
}

func (b *optionalBool) IsBoolFlag() bool { return true }

func profileDelete(fs *flag.FlagSet) func(*call) error {
	yes := fs.Bool("yes", false, "confirm that the devices that have the profile lose it")
	return func(c *call) error {
		id, api, err := c.oneClient("give the profile id")
		if err != nil {
			return err
		}
		path := "/api/v1/profiles/" + url.PathEscape(id)
		var dry apitypes.ProfileDeletion
		if err := api.Do(c.Ctx, http.MethodDelete, path+"?dry_run=true", nil, &dry); err != nil {
			return err
		}
		if dry.DevicesLosingIt > 0 && !*yes {
			return fmt.Errorf("deleting profile %s removes it from %d device(s) (RemoveProfile); give --yes to go ahead", id, dry.DevicesLosingIt)
		}
		if err := api.Do(c.Ctx, http.MethodDelete, path, nil, nil); err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.Stdout, map[string]any{"id": id, "action": "deleted", "devices_losing_it": dry.DevicesLosingIt})
		}
		fmt.Fprintf(c.Stdout, "profile %s deleted: %d device(s) will lose it\n", id, dry.DevicesLosingIt)
		return nil
	}
}
