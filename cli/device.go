package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/apiclient"
	"github.com/pomona-mdm/pomona/apitypes"
)

// pomona device list|show|command|commands|push|unenroll: enrolled
// devices through the admin API (/api/v1/devices, /api/v1/commands).

// oneDevice is the device the single positional argument names (a
// device id or EnrollmentID), and the API client.
func oneDevice(c *call) (*apiclient.Client, string, error) {
	ref, api, err := c.oneClient("give the device id or EnrollmentID")
	return api, ref, err
}

// deviceList lists the devices, newest first, following the API's pages
// (GET /api/v1/devices, at most 1000 a page, next_before) until all are
// fetched or --limit is reached.
func deviceList(fs *flag.FlagSet) func(*call) error {
	f := map[string]*string{
		"tenant":   fs.String("tenant", "", "only devices of this tenant (id or domain)"),
		"user":     fs.String("user", "", "only devices of this user (id or email)"),
		"status":   fs.String("status", "", "only devices in this state: pending, enrolled or unenrolled"),
		"platform": fs.String("platform", "", "only devices of this platform: iOS or macOS"),
	}
	limit := fs.Int("limit", 0, "at most this many devices (default: all)")
	silent := fs.Bool("silent", false, "only enrolled devices not seen for serve --silent-after")
	return func(c *call) error {
		if *limit < 0 {
			return usagef("--limit must be 0 (all) or more")
		}
		api, err := c.client()
		if err != nil {
			return err
		}
		var all []map[string]any
		before := ""
		for {
			q := url.Values{"limit": {"1000"}}
			if *silent {
				q.Set("silent", "true")
			}
			for k, v := range f {
				if *v != "" {
					q.Set(k, *v)
				}
			}
			if before != "" {
				q.Set("before", before)
			}
			var page struct {
				Devices    []map[string]any `json:"devices"`
				NextBefore string           `json:"next_before"`
			}
			if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/devices?"+q.Encode(), nil, &page); err != nil {
				return err
			}
			all = append(all, page.Devices...)
			if page.NextBefore == "" || page.NextBefore == before || (*limit > 0 && len(all) >= *limit) {
				break
			}
			before = page.NextBefore
		}
		if *limit > 0 && len(all) > *limit {
			all = all[:*limit]
		}
		if all == nil {
			all = []map[string]any{}
		}
		return c.print(map[string]any{"devices": all}, func(w io.Writer) {
			fmt.Fprintln(w, "ID\tENROLLMENT ID\tSTATUS\tPLATFORM\tPRODUCT\tOS\tUSER\tLAST SEEN")
			for _, d := range all {
				st := str(d["status"])
				if d["silent"] == true {
					st += " (silent)"
				}
				fmt.Fprintf(w, "%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\n", d["id"], orDash(str(d["enrollment_id"])), st, d["platform"], d["product"],
					orDash(str(d["os_version"])), deviceUser(d), seenAt(str(d["last_seen_at"])))
			}
		})
	}
}

// deviceUser is a listed device's USER: its user's email, as the console
// shows it; the id when the API gives no email (the user is deleted and
// its devices are being told to unenroll). The id was all the column
// showed, which sent the administrator to user show for every row.
func deviceUser(d map[string]any) string {
	if e := str(d["user_email"]); e != "" {
		return e
	}
	return str(d["user_id"])
}

// seenAt is an API time as device show prints it (RFC 3339 in local
// time, whole seconds), "-" when empty; the list printed the API's own
// text, with a fraction of a second of varying length
// (2026-12-02T14:27:44.9838Z), beside show's 2026-12-02T14:27:44Z.
func seenAt(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return orDash(s)
	}
	return t.Local().Format(time.RFC3339)
}

// deviceShow prints one device (GET /api/v1/devices/{id}): a text
// summary, or with --json the API's object as it came.
func deviceShow(c *call) error {
	api, ref, err := oneDevice(c)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(ref), nil, &raw); err != nil {
		return err
	}
	if c.json() {
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			return err
		}
		return printJSON(c.Stdout, d)
	}
	var d apitypes.Device
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	return c.print(d, func(w io.Writer) { deviceTable(w, &d) })
}

