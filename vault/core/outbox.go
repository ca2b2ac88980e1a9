package core

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
)

// The outbox holds messages to deliver, in Raft: a message is written in
// the same command as the change it tells about, and the leader delivers
// it and removes it afterwards, so every message is delivered at least
// once across leader changes. A message that keeps failing moves to the
// dead letters after outboxMaxAttempts, with its last error.
const (
	OutboxPrefix      = "outbox/"
	OutboxDeadPrefix  = "outbox-dead/"
	OutboxMaxAttempts = 10
	OutboxRetryMin    = 5 * time.Second
	OutboxRetryMax    = 30 * time.Minute
	OutboxIdle        = time.Minute
)

// OutboxMessage is one message to deliver.
type OutboxMessage struct {
	// Kind is "mail" or "event".
	Kind      string        `json:"kind"`
	Mail      *mailBody     `json:"mail,omitempty"`
	Event     *EventMessage `json:"event,omitempty"`
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

// EnqueueMail adds a mail to the contacts to b. When the node has no SMTP
// relay configured it only logs the mail's subject, so that an operator
// sees what the contacts would have been told.
func (c *Core) EnqueueMail(b *raftstore.Batch, subject, body string) error {
	if c.Mailer == nil {
		c.Log.Info("no SMTP relay is configured (--smtp-addr): mail to the contacts not sent", "subject", subject)
		return nil
	}
	id, err := RandomID(6)
	if err != nil {
		return err
	}
	now := time.Now()
	key := fmt.Sprintf("%s%020d-%s", OutboxPrefix, now.UnixNano(), id)
	b.Put(key, MustJSON(OutboxMessage{Kind: "mail", Mail: &mailBody{Subject: subject, Body: body}, Created: now.Unix()}))
	return nil
}

// ContactEmails returns the vault's certificate contacts' addresses.
func (c *Core) ContactEmails() []string {
	e, ok := c.Store.Get(keyContacts)
	if !ok {
		return nil
	}
	var cs keyvault.Contacts
	if json.Unmarshal(e.Value, &cs) != nil {
		return nil
	}
	var out []string
	for _, ct := range cs.Contacts {
		if ct.Email != "" {
			out = append(out, ct.Email)
		}
	}
	return out
}
