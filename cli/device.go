package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/pomona-mdm/pomona/apiclient"
)

// pomona device list|show|command|commands|push|unenroll: enrolled
// devices through the admin API (/api/v1/devices, /api/v1/commands).

const deviceUsage = "device list [--tenant T] [--user U] [--status S] [--platform P] | show <id> | command <id> '<json>' | command --tenant T|--user U '<json>' | commands <id> | push <id> | unenroll <id> [--immediately]"

// deviceOptions are the flags of every device subcommand; the usage
// of each says which subcommand reads it.
type deviceOptions struct {
	tenant, user, status, platform, channel, file *string
	noPush, immediately                           *bool
}

func deviceFlags(fs *flag.FlagSet) deviceOptions {
	return deviceOptions{
		tenant:      fs.String("tenant", "", "list: tenant id or domain"),
		user:        fs.String("user", "", "list: user id or email"),
		status:      fs.String("status", "", "list: pending, enrolled or unenrolled"),
		platform:    fs.String("platform", "", "list: iOS or macOS"),
		channel:     fs.String("channel", "", "command: device (default) or user (a Mac's user channel)"),
		noPush:      fs.Bool("no-push", false, "command: queue without waking the device"),
		immediately: fs.Bool("immediately", false, "unenroll: also forget the device at once (its next request unenrolls it)"),
		file:        fs.String("file", "", "command: read the command JSON from this file (- for stdin)"),
	}
}

// oneDevice is the device the single positional argument names (a
// device id or EnrollmentID), and the API client.
func oneDevice(c *call) (*apiclient.Client, string, error) {
	api, err := c.client()
	if err != nil {
		return nil, "", err
	}
	ref, err := c.one(c.withUsage("give the device id or EnrollmentID"))
	return api, ref, err
}

func deviceList(c *call, o deviceOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	q := url.Values{"limit": {"1000"}}
	for k, v := range map[string]string{"tenant": *o.tenant, "user": *o.user, "status": *o.status, "platform": *o.platform} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var out struct {
		Devices []map[string]any `json:"devices"`
	}
	if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/devices?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	return c.print(out, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tENROLLMENT ID\tSTATUS\tPLATFORM\tPRODUCT\tOS\tUSER\tLAST SEEN")
		for _, d := range out.Devices {
			fmt.Fprintf(w, "%v\t%v\t%v\t%v\t%v\t%v\t%v\t%v\n", d["id"], orDash(str(d["enrollment_id"])), d["status"], d["platform"], d["product"],
				orDash(str(d["os_version"])), d["user_id"], orDash(str(d["last_seen_at"])))
		}
	})
}

func deviceShow(c *call, _ deviceOptions) error {
	api, ref, err := oneDevice(c)
	if err != nil {
		return err
	}
	var d map[string]any
	if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/devices/"+url.PathEscape(ref), nil, &d); err != nil {
		return err
	}
	return printJSON(c.Stdout, d)
}

// deviceCommand queues a command for one device, or for every enrolled
// device of a tenant or a user (--tenant, --user).
func deviceCommand(c *call, o deviceOptions) error {
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
	var out map[string]string
	if err := api.DoOnce(c.Ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(pos[0])+"/commands", cmd, &out); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "queued %s\n", out["command_uuid"])
	return nil
}

func deviceCommands(c *call, _ deviceOptions) error {
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

func devicePush(c *call, _ deviceOptions) error {
	api, ref, err := oneDevice(c)
	if err != nil {
		return err
	}
	var out map[string]any
	if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(ref)+"/push", nil, &out); err != nil {
		return err
	}
	return printJSON(c.Stdout, out)
}

func deviceUnenroll(c *call, o deviceOptions) error {
	api, ref, err := oneDevice(c)
	if err != nil {
		return err
	}
	var out map[string]any
	if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/devices/"+url.PathEscape(ref)+"/unenroll", map[string]bool{"immediately": *o.immediately}, &out); err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "unenroll requested for %v (RemoveProfile %v)\n", out["device"], orDash(str(out["command_uuid"])))
	return nil
}
