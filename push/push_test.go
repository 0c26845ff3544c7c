package push

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/push/apnsstub"
	"github.com/pomona-mdm/pomona/pushcert"
)

const topic = "com.apple.mgmt.External.99999999-0000-0000-0000-000000000000"

func setup(t testing.TB) (*apnsstub.Server, *Client) {
	stub, err := apnsstub.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stub.Close)
	ca, _ := pki.NewCA("push", pki.ECDSAP256, time.Now())
	cert, err := pushcert.NewLocal(topic, ca, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(stub.CA.Cert)
	c, err := New(cert, stub.URL, pool)
	if err != nil {
		t.Fatal(err)
	}
	c.Backoff = time.Millisecond
	t.Cleanup(c.Close)
	return stub, c
}

func TestPush(t *testing.T) {
	stub, c := setup(t)
	ctx := context.Background()
	good, gone, bad, flaky := []byte{1, 2, 3}, []byte{4}, []byte{5}, []byte{6}
	stub.Dead(gone, "Unregistered")
	stub.Dead(bad, "BadDeviceToken")
	stub.FailNext(flaky, 2)
	recv := stub.Listen(good)
	res := c.SendAll(ctx, []Target{{ID: "good", Token: good, PushMagic: "magic-1"}, {ID: "gone", Token: gone, PushMagic: "m"},
		{ID: "bad", Token: bad, PushMagic: "m"}, {ID: "flaky", Token: flaky, PushMagic: "m"}})
	byID := map[string]Result{}
	for _, r := range res {
		byID[r.ID] = r
	}
	if !byID["good"].OK() || byID["good"].APNsID == "" {
		t.Fatalf("good: %+v", byID["good"])
	}
	if r := byID["gone"]; r.Status != 410 || !r.Dead {
		t.Fatalf("gone: %+v", r)
	}
	if r := byID["bad"]; r.Status != 400 || !r.Dead || r.Reason != "BadDeviceToken" {
		t.Fatalf("bad: %+v", r)
	}
	if r := byID["flaky"]; !r.OK() {
		t.Fatalf("flaky not retried: %+v", r)
	}
	select {
	case p := <-recv:
		if p.PushMagic != "magic-1" || p.Topic != topic {
			t.Fatalf("push %+v", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stand-in got no push")
	}
	// Retries give up eventually.
	stub.FailNext(good, 10)
	if r := c.Send(ctx, Target{Token: good, PushMagic: "m"}); r.OK() || r.Dead || r.Status != 503 {
		t.Fatalf("persistent 503: %+v", r)
	}
}

func TestNoCertificate(t *testing.T) {
	if _, err := New(nil, "", nil); err == nil {
		t.Fatal("client without a certificate")
	}
}
