package httpx

import (
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/pomona-mdm/pomona/metrics"
)

// StatusRecorder remembers the status and size of a response (for logs,
// metrics and the audit log). A status set before anything is written
// (SetStatus) is kept: a handler can record the outcome it reports.
type StatusRecorder struct {
	http.ResponseWriter
	Status int
	Bytes  int
}

func (r *StatusRecorder) WriteHeader(code int) {
	if r.Status == 0 {
		r.Status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *StatusRecorder) Write(b []byte) (int, error) {
	if r.Status == 0 {
		r.Status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.Bytes += n
	return n, err
}

func (r *StatusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// statusLabels holds the decimal text of every HTTP status (100–599), the
// value of the code label of request metrics: strconv.Itoa allocates for
// numbers above 99, and every request is counted.
var statusLabels = func() (t [600]string) {
	for i := 100; i < len(t); i++ {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

// StatusLabel is code in decimal, without allocating for 100–599.
func StatusLabel(code int) string {
	if code >= 100 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

// MethodLabel is method when it is one of HTTP's methods (RFC 9110 §9,
// PATCH), "other" otherwise. The method is the client's to choose (any
// token up to the header limit, 64 KiB): as a label as it came, every
// new one made two new series, kept for the process's life — 300
// requests with 30 KB random methods grew /metrics from 9.6 KB to 162 MB.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// Observe wraps the whole server: it recovers panics (logging the stack
// and answering 500, so one bad request never takes the process down),
// counts and times requests by their mux pattern, and logs each request at
// debug level.
func Observe(next http.Handler, log *slog.Logger, m *metrics.Metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &StatusRecorder{ResponseWriter: w}
		m.InFlight.Inc()
		defer func() {
			m.InFlight.Dec()
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("panic while serving a request", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				if rec.Status == 0 {
					WriteJSON(rec, http.StatusInternalServerError, Body{Error: "internal error; the server log has the details", Code: "internal"})
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			if rec.Status == 0 {
				rec.Status = http.StatusOK
			}
			d := time.Since(start)
			method := MethodLabel(r.Method)
			m.Requests.WithLabelValues(route, method, StatusLabel(rec.Status)).Inc()
			m.Latency.WithLabelValues(route, method).Observe(d.Seconds())
			// Enabled first: the attributes cost allocations even when the
			// record is dropped (every request passes here).
			if log.Enabled(r.Context(), slog.LevelDebug) {
				log.Debug("http", "method", r.Method, "path", r.URL.Path, "route", route, "status", rec.Status,
					"bytes", rec.Bytes, "duration", d, "remote", r.RemoteAddr)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}
