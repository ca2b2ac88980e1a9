package core

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
)

// The core of events: webhook subscriptions, the events that writes add
// to the outbox (emitEvent), and the deliveries not yet done. Delivering
// an event (an outbound POST) is events.go's.

// Event types, with Key Vault's names (Event Grid's
// Microsoft.KeyVault.* types), plus CertificateRenewalFailed and
// RolloutHalted.
const (
	EventCertificateNewVersionCreated = "CertificateNewVersionCreated"
	EventCertificateNearExpiry        = "CertificateNearExpiry"
	EventCertificateExpired           = "CertificateExpired"
	EventSecretNewVersionCreated      = "SecretNewVersionCreated"
	EventSecretNearExpiry             = "SecretNearExpiry"
	EventSecretExpired                = "SecretExpired"
	EventCertificateRenewalFailed     = "CertificateRenewalFailed"
	EventRolloutHalted                = "RolloutHalted"
)

// eventTypes lists every type a subscription may ask for.
var eventTypes = []string{
	EventCertificateNewVersionCreated, EventCertificateNearExpiry, EventCertificateExpired,
	EventSecretNewVersionCreated, EventSecretNearExpiry, EventSecretExpired, EventCertificateRenewalFailed,
	EventRolloutHalted,
}

// Webhook subscriptions: the record (URL, types) in plaintext, so that
// every write can match events cheaply; the HMAC secret through the
// barrier.
const (
	subsPrefix       = "events/subscriptions/"
	subSecretsPrefix = "events/secrets/"
	// EventSignatureHeader carries sha256=HEX, the HMAC-SHA256 of the body
	// under the subscription's secret.
	EventSignatureHeader = "X-Certvault-Signature"
)

// EventSubscription is a webhook subscription.
type EventSubscription struct {
	ID      string   `json:"id"`
	URL     string   `json:"url"`
	Types   []string `json:"types"`
	Created int64    `json:"created"`
}

