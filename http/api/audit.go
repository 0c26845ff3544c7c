package api

import (
	"net/http"
	"strconv"

	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/problem"
	"github.com/pomona-mdm/pomona/store"
)

func (a *API) listAudit(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	n, err := limitParam(r)
	if err != nil {
		return err
	}
	f := store.AuditFilter{Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"), Limit: n}
	if b := q.Get("before"); b != "" {
		id, err := strconv.ParseInt(b, 10, 64)
		if err != nil || id < 1 {
			return problem.Coded(problem.Invalid, "invalid_parameter", "before must be an audit entry id")
		}
		f.Before = id
	}
	es, next, err := a.App.Audit.List(r.Context(), f)
	if err != nil {
		return err
	}
	out := apitypes.Audit{Entries: make([]apitypes.AuditEntry, 0, len(es)), NextBefore: next}
	for _, e := range es {
		out.Entries = append(out.Entries, apitypes.AuditEntry{ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target, Status: e.Status, Remote: e.Remote})
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}
