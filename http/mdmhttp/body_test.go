package mdmhttp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/metrics"
)

// TestReadBody: the body is read whole whatever Content-Length says (a
// hint only), and MaxBytesReader's bound still refuses a larger one.
func TestReadBody(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 3000)
	for _, tc := range []struct {
		name   string
		length int64
	}{{"stated", 3000}, {"unknown", -1}, {"stated shorter", 100}, {"stated longer", 5000}, {"stated beyond max", 1 << 30}, {"stated beyond the preallocation", preallocMax + 1}} {
		rec := httptest.NewRecorder()
		got, err := readBody(http.MaxBytesReader(rec, io.NopCloser(bytes.NewReader(body)), 4096), tc.length, 4096)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: %d bytes, %v; want the 3000 bytes", tc.name, len(got), err)
		}
	}
	for _, length := range []int64{-1, 1000, 4096} {
		rec := httptest.NewRecorder()
		_, err := readBody(http.MaxBytesReader(rec, io.NopCloser(bytes.NewReader(make([]byte, 5000))), 4096), length, 4096)
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			t.Errorf("5000 bytes stated as %d with max 4096: %v, want a MaxBytesError", length, err)
		}
	}
}

type echoChannel struct{ n int }

func (c *echoChannel) Checkin(ctx context.Context, r *mdmservice.Request) (*mdmservice.Answer, error) {
	return c.Command(ctx, r)
}

func (c *echoChannel) Command(_ context.Context, r *mdmservice.Request) (*mdmservice.Answer, error) {
	c.n = len(r.Body)
	return &mdmservice.Answer{}, nil
}

// TestHandlerReadsTheBodyOnce: a result of a few KiB with its
// Content-Length (as devices send it) is read into one buffer of its size,
// not grown from io.ReadAll's 512 bytes (7 more allocations for 3,000
// bytes: the handler's 12 → 5 here with a service that answers nothing;
// Session 13 — wave5).
func TestHandlerReadsTheBodyOnce(t *testing.T) {
	ch := &echoChannel{}
	h := &Handler{Service: ch, Log: slog.New(slog.DiscardHandler), Metrics: metrics.New()}
	body := bytes.Repeat([]byte("x"), 3000)
	rd := bytes.NewReader(body)
	r := httptest.NewRequest(http.MethodPut, "/mdm/connect", rd)
	r.Header.Set("Content-Type", "application/x-apple-aspen-mdm")
	w := httptest.NewRecorder()
	allocs := testing.AllocsPerRun(100, func() {
		rd.Reset(body)
		w.Body.Reset()
		h.ServeHTTP(w, r)
	})
	if ch.n != len(body) {
		t.Fatalf("the service read %d bytes, want %d", ch.n, len(body))
	}
	if allocs > 5 {
		t.Errorf("%v allocations per request, want at most 5", allocs)
	}
}
