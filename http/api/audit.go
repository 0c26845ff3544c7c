package api

import (
	"github.com/pomona-mdm/pomona/apitypes"
	"net/http"
	"strconv"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Limit: 100}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return problem.Coded(problem.Invalid, "invalid_parameter", "limit must be a number from 1 to 1000")
		}
		f.Limit = n
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n < 1 {
			return problem.Coded(problem.Invalid, "invalid_parameter", "before must be an audit entry id")
		}
		f.Before = n
	}
	es, err := a.Store.Audit(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]apitypes.AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, apitypes.AuditEntry{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target, Status: e.Status, Remote: e.Remote})
	}
	resp := map[string]any{"entries": out}
	if len(es) == f.Limit {
		resp["next_before"] = es[len(es)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, resp)
	return nil
}
