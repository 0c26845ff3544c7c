package metrics

import "github.com/prometheus/client_golang/prometheus"

// ABM are the collectors of the Apple Business Manager connection.
type ABM struct {
	// ServerTokenExpiry is the Unix time each imported server token
	// expires (label token: Pomona's id of it).
	ServerTokenExpiry *prometheus.GaugeVec
	// GetToken counts GetToken answers by service_type (com.apple.maid or
	// "other": the label never takes a device's raw value) and result.
	GetToken *prometheus.CounterVec
	// Discovery counts fallback-discovery registrations with Apple by
	// operation (register, reassert, remove) and result (ok or Apple's code).
	Discovery *prometheus.CounterVec
}

// NewABM registers the ABM collectors on r.
func NewABM(r *prometheus.Registry) *ABM {
	m := &ABM{
		ServerTokenExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pomona_abm_server_token_expiry_timestamp_seconds", Help: "Unix time each imported Apple Business Manager server token expires.",
		}, []string{"token"}),
		GetToken: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pomona_gettoken_answers_total", Help: "GetToken check-ins answered, by token service type and result.",
		}, []string{"service_type", "result"}),
		Discovery: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pomona_abm_discovery_registrations_total", Help: "Fallback discovery URL calls to Apple, by operation and result.",
		}, []string{"operation", "result"}),
	}
	r.MustRegister(m.ServerTokenExpiry, m.GetToken, m.Discovery)
	return m
}
