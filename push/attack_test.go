package push

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/pushcert"
)

// Session 10, lane attack: the push client against a stand-in that
// misbehaves at the HTTP/2 level (streams reset, connections dropped,
// GOAWAY), and how often it asks APNs again.

// countingTransport counts the requests that reach the transport.
type countingTransport struct {
	http.RoundTripper
	n atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.RoundTripper.RoundTrip(r)
}

// An answer that is final (400 BadDeviceToken, 410 Unregistered, 403,
// 405) is not asked again: only transport errors, 429 and 5xx are
// transient. Retrying a dead token cost Retries requests more to APNs and
// 0.5 + 1 + 2 s of a sender per dead token (with 32 senders, 1,000 dead
// tokens held a fan-out for ~110 s).
func TestFinalAnswerNotRetried(t *testing.T) {
	stub, c := setup(t)
	c.Backoff = 50 * time.Millisecond
	ct := &countingTransport{RoundTripper: c.Transport}
	c.Transport = ct
	gone, bad := []byte{0x41}, []byte{0x42}
	stub.Dead(gone, "Unregistered")
	stub.Dead(bad, "BadDeviceToken")
	c.URL += "/prefix" // 405 from the stand-in for every path but /3/device/
	if r := c.Send(context.Background(), Target{Token: gone, PushMagic: "m"}); r.Status != http.StatusMethodNotAllowed {
		t.Fatalf("%+v", r)
	}
	if n := ct.n.Load(); n != 1 {
		t.Fatalf("a 405 was asked %d times, want once", n)
	}
	c2 := clientFor(t, stub.URL, stub.CA.Cert)
	c2.Backoff = 50 * time.Millisecond
	ct2 := &countingTransport{RoundTripper: c2.Transport}
	c2.Transport = ct2
	start := time.Now()
	res := c2.SendAll(context.Background(), []Target{{ID: "gone", Token: gone, PushMagic: "m"}, {ID: "bad", Token: bad, PushMagic: "m"}})
	if res[0].Status != http.StatusGone || !res[0].Dead || res[1].Status != http.StatusBadRequest || !res[1].Dead {
		t.Fatalf("%+v", res)
	}
	if n := ct2.n.Load(); n != 2 {
		t.Fatalf("2 dead tokens took %d requests, want 2 (a final answer retried)", n)
	}
	if el := time.Since(start); el > 300*time.Millisecond {
		t.Fatalf("2 dead tokens took %v (backoff on a final answer)", el)
	}
}

// hostileAPNs is an HTTP/2 stand-in whose handler misbehaves by token:
// "rst…" resets the stream (http.ErrAbortHandler), "close…" drops every
// connection mid-request, "away…" shuts the server's connections down
// gracefully (GOAWAY) while answering, anything else is 200.
func hostileAPNs(t *testing.T) (*httptest.Server, *Client) {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.URL.Path, "/3/device/")
		switch {
		case strings.HasPrefix(tok, "0a"): // reset the stream
			panic(http.ErrAbortHandler)
		case strings.HasPrefix(tok, "0b"): // drop the connection
			srv.CloseClientConnections()
			<-r.Context().Done()
			return
		case strings.HasPrefix(tok, "0c"): // 500 every time
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"reason":"InternalServerError"}`)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	c := clientFor(t, srv.URL, srv.Certificate())
	c.Backoff, c.Timeout, c.Retries = time.Millisecond, 2*time.Second, 2
	return srv, c
}

// clientFor is a client with a new push certificate for the server at
// url, whose TLS certificate root signs.
func clientFor(t *testing.T, url string, root *x509.Certificate) *Client {
	t.Helper()
	ca, _ := pki.NewCA("push", pki.ECDSAP256, time.Now())
	cert, err := pushcert.NewLocal(topic, ca, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	c, err := New(cert, url, pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Reset streams, dropped connections and 500s: every target gets its own
// result in order, within the bounds, and once the client is closed no
// goroutine of the fan-out is left (senders, timers, connections).
func TestHostileStandInNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv, c := hostileAPNs(t)
		var ts []Target
		for i := range 60 {
			kind := []byte{0x0a, 0x0b, 0x0c, 0x0d}[i%4]
			ts = append(ts, Target{ID: fmt.Sprint(i), Token: []byte{kind, byte(i)}, PushMagic: "m"})
		}
		start := time.Now()
		res := c.SendAll(context.Background(), ts)
		if el := time.Since(start); el > 20*time.Second {
			t.Fatalf("fan-out took %v", el)
		}
		for i, r := range res {
			if r.ID != ts[i].ID {
				t.Fatalf("result %d is %s's", i, r.ID)
			}
			switch i % 4 {
			case 3:
				// A 200 can be lost with a connection another request
				// dropped: then a transport error, retried.
				if !r.OK() && r.Err == nil {
					t.Fatalf("result %d: %+v", i, r)
				}
			case 2:
				// 500 every time (or, last, a connection another request dropped).
				if (r.Status != http.StatusInternalServerError && (r.Status != 0 || r.Err == nil)) || r.Dead {
					t.Fatalf("result %d: %+v", i, r)
				}
			default:
				if r.OK() || r.Err == nil || r.Dead {
					t.Fatalf("result %d: %+v", i, r)
				}
			}
		}
		c.Close()
		srv.Close()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// A GOAWAY while requests are in flight (the stand-in shutting down):
// the senders end, each target has a result, nothing hangs.
func TestGoAwayMidFanOut(t *testing.T) {
	srv, c := hostileAPNs(t)
	ts := make([]Target, 200)
	for i := range ts {
		ts[i] = Target{ID: fmt.Sprint(i), Token: []byte{0x0d, byte(i >> 8), byte(i)}, PushMagic: "m"}
	}
	go func() {
		time.Sleep(5 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Config.Shutdown(ctx) // GOAWAY on every connection
	}()
	done := make(chan []Result, 1)
	go func() { done <- c.SendAll(context.Background(), ts) }()
	select {
	case res := <-done:
		for i, r := range res {
			if r.ID != ts[i].ID || (!r.OK() && r.Err == nil) {
				t.Fatalf("result %d: %+v", i, r)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("SendAll hung after a GOAWAY")
	}
}
