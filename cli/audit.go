package cli

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// runAudit is `pomona audit`: the audit log of admin changes
// (/api/v1/audit).
func runAudit(fs *flag.FlagSet) func(*call) error {
	actor := fs.String("actor", "", "who: key:<id> (an API key), bootstrap, or console:<email> (a web-console account)")
	action := fs.String("action", "", "route, e.g. 'POST /api/v1/users'")
	target := fs.String("target", "", "object id")
	limit := fs.Int("limit", 100, "entries")
	return func(c *call) error {
		api, err := c.client()
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
		if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/audit?"+q.Encode(), nil, &out); err != nil {
			return err
		}
		return c.print(out, func(w io.Writer) {
			fmt.Fprintln(w, "TIME\tACTOR\tACTION\tTARGET\tSTATUS\tFROM")
			for _, e := range out.Entries {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", e.At.Local().Format(time.RFC3339), e.Actor, e.Action, orDash(e.Target), e.Status, e.Remote)
			}
		})
	}
}
