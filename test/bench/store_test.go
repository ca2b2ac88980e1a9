//go:build bench

package bench

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/hashicorp/raft"
)

// openStore starts a single-node raftstore in this process on a real
// on-disk bbolt log in a temporary directory and waits until it leads.
func openStore(t testing.TB) *raftstore.Store {
	t.Helper()
	_, tr := raft.NewInmemTransport("n1")
	s, err := raftstore.Open(raftstore.Config{
		NodeID:        "n1",
		Dir:           t.TempDir(),
		Transport:     tr,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		RaftLogOutput: io.Discard,
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Bootstrap("n1"); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !s.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("store did not become leader within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// storeLoad returns a load of clients callers; caller i puts a
// benchValue-sized value under bench/<i mod names>.
func storeLoad(s *raftstore.Store, clients, names int, warmup, measure time.Duration) load {
	keys := make([]string, clients)
	for i := range keys {
		keys[i] = "bench/" + strconv.Itoa(i%names)
	}
	value := []byte(benchValue)
	write := func(i int) string {
		_, err := s.Apply(context.Background(), (&raftstore.Batch{}).Put(keys[i], value))
		switch {
		case err == nil:
			return ""
		case errors.Is(err, raftstore.ErrConflict):
			return "conflict"
		case errors.Is(err, context.DeadlineExceeded):
			return "timeout"
		default:
			return "error"
		}
	}
	return load{clients: clients, warmup: warmup, measure: measure, write: write}
}
