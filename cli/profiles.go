package cli

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/pomona-mdm/pomona/apiclient"
)

// pomona group … and pomona profile …: desired state through the admin
// API (/api/v1/groups, /api/v1/profiles; docs/profiles.md).

func profileCommands() map[string]command {
	return map[string]command{
		"group": {summary: "groups of users that profiles are assigned to: add, list, show, rename, delete, add-members, remove-member", run: runGroup, subs: []sub{
			{"add", "create a static group in a tenant"},
			{"list", "list a tenant's groups (the implicit all-users group first)"},
			{"show", "show a group and its members"},
			{"rename", "rename a static group"},
			{"delete", "delete a static group (its devices lose the profiles it gave them)"},
			{"add-members", "add users by email or id (or from a CSV of emails), with a per-row report"},
			{"remove-member", "remove a user from a group"},
		}},
		"profile": {summary: "configuration profiles kept on devices: upload, list, show, assign, unassign, status", run: runProfile, subs: []sub{
			{"upload", "upload a .mobileconfig (checked against Apple's user-enrollment rules), or a new version of a profile"},
			{"list", "list the profiles"},
			{"show", "show a profile with its versions and assignments"},
			{"assign", "assign a profile to a group (or exclude a group)"},
			{"unassign", "remove an assignment (the group's devices lose the profile)"},
			{"status", "a profile's rollout: counts by state and devices (with Apple's reason when failed)"},
		}},
	}
}

const groupUsage = "group add <name> --tenant T | list --tenant T | show <id> | rename <id> <name> | delete <id> | add-members <id> <email>... [--csv emails.csv] | remove-member <id> <email or id>"

