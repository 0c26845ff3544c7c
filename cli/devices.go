package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

const deviceUsage = "device list [--tenant T] [--user U] [--status S] [--platform P] [--silent] | show <id> | command <id> '<json>' | command --tenant T|--user U '<json>' | commands <id> | push <id> | unenroll <id> [--immediately]"

func runDevice(env *Env, args []string) error {
	sub, args, err := subcommand(args, deviceUsage)
	if err != nil {
		return err
	}
	var cf clientFlags
	fs := newFlags(env, "device "+sub, deviceUsage)
	cf.register(fs)
	tenant := fs.String("tenant", "", "list: tenant id or domain")
	user := fs.String("user", "", "list: user id or email")
	status := fs.String("status", "", "list: pending, enrolled or unenrolled")
	platform := fs.String("platform", "", "list: iOS or macOS")
	silent := fs.Bool("silent", false, "list: only enrolled devices not seen for serve --silent-after")
	channel := fs.String("channel", "", "command: device (default) or user (a Mac's user channel)")
	noPush := fs.Bool("no-push", false, "command: queue without waking the device")
	immediately := fs.Bool("immediately", false, "unenroll: also forget the device at once (its next request unenrolls it)")
	file := fs.String("file", "", "command: read the command JSON from this file (- for stdin)")
	pos, err := parse(env, fs, args)
	if err != nil {
		return err
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	need := func(n int, what string) error {
		if len(pos) != n {
			return usagef("%s\nUsage: pomona %s", what, deviceUsage)
		}
		return nil
	}
	switch sub {
	case "list":
		q := url.Values{"limit": {"1000"}}
		if *silent {
			q.Set("silent", "true")
		}
		for k, v := range map[string]string{"tenant": *tenant, "user": *user, "status": *status, "platform": *platform} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var out struct {
			Devices []map[string]any `json:"devices"`
		}
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/devices?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.Stdout, out)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tENROLLMENT ID\tSTATUS\tPLATFORM\tPRODUCT\tOS\tUSER\tLAST SEEN")
		for _, d := range out.Devices {
			st := str(d["status"])
			if d["silent"] == true {
				st += " (silent)"
			}
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\n", d["id"], orDash(str(d["enrollment_id"])), st, d["platform"], d["product"],
				orDash(str(d["os_version"])), d["user_id"], orDash(str(d["last_seen_at"])))
		}
		return tw.Flush()
	case "show":
		if err := need(1, "give the device id or EnrollmentID"); err != nil {
			return err
		}
		var d map[string]any
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(pos[0]), nil, &d); err != nil {
			return err
		}
		return printJSON(env.Stdout, d)
	case "command":
		var raw []byte
		switch {
		case *file == "-":
			var b strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := env.Stdin.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					break
				}
			}
			raw = []byte(b.String())
		case *file != "":
			if raw, err = os.ReadFile(*file); err != nil {
				return err
			}
		case len(pos) == 2:
			raw = []byte(pos[1])
		case len(pos) == 1 && (*tenant != "" || *user != ""):
			raw = []byte(pos[0])
		}
		if *tenant != "" || *user != "" {
			// Bulk: every enrolled device of the tenant or the user.
			var cmd map[string]any
			if raw == nil || json.Unmarshal(raw, &cmd) != nil {
				return usagef(`give the command as JSON: pomona device command --tenant example.com '{"request_type":"ProfileList"}'`)
			}
			targets := map[string]any{}
			if *tenant != "" {
				targets["tenant"] = *tenant
			}
			if *user != "" {
				targets["users"] = []string{*user}
			}
			body := map[string]any{"targets": targets, "command": cmd}
			if *noPush {
				body["push"] = false
			}
			var out map[string]any
			if err := c.DoOnce(env.Ctx, http.MethodPost, "/api/v1/commands", body, &out); err != nil {
				return err
			}
			if cf.json {
				return printJSON(env.Stdout, out)
			}
			fmt.Fprintf(env.Stdout, "queued %v for %v device(s)\n", out["command_uuid"], out["queued"])
			if sk, _ := out["skipped"].([]any); len(sk) > 0 {
				for _, x := range sk {
					m := x.(map[string]any)
					fmt.Fprintf(env.Stdout, "skipped %v %v device(s): %v\n", m["count"], m["platform"], m["reason"])
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
		if *channel != "" {
			cmd["channel"] = *channel
		}
		if *noPush {
			cmd["push"] = false
		}
		var out map[string]string
		if err := c.DoOnce(env.Ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(pos[0])+"/commands", cmd, &out); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "queued %s\n", out["command_uuid"])
		return nil
	case "commands":
		if err := need(1, "give the device id or EnrollmentID"); err != nil {
			return err
		}
		var out struct {
			Commands []map[string]any `json:"commands"`
		}
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(pos[0])+"/commands", nil, &out); err != nil {
			return err
		}
		if cf.json {
			return printJSON(env.Stdout, out)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "COMMAND\tTYPE\tCHANNEL\tSTATUS\tUPDATED")
		for _, q := range out.Commands {
			fmt.Fprintf(tw, "%v\t%v\t%v\t%v\t%v\n", q["command_uuid"], q["request_type"], q["channel"], q["status"], q["updated_at"])
		}
		return tw.Flush()
	case "push":
		if err := need(1, "give the device id or EnrollmentID"); err != nil {
			return err
		}
		var out map[string]any
		if err := c.Do(env.Ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(pos[0])+"/push", nil, &out); err != nil {
			return err
		}
		return printJSON(env.Stdout, out)
	case "unenroll":
		if err := need(1, "give the device id or EnrollmentID"); err != nil {
			return err
		}
		var out map[string]any
		if err := c.Do(env.Ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(pos[0])+"/unenroll", map[string]bool{"immediately": *immediately}, &out); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "unenroll requested for %v (RemoveProfile %v)\n", out["device"], orDash(str(out["command_uuid"])))
		return nil
	}
	return usagef("unknown subcommand %q\nUsage: pomona %s", sub, deviceUsage)
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

const auditUsage = "audit [--actor A] [--action A] [--target T] [--limit N]"

func runAudit(env *Env, args []string) error {
	var cf clientFlags
	fs := newFlags(env, "audit", auditUsage)
	cf.register(fs)
	actor := fs.String("actor", "", "key:<id> or bootstrap")
	action := fs.String("action", "", "route, e.g. 'POST /api/v1/users'")
	target := fs.String("target", "", "object id")
	limit := fs.Int("limit", 100, "entries")
	if _, err := parse(env, fs, args); err != nil {
		return err
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	q := url.Values{"limit": {fmt.Sprint(*limit)}}
	for k, v := range map[string]string{"actor": *actor, "action": *action, "target": *target} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out struct {
		Entries []struct {
			At     time.Time `json:"at"`
			Actor  string    `json:"actor"`
			Action string    `json:"action"`
			Target string    `json:"target"`
			Status int       `json:"status"`
			Remote string    `json:"remote"`
		} `json:"entries"`
	}
	if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/audit?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	if cf.json {
		return printJSON(env.Stdout, out)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET\tSTATUS\tFROM")
	for _, e := range out.Entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", e.At.Local().Format(time.RFC3339), e.Actor, e.Action, orDash(e.Target), e.Status, e.Remote)
	}
	return tw.Flush()
}
