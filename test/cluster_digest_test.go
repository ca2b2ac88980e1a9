package test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// digestStatus is the part of the cluster status with ?digest=true that
// the test reads.
type digestStatus struct {
	AppliedIndex uint64 `json:"applied_index"`
	StateDigest  string `json:"state_digest"`
	DigestIndex  uint64 `json:"digest_index"`
}

// TestClusterStateDigest: GET /v1/sys/cluster/status?digest=true gives
// every node's digest of its replicated state; nodes at the same index
// report the same digest, a write changes it, and a plain status leaves
// it out.
func TestClusterStateDigest(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	get := func(n *testcluster.Node) digestStatus {
		t.Helper()
		var st digestStatus
		if err := c.Client(n).Do(context.Background(), http.MethodGet, "/v1/sys/cluster/status?digest=true", nil, &st); err != nil {
			t.Fatalf("status of %s: %v", n.ID, err)
		}
		return st
	}
	// same waits until every node reports one digest at one index.
	same := func(what string) digestStatus {
		t.Helper()
		var first digestStatus
		waitUntil(t, 60*time.Second, what, func() (bool, string) {
			var seen []string
			ok := true
			for i, n := range c.Nodes {
				st := get(n)
				seen = append(seen, fmt.Sprintf("%s: %.12s at %d", n.ID, st.StateDigest, st.DigestIndex))
				if len(st.StateDigest) != 64 {
					ok = false
				}
				if i == 0 {
					first = st
				} else if st.DigestIndex != first.DigestIndex || st.StateDigest != first.StateDigest {
					ok = false
				}
			}
			return ok, strings.Join(seen, "; ")
		})
		return first
	}
	before := same("every node to report the same digest at the same index")
	mustCLI(t, c, "secret", "set", "digest-test", "--value", "some value")
	after := same("every node to report the same digest after a write")
	if after.DigestIndex <= before.DigestIndex || after.StateDigest == before.StateDigest {
		t.Fatalf("after a write: got digest %.12s at %d, want a new digest at an index past %d (digest %.12s)",
			after.StateDigest, after.DigestIndex, before.DigestIndex, before.StateDigest)
	}
	var plain digestStatus
	if err := c.Client(c.Nodes[0]).Do(context.Background(), http.MethodGet, "/v1/sys/cluster/status", nil, &plain); err != nil {
		t.Fatalf("status: %v", err)
	}
	if plain.StateDigest != "" || plain.AppliedIndex == 0 {
		t.Fatalf("status without ?digest=true: got digest %q, applied index %d; want no digest and an index", plain.StateDigest, plain.AppliedIndex)
	}
}