// cloudEvent is a CloudEvents 1.0 structured-mode event with Key Vault's
// Event Grid data.
type cloudEvent struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            string    `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Data            eventData `json:"data"`
}

// eventData is Key Vault's event data.
type eventData struct {
	ID         string `json:"Id"`
	VaultName  string `json:"VaultName"`
	ObjectType string `json:"ObjectType"`
	ObjectName string `json:"ObjectName"`
	Version    string `json:"Version"`
	NBF        *int64 `json:"NBF,omitempty"`
	EXP        *int64 `json:"EXP,omitempty"`
	// Error says why, for CertificateRenewalFailed.
	Error string `json:"Error,omitempty"`
}

// EventMessage is an outbox message of kind "event": one event for one
// subscription. The body is fixed when the event happens, so a retried
// delivery sends the same id.
type EventMessage struct {
	Subscription string          `json:"subscription"`
	Type         string          `json:"type"`
	Body         json.RawMessage `json:"body"`
}

// EmitEvent adds to b one outbox message per subscription that asked for
// the event's type.
func (c *Core) EmitEvent(b *raftstore.Batch, typ, kind, name, version string, nbf, exp *int64, errText string) error {
	subs, _ := c.Store.List(subsPrefix, "", 0)
	if len(subs) == 0 {
		return nil
	}
	base := strings.TrimSuffix(c.PublicURL(), "/")
	vaultName := base
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		vaultName = u.Hostname()
	}
	objType := map[string]string{KindCertificates: "Certificate", KindSecrets: "Secret", KindKeys: "Key"}[kind]
	now := time.Now()
	for _, e := range subs {
		var s EventSubscription
		if json.Unmarshal(e.Value, &s) != nil || !slices.Contains(s.Types, typ) {
			continue
		}
		id, err := RandomID(16)
		if err != nil {
			return err
		}
		ev := cloudEvent{
			SpecVersion: "1.0", ID: id, Source: base + "/", Type: "Microsoft.KeyVault." + typ,
			Subject: name, Time: now.UTC().Format(time.RFC3339Nano), DataContentType: "application/json",
			Data: eventData{ID: base + "/" + kind + "/" + name + "/" + version, VaultName: vaultName, ObjectType: objType,
				ObjectName: name, Version: version, NBF: nbf, EXP: exp, Error: errText},
		}
		body, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		key := fmt.Sprintf("%s%020d-%s", OutboxPrefix, now.UnixNano(), id[:12])
		b.Put(key, MustJSON(OutboxMessage{Kind: "event", Event: &EventMessage{Subscription: s.ID, Type: typ, Body: body}, Created: now.Unix()}))
	}
	return nil
}

// Webhook returns a subscription and its secret, to deliver an event; ok
// is false when it was deleted.
func (c *Core) Webhook(id string) (s EventSubscription, secret []byte, ok bool, err error) {
	e, found := c.Store.Get(subsPrefix + id)
	if !found {
		return EventSubscription{}, nil, false, nil
	}
	if err := json.Unmarshal(e.Value, &s); err != nil {
		return EventSubscription{}, nil, false, err
	}
	se, found := c.Store.Get(subSecretsPrefix + s.ID)
	if !found {
		return EventSubscription{}, nil, false, fmt.Errorf("subscription %s has no secret", s.ID)
	}
	if secret, err = c.OpenSealed(se); err != nil {
		return EventSubscription{}, nil, false, err
	}
	return s, secret, true, nil
}

// SubscribeRequest subscribes a webhook to event types.
type SubscribeRequest struct {
	// URL is the webhook's absolute http(s) URL.
	URL   string
	Types []string
	// Secret (16 characters or more) keys the HMAC-SHA256 signature of
	// each delivery; it is stored sealed and never shown.
	Secret string
}

// SubscribeResult is the new subscription and the raft index that stored
// it.
type SubscribeResult struct {
	Subscription EventSubscription
	Index        uint64
}

// Subscribe adds a webhook subscription.
func (c *Core) Subscribe(ctx context.Context, p Caller, req SubscribeRequest) (SubscribeResult, error) {
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return SubscribeResult{}, BadParameter("url", "url %q: give the webhook's absolute http(s) URL", req.URL)
	}
	if len(req.Types) == 0 {
		return SubscribeResult{}, BadParameter("types", "types: give at least one of %s", strings.Join(eventTypes, ", "))
	}
	for _, t := range req.Types {
		if !slices.Contains(eventTypes, t) {
			return SubscribeResult{}, BadParameter("types", "event type %q: use %s", t, strings.Join(eventTypes, ", "))
		}
	}
	if len(req.Secret) < 16 {
		return SubscribeResult{}, BadParameter("secret", "secret: give at least 16 characters; the receiver checks the %s header, HMAC-SHA256 of the body under it", EventSignatureHeader)
	}
	id, err := RandomID(8)
	if err != nil {
		return SubscribeResult{}, err
	}
	s := EventSubscription{ID: id, URL: req.URL, Types: req.Types, Created: time.Now().Unix()}
	b := (&raftstore.Batch{}).PutIf(subsPrefix+id, MustJSON(s), raftstore.NotExist)
	if err := PutSealed(b, c.Barrier.Load(), subSecretsPrefix+id, []byte(req.Secret)); err != nil {
		return SubscribeResult{}, err
	}
	idx, err := c.Commit(ctx, b)
	if err != nil {
		return SubscribeResult{}, err
	}
	return SubscribeResult{Subscription: s, Index: idx}, nil
}

// ListSubscriptions lists the webhook subscriptions (never their secrets).
func (c *Core) ListSubscriptions(ctx context.Context, p Caller) ([]EventSubscription, error) {
	return ListJSON[EventSubscription](c, subsPrefix, ""), nil
}

// Unsubscribe deletes subscription id and its secret; it returns the
// raft index of the deletion.
func (c *Core) Unsubscribe(ctx context.Context, p Caller, id string) (uint64, error) {
	e, ok := c.Store.Get(subsPrefix + id)
	if !ok {
		return 0, NotFound("SubscriptionNotFound", "no event subscription %s", id)
	}
	return c.Commit(ctx, (&raftstore.Batch{}).DeleteIf(e.Key, e.Index).Delete(subSecretsPrefix+id))
}

// EventDelivery is one outbox message not yet delivered: an event for a
// subscription, or a mail.
type EventDelivery struct {
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

// ListDeliveriesRequest filters the deliveries listed.
type ListDeliveriesRequest struct {
	// FailedOnly lists only the retrying and dead ones.
	FailedOnly bool
}

// ListDeliveries lists the deliveries (events and mail) not yet done:
// pending, retrying, and dead letters.
func (c *Core) ListDeliveries(ctx context.Context, p Caller, req ListDeliveriesRequest) ([]EventDelivery, error) {
	out := []EventDelivery{}
	for _, prefix := range []string{OutboxPrefix, OutboxDeadPrefix} {
		entries, _ := c.Store.List(prefix, "", 0)
		for _, e := range entries {
			var m OutboxMessage
			if json.Unmarshal(e.Value, &m) != nil {
				continue
			}
			d := EventDelivery{ID: strings.TrimPrefix(strings.TrimPrefix(e.Key, prefix), "0"), Attempts: m.Attempts, LastError: m.LastError,
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
			case prefix == OutboxDeadPrefix:
				d.State = "dead"
			case m.Attempts > 0:
				d.State = "retrying"
			}
			if req.FailedOnly && d.State == "pending" {
				continue
			}
			out = append(out, d)
		}
	}
	return out, nil
}
