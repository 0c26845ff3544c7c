package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/push/apnsstub"
	"github.com/pomona-mdm/pomona/server"
)

func withAPNs(t testing.TB) (*apnsstub.Server, func(*server.Config)) {
	stub, err := apnsstub.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stub.Close)
	caFile := filepath.Join(t.TempDir(), "apns-ca.pem")
	os.WriteFile(caFile, pki.CertPEM(stub.CA.Cert), 0o600)
	return stub, func(c *server.Config) { c.APNsURL, c.APNsCAFile = stub.URL, caFile }
}

func TestPushAndUnenroll(t *testing.T) {
	stub, opt := withAPNs(t)
	w := newWorldWith(t, opt)
	e, ctx := w.e, context.Background()
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	pushes := stub.Listen(d.MDM.PushToken)

	// Enqueueing wakes the device through APNs with its PushMagic.
	a := do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "SecurityInfo"}, e.APIKey)
	mustStatus(t, a, 201)
	select {
	case p := <-pushes:
		if p.PushMagic != d.MDM.PushMagic || p.Topic != topic {
			t.Fatalf("push %+v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no push after enqueue")
	}
	cmd, err := d.Poll(ctx, nil, false)
	if err != nil || cmd.RequestType() != "SecurityInfo" {
		t.Fatalf("%+v %v", cmd, err)
	}
	d.Poll(ctx, d.Answer(cmd), false)
	// push=false queues without waking.
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/commands", map[string]any{"request_type": "ProfileList", "push": false}, e.APIKey), 201)
	select {
	case <-pushes:
		t.Fatal("pushed although push=false")
	case <-time.After(300 * time.Millisecond):
	}
	// Explicit push.
	a = do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/push", nil, e.APIKey)
	mustStatus(t, a, 200)
	if !strings.Contains(string(a.body), `"ok":true`) {
		t.Fatalf("push: %s", a.body)
	}
	<-pushes

	// A token APNs calls dead is not pushed again.
	stub.Dead(d.MDM.PushToken, "Unregistered")
	a = do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/push", nil, e.APIKey)
	if !strings.Contains(string(a.body), `"dead_token":true`) {
		t.Fatalf("dead token: %s", a.body)
	}
	dev := do(t, e, "GET", "/api/v1/devices/"+d.MDM.EnrollmentID, nil, e.APIKey).json(t)
	if dev["channels"].([]any)[0].(map[string]any)["pushable"] != false {
		t.Fatal("dead token still pushable")
	}
	mustStatus(t, do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/push", nil, e.APIKey), 409)
	// A new TokenUpdate revives it.
	d.TokenUpdate(ctx, false)

	// Unenroll: RemoveProfile of the enrollment profile reaches the device;
	// "immediately" makes the server forget it at once.
	a = do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/unenroll", map[string]any{"immediately": true}, e.APIKey)
	mustStatus(t, a, 202)
	if a.json(t)["command_uuid"] == nil || a.json(t)["status"] != "unenrolled" {
		t.Fatalf("unenroll: %s", a.body)
	}
	if _, err := d.Poll(ctx, nil, false); err == nil || !strings.Contains(err.Error(), "com.apple.unrecognized.device") {
		t.Fatalf("after immediate unenroll: %v", err)
	}
	m := get(t, e, "/metrics")
	if !strings.Contains(m, `pomona_apns_pushes_total{result="ok"}`) || !strings.Contains(m, `pomona_apns_pushes_total{result="dead-token"} 1`) {
		t.Fatalf("push metrics:\n%s", grep(m, "apns"))
	}
}

func TestUnenrollDeliversRemoveProfile(t *testing.T) {
	stub, opt := withAPNs(t)
	_ = stub
	w := newWorldWith(t, opt)
	e, ctx := w.e, context.Background()
	d := enrolledDevice(t, w, "iPhone", "alice@example.com", "alice-password")
	a := do(t, e, "POST", "/api/v1/devices/"+d.MDM.EnrollmentID+"/unenroll", nil, e.APIKey)
	mustStatus(t, a, 202)
	cmd, err := d.Poll(ctx, nil, false)
	if err != nil || cmd.RequestType() != "RemoveProfile" || cmd.Command["Identifier"] != d.Profile.Identifier {
		t.Fatalf("RemoveProfile: %+v %v", cmd, err)
	}
	d.Poll(ctx, d.Answer(cmd), false)
	if err := d.CheckOut(ctx); err != nil {
		t.Fatal(err)
	}
}
