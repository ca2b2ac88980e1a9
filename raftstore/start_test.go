package raftstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// startStore opens a single-node store on dir whose values over 16 bytes
// go to the value log, bootstrapping it when bootstrap is set, and waits
// for it to lead.
func startStore(t *testing.T, dir string, bootstrap bool) (*testCluster, *Store) {
	t.Helper()
	c := &testCluster{t: t, fwd: &memForwarder{stores: map[string]*Store{}}, trans: map[string]*raft.InmemTransport{}, stores: map[string]*Store{}}
	c.spillBytes = 16
	s := c.start("n1", dir)
	if bootstrap {
		if err := s.Bootstrap("n1"); err != nil {
			t.Fatal(err)
		}
	}
	c.waitLeader()
	return c, s
}

// longValue is a value the store keeps in the value log.
func longValue(i int) []byte {
	return []byte(fmt.Sprintf("value of k/%03d, long enough for the value log", i))
}

// fillAndClose bootstraps a store on dir, puts k/000..k/n-1 (longValue),
// taking a snapshot after each i where snapshotAfter says so, then
// k/tail, closes the store and returns k/tail's index.
func fillAndClose(t *testing.T, dir string, n int, snapshotAfter func(i int) bool) uint64 {
	t.Helper()
	_, s := startStore(t, dir, true)
	for i := 0; i < n; i++ {
		if _, err := s.Apply(ctx(t), (&Batch{}).Put(fmt.Sprintf("k/%03d", i), longValue(i))); err != nil {
			t.Fatal(err)
		}
		if snapshotAfter(i) {
			if err := s.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	last, err := s.Apply(ctx(t), (&Batch{}).Put("k/tail", []byte("tail")))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return last
}

// checkValues fails unless k/000..k/n-1 hold longValue and k/tail "tail".
func checkValues(t *testing.T, s *Store, n int, when string) {
	t.Helper()
	got, _ := s.List("k/", "", 0)
	if len(got) != n+1 {
		t.Fatalf("%s: %d keys, want %d", when, len(got), n+1)
	}
	for i := 0; i < n; i++ {
		if e := got[i]; e.Key != fmt.Sprintf("k/%03d", i) || string(e.Value) != string(longValue(i)) {
			t.Fatalf("%s: %q=%q, want k/%03d=%q", when, e.Key, e.Value, i, longValue(i))
		}
	}
	if e, ok := s.Get("k/tail"); !ok || string(e.Value) != "tail" {
		t.Fatalf("%s: k/tail=%q (%v), want \"tail\"", when, e.Value, ok)
	}
}

// borrowedSegments returns the live segments that are borrowed snapshot
// files.
func borrowedSegments(s *Store) []*segment {
	var out []*segment
	for _, seg := range s.fsm.vlog.liveSegments() {
		if seg.borrowed {
			out = append(out, seg)
		}
	}
	return out
}

// TestStartBorrowsSnapshotValues: a restart restores the latest snapshot
// from its file without copying its long values (the file is a segment
// of the value log, nothing is written to the value directory), replays
// the log after it, and, once raft has removed that snapshot, compaction
// moves its values into the value log and lets the file go.
func TestStartBorrowsSnapshotValues(t *testing.T) {
	const n = 200
	dir := t.TempDir()
	last := fillAndClose(t, dir, n, func(i int) bool { return i == n-1 })

	_, s := startStore(t, dir, false)
	if err := s.WaitApplied(ctx(t), last); err != nil {
		t.Fatal(err)
	}
	checkValues(t, s, n, "after the restart")
	borrowed := borrowedSegments(s)
	if len(borrowed) != 1 || !strings.HasPrefix(borrowed[0].path, filepath.Join(dir, "snapshots")+"/") {
		t.Fatalf("borrowed segments after the restart: %v, want the snapshot's file", borrowed)
	}
	seg := borrowed[0]
	if v := dirBytes(t, filepath.Join(dir, "values")); v != 0 {
		t.Fatalf("the restart wrote %d bytes to the value log, want none (values read from the snapshot)", v)
	}
	// Nothing to move while raft keeps the file.
	if moved, err := s.fsm.compactValues(); err != nil || moved != 0 {
		t.Fatalf("compaction while the snapshot is kept: %d segments, %v", moved, err)
	}

	// Two newer snapshots make raft (which keeps two) remove it.
	for round := 0; round < 2; round++ {
		if _, err := s.Apply(ctx(t), (&Batch{}).Put(fmt.Sprintf("other/%d", round), []byte("x"))); err != nil {
			t.Fatal(err)
		}
		if err := s.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(seg.path); !os.IsNotExist(err) {
		t.Fatalf("raft kept the first snapshot's file (%v); the test needs it removed", err)
	}
	checkValues(t, s, n, "after raft removed the snapshot file (read through the open descriptor)")
	if moved, err := s.fsm.compactValues(); err != nil || moved != 1 {
		t.Fatalf("compaction after the snapshot file went: %d segments retired, %v; want 1", moved, err)
	}
	if len(borrowedSegments(s)) != 0 {
		t.Fatal("the removed snapshot file is still a live segment after compaction")
	}
	checkValues(t, s, n, "after compaction")
	if v := dirBytes(t, filepath.Join(dir, "values")); v < int64(n*len(longValue(0))) {
		t.Fatalf("value log holds %d bytes after compaction, want at least the %d moved", v, n*len(longValue(0)))
	}
}

// TestStartSetsAsideBadSnapshot: when the newest snapshot's file is
// corrupt, the start moves it to snapshots-bad/ and restores the one
// before it, then replays the log, as raft would; when none restores,
// the open fails and says where they went.
func TestStartSetsAsideBadSnapshot(t *testing.T) {
	const n = 20
	dir := t.TempDir()
	last := fillAndClose(t, dir, n, func(i int) bool { return i == n/2 || i == n-1 })
	snaps, err := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	if err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots: %v %v, want 2", snaps, err)
	}
	newest := snaps[len(snaps)-1] // names sort by term, index, time
	corrupt := func(path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	corrupt(newest)

	_, s := startStore(t, dir, false)
	if err := s.WaitApplied(ctx(t), last); err != nil {
		t.Fatal(err)
	}
	checkValues(t, s, n, "after restoring the older snapshot")
	id := filepath.Base(filepath.Dir(newest))
	if _, err := os.Stat(filepath.Join(dir, "snapshots-bad", id, "state.bin")); err != nil {
		t.Fatalf("the corrupt snapshot was not set aside: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Every snapshot corrupt: the open fails.
	left, err := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
	if err != nil || len(left) == 0 {
		t.Fatalf("snapshots left: %v %v", left, err)
	}
	for _, p := range left {
		corrupt(p)
	}
	c := &testCluster{t: t, fwd: &memForwarder{stores: map[string]*Store{}}, trans: map[string]*raft.InmemTransport{}, stores: map[string]*Store{}}
	cfg := c.config("n1", dir)
	_, cfg.Transport = raft.NewInmemTransport("n1")
	_, err = Open(cfg)
	if err == nil || !strings.Contains(err.Error(), "snapshots-bad") {
		t.Fatalf("open with every snapshot corrupt: %v, want a refusal naming snapshots-bad", err)
	}
}

// dirBytes sums the sizes of the files in dir.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSnapshotThresholdFollowsState: the snapshot threshold is the
// configured one for a small state and grows with the state's snapshot,
// so that the log between two snapshots holds about a quarter of a
// snapshot's bytes, up to maxSnapshotThreshold entries; a restart sets
// it from the snapshot it restored.
func TestSnapshotThresholdFollowsState(t *testing.T) {
	const floor = 16
	dir := t.TempDir()
	start := func(bootstrap bool) *Store {
		c := &testCluster{t: t, fwd: &memForwarder{stores: map[string]*Store{}}, trans: map[string]*raft.InmemTransport{}, stores: map[string]*Store{}}
		c.snapshotThreshold = floor
		s := c.start("n1", dir)
		if bootstrap {
			if err := s.Bootstrap("n1"); err != nil {
				t.Fatal(err)
			}
		}
		c.waitLeader()
		return s
	}
	s := start(true)
	threshold := func() uint64 { return s.raft.ReloadableConfig().SnapshotThreshold }
	if got := threshold(); got != floor {
		t.Fatalf("threshold at the start %d, want the configured %d", got, floor)
	}
	value := make([]byte, 1000)
	for i := 0; i < 1100; i++ {
		if _, err := s.Apply(ctx(t), (&Batch{}).Put(fmt.Sprintf("k/%04d", i), value)); err != nil {
			t.Fatal(err)
		}
	}
	entry := s.fsm.cmdBytes.Load() / s.fsm.cmds.Load()
	if entry < 1000 || entry > 1100 {
		t.Fatalf("average entry %d bytes, want about 1,000 (the value and its key)", entry)
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// The snapshot holds the 1,100 values: about 1.1 MB.
	if got := threshold(); got < 250 || got > 300 {
		t.Fatalf("after a 1.1 MB snapshot the threshold is %d, want about 1.1 MB / 4 / %d bytes", got, entry)
	}
	s.snapshotWritten(1 << 40)
	if got := threshold(); got != maxSnapshotThreshold {
		t.Fatalf("after a 1 TB snapshot the threshold is %d, want the cap %d", got, maxSnapshotThreshold)
	}
	s.snapshotWritten(1 << 10)
	if got := threshold(); got != floor {
		t.Fatalf("after a 1 KB snapshot the threshold is %d, want the floor %d", got, floor)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A restart knows the state's size from the snapshot it restored,
	// and no entry size yet.
	s = start(false)
	if got := threshold(); got < 60 || got > 75 {
		t.Fatalf("after a restart from a 1.1 MB snapshot the threshold is %d, want about 1.1 MB / 4 / %d assumed bytes", got, assumedEntryBytes)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// stuckFuture is a raft.ApplyFuture that is never answered, like a write
// left in raft's queue when it shut down; answered ones return err.
type stuckFuture struct {
	raft.ApplyFuture
	answer chan error
}

func (f stuckFuture) Error() error { return <-f.answer }

// TestAwaitApplyAfterShutdown: a write raft never answers ends with
// ErrRaftShutdown once raft is down, instead of waiting forever; an
// answer raft gave is returned as it was, before and after the shutdown.
func TestAwaitApplyAfterShutdown(t *testing.T) {
	s := &Store{raftDown: make(chan struct{})}
	answered := stuckFuture{answer: make(chan error, 1)}
	answered.answer <- raft.ErrLeadershipLost
	if err := s.awaitApply(answered); !errors.Is(err, raft.ErrLeadershipLost) {
		t.Fatalf("an answered write: %v, want ErrLeadershipLost", err)
	}
	close(s.raftDown)
	answered.answer <- raft.ErrLeadershipLost
	if err := s.awaitApply(answered); !errors.Is(err, raft.ErrLeadershipLost) {
		t.Fatalf("a write answered before the shutdown: %v, want ErrLeadershipLost", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.awaitApply(stuckFuture{answer: make(chan error)}) }()
	select {
	case err := <-done:
		if !errors.Is(err, raft.ErrRaftShutdown) {
			t.Fatalf("a write never taken: %v, want ErrRaftShutdown", err)
		}
	case <-time.After(raftDownGrace + waitLimit):
		t.Fatal("awaitApply still waits for a write raft never took")
	}
}
