// Package health serves the probes of an orchestrator or load balancer:
// GET /healthz (the process answers) and GET /readyz (the store answers
// within 2 seconds).
package health

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/pomona-mdm/pomona/http/httpx"
)

// Live answers 200 {"status":"ok"} while the process serves requests.
func Live(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Store is what readiness checks.
type Store interface {
	Ping(ctx context.Context) error
	Backend() string
}

// Ready answers 200 {"status":"ready","store":"<backend>"} when the store
// answers a ping within 2 seconds, else 503 {"status":"store unreachable"}
// (and logs why).
func Ready(st Store, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := st.Ping(ctx); err != nil {
			log.Error("readiness: store unreachable", "err", err)
			httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "store unreachable"})
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready", "store": st.Backend()})
	}
}
