package api

import (
	"net/http"

	"github.com/pomona-mdm/pomona/apitypes"
	"github.com/pomona-mdm/pomona/http/httpx"
	"github.com/pomona-mdm/pomona/store"
)

func webhookView(w *store.Webhook) apitypes.Webhook {
	ev := w.Events
	if ev == nil {
		ev = []string{}
	}
	return apitypes.Webhook{ID: w.ID, URL: w.URL, Events: ev, CreatedAt: w.CreatedAt}
}

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request) error {
	var in apitypes.WebhookInput
	if err := httpx.DecodeJSON(w, r, MaxBody, &in); err != nil {
		return err
	}
	hook, secret, err := a.App.Webhooks.Create(r.Context(), in.URL, in.Events, in.Secret)
	if err != nil {
		return err
	}
	out := webhookView(hook)
	out.Secret = secret
	auditCreated(r, hook.ID)
	a.Log.Info("webhook created", "webhook", hook.ID, "url", hook.URL, "by", Principal(r.Context()))
	httpx.WriteJSON(w, http.StatusCreated, out)
	return nil
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request) error {
	hs, err := a.App.Webhooks.List(r.Context())
	if err != nil {
		return err
	}
	out := apitypes.Webhooks{Webhooks: []apitypes.Webhook{}}
	for i := range hs {
		out.Webhooks = append(out.Webhooks, webhookView(&hs[i]))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request) error {
	if err := a.App.Webhooks.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) webhookDeliveries(w http.ResponseWriter, r *http.Request) error {
	ds, err := a.App.Webhooks.Deliveries(r.Context(), r.PathValue("id"), 100)
	if err != nil {
		return err
	}
	out := apitypes.Deliveries{Deliveries: []apitypes.Delivery{}}
	for _, d := range ds {
		v := apitypes.Delivery{ID: d.ID, Event: d.Event, Status: d.Status, Attempts: d.Attempts, CreatedAt: d.CreatedAt, LastError: d.LastError,
			DeliveredAt: apitypes.Opt(d.DeliveredAt)}
		if d.Status == store.DeliveryPending {
			next := d.NextAt
			v.NextAt = &next
		}
		out.Deliveries = append(out.Deliveries, v)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}
