package profiles

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/mdm/mobileconfig"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
)

// The Deliverer hands a device exactly what planning hashed: the
// template rendered with the queue row's values is mobileconfig.Render's
// output byte for byte (XML-special characters, non-ASCII, several
// variables), wrapped as app.Commands.Record wraps a command, signed with
// the signer of now when marked and only then.
func TestDelivererRender(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	ca, _ := pki.NewCA("Pomona CA", pki.ECDSAP256, now)
	cert, key, err := ca.IssueProfileSigner(now)
	if err != nil {
		t.Fatal(err)
	}
	signer := &Signer{Cert: cert, Key: key, Chain: []*x509.Certificate{ca.Cert}}
	multi := strings.Replace(wifi, "<string>Corp</string>", "<string>$USER_NAME at $TENANT</string>", 1)
	if multi == wifi {
		t.Fatal("the test profile has no SSID to replace")
	}
	values := []map[string]string{
		{"EMAIL": "alice@example.com", "USER_NAME": "Alice", "TENANT": "Example"},
		{"EMAIL": `a&b<c>"d"'e'` + "\t" + `]]>`, "USER_NAME": "Zoë 日本 🍐", "TENANT": "$EMAIL $$"},
	}
	for _, tmpl := range []string{wifi, multi} {
		names, _ := reconcile.NewRenderer().Vars([]byte(tmpl))
		for _, v := range values {
			want, hash, err := mobileconfig.Render([]byte(tmpl), v)
			if err != nil {
				t.Fatal(err)
			}
			vars, ok := reconcile.EncodeVars(names, v)
			if !ok {
				t.Fatal("vars not encoded")
			}
			for _, c := range []struct {
				render string
				signer *Signer
				signed bool
			}{{store.RenderProfile, signer, false}, {store.RenderProfileSigned, signer, true}, {store.RenderProfileSigned, nil, false}} {
				d := &Deliverer{Signer: func() *Signer { return c.signer }}
				q := &store.QueuedCommand{CommandRecord: store.CommandRecord{UUID: "CMD-1", RequestType: "InstallProfile", Payload: []byte(tmpl), Render: c.render}, Vars: vars}
				body, err := d.Render(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				cmd, inner, payload := delivered(t, body)
				if cmd["CommandUUID"] != "CMD-1" || inner["RequestType"] != "InstallProfile" || len(inner) != 2 {
					t.Fatalf("command %v", cmd)
				}
				if c.signed {
					p7, err := pkcs7.Parse(payload)
					if err != nil {
						t.Fatal(err)
					}
					pool := x509.NewCertPool()
					pool.AddCert(ca.Cert)
					if err := p7.VerifyWithChain(pool); err != nil {
						t.Fatal(err)
					}
					payload = p7.Content
				}
				if string(payload) != string(want) || mobileconfig.Hash(payload) != hash {
					t.Fatalf("%s %v: delivered\n%s\nwant\n%s", c.render, v, payload, want)
				}
				// And the same bytes app.Commands.Record would store.
				if !c.signed {
					enc, _ := mdm.Command{CommandUUID: "CMD-1", Command: map[string]any{"RequestType": "InstallProfile", "Payload": want}}.Encode()
					if string(enc) != string(body) {
						t.Fatalf("encoding differs from Record's")
					}
				}
			}
		}
	}
}

// What cannot be rendered is an error, never the template: a missing
// value, vars that do not decode, an unknown marker, a stored profile that
// does not parse — each permanent for its queue row (store.ErrCannotRender:
// the MDM channel fails the row instead of answering 5xx forever).
func TestDelivererRefuses(t *testing.T) {
	d := &Deliverer{}
	for name, q := range map[string]*store.QueuedCommand{
		"missing value": {CommandRecord: store.CommandRecord{UUID: "C", Payload: []byte(wifi), Render: store.RenderProfile}, Vars: `{}`},
		"bad vars":      {CommandRecord: store.CommandRecord{UUID: "C", Payload: []byte(wifi), Render: store.RenderProfile}, Vars: `{"EMAIL":`},
		"no vars":       {CommandRecord: store.CommandRecord{UUID: "C", Payload: []byte(wifi), Render: store.RenderProfile}},
		"old marker": {CommandRecord: store.CommandRecord{UUID: "C", Payload: []byte(wifi), Render: "other",
			CreatedAt: time.Now().Add(-UnknownMarkerGrace - time.Second)}, Vars: `{"EMAIL":"a@b"}`},
		"unparsable": {CommandRecord: store.CommandRecord{UUID: "C", Payload: []byte("<plist><dict><key>"), Render: store.RenderProfile}, Vars: `{"EMAIL":"a@b"}`},
	} {
		if body, err := d.Render(context.Background(), q); err == nil {
			t.Fatalf("%s: rendered %s", name, body)
		} else if !errors.Is(err, store.ErrCannotRender) {
			t.Fatalf("%s: %v, not permanent (store.ErrCannotRender)", name, err)
		}
	}
}

// A recent command with a marker this version does not know (a newer
// instance wrote it during a rolling upgrade) is left for an instance
// that knows it: a transient error (5xx, the row stays queued), counted
// and logged — permanent only once it is UnknownMarkerGrace old.
func TestDelivererLeavesNewerMarker(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var seen []string
	d := &Deliverer{Now: func() time.Time { return now }, UnknownMarker: func(m string) { seen = append(seen, m) }}
	q := &store.QueuedCommand{CommandRecord: store.CommandRecord{UUID: "C", Payload: []byte(wifi), Render: "profile+v2", CreatedAt: now.Add(-UnknownMarkerGrace + time.Minute)},
		Vars: `{"EMAIL":"a@b"}`}
	_, err := d.Render(context.Background(), q)
	if !errors.Is(err, ErrRenderElsewhere) || errors.Is(err, store.ErrCannotRender) {
		t.Fatalf("recent unknown marker: %v, want ErrRenderElsewhere (transient)", err)
	}
	now = now.Add(time.Minute)
	if _, err := d.Render(context.Background(), q); !errors.Is(err, store.ErrCannotRender) {
		t.Fatalf("unknown marker after the grace: %v, want store.ErrCannotRender", err)
	}
	if len(seen) != 2 || seen[0] != "profile+v2" {
		t.Fatalf("unknown markers counted: %v", seen)
	}
}

// TestDelivererUnknownMarkerFromTheFuture: a command with an unknown
// marker whose CreatedAt lies far ahead of this server's clock (a corrupt
// row, a clock stepped far forward) is failed, not left queued until that
// time: read as "recent", it answered every poll of the channel 5xx and
// blocked its queue for as long as the time was ahead (year 9999:
// forever). A newer instance's clock a few minutes ahead still waits.
func TestDelivererUnknownMarkerFromTheFuture(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	d := &Deliverer{Now: func() time.Time { return now }}
	q := &store.QueuedCommand{CommandRecord: store.CommandRecord{UUID: "C", Payload: []byte(wifi), Render: "profile+v2"}, Vars: `{"EMAIL":"a@b"}`}
	for _, c := range []struct {
		created time.Time
		expired bool
	}{
		{now.Add(5 * time.Minute), false},
		{now.Add(UnknownMarkerGrace - time.Minute), false},
		{now.Add(UnknownMarkerGrace), true},
		{time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), true},
	} {
		q.CreatedAt = c.created
		_, err := d.Render(context.Background(), q)
		if got := errors.Is(err, store.ErrCannotRender); got != c.expired || !got && !errors.Is(err, ErrRenderElsewhere) {
			t.Fatalf("created %s ahead: %v, want expired %v", c.created.Sub(now), err, c.expired)
		}
	}
}

// BenchmarkDelivererRender is the delivery cost of a template command per
// device fetch (what planning no longer writes: a ~2 KB command row per
// device), unsigned; a signed one adds BenchmarkSignProfile.
func BenchmarkDelivererRender(b *testing.B) {
	d := &Deliverer{}
	names, _ := reconcile.NewRenderer().Vars([]byte(wifi))
	vars, _ := reconcile.EncodeVars(names, map[string]string{"EMAIL": "alice@example.com"})
	q := &store.QueuedCommand{CommandRecord: store.CommandRecord{UUID: "CMD-1", RequestType: "InstallProfile", Payload: []byte(wifi), Render: store.RenderProfile}, Vars: vars}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := d.Render(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
}
