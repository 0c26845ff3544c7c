package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/store"
)

// AuditEntry is the API form of an audit record.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Status int       `json:"status"`
	Remote string    `json:"remote,omitempty"`
}

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Limit: 100}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "limit must be a number from 1 to 1000")
		}
		f.Limit = n
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			return httpx.Errorf(http.StatusBadRequest, "invalid_parameter", "before must be an audit entry id")
		}
		f.Before = n
	}
	es, err := a.Store.Audit(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, AuditEntry{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target, Status: e.Status, Remote: e.Remote})
	}
	resp := map[string]any{"entries": out}
	if len(es) == f.Limit {
		resp["next_before"] = es[len(es)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}
