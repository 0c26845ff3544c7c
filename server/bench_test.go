package server_test

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/micromdm/plist"
	"github.com/smallstep/pkcs7"

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
		if r := w.e.Server.MDM.Command(ctx, req); r.Status != 200 {
			b.Fatalf("%d %s", r.Status, r.Reason)
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
