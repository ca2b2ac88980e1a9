// Package raftstoretest starts real raftstore stores for the tests of the
// packages built on them: a single-node cluster over raft's in-memory
// transport, bootstrapped and leading, closed when the test ends. It is
// imported only by tests.
package raftstoretest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/hashicorp/raft"
)

// Open starts a single-node store in memory, waits (at most 30 s) until it
// leads, and closes it when t ends.
func Open(t testing.TB) *raftstore.Store {
	t.Helper()
	_, tr := raft.NewInmemTransport("n1")
	st, err := raftstore.Open(raftstore.Config{NodeID: "n1", Transport: tr,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogOutput: io.Discard,
		HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close the store: %v", err)
		}
	})
	if err := st.Bootstrap("n1"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := st.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}
