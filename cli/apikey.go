package cli

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/pomona-mdm/pomona/apitypes"
)

// pomona apikey create|list|revoke: admin API keys (/api/v1/apikeys).

func apikeyCreate(fs *flag.FlagSet) func(*call) error {
	name := fs.String("name", "", "what the key is for (also as the only argument)")
	return func(c *call) error { return apikeyCreateRun(c, *name) }
}

func apikeyCreateRun(c *call, name string) error {
	if name == "" && len(c.args) == 1 {
		name = c.args[0]
	} else if len(c.args) > 0 {
		return usagef("give the name once: --name N or one argument")
	}
	if name == "" {
		return usagef("give the key a --name")
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	var k apitypes.APIKey
	if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/apikeys", map[string]string{"name": name}, &k); err != nil {
		return err
	}
	if c.json() {
		return printJSON(c.Stdout, k)
	}
	fmt.Fprintf(c.Stdout, "id    %s\nname  %s\nkey   %s\n\nThe key is shown only now; Pomona stores only its hash.\n", k.ID, k.Name, k.Key)
	return nil
}

func apikeyList(c *call) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	var out struct {
		Keys []apitypes.APIKey `json:"api_keys"`
	}
	if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/apikeys", nil, &out); err != nil {
		return err
	}
	return c.print(out, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tNAME\tCREATED\tLAST USED\tSTATUS")
		for _, k := range out.Keys {
			used, status := "never", "active"
			if k.LastUsedAt != nil {
				used = k.LastUsedAt.Local().Format(time.RFC3339)
			}
			if k.RevokedAt != nil {
				status = "revoked " + k.RevokedAt.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, k.CreatedAt.Local().Format(time.RFC3339), used, status)
		}
	})
}

func apikeyRevoke(c *call) error {
	id, api, err := c.oneClient("give the id of the key to revoke (pomona apikey list)")
	if err != nil {
		return err
	}
	if err := api.Do(c.Ctx, http.MethodDelete, "/api/v1/apikeys/"+url.PathEscape(id), nil, nil); err != nil {
		return err
	}
	if c.json() {
		return printJSON(c.Stdout, actionResult{ID: id, Action: "revoked"})
	}
	fmt.Fprintf(c.Stdout, "revoked API key %s\n", id)
	return nil
}
