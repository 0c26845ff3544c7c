package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAttackMetricsMethodLabelsBounded: the request method is the client's
// to choose; requests with new methods (on a route, on no route, with a
// valid method too) must not add series to /metrics beyond HTTP's own
// methods and "other". Before, each new method added two series holding
// it: 300 requests with 30 KB methods grew /metrics to 162 MB.
func TestAttackMetricsMethodLabelsBounded(t *testing.T) {
	w := newWorld(t, false)
	client := w.device(t, "iPhone").HTTP
	scrape := func() string {
		res, err := client.Get(w.e.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	before := len(scrape())
	for i := 0; i < 40; i++ {
		m := "X" + strings.Repeat(string(rune('A'+i%26)), 2000+i)
		for _, path := range []string{"/healthz", "/login/" + w.tenant, "/no/such/route"} {
			req, _ := http.NewRequest(m, w.e.URL+path, nil)
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
	}
	after := scrape()
	if strings.Contains(after, `method="XAA`) || !strings.Contains(after, `method="other"`) {
		t.Fatalf("/metrics after 120 requests with made-up methods: the methods are labels, or no \"other\" (%d bytes)", len(after))
	}
	if len(after) > before+64<<10 {
		t.Fatalf("/metrics grew from %d to %d bytes", before, len(after))
	}
}
