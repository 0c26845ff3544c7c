package server_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/devicesim"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/server"
	"github.com/pomona-mdm/pomona/store"
)

// enrolledDevice runs the whole enrollment and the first check-ins.
func enrolledDevice(t testing.TB, w *world, family, user, pw string, totpSecret ...[]byte) *devicesim.Device {
	t.Helper()
	ctx := context.Background()
	d := w.device(t, family)
	c := devicesim.Credentials{User: user, Password: pw}
	if len(totpSecret) > 0 {
		c.TOTPSecret = totpSecret[0]
	}
	if _, err := d.Enroll(ctx, w.e.URL, c); err != nil {
		t.Fatal(err)
	}
	if err := d.Authenticate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.TokenUpdate(ctx, false); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestMDMCommandRoundTrip(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")

	// The device is enrolled and visible, keyed by its EnrollmentID.
	dev := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, e.APIKey)
	mustStatus(t, dev, 200)
	if dj := dev.json(t); dj["status"] != "enrolled" || dj["platform"] != "iOS" || dj["os_version"] != "18.2" ||
		len(dj["channels"].([]any)) != 1 || dj["channels"].([]any)[0].(map[string]any)["pushable"] != true {
		t.Fatalf("device %s", dev.body)
	}
	if strings.Contains(string(dev.body), "UDID") || strings.Contains(string(dev.body), "serial") {
		t.Fatal("hardware identifiers in the device record")
	}

	// A forbidden command is refused before it is queued.
	a := do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "EraseDevice"}, e.APIKey)
	mustStatus(t, a, 422)
	if a.code(t) != "command_refused" || !strings.Contains(string(a.body), "forbids") {
		t.Fatalf("erase: %s", a.body)
	}
	a = do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "DeviceInformation", "queries": []string{"OSVersion", "SerialNumber"}}, e.APIKey)
	mustStatus(t, a, 422)
	a = do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "DeclarativeManagement"}, e.APIKey)
	mustStatus(t, a, 422)

	// An allowed one goes through the queue to the device and back.
	a = do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "DeviceInformation", "queries": []string{"OSVersion", "ModelName"}}, e.APIKey)
	mustStatus(t, a, 201)
	uuid := a.json(t)["command_uuid"].(string)
	cmd, err := d.Poll(ctx, nil, false)
	if err != nil || cmd == nil || cmd.CommandUUID != uuid || cmd.RequestType() != "DeviceInformation" {
		t.Fatalf("poll: %+v %v", cmd, err)
	}
	next, err := d.Poll(ctx, d.Answer(cmd), false)
	if err != nil || next != nil {
		t.Fatalf("after the answer: %+v %v", next, err)
	}
	list := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", nil, e.APIKey).json(t)["commands"].([]any)
	c0 := list[0].(map[string]any)
	if c0["status"] != "Acknowledged" || c0["result"].(map[string]any)["QueryResponses"].(map[string]any)["OSVersion"] != "18.2" {
		t.Fatalf("result not visible: %v", c0)
	}
	// The answer updates the device record (inventory, name) without
	// hardware identifiers.
	dj := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, e.APIKey).json(t)
	inv, _ := dj["inventory"].(map[string]any)
	if inv == nil || inv["device_information"].(map[string]any)["data"].(map[string]any)["OSVersion"] != "18.2" || dj["model_name"] != "iPhone" {
		t.Fatalf("inventory: %v", dj)
	}
	// A repeated result is accepted and changes nothing (a result for a
	// command never sent: TestResultForUnknownCommand).
	if _, err := d.Poll(ctx, d.Answer(cmd), false); err != nil {
		t.Fatalf("repeated result: %v", err)
	}

	// NotNow keeps the command for a later poll.
	a = do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList"}, e.APIKey)
	mustStatus(t, a, 201)
	cmd, _ = d.Poll(ctx, nil, false)
	if n, _ := d.Poll(ctx, map[string]any{"Status": "NotNow", "CommandUUID": cmd.CommandUUID}, false); n != nil {
		t.Fatal("NotNow command re-sent at once")
	}
	again, err := d.Poll(ctx, nil, false)
	if err != nil || again == nil || again.CommandUUID != cmd.CommandUUID {
		t.Fatalf("NotNow command lost: %+v %v", again, err)
	}

	// Revoked token: the result PUT gets 401 with the challenge; after the
	// person signs in again the device repeats it and the result lands.
	mustStatus(t, do(t, e, "POST", "/api/v1/users/alice@example.com/reauthenticate", nil, e.APIKey), 200)
	answer := d.Answer(again)
	_, err = d.Poll(ctx, answer, false)
	var re *devicesim.ReauthError
	if !errors.As(err, &re) || re.LoginURL != e.URL+"/login/"+w.tenant {
		t.Fatalf("revoked token: %v", err)
	}
	if _, err := d.SignIn(ctx, devicesim.Credentials{User: "alice@example.com", Password: "alice-password"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Poll(ctx, answer, false); err != nil {
		t.Fatalf("repeated request after re-authentication: %v", err)
	}
	list = do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", nil, e.APIKey).json(t)["commands"].([]any)
	if list[0].(map[string]any)["status"] != "Acknowledged" {
		t.Fatalf("the interrupted result did not land: %v", list[0])
	}

	// Another person's token (from their own device) is refused here.
	d2 := enrolledDevice(t, w, "iPad", "bob@example.com", "bob-password")
	stolen := d.AccessToken
	d.AccessToken = d2.AccessToken
	if _, err := d.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "another user") {
		t.Fatalf("token of another enrollment: %v", err)
	}
	d.AccessToken = stolen

	// CheckOut with a stale token is accepted; the enrollment is kept as unenrolled.
	mustStatus(t, do(t, e, "POST", "/api/v1/users/alice@example.com/reauthenticate", nil, e.APIKey), 200)
	if err := d.CheckOut(ctx); err != nil {
		t.Fatalf("CheckOut with a stale token: %v", err)
	}
	if got := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, e.APIKey).json(t); got["status"] != store.EnrollmentUnenrolled || got["unenrolled_at"] == nil {
		t.Fatalf("after CheckOut: %v", got)
	}
	// Later requests of the unenrolled device are told it is unknown.
	if _, err := d.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "com.apple.unrecognized.device") {
		t.Fatalf("after CheckOut: %v", err)
	}
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList"}, e.APIKey), 409)
}

