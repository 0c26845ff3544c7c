package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pomona-mdm/pomona/apiclient"
	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
)

// pomona apply -f pomona.yaml and pomona export: desired state as code
// (docs/profiles.md, "Configuration as code"), through the admin API.

// Desired is the file format of apply and export.
type Desired struct {
	Tenants []DesiredTenant `yaml:"tenants"`
}

// DesiredTenant is one tenant's groups and profiles. Tenant is its id,
// name or domain.
type DesiredTenant struct {
	Tenant   string           `yaml:"tenant"`
	Groups   []DesiredGroup   `yaml:"groups,omitempty"`
	Profiles []DesiredProfile `yaml:"profiles,omitempty"`
}

// DesiredGroup is a static group with exactly these members (emails).
type DesiredGroup struct {
	Name    string   `yaml:"name"`
	Members []string `yaml:"members"`
}

// DesiredProfile is a .mobileconfig (path relative to the file) and the
// groups it is assigned to or excluded from, by name ("All users" is the
// implicit group). Platforms, min_os_version and sign apply when the
// profile is created.
type DesiredProfile struct {
	File         string   `yaml:"file"`
	Platforms    []string `yaml:"platforms,omitempty"`
	MinOSVersion string   `yaml:"min_os_version,omitempty"`
	Sign         bool     `yaml:"sign,omitempty"`
	Assign       []string `yaml:"assign,omitempty"`
	Exclude      []string `yaml:"exclude,omitempty"`
}

// Groups and profiles on the server that the file does not name are left
// alone (apply never deletes them): removing one is a deliberate command.

func runApply(fs *flag.FlagSet) func(*call) error {
	file := fs.String("f", "pomona.yaml", "the desired-state file")
	dry := fs.Bool("dry-run", false, "show the changes without making them")
	return func(c *call) error {
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		var d Desired
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&d); err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		a := &applier{ctx: c.Ctx, api: api, out: c.Stdout, dry: *dry, dir: filepath.Dir(*file)}
		for _, t := range d.Tenants {
			if err := a.tenant(t); err != nil {
				return fmt.Errorf("tenant %s: %w", t.Tenant, err)
			}
		}
		if a.changes == 0 {
			fmt.Fprintln(c.Stdout, "no changes: the server matches", *file)
		} else if *dry {
			fmt.Fprintf(c.Stdout, "%d changes (dry run: nothing was changed)\n", a.changes)
		} else {
			fmt.Fprintf(c.Stdout, "%d changes applied\n", a.changes)
		}
		return nil
	}
}

type applier struct {
	ctx     context.Context
	api     *apiclient.Client
	out     io.Writer
	dry     bool
	dir     string
	changes int
}

// do prints a change and makes it unless this is a dry run.
func (a *applier) do(what string, fn func() error) error {
	a.changes++
	fmt.Fprintln(a.out, what)
	if a.dry {
		return nil
	}
	return fn()
}

