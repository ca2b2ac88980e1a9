package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/notify"
)

// runOutbox delivers the outbox on the leader until ctx ends.
func (n *Node) runOutbox(ctx context.Context) {
	for {
		after := n.Store.AppliedIndex()
		next := n.deliverDue(ctx, time.Now())
		wait := core.OutboxIdle
		if !next.IsZero() {
			wait = max(time.Until(next), 0) + 10*time.Millisecond
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, _ = n.Store.Watch(wctx, []string{core.OutboxPrefix}, after)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// deliverDue tries every message whose time has come and returns when the
// next one is due (zero if none).
func (n *Node) deliverDue(ctx context.Context, now time.Time) time.Time {
	entries, _ := n.Store.List(core.OutboxPrefix, "", 0)
	var next time.Time
	for _, e := range entries {
		if ctx.Err() != nil {
			return time.Time{}
		}
		var m core.OutboxMessage
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
		case m.Attempts+1 >= core.OutboxMaxAttempts:
			m.Attempts++
			m.LastError = err.Error()
			n.Log.Error("giving up on a message; it is kept with the dead letters", "kind", m.Kind, "err", err)
			b.DeleteIf(e.Key, e.Index).Put(core.OutboxDeadPrefix+strings.TrimPrefix(e.Key, core.OutboxPrefix), core.MustJSON(m))
		default:
			m.Attempts++
			m.LastError = err.Error()
			wait := min(core.OutboxRetryMin<<min(m.Attempts-1, 16), core.OutboxRetryMax)
			m.NextAt = now.Add(wait).Unix()
			n.Log.Warn("message delivery failed; retrying", "kind", m.Kind, "attempt", m.Attempts, "in", wait, "err", err)
			b.PutIf(e.Key, core.MustJSON(m), e.Index)
			if at := time.Unix(m.NextAt, 0); next.IsZero() || at.Before(next) {
				next = at
			}
		}
		if _, err := n.Store.Apply(ctx, b); err != nil && !errors.Is(err, raftstore.ErrConflict) {
			n.Log.Warn("could not update the outbox", "err", err)
		}
	}
	return next
}

// deliver sends one message.
func (n *Node) deliver(ctx context.Context, m *core.OutboxMessage) error {
	switch m.Kind {
	case "mail":
		to := n.ContactEmails()
		if len(to) == 0 {
			return nil // nobody to tell: set contacts with 'certvault contacts set'
		}
		if n.Mailer == nil {
			return errors.New("no SMTP relay is configured (--smtp-addr)")
		}
		return n.Mailer.Send(ctx, notify.Message{To: to, Subject: m.Mail.Subject, Body: m.Mail.Body})
	case "event":
		return n.deliverEvent(ctx, m.Event)
	}
	return fmt.Errorf("unknown message kind %q", m.Kind)
}
