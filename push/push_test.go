package push

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"

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

// A 429 is retried like a 5xx, and gives up after Retries.
func TestThrottledRetried(t *testing.T) {
	stub, c := setup(t)
	ctx := context.Background()
	tok := []byte{7, 7}
	stub.Throttle(tok, 2)
	if r := c.Send(ctx, Target{Token: tok, PushMagic: "m"}); !r.OK() {
		t.Fatalf("429 not retried: %+v", r)
	}
	stub.Throttle(tok, 10)
	r := c.SendAll(ctx, []Target{{ID: "t", Token: tok, PushMagic: "m"}})[0]
	if r.OK() || r.Dead || r.Status != http.StatusTooManyRequests || r.Reason != "TooManyRequests" {
		t.Fatalf("persistent 429: %+v", r)
	}
	if n := stub.Count(); n != 1 {
		t.Fatalf("the stand-in accepted %d pushes, want 1", n)
	}
}

// A request APNs does not answer ends at Timeout (a transient failure,
// retried), and the same sender goes on with the next targets.
func TestHungRequestTimesOut(t *testing.T) {
	stub, c := setup(t)
	c.Timeout, c.Retries, c.Concurrency = 200*time.Millisecond, 1, 1
	hung, good := []byte{8}, []byte{9}
	stub.Hang(hung)
	start := time.Now()
	res := c.SendAll(context.Background(), []Target{{ID: "hung", Token: hung, PushMagic: "m"},
		{ID: "good1", Token: good, PushMagic: "m"}, {ID: "good2", Token: good, PushMagic: "m"}})
	if r := res[0]; r.OK() || r.Status != 0 || !errors.Is(r.Err, context.DeadlineExceeded) {
		t.Fatalf("hung: %+v", r)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("two hung attempts took %v with a 200 ms timeout", el)
	}
	for _, r := range res[1:] {
		if !r.OK() {
			t.Fatalf("after a timeout: %+v", r)
		}
	}
}

// The bound is on each request, not on the whole fan-out: one sender's
// requests that each take a fifth of Timeout all succeed (eight of them
// take 1.6 Timeouts together). The slack per request (1.2 s) is wide
// because a loaded CI machine delayed requests by over 300 ms.
func TestTimeoutPerRequest(t *testing.T) {
	stub, c := setup(t)
	c.Timeout, c.Retries, c.Concurrency = 1500*time.Millisecond, 0, 1
	stub.Delay(300 * time.Millisecond)
	ts := make([]Target, 8)
	for i := range ts {
		ts[i] = Target{ID: fmt.Sprint(i), Token: []byte{10, byte(i)}, PushMagic: "m"}
	}
	for _, r := range c.SendAll(context.Background(), ts) {
		if !r.OK() {
			t.Fatalf("%+v", r)
		}
	}
}

// SendAll answers in the order of its targets, whatever the order of
// APNs' answers, and never has more than Concurrency requests in flight
// (counted at the stand-in).
func TestSendAllOrderAndConcurrency(t *testing.T) {
	stub, c := setup(t)
	c.Concurrency = 5
	stub.Delay(2 * time.Millisecond)
	ts := make([]Target, 300)
	for i := range ts {
		ts[i] = Target{ID: fmt.Sprint("t", i), Token: []byte{11, byte(i >> 8), byte(i)}, PushMagic: fmt.Sprint("magic-", i)}
		switch i % 3 {
		case 1:
			stub.Dead(ts[i].Token, "Unregistered")
		case 2:
			stub.Dead(ts[i].Token, "BadDeviceToken")
		}
	}
	res := c.SendAll(context.Background(), ts)
	if len(res) != len(ts) {
		t.Fatalf("%d results for %d targets", len(res), len(ts))
	}
	for i, r := range res {
		want := [...]int{200, 410, 400}[i%3]
		if r.ID != ts[i].ID || r.Status != want || r.Dead != (i%3 != 0) {
			t.Fatalf("result %d: %+v, want %s with %d", i, r, ts[i].ID, want)
		}
	}
	if m := stub.MaxInFlight(); m > 5 || m < 2 {
		t.Fatalf("at most %d requests in flight, want 2..5", m)
	}
	if got := len(c.SendAll(context.Background(), nil)); got != 0 {
		t.Fatalf("%d results for no target", got)
	}
}

// A path in the endpoint's URL is kept, as before.
func TestEndpointPath(t *testing.T) {
	_, c := setup(t)
	c.URL += "/prefix"
	r := c.Send(context.Background(), Target{Token: []byte{1}, PushMagic: "m"})
	if r.Status != http.StatusMethodNotAllowed { // the stand-in only serves /3/device/
		t.Fatalf("%+v", r)
	}
}

// The pushes on the wire are APNs': path, headers and body.
func TestRequestOnTheWire(t *testing.T) {
	stub, c := setup(t)
	tok := []byte{0xde, 0xad, 0xbe, 0xef}
	recv := stub.Listen(tok)
	magic := `m"<&>\` + "\u2028é"
	if r := c.Send(context.Background(), Target{Token: tok, PushMagic: magic}); !r.OK() {
		t.Fatal(r)
	}
	p := <-recv
	if p.PushMagic != magic || p.Topic != topic {
		t.Fatalf("%+v", p)
	}
}

func TestEncoding(t *testing.T) {
	for _, m := range []string{"", "E2B7F4A0-4C33-4B8E-9F1A-6D7C0B1E2F3A", `a"b`, `a\b`, "<>&", "\x00\x1f\x7f", "é\u2028\u2029", "\xff"} {
		want, _ := json.Marshal(map[string]string{"mdm": m})
		if got := mdmBody(m); string(got) != string(want) {
			t.Errorf("mdmBody(%q) = %s, want %s", m, got, want)
		}
	}
	for _, n := range []int{0, 1, 31, 32, 33, 100} {
		tok := make([]byte, n)
		for i := range tok {
			tok[i] = byte(i * 37)
		}
		if got, want := devicePath("/3/device/", tok), "/3/device/"+hex.EncodeToString(tok); got != want {
			t.Errorf("devicePath(%d bytes) = %s, want %s", n, got, want)
		}
	}
}

// New's transport: HTTP/2 with the push certificate, TLS 1.2 or later,
// and our headers kept out of the HPACK table (see encoderTableSize).
func TestNewTransport(t *testing.T) {
	_, c := setup(t)
	tr, ok := c.Transport.(*http2.Transport)
	if !ok {
		t.Fatalf("transport %T", c.Transport)
	}
	if tr.MaxEncoderHeaderTableSize != 1 || tr.TLSClientConfig.MinVersion != tls.VersionTLS12 ||
		len(tr.TLSClientConfig.Certificates) != 1 || c.Timeout != 30*time.Second || c.Concurrency != 32 {
		t.Fatalf("transport %+v, client %+v", tr, c)
	}
}
