package vault

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/certvault/certvault/vault/core"
)

// Event delivery: the outbox (outbox.go) hands each event message here,
// which POSTs it, signed, to its subscription's webhook. What events there
// are and who subscribes is core/events.go's.

// eventTimeout bounds one webhook delivery.
const eventTimeout = 10 * time.Second

// deliverEvent POSTs an event to its subscription's URL, signed.
func (n *Node) deliverEvent(ctx context.Context, m *core.EventMessage) error {
	s, secret, ok, err := n.Webhook(m.Subscription)
	if err != nil || !ok {
		return err // !ok: unsubscribed, nothing to deliver
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
	req.Header.Set(core.EventSignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
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
