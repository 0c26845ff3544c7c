package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/internal/testenv"
)

// TestDeviceListRefusesAMangledQuery (break8): the device list refused a
// misspelt status or platform value, but a query it could not read or a
// misspelt parameter name listed every device, as if no filter were
// given — r.URL.Query() drops a pair holding ';' or a bad escape, and
// names the handler does not read were ignored. Each is a 400
// invalid_parameter now, through a real listener. On the code before,
// every case answered 200 with the whole list.
func TestDeviceListRefusesAMangledQuery(t *testing.T) {
	e := testenv.Start(t)
	for _, c := range []struct{ query, want string }{
		{"status=%00%27;DROP", "cannot be read"},
		{"status=enrolled;platform=iOS", "cannot be read"},
		{"status=enrolled&platform=%zz", "cannot be read"},
		{"stauts=enrolled", `unknown parameter "stauts"`},
		{"state=enrolled", `unknown parameter "state"`},
		{"Status=enrolled", `unknown parameter "Status"`},
		{"platfrom=iOS&status=enrolled", `unknown parameter "platfrom"`},
		{strings.Repeat("x", 5000) + "=1", `unknown parameter "xxxx`},
		{"%0d%0aX-Injected:%201=1", `unknown parameter "\r\nX-Injected: 1"`},
		{"platform=iOS&platform=macOS", `"platform" is given 2 times`},
		{"status=enrolled&status=", `"status" is given 2 times`},
	} {
		req, err := http.NewRequest("GET", e.URL+"/api/v1/devices?"+c.query, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+e.APIKey)
		resp, err := e.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var p struct{ Error, Code string }
		json.Unmarshal(b, &p)
		if resp.StatusCode != 400 || p.Code != "invalid_parameter" || !strings.Contains(p.Error, c.want) || len(b) > 1000 {
			t.Errorf("?%.60s: %d %.300s; want 400 invalid_parameter saying %q", c.query, resp.StatusCode, b, c.want)
		}
	}
	// What the CLI sends still works.
	req, _ := http.NewRequest("GET", e.URL+"/api/v1/devices?limit=1000&silent=true&status=enrolled&platform=iOS&before=x&tenant=&user=", nil)
	req.Header.Set("Authorization", "Bearer "+e.APIKey)
	resp, err := e.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("every known parameter: %d", resp.StatusCode)
	}
}
