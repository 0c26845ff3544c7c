// Package metrics owns Pomona's Prometheus registry: HTTP request
// counters and latency by route, and the domain counters each feature adds.
package metrics

import (
	"net/http"
	rtmetrics "runtime/metrics"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors of one server.
type Metrics struct {
	Registry *prometheus.Registry

	Requests *prometheus.CounterVec   // route, method, code
	Latency  *prometheus.HistogramVec // route, method
	InFlight prometheus.Gauge

	Discovery      *prometheus.CounterVec // result
	AdminAuthFails prometheus.Counter
	// ConnsRefused counts connections closed at accept because their
	// client address held the most allowed (--max-conns-per-address).
	ConnsRefused prometheus.Counter

	Enrollment *prometheus.CounterVec // result: challenge, profile, bad-token, ...
	SignIn     *prometheus.CounterVec // result
	SCEP       *prometheus.CounterVec // operation, result

	PushCertExpiry prometheus.Gauge // Unix time the push certificate expires (0: none)

	MDM *prometheus.CounterVec // endpoint, code
	// MDMMessages counts the MDM channel's messages by message (check-in
	// MessageType, Idle, Result) and outcome (ok or the error's code).
	MDMMessages *prometheus.CounterVec
	Commands    *prometheus.CounterVec // event: queued, refused, result status
	Pushes      *prometheus.CounterVec // result

	// Renewals counts identity renewals by event: queued, issued, failed,
	// and expired (a request refused because the identity expired first).
	Renewals *prometheus.CounterVec
}

// New registers every collector on a fresh registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pomona_http_requests_total", Help: "HTTP requests by route pattern, method (\"other\" for a method HTTP does not define) and status code.",
		}, []string{"route", "method", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pomona_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pomona_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
		Discovery: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pomona_discovery_requests_total", Help: "Service discovery answers by result (ok or the rejection reason).",
		}, []string{"result"}),
		AdminAuthFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pomona_admin_auth_failures_total", Help: "Admin API requests refused for a missing or wrong API key.",
		}),
	}
	m.ConnsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pomona_connections_refused_total", Help: "Connections closed as soon as accepted because their client address (IPv6: its /64) already held --max-conns-per-address open connections.",
	})
	m.Enrollment = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pomona_enrollment_requests_total", Help: "Enrollment endpoint answers by result (challenge, profile, bad-token, no-push-cert, ...).",
	}, []string{"result"})
	m.SignIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pomona_signin_total", Help: "Sign-in page outcomes (success, bad-credentials, bad-code, locked, csrf, ...).",
	}, []string{"result"})
	m.SCEP = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pomona_scep_requests_total", Help: "SCEP operations by result.",
	}, []string{"operation", "result"})
	m.PushCertExpiry = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pomona_push_certificate_expiry_timestamp_seconds", Help: "When the APNs push certificate expires (Unix time; 0 when there is none). Alert 30 days ahead.",
	})
	m.MDM = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pomona_mdm_requests_total", Help: "MDM check-in and command requests by endpoint and answer code.",
	}, []string{"endpoint", "code"})
	m.MDMMessages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pomona_mdm_messages_total", Help: "MDM messages that reached the service, by message (check-in MessageType, Idle, Result) and outcome (ok, or the error code: unauthenticated, forbidden, com.apple.unrecognized.device, ...).",
	}, []string{"message", "outcome"})
	m.Commands = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pomona_commands_total", Help: "Commands queued, refused by the user-enrollment rules, and results by status; render_unknown_marker: a template command met with a render marker this version does not know (a newer instance's, left queued).",
	}, []string{"event"})
	m.Pushes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pomona_apns_pushes_total", Help: "APNs pushes by result (ok, dead-token, retry, error).",
	}, []string{"result"})
	m.Renewals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pomona_identity_renewals_total", Help: "Identity certificate renewals by event (queued, issued, failed; expired: a request refused because the identity expired before renewal). Alert on failed and expired.",
	}, []string{"event"})
	r.MustRegister(m.ConnsRefused, m.Enrollment, m.SignIn, m.SCEP, m.PushCertExpiry, m.MDM, m.MDMMessages, m.Commands, m.Pushes, m.Renewals)
	r.MustRegister(m.Requests, m.Latency, m.InFlight, m.Discovery, m.AdminAuthFails,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pomona_go_heap_live_bytes",
			Help: "Go heap held by live objects as of the last garbage collection (what the server really keeps in memory)."}, heapLive))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// heapLive reads the live heap of the last GC from runtime/metrics.
func heapLive() float64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return float64(s[0].Value.Uint64())
}

// DeviceEvent counts what the MDM channel reports (kind is
// mdmservice.Event.Kind): command results by status
// (pomona_commands_total{event="result-<status>"}, "result-unknown-command"
// for a result of no queued command) and expired identities
// (pomona_renewals_total{event="expired"}).
func (m *Metrics) DeviceEvent(kind, status string) {
	switch kind {
	case "unknown-result":
		m.Commands.WithLabelValues("result-unknown-command").Inc()
	case "identity-expired":
		m.Renewals.WithLabelValues("expired").Inc()
	case "result":
		m.Commands.WithLabelValues("result-" + status).Inc()
	}
}

// SetPushCertExpiry sets pomona_push_certificate_expiry_timestamp_seconds to
// notAfter (Unix seconds), 0 for the zero time (no usable certificate).
func (m *Metrics) SetPushCertExpiry(notAfter time.Time) {
	if notAfter.IsZero() {
		m.PushCertExpiry.Set(0)
		return
	}
	m.PushCertExpiry.Set(float64(notAfter.Unix()))
}
