package v1api

import (
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
)

// The /v1 front of events: webhook subscriptions and the deliveries not
// yet done (core/events.go decides).

func (n *Front) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL    string   `json:"url"`
		Types  []string `json:"types"`
		Secret string   `json:"secret"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.Subscribe(r.Context(), front.CallerOf(r), core.SubscribeRequest{URL: req.URL, Types: req.Types, Secret: req.Secret})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusCreated, res.Subscription)
}

func (n *Front) handleListSubscriptions(w http.ResponseWriter, r *http.Request) {
	if !n.Linearized(w, r) {
		return
	}
	out, err := n.ListSubscriptions(r.Context(), front.CallerOf(r))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (n *Front) handleUnsubscribe(w http.ResponseWriter, r *http.Request) {
	idx, err := n.Unsubscribe(r.Context(), front.CallerOf(r), r.PathValue("id"))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, idx)
	w.WriteHeader(http.StatusNoContent)
}

// handleDeliveries lists the deliveries (events and mail) not yet done:
// pending, retrying, and dead letters (?failed=true: only retrying and
// dead).
func (n *Front) handleDeliveries(w http.ResponseWriter, r *http.Request) {
	if !n.Linearized(w, r) {
		return
	}
	out, err := n.ListDeliveries(r.Context(), front.CallerOf(r), core.ListDeliveriesRequest{FailedOnly: r.URL.Query().Get("failed") == "true"})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}
