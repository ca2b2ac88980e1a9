package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/raftstore"
)

// TestClassifyNotLeader: a store error that says "not the leader" (the
// request was not applied) is a 503 the client may retry, never a 500.
func TestClassifyNotLeader(t *testing.T) {
	n := &Node{Core: &core.Core{}}
	for _, err := range []error{
		raftstore.ErrNotLeader,
		fmt.Errorf("forward: leadership moved here: %w", raftstore.ErrNotLeader),
	} {
		var ae *front.APIError
		if got := n.classify(err); !errors.As(got, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != "ServiceUnavailable" {
			t.Errorf("classify(%v): got %v, want 503 ServiceUnavailable", err, got)
		}
	}
}

// TestClassifyClientGone: a request whose client went away (its context
// canceled) is not an internal error: it is answered 499 and not counted
// as the vault's failure.
func TestClassifyClientGone(t *testing.T) {
	n := &Node{Core: &core.Core{}}
	err := fmt.Errorf("wait for index 1586 (applied 1019): %w", context.Canceled)
	var ae *front.APIError
	if got := n.classify(err); !errors.As(got, &ae) || ae.Status != front.StatusClientClosed || ae.Code != "ClientClosedRequest" {
		t.Errorf("classify(%v): got %v, want 499 ClientClosedRequest", err, got)
	}
}
