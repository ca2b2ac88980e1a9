package vault

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/raftstore"
)

// TestEnqueueMailWithoutRelay: with no SMTP relay a mail is not queued,
// and the log says which mail the contacts did not get.
func TestEnqueueMailWithoutRelay(t *testing.T) {
	var logs bytes.Buffer
	n := &Node{Core: &core.Core{Log: slog.New(slog.NewTextHandler(&logs, nil))}}
	b := &raftstore.Batch{}
	if err := n.EnqueueMail(b, "[certvault] renewing certificate web", "the body"); err != nil {
		t.Fatalf("enqueueMail: %v", err)
	}
	if got := len(b.Ops); got != 0 {
		t.Fatalf("batch holds %d operations, want none without a relay", got)
	}
	if !strings.Contains(logs.String(), "renewing certificate web") || !strings.Contains(logs.String(), "--smtp-addr") {
		t.Fatalf("log: %q, want the mail's subject and the flag that would send it", logs.String())
	}
	if strings.Contains(logs.String(), "the body") {
		t.Fatalf("log: %q holds the mail's body", logs.String())
	}
}