func runGroup(env *Env, args []string) error {
	sub, args, err := subcommand(args, groupUsage)
	if err != nil {
		return err
	}
	var cf clientFlags
	fs := newFlags(env, "group "+sub, groupUsage)
	cf.register(fs)
	tenant := fs.String("tenant", "", "add, list: tenant id, name or domain")
	csvFile := fs.String("csv", "", "add-members: a CSV file whose first column holds the emails (a header row named email is skipped)")
	pos, err := parse(env, fs, args)
	if err != nil {
		return err
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	need := func(n int, what string) error {
		if len(pos) < n {
			return usagef("%s\nUsage: pomona %s", what, groupUsage)
		}
		return nil
	}
	ctx, out := env.Ctx, env.Stdout
	switch sub {
	case "add":
		if err := need(1, "give the group's name"); err != nil {
			return err
		}
		var g map[string]any
		if err := c.Do(ctx, http.MethodPost, "/api/v1/groups", map[string]any{"tenant_id": *tenant, "name": pos[0]}, &g); err != nil {
			return err
		}
		if cf.json {
			return printJSON(out, g)
		}
		fmt.Fprintf(out, "group %s created: %s\n", g["id"], g["name"])
		return nil
	case "list":
		var res struct {
			Groups []map[string]any `json:"groups"`
		}
		if err := c.Do(ctx, http.MethodGet, "/api/v1/groups?tenant_id="+url.QueryEscape(*tenant), nil, &res); err != nil {
			return err
		}
		if cf.json {
			return printJSON(out, res)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSOURCE\tMEMBERS")
		for _, g := range res.Groups {
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\n", g["id"], g["name"], g["source"], g["members"])
		}
		return tw.Flush()
	case "show":
		if err := need(1, "give the group id"); err != nil {
			return err
		}
		var res map[string]any
		if err := c.Do(ctx, http.MethodGet, "/api/v1/groups/"+url.PathEscape(pos[0])+"?limit=1000", nil, &res); err != nil {
			return err
		}
		return printJSON(out, res)
	case "rename":
		if err := need(2, "give the group id and its new name"); err != nil {
			return err
		}
		var g map[string]any
		if err := c.Do(ctx, http.MethodPatch, "/api/v1/groups/"+url.PathEscape(pos[0]), map[string]any{"name": pos[1]}, &g); err != nil {
			return err
		}
		fmt.Fprintf(out, "group %s renamed: %s\n", g["id"], g["name"])
		return nil
	case "delete":
		if err := need(1, "give the group id"); err != nil {
			return err
		}
		if err := c.Do(ctx, http.MethodDelete, "/api/v1/groups/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "group %s deleted\n", pos[0])
		return nil
	case "add-members":
		if err := need(1, "give the group id, then emails or --csv"); err != nil {
			return err
		}
		users := pos[1:]
		if *csvFile != "" {
			more, err := csvEmails(*csvFile)
			if err != nil {
				return err
			}
			users = append(users, more...)
		}
		if len(users) == 0 {
			return usagef("give the members' emails or ids, or --csv\nUsage: pomona %s", groupUsage)
		}
		return addMembers(ctx, c, out, pos[0], users, cf.json)
	case "remove-member":
		if err := need(2, "give the group id and the member's email or id"); err != nil {
			return err
		}
		if err := c.Do(ctx, http.MethodDelete, "/api/v1/groups/"+url.PathEscape(pos[0])+"/members/"+url.PathEscape(pos[1]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s removed from group %s\n", pos[1], pos[0])
		return nil
	}
	return usagef("unknown subcommand %q\nUsage: pomona %s", sub, groupUsage)
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
		Added  int `json:"added"`
		Failed int `json:"failed"`
		Rows   []struct {
			Ref, Result, Error string
		} `json:"rows"`
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

const profileUsage = "profile upload <file.mobileconfig> --tenant T [--platforms iOS,macOS] [--min-os 17.0] [--sign] | upload <file> --profile <id> (a new version) | list [--tenant T] | show <id> | assign <id> --group G [--exclude] | unassign <id> --group G | status <id> [--state S]"

func runProfile(env *Env, args []string) error {
	sub, args, err := subcommand(args, profileUsage)
	if err != nil {
		return err
	}
	var cf clientFlags
	fs := newFlags(env, "profile "+sub, profileUsage)
	cf.register(fs)
	tenant := fs.String("tenant", "", "upload, list: tenant id, name or domain")
	profileID := fs.String("profile", "", "upload: make the file the next version of this profile")
	platforms := fs.String("platforms", "", "upload: iOS, macOS or both, comma separated (default: every platform all its payloads exist on)")
	minOS := fs.String("min-os", "", "upload: minimum OS version (e.g. 17.0)")
	sign := fs.Bool("sign", false, "upload: Pomona signs the delivered profile with its profile signer")
	group := fs.String("group", "", "assign, unassign: the group id")
	exclude := fs.Bool("exclude", false, "assign: keep the profile off the group's devices (exclusion wins)")
	state := fs.String("state", "", "status: only devices in this state (pending, installing, installed, failed, removing)")
	pos, err := parse(env, fs, args)
	if err != nil {
		return err
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	need := func(n int, what string) error {
		if len(pos) < n {
			return usagef("%s\nUsage: pomona %s", what, profileUsage)
		}
		return nil
	}
	ctx, out := env.Ctx, env.Stdout
	switch sub {
	case "upload":
		if err := need(1, "give the .mobileconfig file"); err != nil {
			return err
		}
		content, err := os.ReadFile(pos[0])
		if err != nil {
			return err
		}
		var p map[string]any
		if *profileID != "" {
			err = c.Do(ctx, http.MethodPost, "/api/v1/profiles/"+url.PathEscape(*profileID)+"/versions", map[string]any{"content": content}, &p)
		} else {
			body := map[string]any{"tenant_id": *tenant, "content": content, "min_os_version": *minOS, "sign": *sign}
			if *platforms != "" {
				body["platforms"] = strings.Split(*platforms, ",")
			}
			err = c.Do(ctx, http.MethodPost, "/api/v1/profiles", body, &p)
		}
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Code == "user_enrollment_refused" {
			return fmt.Errorf("refused: %s", ae.Message)
		}
		if err != nil {
			return err
		}
		if cf.json {
			return printJSON(out, p)
		}
		fmt.Fprintf(out, "profile %s: %s version %v (%v)\n", p["id"], p["identifier"], p["version"], p["platforms"])
		return nil
	case "list":
		q := ""
		if *tenant != "" {
			q = "?tenant_id=" + url.QueryEscape(*tenant)
		}
		var res struct {
			Profiles []map[string]any `json:"profiles"`
		}
		if err := c.Do(ctx, http.MethodGet, "/api/v1/profiles"+q, nil, &res); err != nil {
			return err
		}
		if cf.json {
			return printJSON(out, res)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tIDENTIFIER\tNAME\tVERSION\tPLATFORMS\tPAYLOADS")
		for _, p := range res.Profiles {
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\n", p["id"], p["identifier"], p["name"], p["version"], p["platforms"], p["payload_types"])
		}
		return tw.Flush()
	case "show":
		if err := need(1, "give the profile id"); err != nil {
			return err
		}
		var p map[string]any
		if err := c.Do(ctx, http.MethodGet, "/api/v1/profiles/"+url.PathEscape(pos[0]), nil, &p); err != nil {
			return err
		}
		return printJSON(out, p)
	case "assign", "unassign":
		if err := need(1, "give the profile id"); err != nil {
			return err
		}
		if *group == "" {
			return usagef("give --group\nUsage: pomona %s", profileUsage)
		}
		if sub == "assign" {
			if err := c.Do(ctx, http.MethodPost, "/api/v1/profiles/"+url.PathEscape(pos[0])+"/assignments", map[string]any{"group_id": *group, "exclude": *exclude}, nil); err != nil {
				return err
			}
			fmt.Fprintf(out, "profile %s %s group %s\n", pos[0], map[bool]string{true: "excludes", false: "assigned to"}[*exclude], *group)
			return nil
		}
		if err := c.Do(ctx, http.MethodDelete, "/api/v1/profiles/"+url.PathEscape(pos[0])+"/assignments/"+url.PathEscape(*group), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(out, "profile %s unassigned from group %s\n", pos[0], *group)
		return nil
	case "status":
		if err := need(1, "give the profile id"); err != nil {
			return err
		}
		return profileStatus(ctx, c, out, pos[0], *state, cf.json)
	}
	return usagef("unknown subcommand %q\nUsage: pomona %s", sub, profileUsage)
}

// profileStatus prints the counts and every device (all pages).
func profileStatus(ctx context.Context, c *apiclient.Client, out io.Writer, id, state string, asJSON bool) error {
	type dev struct {
		Device, Email, Platform, State, Error string
		Version, Attempts                     int
	}
	var counts map[string]int
	var devs []dev
	after := ""
	for {
		var res struct {
			Counts    map[string]int `json:"counts"`
			Devices   []dev          `json:"devices"`
			NextAfter string         `json:"next_after"`
		}
		q := url.Values{"limit": {"1000"}, "after": {after}}
		if state != "" {
			q.Set("state", state)
		}
		if err := c.Do(ctx, http.MethodGet, "/api/v1/profiles/"+url.PathEscape(id)+"/status?"+q.Encode(), nil, &res); err != nil {
			return err
		}
		counts = res.Counts
		devs = append(devs, res.Devices...)
		if res.NextAfter == "" {
			break
		}
		after = res.NextAfter
	}
	if asJSON {
		return printJSON(out, map[string]any{"counts": counts, "devices": devs})
	}
	fmt.Fprintf(out, "installed %d, installing %d, pending %d, failed %d, removing %d\n", counts["installed"], counts["installing"], counts["pending"], counts["failed"], counts["removing"])
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tUSER\tPLATFORM\tSTATE\tVERSION\tATTEMPTS\tERROR")
	for _, d := range devs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.Device, d.Email, d.Platform, d.State, d.Version, d.Attempts, orDash(d.Error))
	}
	return tw.Flush()
}