func (a *applier) tenant(t DesiredTenant) error {
	q := url.QueryEscape(t.Tenant)
	var gs struct {
		Groups []apitypes.Group `json:"groups"`
	}
	if err := a.api.Do(a.ctx, http.MethodGet, "/api/v1/groups?tenant_id="+q, nil, &gs); err != nil {
		return err
	}
	byName := map[string]apitypes.Group{}
	for _, g := range gs.Groups {
		byName[g.Name] = g
	}
	for _, dg := range t.Groups {
		g, ok := byName[dg.Name]
		if !ok {
			if err := a.do(fmt.Sprintf("+ group %q (%s)", dg.Name, t.Tenant), func() error {
				return a.api.Do(a.ctx, http.MethodPost, "/api/v1/groups", map[string]any{"tenant_id": t.Tenant, "name": dg.Name}, &g)
			}); err != nil {
				return err
			}
			byName[dg.Name] = g
		}
		var have struct {
			Members []apitypes.User `json:"members"`
		}
		if g.ID != "" {
			if err := a.api.Do(a.ctx, http.MethodGet, "/api/v1/groups/"+url.PathEscape(g.ID)+"?limit=1000", nil, &have); err != nil {
				return err
			}
		}
		cur := map[string]bool{}
		for _, m := range have.Members {
			cur[m.Email] = true
		}
		want := map[string]bool{}
		var add []string
		for _, m := range dg.Members {
			m = strings.ToLower(strings.TrimSpace(m))
			want[m] = true
			if !cur[m] {
				add = append(add, m)
			}
		}
		if len(add) > 0 {
			if err := a.do(fmt.Sprintf("+ members of %q: %s", dg.Name, strings.Join(add, ", ")), func() error {
				return addMembers(a.ctx, a.api, io.Discard, byName[dg.Name].ID, add, false)
			}); err != nil {
				return err
			}
		}
		for _, m := range have.Members {
			if !want[m.Email] {
				id := g.ID
				if err := a.do(fmt.Sprintf("- member of %q: %s", dg.Name, m.Email), func() error {
					return a.api.Do(a.ctx, http.MethodDelete, "/api/v1/groups/"+url.PathEscape(id)+"/members/"+url.PathEscape(m.ID), nil, nil)
				}); err != nil {
					return err
				}
			}
		}
	}
	var ps struct {
		Profiles []apitypes.Profile `json:"profiles"`
	}
	if err := a.api.Do(a.ctx, http.MethodGet, "/api/v1/profiles?tenant_id="+q, nil, &ps); err != nil {
		return err
	}
	byIdentifier := map[string]apitypes.Profile{}
	for _, p := range ps.Profiles {
		byIdentifier[p.Identifier] = p
	}
	for _, dp := range t.Profiles {
		path := dp.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(a.dir, path)
		}
		raw, err := readProfileFile(path)
		if err != nil {
			return err
		}
		mc, err := mobileconfig.Read(raw)
		if err != nil {
			return fmt.Errorf("%s: %w", dp.File, err)
		}
		p, ok := byIdentifier[mc.Identifier]
		switch {
		case !ok:
			err = a.do(fmt.Sprintf("+ profile %s (%s)", mc.Identifier, dp.File), func() error {
				return a.api.Do(a.ctx, http.MethodPost, "/api/v1/profiles", map[string]any{"tenant_id": t.Tenant, "content": raw,
					"platforms": dp.Platforms, "min_os_version": dp.MinOSVersion, "sign": dp.Sign}, &p)
			})
		case p.Hash != mobileconfig.Hash(mc.Plist):
			err = a.do(fmt.Sprintf("~ profile %s: new version from %s (now version %d)", mc.Identifier, dp.File, p.Version), func() error {
				return a.api.Do(a.ctx, http.MethodPost, "/api/v1/profiles/"+url.PathEscape(p.ID)+"/versions", map[string]any{"content": raw}, &p)
			})
		}
		if err != nil {
			return err
		}
		p.Identifier = mc.Identifier // also for a profile a dry run did not create
		if err := a.assignments(t, p, dp, byName); err != nil {
			return err
		}
	}
	return nil
}

// assignments makes the profile's assignments those of the file.
func (a *applier) assignments(t DesiredTenant, p apitypes.Profile, dp DesiredProfile, groups map[string]apitypes.Group) error {
	want := map[string]bool{} // group id → exclude
	names := map[string]string{}
	for _, list := range []struct {
		names   []string
		exclude bool
	}{{dp.Assign, false}, {dp.Exclude, true}} {
		for _, n := range list.names {
			g, ok := groups[n]
			if !ok && !a.dry {
				return fmt.Errorf("profile %s: no group %q in tenant %s", p.Identifier, n, t.Tenant)
			}
			id := g.ID
			if id == "" {
				id = "(new) " + n
			}
			want[id], names[id] = list.exclude, n
		}
	}
	have := map[string]bool{}
	if p.ID != "" {
		var cur apitypes.Profile
		if err := a.api.Do(a.ctx, http.MethodGet, "/api/v1/profiles/"+url.PathEscape(p.ID), nil, &cur); err != nil {
			return err
		}
		for _, x := range cur.Assignments {
			have[x.GroupID] = x.Exclude
		}
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		ex, ok := have[id]
		if ok && ex == want[id] {
			continue
		}
		verb := map[bool]string{false: "assigned to", true: "excludes"}[want[id]]
		gid, pid := id, p.ID
		if err := a.do(fmt.Sprintf("+ profile %s %s %q", p.Identifier, verb, names[id]), func() error {
			return a.api.Do(a.ctx, http.MethodPost, "/api/v1/profiles/"+url.PathEscape(pid)+"/assignments", apitypes.ProfileAssignment{GroupID: gid, Exclude: want[gid]}, nil)
		}); err != nil {
			return err
		}
	}
	for id := range have {
		if _, ok := want[id]; ok {
			continue
		}
		gid, pid := id, p.ID
		if err := a.do(fmt.Sprintf("- profile %s: assignment to group %s", p.Identifier, id), func() error {
			return a.api.Do(a.ctx, http.MethodDelete, "/api/v1/profiles/"+url.PathEscape(pid)+"/assignments/"+url.PathEscape(gid), nil, nil)
		}); err != nil {
			return err
		}
	}
	return nil
}

