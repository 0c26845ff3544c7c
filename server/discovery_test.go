package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/internal/testenv"
)

func TestDiscoveryEndpoint(t *testing.T) {
	e := testenv.Start(t)
	tid := do(t, e, "POST", "/api/v1/tenants", map[string]any{"name": "Example", "domains": []string{"example.com"}}, e.APIKey).json(t)["id"].(string)
	do(t, e, "POST", "/api/v1/users", map[string]any{"email": "alice+work@example.com"}, e.APIKey)
	base := "/.well-known/com.apple.remotemanagement?"
	want := `{"Servers":[{"Version":"mdm-byod","BaseURL":"` + e.URL + `/enroll/` + tid + `"}]}`

	for _, tc := range []struct {
		name, query string
		status      int
		reason      string // substring of description for 403s
	}{
		{"known user", "user-identifier=alice%2Bwork%40example.com&model-family=iPhone", 200, ""},
		{"plus sign unescaped", "user-identifier=alice+work@example.com&model-family=iPad", 200, ""},
		{"unknown user of the domain (no enumeration)", "user-identifier=nobody@example.com&model-family=Mac", 200, ""},
		{"upper-case domain", "user-identifier=Someone@EXAMPLE.COM&model-family=iPhone", 200, ""},
		{"unknown domain", "user-identifier=alice@other.example&model-family=iPhone", 403, "other.example"},
		{"missing identifier", "model-family=iPhone", 403, "user-identifier is missing"},
		{"malformed identifier", "user-identifier=alice&model-family=iPhone", 403, "not a valid email"},
		{"missing family", "user-identifier=alice@example.com", 403, "model-family is missing"},
		{"watch", "user-identifier=alice@example.com&model-family=Watch", 403, "Watch"},
		{"apple tv", "user-identifier=alice@example.com&model-family=AppleTV", 403, "AppleTV"},
		{"bad escape", "user-identifier=%zz&model-family=iPhone", 403, "percent-encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.Client.Get(e.URL + base + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Fatalf("Cache-Control %q", cc)
			}
			if tc.status == 200 {
				if strings.TrimSpace(string(body)) != want {
					t.Fatalf("body %s\nwant %s", body, want)
				}
				return
			}
			var f struct{ Code, Description, Message string }
			if err := json.Unmarshal(body, &f); err != nil || f.Code != "com.apple.well-known.failed" || f.Message == "" ||
				!strings.Contains(f.Description, tc.reason) {
				t.Fatalf("rejection body %s", body)
			}
		})
	}

	// HEAD is answered; other methods are refused as JSON.
	req, _ := http.NewRequest("HEAD", e.URL+base+"user-identifier=a@example.com&model-family=iPhone", nil)
	if resp, err := e.Client.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	a := do(t, e, "POST", base+"user-identifier=a@example.com&model-family=iPhone", "{}", "")
	mustStatus(t, a, 405)

	// Discovery answers are counted by result.
	m := get(t, e, "/metrics")
	for _, s := range []string{`pomona_discovery_requests_total{result="ok"} 5`, `pomona_discovery_requests_total{result="unknown-domain"} 1`,
		`pomona_discovery_requests_total{result="unsupported-model-family"} 2`} {
		if !strings.Contains(m, s) {
			t.Errorf("metrics lack %s", s)
		}
	}
}

func get(t testing.TB, e *testenv.Env, path string) string {
	t.Helper()
	resp, err := e.Client.Get(e.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}
