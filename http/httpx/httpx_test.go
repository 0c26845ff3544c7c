package httpx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pomona-mdm/pomona/metrics"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

func TestObserveRecoversPanics(t *testing.T) {
	m := metrics.New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) { panic("kaboom") })
	var logs strings.Builder
	srv := httptest.NewServer(Observe(mux, slog.New(slog.NewTextHandler(&logs, nil)), m))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/boom")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(b), `"code":"internal"`) || strings.Contains(string(b), "kaboom") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if !strings.Contains(logs.String(), "kaboom") {
		t.Fatal("panic not logged")
	}
	// The server still serves.
	resp, err = http.Get(srv.URL + "/boom")
	if err != nil || resp.StatusCode != 500 {
		t.Fatal("server died after a panic")
	}
	resp.Body.Close()
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
		leaks  string
	}{
		{fmt.Errorf("user %w", store.ErrNotFound), 404, "not_found", ""},
		{fmt.Errorf("%w: domain x already belongs to another tenant", store.ErrConflict), 409, "conflict", ""},
		{fmt.Errorf("%w: constraint failed: UNIQUE constraint failed: users.email (2067)", store.ErrConflict), 409, "conflict", "users.email"},
		{fmt.Errorf("%w: tenant still has 3 user(s)", store.ErrInUse), 409, "in_use", ""},
		{problem.Validation("email", "bad"), 422, "validation_failed", ""},
		{fmt.Errorf("wrapped: %w", problem.Coded(problem.Conflict, "topic_change", "other topic")), 409, "topic_change", ""},
		{problem.New(problem.MethodNotAllowed, "use GET"), 405, "method_not_allowed", ""},
		{problem.New(problem.BadGateway, "APNs refused"), 502, "bad_gateway", ""},
		{problem.Wrap(problem.Unavailable, errors.New("/etc/secret unreadable"), "no push certificate"), 503, "unavailable", "/etc/secret"},
		{context.Canceled, 499, "cancelled", ""},
		{errors.New("disk on fire at /var/lib/secret"), 500, "internal", "/var/lib"},
	} {
		status, body := Classify(tc.err)
		if status != tc.status || body.Code != tc.code {
			t.Errorf("%v: %d %s", tc.err, status, body.Code)
		}
		if tc.leaks != "" && strings.Contains(body.Error, tc.leaks) {
			t.Errorf("%v: message leaks %q: %s", tc.err, tc.leaks, body.Error)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	type in struct {
		Name string `json:"name"`
	}
	for _, tc := range []struct {
		ct, body string
		status   int
	}{
		{"application/json", `{"name":"x"}`, 0},
		{"application/json; charset=utf-8", `{"name":"x"}`, 0},
		{"application/json", `{"name":"x"} `, 0},
		{"", `{"name":"x"}`, 415},
		{"text/json", `{"name":"x"}`, 415},
		{"application/json", `{"name":1}`, 400},
		{"application/json", `{"nom":"x"}`, 400},
		{"application/json", `[1]`, 400},
		{"application/json", `{"name":"x"} {"name":"y"}`, 400},
		{"application/json", `{"name":"` + strings.Repeat("a", 200) + `"}`, 413},
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
		if tc.ct != "" {
			r.Header.Set("Content-Type", tc.ct)
		}
		var v in
		err := DecodeJSON(httptest.NewRecorder(), r, 100, &v)
		got := 0
		if err != nil {
			got, _ = Classify(err)
		}
		if got != tc.status {
			t.Errorf("%q %q: status %d want %d (%v)", tc.ct, tc.body, got, tc.status, err)
		}
	}
}

// Every Kind has its status: a Kind added to package problem without one
// here would be rendered as a 500.
func TestEveryKindHasAStatus(t *testing.T) {
	for k := problem.Invalid; k <= problem.BadGateway; k++ {
		if st, _ := Classify(problem.New(k, "x")); st == 500 {
			t.Errorf("kind %v renders as 500", k)
		}
	}
}

func TestWriteErrorSendsTheChallenge(t *testing.T) {
	w := httptest.NewRecorder()
	e := &problem.Error{Kind: problem.Unauthenticated, Code: "unauthorized", Message: "missing API key", Challenge: `Bearer realm="pomona-admin"`}
	WriteError(w, httptest.NewRequest("GET", "/api/v1/server", nil), slog.New(slog.NewTextHandler(io.Discard, nil)), e)
	if w.Code != 401 || w.Header().Get("WWW-Authenticate") != `Bearer realm="pomona-admin"` || strings.Contains(w.Body.String(), "realm") {
		t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
	}
}

func TestPageHeadersAndClientIP(t *testing.T) {
	w := httptest.NewRecorder()
	PageHeaders(w, "default-src 'none'", "no-referrer")
	for k, v := range map[string]string{"Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "DENY",
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	for addr, want := range map[string]string{"192.0.2.1:443": "192.0.2.1", "[2001:db8::1]:443": "2001:db8::1", "pipe": "pipe"} {
		r.RemoteAddr = addr
		if got := ClientIP(r); got != want {
			t.Errorf("ClientIP(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestStatusLabel: the metrics' code label is the status in decimal, from
// the table or strconv alike.
func TestStatusLabel(t *testing.T) {
	for _, tc := range []struct {
		code int
		want string
	}{{200, "200"}, {100, "100"}, {599, "599"}, {404, "404"}, {99, "99"}, {600, "600"}, {0, "0"}, {-1, "-1"}} {
		if got := StatusLabel(tc.code); got != tc.want {
			t.Errorf("StatusLabel(%d) = %q, want %q", tc.code, got, tc.want)
		}
	}
}