func TestMDMMacChannels(t *testing.T) {
	stub, opt := withAPNs(t)
	w := newWorldWith(t, opt)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	d := w.device(t, "Mac")
	if _, err := d.Enroll(ctx, e.URL, devicesim.Credentials{User: "bob@example.com", Password: "bob-password"}); err != nil {
		t.Fatal(err)
	}
	// The Mac's device channel carries no bearer: it must work without.
	token := d.AccessToken
	d.AccessToken = ""
	if err := d.Authenticate(ctx); err != nil {
		t.Fatalf("device channel without a token: %v", err)
	}
	if err := d.TokenUpdate(ctx, false); err != nil {
		t.Fatal(err)
	}
	// The user channel needs it.
	var re *devicesim.ReauthError
	if err := d.TokenUpdate(ctx, true); !errors.As(err, &re) {
		t.Fatalf("user channel without a token: %v", err)
	}
	d.AccessToken = token
	if err := d.TokenUpdate(ctx, true); err != nil {
		t.Fatal(err)
	}
	dev := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, e.APIKey).json(t)
	if len(dev["channels"].([]any)) != 2 {
		t.Fatalf("channels %v", dev["channels"])
	}
	// Commands gated by macOS rules, on either channel.
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "DeviceLock"}, e.APIKey), 422)
	userPushes := stub.Listen(d.MDM.UserPushToken)
	a := do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList", "channel": "user"}, e.APIKey)
	mustStatus(t, a, 201)
	select {
	case p := <-userPushes:
		if p.PushMagic != d.MDM.UserPushMagic {
			t.Fatalf("user channel pushed with the wrong PushMagic: %+v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the user channel was not pushed")
	}
	if cmd, _ := d.Poll(ctx, nil, false); cmd != nil {
		t.Fatal("a user-channel command came on the device channel")
	}
	cmd, err := d.Poll(ctx, nil, true)
	if err != nil || cmd == nil || cmd.RequestType() != "ProfileList" {
		t.Fatalf("user channel poll: %+v %v", cmd, err)
	}
	if _, err := d.Poll(ctx, d.Answer(cmd), true); err != nil {
		t.Fatal(err)
	}
}

func TestMDMRefusesForgedRequests(t *testing.T) {
	w := newWorld(t, true)
	ctx := context.Background()
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	d2 := enrolledDevice(t, w, "iPhone", "bob@example.com", "bob-password")
	// A device speaking with its own certificate for another enrollment's ID.
	real := d.MDM.EnrollmentID
	d.MDM.EnrollmentID = d2.MDM.EnrollmentID
	if _, err := d.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("certificate of another enrollment: %v", err)
	}
	d.MDM.EnrollmentID = real
	// Another device's certificate without its key: the signature fails.
	d.IdentityCert = d2.IdentityCert
	if _, err := d.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("mismatched signature: %v", err)
	}
	// Plain HTTP problems.
	for _, tc := range []struct {
		ct   string
		body string
		want int
	}{
		{"application/json", "{}", 415},
		{"application/x-apple-aspen-mdm-checkin", "not a plist", 403}, // no signature at all
	} {
		resp := putRaw(t, w, "/mdm/checkin", tc.ct, tc.body)
		if resp != tc.want {
			t.Errorf("%s: %d want %d", tc.ct, resp, tc.want)
		}
	}
}