func runExport(fs *flag.FlagSet) func(*call) error {
	tenant := fs.String("tenant", "", "tenant id, name or domain (default: every tenant)")
	dir := fs.String("dir", ".", "where pomona.yaml and profiles/<identifier>.mobileconfig are written")
	return func(c *call) error {
		api, err := c.client()
		if err != nil {
			return err
		}
		var tenants []apitypes.Tenant
		if *tenant != "" {
			var t apitypes.Tenant
			if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/tenants/"+url.PathEscape(*tenant), nil, &t); err != nil {
				return err
			}
			tenants = append(tenants, t)
		} else {
			var res struct {
				Tenants []apitypes.Tenant `json:"tenants"`
			}
			if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/tenants", nil, &res); err != nil {
				return err
			}
			tenants = res.Tenants
		}
		if err := os.MkdirAll(filepath.Join(*dir, "profiles"), 0o755); err != nil {
			return err
		}
		var d Desired
		for _, t := range tenants {
			dt := DesiredTenant{Tenant: t.Name}
			if len(t.Domains) > 0 {
				dt.Tenant = t.Domains[0]
			}
			var gs struct {
				Groups []apitypes.Group `json:"groups"`
			}
			if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/groups?tenant_id="+url.QueryEscape(t.ID), nil, &gs); err != nil {
				return err
			}
			names := map[string]string{}
			for _, g := range gs.Groups {
				names[g.ID] = g.Name
				if g.Source != "static" {
					continue
				}
				var det struct {
					Members []apitypes.User `json:"members"`
				}
				if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/groups/"+url.PathEscape(g.ID)+"?limit=1000", nil, &det); err != nil {
					return err
				}
				dg := DesiredGroup{Name: g.Name, Members: []string{}}
				for _, m := range det.Members {
					dg.Members = append(dg.Members, m.Email)
				}
				dt.Groups = append(dt.Groups, dg)
			}
			var ps struct {
				Profiles []apitypes.Profile `json:"profiles"`
			}
			if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/profiles?tenant_id="+url.QueryEscape(t.ID), nil, &ps); err != nil {
				return err
			}
			for _, p := range ps.Profiles {
				var full apitypes.Profile
				if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/profiles/"+url.PathEscape(p.ID)+"?content=true", nil, &full); err != nil {
					return err
				}
				rel := filepath.ToSlash(filepath.Join("profiles", p.Identifier+".mobileconfig"))
				if err := os.WriteFile(filepath.Join(*dir, rel), full.Content, 0o644); err != nil {
					return err
				}
				dp := DesiredProfile{File: rel, Platforms: p.Platforms, MinOSVersion: p.MinOSVersion, Sign: p.Sign}
				for _, x := range full.Assignments {
					if x.Exclude {
						dp.Exclude = append(dp.Exclude, names[x.GroupID])
					} else {
						dp.Assign = append(dp.Assign, names[x.GroupID])
					}
				}
				dt.Profiles = append(dt.Profiles, dp)
			}
			d.Tenants = append(d.Tenants, dt)
		}
		b, err := yaml.Marshal(d)
		if err != nil {
			return err
		}
		out := filepath.Join(*dir, "pomona.yaml")
		if err := os.WriteFile(out, append([]byte("# Written by pomona export; apply with: pomona apply -f pomona.yaml (docs/profiles.md)\n"), b...), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "wrote %s and %d profile files\n", out, countProfiles(d))
		return nil
	}
}

func countProfiles(d Desired) int {
	n := 0
	for _, t := range d.Tenants {
		n += len(t.Profiles)
	}
	return n
}
