package v1api

import (
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
)

// The /v1 front of events: webhook subscriptions and the deliveries not
// yet done (core/events.go decides).

func (f *Front) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL    string   `json:"url"`
		Types  []string `json:"types"`
		Secret string   `json:"secret"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.Subscribe(r.Context(), front.CallerOf(r), core.SubscribeRequest{URL: req.URL, Types: req.Types, Secret: req.Secret})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusCreated, res.Subscription)
}

func (f *Front) handleListSubscriptions(w http.ResponseWriter, r *http.Request) {
	if !f.Linearized(w, r) {
		return
	}
	out, err := f.ListSubscriptions(r.Context(), front.CallerOf(r))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (f *Front) handleUnsubscribe(w http.ResponseWriter, r *http.Request) {
	idx, err := f.Unsubscribe(r.Context(), front.CallerOf(r), r.PathValue("id"))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, idx)
	w.WriteHeader(http.StatusNoContent)
}

// handleDeliveries lists the deliveries (events and mail) not yet done:
// pending, retrying, and dead letters (?failed=true: only retrying and
// dead).
func (f *Front) handleDeliveries(w http.ResponseWriter, r *http.Request) {
	if !f.Linearized(w, r) {
		return
	}
	out, err := f.ListDeliveries(r.Context(), front.CallerOf(r), core.ListDeliveriesRequest{FailedOnly: r.URL.Query().Get("failed") == "true"})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}