// deviceTable writes a device as "field<TAB>value" lines. Its user is
// named by email beside the id: a user enrollment reveals no device name
// or serial number, so the user is what tells devices apart.
func deviceTable(w io.Writer, d *apitypes.Device) {
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Local().Format(time.RFC3339)
	}
	model := d.Model
	if d.ModelName != "" {
		model = strings.TrimSpace(d.ModelName + " " + d.Model)
	}
	osv := d.OSVersion
	if d.BuildVersion != "" {
		osv += " (" + d.BuildVersion + ")"
	}
	fmt.Fprintf(w, "id\t%s\nenrollment id\t%s\nstatus\t%s\nplatform\t%s\nproduct\t%s\nmodel\t%s\ndevice name\t%s\nOS\t%s\nlanguage\t%s\n",
		d.ID, orDash(d.EnrollmentID), d.Status, d.Platform, orDash(d.Product), orDash(model), orDash(d.DeviceName), orDash(osv), orDash(d.Language))
	user := d.UserID
	if d.UserEmail != "" {
		user = d.UserEmail + " (" + d.UserID + ")"
	}
	fmt.Fprintf(w, "tenant\t%s\nuser\t%s\nprofile\t%s\ncreated\t%s\nenrolled\t%s\nunenrolled\t%s\nlast seen\t%s\n",
		d.TenantID, user, orDash(d.ProfileIdentifier), d.CreatedAt.Local().Format(time.RFC3339), at(d.EnrolledAt), at(d.UnenrolledAt), at(d.LastSeenAt))
	if d.Silent {
		fmt.Fprintf(w, "silent\tyes: not seen for serve --silent-after\n")
	}
	if d.Predecessor != "" {
		fmt.Fprintf(w, "re-enrollment of\t%s (likely the same device enrolled again)\n", d.Predecessor)
	}
	if d.Successor != "" {
		fmt.Fprintf(w, "re-enrolled as\t%s (likely the same device enrolled again)\n", d.Successor)
	}
	for _, ch := range d.Channels {
		push := "pushable"
		if !ch.Pushable {
			push = "no push token"
		}
		kind := ch.Kind
		if ch.UserShortName != "" {
			kind += " (" + ch.UserShortName + ")"
		}
		fmt.Fprintf(w, "channel\t%s %s, %s, last push %s, last seen %s\n", kind, ch.ID, push, at(ch.LastPushAt), at(ch.LastSeenAt))
	}
	if r := d.Renewal; r != nil {
		fmt.Fprintf(w, "identity renewal\t%s after %d attempt(s), %s", r.Status, r.Attempts, r.UpdatedAt.Local().Format(time.RFC3339))
		if r.Error != "" {
			fmt.Fprintf(w, ": %s", r.Error)
		}
		fmt.Fprintln(w)
	}
	var inv map[string]json.RawMessage
	if json.Unmarshal(d.Inventory, &inv) == nil && len(inv) > 0 {
		sections := make([]string, 0, len(inv))
		for k := range inv {
			sections = append(sections, k)
		}
		sort.Strings(sections)
		fmt.Fprintf(w, "inventory\t%s (--json shows the values)\n", strings.Join(sections, ", "))
	}
}

// deviceCommand queues a command for one device, or for every enrolled
// device of a tenant or a user (--tenant, --user).
func deviceCommand(fs *flag.FlagSet) func(*call) error {
	o := deviceCommandOptions{
		tenant:  fs.String("tenant", "", "queue for every enrolled device of this tenant (id or domain)"),
		user:    fs.String("user", "", "queue for every enrolled device of this user (id or email)"),
		channel: fs.String("channel", "", "device (default) or user (a Mac's user channel)"),
		noPush:  fs.Bool("no-push", false, "queue without waking the device"),
		file:    fs.String("file", "", "read the command JSON from this file (- for stdin)"),
	}
	return func(c *call) error { return deviceCommandRun(c, o) }
}

// deviceCommandOptions are the flags of device command.
type deviceCommandOptions struct {
	tenant, user, channel, file *string
	noPush                      *bool
}

