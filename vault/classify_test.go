package vault

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/certvault/certvault/raftstore"
)

// TestClassifyNotLeader: a store error that says "not the leader" (the
// request was not applied) is a 503 the client may retry, never a 500.
func TestClassifyNotLeader(t *testing.T) {
	n := &Node{}
	for _, err := range []error{
		raftstore.ErrNotLeader,
		fmt.Errorf("forward: leadership moved here: %w", raftstore.ErrNotLeader),
	} {
		var ae *APIError
		if got := n.classify(err); !errors.As(got, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != "ServiceUnavailable" {
			t.Errorf("classify(%v): got %v, want 503 ServiceUnavailable", err, got)
		}
	}
}
