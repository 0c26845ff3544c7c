package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/server"
	"github.com/pomona-mdm/pomona/webhook"
)

type receiver struct {
	mu       sync.Mutex
	secret   []byte
	failures int
	events   []webhook.Envelope
	badSig   int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.failures > 0 {
		rc.failures--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if webhook.Verify(rc.secret, body, r.Header.Get("Pomona-Signature"), time.Now(), time.Minute) != nil {
		rc.badSig++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var env webhook.Envelope
	json.Unmarshal(body, &env)
	if env.Type != r.Header.Get("Pomona-Event") {
		rc.badSig++
	}
	rc.events = append(rc.events, env)
}

func (rc *receiver) types() string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var t []string
	for _, e := range rc.events {
		t = append(t, e.Type)
	}
	sort.Strings(t) // retries reorder deliveries
	return strings.Join(t, " ")
}

func TestWebhooks(t *testing.T) {
	w := newWorldWith(t, func(c *server.Config) { c.WebhookBackoff = 50 * time.Millisecond })
	e, ctx := w.e, context.Background()
	rc := &receiver{failures: 1}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	a := do(t, e, "POST", "/api/v1/webhooks", map[string]any{"url": srv.URL + "/hook"}, e.APIKey)
	mustStatus(t, a, 201)
	hook := a.json(t)
	rc.mu.Lock()
	rc.secret = []byte(hook["secret"].(string))
	rc.mu.Unlock()
	if list := do(t, e, "GET", "/api/v1/webhooks", nil, e.APIKey); strings.Contains(string(list.body), hook["secret"].(string)) {
		t.Fatal("the webhook list shows the secret")
	}
	mustStatus(t, do(t, e, "POST", "/api/v1/webhooks", map[string]any{"url": "ftp://x"}, e.APIKey), 422)
	mustStatus(t, do(t, e, "POST", "/api/v1/webhooks", map[string]any{"url": srv.URL, "events": []string{"nope"}}, e.APIKey), 422)

	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	a = do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList"}, e.APIKey)
	cmd, _ := d.Poll(ctx, nil, false)
	d.Poll(ctx, d.Answer(cmd), false)

	want := "command.result device.authenticated device.token_update enrollment.profile_issued"
	deadline := time.Now().Add(15 * time.Second)
	for rc.types() != want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := rc.types(); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if rc.badSig != 0 {
		t.Fatal("a delivery had a bad signature")
	}
	// The receiver sees a body before the dispatcher records its answer:
	// wait until every delivery is recorded, then check them.
	var ds []any
	for {
		ds = do(t, e, "GET", "/api/v1/webhooks/"+hook["id"].(string)+"/deliveries", nil, e.APIKey).json(t)["deliveries"].([]any)
		pending := false
		for _, x := range ds {
			pending = pending || x.(map[string]any)["status"] == "pending"
		}
		if !pending || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	retried := false
	for _, x := range ds {
		m := x.(map[string]any)
		if m["status"] != "delivered" {
			t.Fatalf("delivery %v", m)
		}
		if m["attempts"].(float64) > 1 {
			retried = true
		}
	}
	if !retried {
		t.Fatal("the failed first delivery was not retried")
	}
	var last map[string]any
	rc.mu.Lock()
	for _, ev := range rc.events {
		if ev.Type == "command.result" {
			last = ev.Data.(map[string]any)
		}
	}
	rc.mu.Unlock()
	if last["request_type"] != "ProfileList" || last["status"] != "Acknowledged" || last["enrollment_id"] != d.MDM.EnrollmentID {
		t.Fatalf("command.result data %v", last)
	}
	mustStatus(t, do(t, e, "DELETE", "/api/v1/webhooks/"+hook["id"].(string), nil, e.APIKey), 204)
}