func deviceCommandRun(c *call, o deviceCommandOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	pos := c.args
	var raw []byte
	switch {
	case *o.file == "-":
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := c.Stdin.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		raw = []byte(b.String())
	case *o.file != "":
		if raw, err = os.ReadFile(*o.file); err != nil {
			return err
		}
	case len(pos) == 2:
		raw = []byte(pos[1])
	case len(pos) == 1 && (*o.tenant != "" || *o.user != ""):
		raw = []byte(pos[0])
	}
	if *o.tenant != "" || *o.user != "" {
		// Bulk: every enrolled device of the tenant or the user.
		var cmd map[string]any
		if raw == nil || json.Unmarshal(raw, &cmd) != nil {
			return usagef(`give the command as JSON: pomona device command --tenant example.com '{"request_type":"ProfileList"}'`)
		}
		targets := map[string]any{}
		if *o.tenant != "" {
			targets["tenant"] = *o.tenant
		}
		if *o.user != "" {
			targets["users"] = []string{*o.user}
		}
		body := map[string]any{"targets": targets, "command": cmd}
		if *o.noPush {
			body["push"] = false
		}
		var out map[string]any
		if err := api.DoOnce(c.Ctx, http.MethodPost, "/api/v1/commands", body, &out); err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.Stdout, out)
		}
		fmt.Fprintf(c.Stdout, "queued %v for %v device(s)\n", out["command_uuid"], out["queued"])
		if sk, _ := out["skipped"].([]any); len(sk) > 0 {
			for _, x := range sk {
				m := x.(map[string]any)
				fmt.Fprintf(c.Stdout, "skipped %v %v device(s): %v\n", m["count"], m["platform"], m["reason"])
			}
		}
		return nil
	}
	if len(pos) < 1 || raw == nil {
		return usagef(`give the device and the command, e.g. pomona device command <id> '{"request_type":"DeviceInformation","queries":["OSVersion"]}'`)
	}
	var cmd map[string]any
	if err := json.Unmarshal(raw, &cmd); err != nil {
		return usagef("the command is not a JSON object: %v", err)
	}
	if *o.channel != "" {
		cmd["channel"] = *o.channel
	}
	if *o.noPush {
		cmd["push"] = false
	}
	var out apitypes.CommandQueued
	if err := api.DoOnce(c.Ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(pos[0])+"/commands", cmd, &out); err != nil {
		return err
	}
	if c.json() {
		return printJSON(c.Stdout, out)
	}
	fmt.Fprintf(c.Stdout, "queued %s\n", out.CommandUUID)
	return nil
}

func deviceCommands(c *call) error {
	api, ref, err := oneDevice(c)
	if err != nil {
		return err
	}
	var out struct {
		Commands []map[string]any `json:"commands"`
	}
	if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(ref)+"/commands", nil, &out); err != nil {
		return err
	}
	return c.print(out, func(w io.Writer) {
		fmt.Fprintln(w, "COMMAND\tTYPE\tCHANNEL\tSTATUS\tUPDATED")
		for _, q := range out.Commands {
			fmt.Fprintf(w, "%v\t%v\t%v\t%v\t%v\n", q["command_uuid"], q["request_type"], q["channel"], q["status"], q["updated_at"])
		}
	})
}

// devicePush wakes a device (POST /api/v1/devices/{id}/push): one line
// per channel pushed to, or with --json the API's {"pushes": [...]}.
func devicePush(c *call) error {
	api, ref, err := oneDevice(c)
	if err != nil {
		return err
	}
	var out apitypes.Pushes
	if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(ref)+"/push", nil, &out); err != nil {
		return err
	}
	return c.print(out, func(w io.Writer) {
		if len(out.Pushes) == 0 {
			fmt.Fprintf(w, "%s has no channel with a push token: nothing was sent\n", ref)
		}
		for _, p := range out.Pushes {
			switch {
			case p.OK:
				fmt.Fprintf(w, "channel %s\tpushed (APNs %d)\n", p.Channel, p.Status)
			case p.Error != "":
				fmt.Fprintf(w, "channel %s\tnot pushed: %s\n", p.Channel, p.Error)
			default:
				dead := ""
				if p.DeadToken {
					dead = "; the token is no longer valid"
				}
				fmt.Fprintf(w, "channel %s\trefused (APNs %d %s%s)\n", p.Channel, p.Status, p.Reason, dead)
			}
		}
	})
}

func deviceUnenroll(fs *flag.FlagSet) func(*call) error {
	immediately := fs.Bool("immediately", false, "also forget the device at once (its next request unenrolls it)")
	return func(c *call) error {
		api, ref, err := oneDevice(c)
		if err != nil {
			return err
		}
		var out map[string]any
		if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(ref)+"/unenroll", map[string]bool{"immediately": *immediately}, &out); err != nil {
			return err
		}
		if c.json() {
			return printJSON(c.Stdout, out)
		}
		fmt.Fprintf(c.Stdout, "unenroll requested for %v (RemoveProfile %v)\n", out["device"], orDash(str(out["command_uuid"])))
		return nil
	}
}
