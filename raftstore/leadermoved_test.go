package raftstore

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestApplyWhileBecomingLeader: a write made on a node that has no leader
// yet waits for one; when the node itself wins the election meanwhile,
// the write is applied here. (Found by the chaos harness: with two of
// three nodes killed, a write on the survivor waited, the survivor became
// leader once they returned, and the write failed with "leadership moved
// here", which the API answered 500.)
func TestApplyWhileBecomingLeader(t *testing.T) {
	c := &testCluster{t: t, fwd: &memForwarder{stores: map[string]*Store{}}, trans: map[string]*raft.InmemTransport{}, stores: map[string]*Store{}}
	s := c.start("n1", "")
	if err := s.Bootstrap("n1"); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	// A single node elects itself after its heartbeat timeout; the write
	// starts before that.
	if s.IsLeader() {
		t.Skip("n1 became leader before the write started; nothing to test")
	}
	start := time.Now()
	idx, err := s.Apply(ctx(t), (&Batch{}).Put("k", []byte("v")))
	if err != nil {
		t.Fatalf("a write made while n1 was becoming leader: got %v after %v, want it applied", err, time.Since(start).Round(time.Millisecond))
	}
	if e, ok := s.Get("k"); !ok || string(e.Value) != "v" || e.Index != idx {
		t.Fatalf("after the write: got %+v (found %v), want k=v at index %d", e, ok, idx)
	}
}