func putRaw(t testing.TB, w *world, path, ct, body string) int {
	req, _ := newRequest("PUT", w.e.URL+path, body)
	req.Header.Set("Content-Type", ct)
	resp, err := w.e.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestBulkCommands(t *testing.T) {
	w := newWorld(t, true)
	e, ctx := w.e, context.Background()
	mustStatus(t, do(t, e, "PATCH", "/api/v1/tenants/"+w.tenant, map[string]any{"require_second_factor": false}, e.APIKey), 200)
	phone := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	mac := enrolledDevice(t, w, "Mac", "bob@example.com", "bob-password")
	w.device(t, "iPad") // not enrolled: never targeted

	// DeviceLock: allowed on iOS, forbidden on macOS for user enrollments.
	a := do(t, e, "POST", "/api/v1/commands", map[string]any{"targets": map[string]any{"tenant": "example.com"}, "command": map[string]any{"request_type": "DeviceLock"}}, e.APIKey)
	mustStatus(t, a, 201)
	r := a.json(t)
	skipped := r["skipped"].([]any)
	if r["queued"] != float64(1) || len(skipped) != 1 || skipped[0].(map[string]any)["platform"] != "macOS" {
		t.Fatalf("bulk: %s", a.body)
	}
	if cmd, _ := phone.Poll(ctx, nil, false); cmd == nil || cmd.RequestType() != "DeviceLock" {
		t.Fatal("the iPhone did not get DeviceLock")
	}
	if cmd, _ := mac.Poll(ctx, nil, false); cmd != nil {
		t.Fatal("the Mac got a command forbidden on macOS")
	}
	// Forbidden everywhere: refused.
	a = do(t, e, "POST", "/api/v1/commands", map[string]any{"targets": map[string]any{"tenant": w.tenant}, "command": map[string]any{"request_type": "EraseDevice"}}, e.APIKey)
	mustStatus(t, a, 422)
	// By user and by device id, as a union without duplicates.
	a = do(t, e, "POST", "/api/v1/commands", map[string]any{"targets": map[string]any{"users": []string{"bob@example.com"},
		"devices": []string{mac.MDM.EnrollmentID, phone.MDM.EnrollmentID}}, "command": map[string]any{"request_type": "ProfileList"}}, e.APIKey)
	mustStatus(t, a, 201)
	if a.json(t)["queued"] != float64(2) {
		t.Fatalf("union: %s", a.body)
	}
	mustStatus(t, do(t, e, "POST", "/api/v1/commands", map[string]any{"targets": map[string]any{}, "command": map[string]any{"request_type": "ProfileList"}}, e.APIKey), 400)
	mustStatus(t, do(t, e, "POST", "/api/v1/commands", map[string]any{"targets": map[string]any{"devices": []string{"nope"}}, "command": map[string]any{"request_type": "ProfileList"}}, e.APIKey), 409)
}

// Behind a TLS-terminating proxy the client certificate may come in a
// header instead of Mdm-Signature: only when the operator names the header
// and only from a trusted proxy. A present Mdm-Signature is always
// verified and must name the same certificate.
func TestForwardedClientCertificate(t *testing.T) {
	for _, c := range []struct {
		name, trusted string
		fromProxy     bool // the test client (loopback) is a trusted proxy
	}{
		{"from a trusted proxy", "127.0.0.1, ::1", true},
		{"from an untrusted peer", "10.0.0.0/8", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorldWith(t, func(cfg *server.Config) { cfg.ClientCertHeader, cfg.TrustedProxies = "X-Client-Cert", c.trusted })
			d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
			other := enrolledDevice(t, w, "iPhone", "bob@example.com", "bob-password")
			body := `<?xml version="1.0"?><plist version="1.0"><dict><key>EnrollmentID</key><string>` + d.MDM.EnrollmentID +
				`</string><key>Status</key><string>Idle</string></dict></plist>`
			send := func(cert *x509.Certificate, signer *devicesim.Device, signed string) int {
				t.Helper()
				req, _ := newRequest("PUT", w.e.URL+"/mdm/connect", body)
				req.Header.Set("Content-Type", "application/x-apple-aspen-mdm")
				req.Header.Set("Authorization", "Bearer "+d.AccessToken)
				if cert != nil {
					req.Header.Set("X-Client-Cert", url.QueryEscape(string(pki.CertPEM(cert))))
				}
				if signer != nil {
					req.Header.Set("Mdm-Signature", mdmSignature(t, signer, signed))
				}
				resp, err := w.e.Client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			foreign, _ := pki.NewCA("other", pki.ECDSAP256, time.Now())
			viaHeader := 403
			if c.fromProxy {
				viaHeader = 200
			}
			for _, k := range []struct {
				name   string
				cert   *x509.Certificate
				signer *devicesim.Device
				signed string
				want   int
			}{
				{"forwarded certificate alone", d.IdentityCert, nil, "", viaHeader},
				{"no certificate and no signature", nil, nil, "", 403},
				{"foreign forwarded certificate", foreign.Cert, nil, "", 403},
				{"signature alone", nil, d, body, 200},
				{"forwarded certificate and its signature", d.IdentityCert, d, body, 200},
				{"forwarded certificate and a signature over another body", d.IdentityCert, d, body + " ", 403},
				{"forwarded certificate and another device's signature", d.IdentityCert, other, body, 403},
			} {
				if got := send(k.cert, k.signer, k.signed); got != k.want {
					t.Errorf("%s: %d, want %d", k.name, got, k.want)
				}
			}
		})
	}
	// A header nobody vouches for: the server refuses to start.
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.ClientCertHeader = t.TempDir(), "X-Client-Cert"
	if _, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil ||
		!strings.Contains(err.Error(), "--client-cert-header") || !strings.Contains(err.Error(), "--trusted-proxies") {
		t.Fatalf("--client-cert-header without --trusted-proxies: %v", err)
	}
}

// mdmSignature is the Mdm-Signature header d would send for body.
func mdmSignature(t testing.TB, d *devicesim.Device, body string) string {
	t.Helper()
	sd, err := pkcs7.NewSignedData([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := sd.AddSigner(d.IdentityCert, d.IdentityKey, pkcs7.SignerInfoConfig{}); err != nil {
		t.Fatal(err)
	}
	sd.Detach()
	sig, err := sd.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// A result holding values JSON cannot express (NaN, ±Inf) or typed
// decoders refuse (integers beyond 64 bits) is recorded like any other:
// the command leaves "sent", the API shows the result and the inventory.
func TestUnrepresentableResults(t *testing.T) {
	w := newWorld(t, true)
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	ctx := context.Background()
	for _, c := range []struct {
		name, value string
		want        any // in the API's JSON
	}{
		{"NaN", `<real>nan</real>`, "NaN"},
		{"+Inf", `<real>inf</real>`, "Infinity"},
		{"-Inf", `<real>-inf</real>`, "-Infinity"},
		{"integer beyond uint64", `<integer>123456789012345678901234567890</integer>`, 123456789012345678901234567890.0},
		{"real beyond float64", `<real>1e400</real>`, "1e400"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := do(t, w.e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "DeviceInformation", "queries": []string{"OSVersion"}}, w.e.APIKey)
			mustStatus(t, a, 201)
			uuid := a.json(t)["command_uuid"].(string)
			if cmd, err := d.Poll(ctx, nil, false); err != nil || cmd == nil || cmd.CommandUUID != uuid {
				t.Fatalf("poll: %+v %v", cmd, err)
			}
			body := `<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>EnrollmentID</key><string>` + d.MDM.EnrollmentID +
				`</string><key>CommandUUID</key><string>` + uuid + `</string><key>Status</key><string>Acknowledged</string>` +
				`<key>RequestType</key><string>DeviceInformation</string><key>QueryResponses</key><dict><key>OSVersion</key><string>18.2</string>` +
				`<key>BatteryLevel</key>` + c.value + `</dict></dict></plist>`
			req, _ := newRequest("PUT", w.e.URL+"/mdm/connect", body)
			req.Header.Set("Content-Type", "application/x-apple-aspen-mdm")
			req.Header.Set("Authorization", "Bearer "+d.AccessToken)
			req.Header.Set("Mdm-Signature", mdmSignature(t, d, body))
			resp, err := w.e.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("result: %d %s", resp.StatusCode, msg)
			}
			var got map[string]any
			for _, q := range do(t, w.e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", nil, w.e.APIKey).json(t)["commands"].([]any) {
				if q.(map[string]any)["command_uuid"] == uuid {
					got = q.(map[string]any)
				}
			}
			if got["status"] != "Acknowledged" {
				t.Fatalf("command: %v", got)
			}
			if v := got["result"].(map[string]any)["QueryResponses"].(map[string]any)["BatteryLevel"]; v != c.want {
				t.Fatalf("result in the API: %#v, want %#v", v, c.want)
			}
			dj := do(t, w.e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, w.e.APIKey).json(t)
			if v := dj["inventory"].(map[string]any)["device_information"].(map[string]any)["data"].(map[string]any)["BatteryLevel"]; v != c.want {
				t.Fatalf("inventory: %#v, want %#v", v, c.want)
			}
		})
	}
}
