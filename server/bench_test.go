package server_test

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/app"
	"github.com/pomona-mdm/pomona/mdmservice"
)

// BenchmarkIdleCheckinService measures the server's work for one signed
// idle poll with a bearer (signature verification, identity and binding
// lookups, token check, last-seen write, queue look-up), without HTTP/TLS.
func BenchmarkIdleCheckinService(b *testing.B) {
	w := newWorld(b, true)
	d := enrolledDevice(b, w, "iPhone", "alice@example.com", "alice-password")
	body, _ := plist.Marshal(map[string]any{"Status": "Idle", "EnrollmentID": d.MDM.EnrollmentID})
	sd, _ := pkcs7.NewSignedData(body)
	sd.AddSigner(d.IdentityCert, d.IdentityKey, pkcs7.SignerInfoConfig{})
	sd.Detach()
	sig, _ := sd.Finish()
	req := mdmservice.Request{Body: body, Signature: base64.StdEncoding.EncodeToString(sig), Authorization: "Bearer " + d.AccessToken}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rq := req // the channel fills in the resolved sender
		if _, err := w.e.Server.MDM.Command(ctx, &rq); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIdleCheckinHTTP is the same poll through TLS and HTTP on
// loopback, client and server in one process (so the time includes the
// client's side too).
func BenchmarkIdleCheckinHTTP(b *testing.B) {
	w := newWorld(b, true)
	d := enrolledDevice(b, w, "iPhone", "alice@example.com", "alice-password")
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.Poll(ctx, nil, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommandRoundTripService measures the server's work for one
// command: enqueue (validation, durable queue write, push hand-off), the
// device's poll that fetches it and the result that stores the answer and
// updates the inventory, without HTTP/TLS.
func BenchmarkCommandRoundTripService(b *testing.B) {
	w := newWorld(b, true)
	d := enrolledDevice(b, w, "iPhone", "alice@example.com", "alice-password")
	ctx := context.Background()
	enr, err := w.e.Server.Store.EnrollmentByAppleID(ctx, d.MDM.EnrollmentID)
	if err != nil {
		b.Fatal(err)
	}
	sign := func(m map[string]any) mdmservice.Request {
		m["EnrollmentID"] = d.MDM.EnrollmentID
		body, _ := plist.Marshal(m)
		sd, _ := pkcs7.NewSignedData(body)
		sd.AddSigner(d.IdentityCert, d.IdentityKey, pkcs7.SignerInfoConfig{})
		sd.Detach()
		sig, _ := sd.Finish()
		return mdmservice.Request{Body: body, Signature: base64.StdEncoding.EncodeToString(sig), Authorization: "Bearer " + d.AccessToken}
	}
	idle := sign(map[string]any{"Status": "Idle"})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// The device's answer is signed outside the measured time (the
		// device does that work, with its own key).
		b.StartTimer()
		id, err := w.e.Server.Commands.Enqueue(ctx, enr, app.EnqueueRequest{JSON: map[string]any{"request_type": "DeviceInformation", "queries": []any{"OSVersion"}}, NoPush: true})
		if err != nil {
			b.Fatal(err)
		}
		rq := idle
		if a, err := w.e.Server.MDM.Command(ctx, &rq); err != nil || len(a.Body) == 0 {
			b.Fatalf("poll: %v %v", a, err)
		}
		b.StopTimer()
		ans := sign(map[string]any{"Status": "Acknowledged", "CommandUUID": id, "QueryResponses": map[string]any{"OSVersion": "18.2"}})
		b.StartTimer()
		if _, err := w.e.Server.MDM.Command(ctx, &ans); err != nil {
			b.Fatalf("result: %v", err)
		}
	}
}
