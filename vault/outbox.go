package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/notify"
)

// The outbox holds messages to deliver, in Raft: a message is written in
// the same command as the change it tells about, and the leader delivers
// it and removes it afterwards, so every message is delivered at least
// once across leader changes. A message that keeps failing moves to the
// dead letters after outboxMaxAttempts, with its last error.
const (
	outboxPrefix      = "outbox/"
	outboxDeadPrefix  = "outbox-dead/"
	outboxMaxAttempts = 10
	outboxRetryMin    = 5 * time.Second
	outboxRetryMax    = 30 * time.Minute
	outboxIdle        = time.Minute
)

// outboxMessage is one message to deliver.
type outboxMessage struct {
	// Kind is "mail" or "event".
	Kind      string        `json:"kind"`
	Mail      *mailBody     `json:"mail,omitempty"`
	Event     *eventMessage `json:"event,omitempty"`
	Created   int64         `json:"created"`
	Attempts  int           `json:"attempts,omitempty"`
	NextAt    int64         `json:"next_at,omitempty"`
	LastError string        `json:"last_error,omitempty"`
}

// mailBody is a mail to the vault's contacts, addressed when it is sent
// (the contacts then).
type mailBody struct {
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// enqueueMail adds a mail to the contacts to b. When the node has no SMTP
// relay configured it only logs the mail's subject, so that an operator
// sees what the contacts would have been told.
func (n *Node) enqueueMail(b *raftstore.Batch, subject, body string) error {
	if n.opts.Mailer == nil {
		n.log.Info("no SMTP relay is configured (--smtp-addr): mail to the contacts not sent", "subject", subject)
		return nil
	}
	id, err := randomID(6)
	if err != nil {
		return err
	}
	now := time.Now()
	key := fmt.Sprintf("%s%020d-%s", outboxPrefix, now.UnixNano(), id)
	b.Put(key, mustJSON(outboxMessage{Kind: "mail", Mail: &mailBody{Subject: subject, Body: body}, Created: now.Unix()}))
	return nil
}

// contactEmails returns the vault's certificate contacts' addresses.
func (n *Node) contactEmails() []string {
	e, ok := n.store.Get(keyContacts)
	if !ok {
		return nil
	}
	var c keyvault.Contacts
	if json.Unmarshal(e.Value, &c) != nil {
		return nil
	}
	var out []string
	for _, ct := range c.Contacts {
		if ct.Email != "" {
			out = append(out, ct.Email)
		}
	}
	return out
}

// runOutbox delivers the outbox on the leader until ctx ends.
func (n *Node) runOutbox(ctx context.Context) {
	for {
		after := n.store.AppliedIndex()
		next := n.deliverDue(ctx, time.Now())
		wait := outboxIdle
		if !next.IsZero() {
			wait = max(time.Until(next), 0) + 10*time.Millisecond
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, _ = n.store.Watch(wctx, []string{outboxPrefix}, after)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// deliverDue tries every message whose time has come and returns when the
// next one is due (zero if none).
func (n *Node) deliverDue(ctx context.Context, now time.Time) time.Time {
	entries, _ := n.store.List(outboxPrefix, "", 0)
	var next time.Time
	for _, e := range entries {
		if ctx.Err() != nil {
			return time.Time{}
		}
		var m outboxMessage
		if err := json.Unmarshal(e.Value, &m); err != nil {
			continue
		}
		if m.NextAt > now.Unix() {
			if at := time.Unix(m.NextAt, 0); next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		err := n.deliver(ctx, &m)
		b := &raftstore.Batch{}
		switch {
		case err == nil:
			b.DeleteIf(e.Key, e.Index)
		case m.Attempts+1 >= outboxMaxAttempts:
			m.Attempts++
			m.LastError = err.Error()
			n.log.Error("giving up on a message; it is kept with the dead letters", "kind", m.Kind, "err", err)
			b.DeleteIf(e.Key, e.Index).Put(outboxDeadPrefix+strings.TrimPrefix(e.Key, outboxPrefix), mustJSON(m))
		default:
			m.Attempts++
			m.LastError = err.Error()
			wait := min(outboxRetryMin<<min(m.Attempts-1, 16), outboxRetryMax)
			m.NextAt = now.Add(wait).Unix()
			n.log.Warn("message delivery failed; retrying", "kind", m.Kind, "attempt", m.Attempts, "in", wait, "err", err)
			b.PutIf(e.Key, mustJSON(m), e.Index)
			if at := time.Unix(m.NextAt, 0); next.IsZero() || at.Before(next) {
				next = at
			}
		}
		if _, err := n.store.Apply(ctx, b); err != nil && !errors.Is(err, raftstore.ErrConflict) {
			n.log.Warn("could not update the outbox", "err", err)
		}
	}
	return next
}

// deliver sends one message.
func (n *Node) deliver(ctx context.Context, m *outboxMessage) error {
	switch m.Kind {
	case "mail":
		to := n.contactEmails()
		if len(to) == 0 {
			return nil // nobody to tell: set contacts with 'certvault contacts set'
		}
		if n.opts.Mailer == nil {
			return errors.New("no SMTP relay is configured (--smtp-addr)")
		}
		return n.opts.Mailer.Send(ctx, notify.Message{To: to, Subject: m.Mail.Subject, Body: m.Mail.Body})
	case "event":
		return n.deliverEvent(ctx, m.Event)
	}
	return fmt.Errorf("unknown message kind %q", m.Kind)
}
