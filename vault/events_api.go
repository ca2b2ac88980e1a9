package vault

import (
	"net/http"

	"github.com/certvault/certvault/vault/core"
)

// The /v1 front of events: webhook subscriptions and the deliveries not
// yet done (core_events.go decides).

func (n *V1Front) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	var req struct {
		URL    string   `json:"url"`
		Types  []string `json:"types"`
		Secret string   `json:"secret"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.Subscribe(r.Context(), callerOf(r), core.SubscribeRequest{URL: req.URL, Types: req.Types, Secret: req.Secret})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	setIndexHeader(w, res.Index)
	writeJSON(w, http.StatusCreated, res.Subscription)
}

func (n *V1Front) handleListSubscriptions(w http.ResponseWriter, r *http.Request) {
	if !n.Linearized(w, r) {
		return
	}
	out, err := n.ListSubscriptions(r.Context(), callerOf(r))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (n *V1Front) handleUnsubscribe(w http.ResponseWriter, r *http.Request) {
	idx, err := n.Unsubscribe(r.Context(), callerOf(r), r.PathValue("id"))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	setIndexHeader(w, idx)
	w.WriteHeader(http.StatusNoContent)
}

// handleDeliveries lists the deliveries (events and mail) not yet done:
// pending, retrying, and dead letters (?failed=true: only retrying and
// dead).
func (n *V1Front) handleDeliveries(w http.ResponseWriter, r *http.Request) {
	if !n.Linearized(w, r) {
		return
	}
	out, err := n.ListDeliveries(r.Context(), callerOf(r), core.ListDeliveriesRequest{FailedOnly: r.URL.Query().Get("failed") == "true"})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}
