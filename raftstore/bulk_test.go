package raftstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

// openDiskStore opens (or reopens) a single-node store in dir and waits
// until it leads and has applied what its log holds.
func openDiskStore(t *testing.T, dir string, bootstrap bool) *Store {
	t.Helper()
	_, tr := raft.NewInmemTransport("n1")
	s, err := Open(Config{NodeID: "n1", Dir: dir, Transport: tr, MinFreeBytes: -1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLogOutput: io.Discard,
		HeartbeatTimeout: testRaftTimeout, ElectionTimeout: testRaftTimeout})
	if err != nil {
		t.Fatal(err)
	}
	if bootstrap {
		if err := s.Bootstrap("n1"); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Linearize(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestBulkLoad fills a stopped node's state through BulkLoad and checks
// that the node starts with the keys it had and the keys added, reads
// them (long values from the value log), and takes new writes.
func TestBulkLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	s := openDiskStore(t, dir, true)
	if _, err := s.Apply(ctx(t), (&Batch{}).Put("before/a", []byte("kept")).Put("template", bytes.Repeat([]byte("t"), 600))); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	const n = 2000
	err := BulkLoad(dir, "n1", func(st BulkState) error {
		tmpl, ok := st.Get("template")
		if !ok {
			return fmt.Errorf("the template written before is not in the state")
		}
		if keys := st.Keys("before/"); len(keys) != 1 {
			return fmt.Errorf("keys under before/: %v", keys)
		}
		for i := range n {
			st.Put(fmt.Sprintf("bulk/%05d", i), append([]byte(fmt.Sprintf("%05d:", i)), tmpl...))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("BulkLoad: %v", err)
	}

	s = openDiskStore(t, dir, false)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if e, ok := s.Get("before/a"); !ok || string(e.Value) != "kept" {
		t.Errorf("before/a after the bulk load = %q %v", e.Value, ok)
	}
	if e, ok := s.Get("bulk/01234"); !ok || !bytes.HasPrefix(e.Value, []byte("01234:ttt")) || len(e.Value) != 606 {
		t.Errorf("bulk/01234 = %.20q (%d bytes) %v", e.Value, len(e.Value), ok)
	}
	if got, _ := s.List("bulk/", "", 0); len(got) != n {
		t.Errorf("%d keys under bulk/, want %d", len(got), n)
	}
	idx, err := s.Apply(ctx(t), (&Batch{}).Put("after", []byte("x")))
	if err != nil {
		t.Fatalf("a write after the bulk load: %v", err)
	}
	if lc := s.LastChange("bulk/"); lc >= idx {
		t.Errorf("LastChange(bulk/) = %d, at or after the next write's %d", lc, idx)
	}

	if err := BulkLoad(t.TempDir(), "n1", func(BulkState) error { return nil }); err == nil {
		t.Error("BulkLoad of a directory without raft state: nil error")
	}
}
