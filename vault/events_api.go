package vault

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
)

// subscriptionRequest is the body of POST /v1/events/subscriptions.
type subscriptionRequest struct {
	URL    string   `json:"url"`
	Types  []string `json:"types"`
	Secret string   `json:"secret"`
}

func (n *Node) handleSubscribe(w http.ResponseWriter, r *http.Request) {
	var req subscriptionRequest
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		n.fail(w, r, badParameter("url %q: give the webhook's absolute http(s) URL", req.URL))
		return
	}
	if len(req.Types) == 0 {
		n.fail(w, r, badParameter("types: give at least one of %s", strings.Join(eventTypes, ", ")))
		return
	}
	for _, t := range req.Types {
		if !slices.Contains(eventTypes, t) {
			n.fail(w, r, badParameter("event type %q: use %s", t, strings.Join(eventTypes, ", ")))
			return
		}
	}
	if len(req.Secret) < 16 {
		n.fail(w, r, badParameter("secret: give at least 16 characters; the receiver checks the %s header, HMAC-SHA256 of the body under it", eventSignatureHeader))
		return
	}
	id, err := randomID(8)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	s := subscription{ID: id, URL: req.URL, Types: req.Types, Created: time.Now().Unix()}
	b := (&raftstore.Batch{}).PutIf(subsPrefix+id, mustJSON(s), raftstore.NotExist)
	if err := putSealed(b, n.barrier.Load(), subSecretsPrefix+id, []byte(req.Secret)); err != nil {
		n.fail(w, r, err)
		return
	}
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, s)
}

func (n *Node) handleListSubscriptions(w http.ResponseWriter, r *http.Request) {
	if !n.linearized(w, r) {
		return
	}
	entries, _ := n.store.List(subsPrefix, "", 0)
	out := []subscription{}
	for _, e := range entries {
		var s subscription
		if json.Unmarshal(e.Value, &s) == nil {
			out = append(out, s)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (n *Node) handleUnsubscribe(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	e, ok := n.store.Get(subsPrefix + id)
	if !ok {
		n.fail(w, r, notFound("SubscriptionNotFound", "no event subscription %s", id))
		return
	}
	b := (&raftstore.Batch{}).DeleteIf(e.Key, e.Index).Delete(subSecretsPrefix + id)
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// delivery is one event delivery as GET /v1/events/deliveries shows it.
type delivery struct {
	ID           string `json:"id"`
	Subscription string `json:"subscription"`
	Type         string `json:"type"`
	Subject      string `json:"subject"`
	State        string `json:"state"` // pending, retrying, dead
	Attempts     int    `json:"attempts"`
	LastError    string `json:"last_error,omitempty"`
	NextAttempt  int64  `json:"next_attempt,omitempty"`
	Created      int64  `json:"created"`
}

// handleDeliveries lists the deliveries (events and mail) not yet done:
// pending, retrying, and dead letters (?failed=true: only retrying and
// dead).
func (n *Node) handleDeliveries(w http.ResponseWriter, r *http.Request) {
	if !n.linearized(w, r) {
		return
	}
	failedOnly := r.URL.Query().Get("failed") == "true"
	out := []delivery{}
	for _, prefix := range []string{outboxPrefix, outboxDeadPrefix} {
		entries, _ := n.store.List(prefix, "", 0)
		for _, e := range entries {
			var m outboxMessage
			if json.Unmarshal(e.Value, &m) != nil {
				continue
			}
			d := delivery{ID: strings.TrimPrefix(strings.TrimPrefix(e.Key, prefix), "0"), Attempts: m.Attempts, LastError: m.LastError,
				NextAttempt: m.NextAt, Created: m.Created, State: "pending"}
			switch {
			case m.Kind == "event" && m.Event != nil:
				var ev cloudEvent
				_ = json.Unmarshal(m.Event.Body, &ev)
				d.ID, d.Subscription, d.Type, d.Subject = ev.ID, m.Event.Subscription, m.Event.Type, ev.Subject
			case m.Kind == "mail" && m.Mail != nil:
				d.Type, d.Subject = "mail", m.Mail.Subject
			default:
				continue
			}
			switch {
			case prefix == outboxDeadPrefix:
				d.State = "dead"
			case m.Attempts > 0:
				d.State = "retrying"
			}
			if failedOnly && d.State == "pending" {
				continue
			}
			out = append(out, d)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}
