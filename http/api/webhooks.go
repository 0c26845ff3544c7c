package api

import (
	"github.com/pomona-mdm/pomona/apitypes"
	"net/http"

	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/store"
	"github.com/pomona-mdm/pomona/webhook"
)

// Sealer seals secrets the server must use later (webhook signing keys).
type Sealer interface {
	Seal(plaintext []byte, context string) []byte
}

func webhookView(w *store.Webhook) apitypes.Webhook {
	ev := w.Events
	if ev == nil {
		ev = []string{}
	}
	return apitypes.Webhook{ID: w.ID, URL: w.URL, Events: ev, CreatedAt: w.CreatedAt}
}

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		URL    string   `json:"url"`
		Events []string `json:"events"`
		Secret string   `json:"secret"`
	}
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	hook, secret, err := webhook.Create(r.Context(), a.Store, a.Sealer, in.URL, in.Events, in.Secret, a.Now())
	if err != nil {
		return err
	}
	id := hook.ID
	out := webhookView(hook)
	out.Secret = secret
	a.Log.Info("webhook created", "webhook", id, "url", hook.URL, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	hs, err := a.Store.Webhooks(r.Context())
	if err != nil {
		return err
	}
	out := []apitypes.Webhook{}
	for i := range hs {
		out = append(out, webhookView(&hs[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": out})
	return nil
}

func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	if err := a.Store.DeleteWebhook(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) webhookDeliveries(w http.ResponseWriter, r *http.Request) error {
	if _, err := a.Store.Webhook(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	ds, err := a.Store.Deliveries(r.Context(), r.PathValue("id"), 100)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, d := range ds {
		m := map[string]any{"id": d.ID, "event": d.Event, "status": d.Status, "attempts": d.Attempts, "created_at": d.CreatedAt}
		if d.LastError != "" {
			m["last_error"] = d.LastError
		}
		if d.Status == store.DeliveryPending {
			m["next_attempt_at"] = d.NextAt
		}
		if !d.DeliveredAt.IsZero() {
			m["delivered_at"] = d.DeliveredAt
		}
		out = append(out, m)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": out})
	return nil
}
