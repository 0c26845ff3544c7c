package server_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
)

// Command creation with an Idempotency-Key happens once: a retry (with
// the body re-serialised) answers the same command, a different request
// with the key is refused, keys are per API key, and concurrent
// duplicates queue one command. Single-device and bulk alike.
func TestIdempotentCommandCreation(t *testing.T) {
	w := newWorld(t, true)
	e := w.e
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	devicePath := "/api/v1/devices/" + d.MDM.EnrollmentID + "/commands"
	queued := func() map[string]int {
		t.Helper()
		out := map[string]int{}
		for _, q := range do(t, e, "GET", devicePath, nil, e.APIKey).json(t)["commands"].([]any) {
			out[q.(map[string]any)["command_uuid"].(string)]++
		}
		return out
	}
	for _, c := range []struct {
		name, path    string
		body, body2   string // body2: the same request serialised otherwise
		other         string // another request
		resultsInUUID string
	}{
		{"single device", devicePath,
			`{"request_type":"DeviceInformation","queries":["OSVersion"],"push":false}`,
			"{\n  \"push\": false, \"queries\": [\"OSVersion\"],\n  \"request_type\": \"DeviceInformation\"\n}",
			`{"request_type":"DeviceInformation","queries":["ModelName"],"push":false}`, "command_uuid"},
		{"bulk", "/api/v1/commands",
			`{"targets":{"users":["alice@example.com"]},"command":{"request_type":"ProfileList"},"push":false}`,
			`{"push":false,"command":{"request_type":"ProfileList"},"targets":{"users":["alice@example.com"]}}`,
			`{"targets":{"users":["alice@example.com"]},"command":{"request_type":"SecurityInfo"},"push":false}`, "command_uuid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := `"` + c.name + `-8e03978e-40d5-43e8-bc93-6894a57f9324"`
			first := do(t, e, "POST", c.path, c.body, e.APIKey, "Idempotency-Key", key)
			mustStatus(t, first, 201)
			uuid := first.json(t)["command_uuid"].(string)
			again := do(t, e, "POST", c.path, c.body2, e.APIKey, "Idempotency-Key", key)
			mustStatus(t, again, 201)
			if string(again.body) != string(first.body) {
				t.Fatalf("retry answered %s, first %s", again.body, first.body)
			}
			if n := queued()[uuid]; n != 1 {
				t.Fatalf("command queued %d times", n)
			}
			before := len(queued())
			// The same key for another request: 422, nothing queued.
			a := do(t, e, "POST", c.path, c.other, e.APIKey, "Idempotency-Key", key)
			mustStatus(t, a, 422)
			if a.code(t) != "idempotency_key_reused" {
				t.Fatalf("reused key: %s", a.body)
			}
			// Without a key, or with a fresh one, a new command each time.
			mustStatus(t, do(t, e, "POST", c.path, c.body, e.APIKey), 201)
			mustStatus(t, do(t, e, "POST", c.path, c.body, e.APIKey, "Idempotency-Key", key+"x"), 400) // quotes must close the string
			mustStatus(t, do(t, e, "POST", c.path, c.body, e.APIKey, "Idempotency-Key", "bare-token-"+c.name[:4]), 201)
			if n := len(queued()); n != before+2 {
				t.Fatalf("%d commands after two new requests, want %d", n, before+2)
			}
		})
	}

	// Keys belong to the API key that sent them.
	k2 := do(t, e, "POST", "/api/v1/apikeys", map[string]any{"name": "second"}, e.APIKey).json(t)["key"].(string)
	body := `{"request_type":"ProfileList","push":false}`
	u1 := do(t, e, "POST", devicePath, body, e.APIKey, "Idempotency-Key", `"shared-key"`).json(t)["command_uuid"]
	u2 := do(t, e, "POST", devicePath, body, k2, "Idempotency-Key", `"shared-key"`).json(t)["command_uuid"]
	if u1 == nil || u2 == nil || u1 == u2 {
		t.Fatalf("keys of two credentials: %v %v", u1, u2)
	}

	// Concurrent duplicates: one command, every answer names it.
	const n = 8
	var wg sync.WaitGroup
	answers := make([]answer, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = do(t, e, "POST", devicePath, `{"request_type":"SecurityInfo","push":false}`, e.APIKey, "Idempotency-Key", `"concurrent"`)
		}()
	}
	wg.Wait()
	uuids := map[string]bool{}
	for _, a := range answers {
		mustStatus(t, a, 201)
		var m map[string]string
		json.Unmarshal(a.body, &m)
		uuids[m["command_uuid"]] = true
	}
	q := queued()
	if len(uuids) != 1 {
		t.Fatalf("concurrent duplicates answered %v", uuids)
	}
	for u := range uuids {
		if q[u] != 1 {
			t.Fatalf("concurrent duplicates queued %d times", q[u])
		}
	}

	// Malformed keys.
	for _, k := range []string{`""`, `"unterminated`, "two words", `"` + fmt.Sprintf("%0256d", 0) + `"`, "caf\u00e9"} {
		a := do(t, e, "POST", devicePath, body, e.APIKey, "Idempotency-Key", k)
		mustStatus(t, a, 400)
	}

	// The header is documented on both operations.
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(do(t, e, "GET", "/api/v1/openapi.json", nil, "").body, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/api/v1/devices/{id}/commands", "/api/v1/commands"} {
		var op struct {
			Parameters []map[string]any `json:"parameters"`
		}
		json.Unmarshal(doc.Paths[p]["post"], &op)
		if ps := op.Parameters; len(ps) != 1 || ps[0]["$ref"] != "#/components/parameters/IdempotencyKey" {
			t.Fatalf("POST %s: parameters %v", p, ps)
		}
	}
}
