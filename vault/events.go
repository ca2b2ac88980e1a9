package vault

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
)

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
	// eventTimeout bounds one webhook delivery.
	eventTimeout = 10 * time.Second
	// eventSignatureHeader carries sha256=HEX, the HMAC-SHA256 of the body
	// under the subscription's secret.
	eventSignatureHeader = "X-Certvault-Signature"
)

// subscription is a webhook subscription.
type subscription struct {
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

// eventMessage is an outbox message of kind "event": one event for one
// subscription. The body is fixed when the event happens, so a retried
// delivery sends the same id.
type eventMessage struct {
	Subscription string          `json:"subscription"`
	Type         string          `json:"type"`
	Body         json.RawMessage `json:"body"`
}

// emitEvent adds to b one outbox message per subscription that asked for
// the event's type.
func (n *Node) emitEvent(b *raftstore.Batch, typ, kind, name, version string, nbf, exp *int64, errText string) error {
	subs, _ := n.store.List(subsPrefix, "", 0)
	if len(subs) == 0 {
		return nil
	}
	base := strings.TrimSuffix(n.publicURL(), "/")
	vaultName := base
	if u, err := url.Parse(base); err == nil && u.Host != "" {
		vaultName = u.Hostname()
	}
	objType := map[string]string{kindCertificates: "Certificate", kindSecrets: "Secret", kindKeys: "Key"}[kind]
	now := time.Now()
	for _, e := range subs {
		var s subscription
		if json.Unmarshal(e.Value, &s) != nil || !slices.Contains(s.Types, typ) {
			continue
		}
		id, err := randomID(16)
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
		key := fmt.Sprintf("%s%020d-%s", outboxPrefix, now.UnixNano(), id[:12])
		b.Put(key, mustJSON(outboxMessage{Kind: "event", Event: &eventMessage{Subscription: s.ID, Type: typ, Body: body}, Created: now.Unix()}))
	}
	return nil
}

// deliverEvent POSTs an event to its subscription's URL, signed.
func (n *Node) deliverEvent(ctx context.Context, m *eventMessage) error {
	e, ok := n.store.Get(subsPrefix + m.Subscription)
	if !ok {
		return nil // unsubscribed: nothing to deliver
	}
	var s subscription
	if err := json.Unmarshal(e.Value, &s); err != nil {
		return err
	}
	se, ok := n.store.Get(subSecretsPrefix + s.ID)
	if !ok {
		return fmt.Errorf("subscription %s has no secret", s.ID)
	}
	secret, err := n.openSealed(se)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(m.Body)
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(m.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	req.Header.Set(eventSignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", s.URL, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s answered %s", s.URL, resp.Status)
	}
	return nil
}
