package raftstore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// setReserve changes a store's reserve as if the disk had filled (a huge
// reserve) or emptied, and makes the next check probe again.
func setReserve(s *Store, reserve int64) {
	s.disk.mu.Lock()
	s.disk.reserve, s.disk.probed = reserve, time.Time{}
	s.disk.mu.Unlock()
}

// startOnDisk starts a cluster of n stores, each with a directory of its
// own (so each has a disk guard).
func startOnDisk(t *testing.T, n int) *testCluster {
	t.Helper()
	return startTestCluster(t, n, 0, true)
}

// TestDiskFullSingleVoter: a single node below its reserve refuses writes
// with a DiskFullError that names its directory, applies nothing, keeps
// leading (same term) and serving linearizable reads, and takes writes
// again once there is room, without a restart.
func TestDiskFullSingleVoter(t *testing.T) {
	c := startOnDisk(t, 1)
	s := c.stores["n1"]
	if _, err := os.Stat(filepath.Join(s.cfg.Dir, ballastName)); err != nil {
		t.Fatalf("no ballast after Open: %v", err)
	}
	if _, err := s.Apply(ctx(t), (&Batch{}).Put("a", []byte("1"))); err != nil {
		t.Fatal(err)
	}
	term := s.raft.CurrentTerm()

	setReserve(s, 1<<62)
	_, err := s.Apply(ctx(t), (&Batch{}).Put("refused", []byte("x")))
	var dfe *DiskFullError
	if !errors.Is(err, ErrDiskFull) || !errors.As(err, &dfe) || !strings.Contains(dfe.Detail, s.cfg.Dir) {
		t.Fatalf("write below the reserve: got %v, want a DiskFullError naming %s", err, s.cfg.Dir)
	}
	if _, ok := s.Get("refused"); ok {
		t.Fatal("a refused write was applied")
	}
	if err := s.Linearize(ctx(t)); err != nil {
		t.Fatalf("linearizable read while full: %v", err)
	}
	if err := s.DiskFull(); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("DiskFull: got %v", err)
	}
	st, err := s.Status()
	if err != nil || st.DiskFull == "" {
		t.Fatalf("status while full: %+v, %v: want disk_full set", st, err)
	}
	if !s.IsLeader() || s.raft.CurrentTerm() != term {
		t.Fatalf("a single voter with a full disk: leader %v, term %d (was %d)", s.IsLeader(), s.raft.CurrentTerm(), term)
	}

	setReserve(s, 4096)
	if _, err := s.Apply(ctx(t), (&Batch{}).Put("after", []byte("2"))); err != nil {
		t.Fatalf("write once there is room: %v", err)
	}
	if err := s.DiskFull(); err != nil {
		t.Fatalf("DiskFull after recovery: %v", err)
	}
}

// TestDiskFullLeaderHandsOver: a leader whose disk is full hands
// leadership to a voter that has room, and writes through it (forwarded
// or not) succeed; the full node's refusal crosses the forwarding wire as
// a DiskFullError.
func TestDiskFullLeaderHandsOver(t *testing.T) {
	c := startOnDisk(t, 3)
	full := c.waitLeader()
	setReserve(full, 1<<62)
	// A forwarded write that reaches the full leader before it hands over
	// comes back as the leader's DiskFullError; once it has, writes
	// succeed. Either way nothing is ambiguous.
	deadline := time.Now().Add(waitLimit)
	for i := 0; ; i++ {
		var f *Store
		for _, s := range c.stores {
			if s != full {
				f = s
				break
			}
		}
		_, err := f.Apply(ctx(t), (&Batch{}).Put(fmt.Sprintf("k%d", i), nil))
		if err == nil && !full.IsLeader() {
			break
		}
		var dfe *DiskFullError
		if err != nil && (!errors.As(err, &dfe) || !strings.Contains(dfe.Detail, full.cfg.Dir)) {
			t.Fatalf("write through %s while %s is full: got %v, want success or a DiskFullError naming %s", f.cfg.NodeID, full.cfg.NodeID, err, full.cfg.Dir)
		}
		if time.Now().After(deadline) {
			t.Fatalf("leadership did not move off the full node %s within %v (last write through %s: %v; %s leader: %v)", full.cfg.NodeID, waitLimit, f.cfg.NodeID, err, full.cfg.NodeID, full.IsLeader())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The full node forwards its writes to the new leader.
	if _, err := full.Apply(ctx(t), (&Batch{}).Put("via-full", nil)); err != nil {
		t.Fatalf("write through the full follower: %v", err)
	}
}

// faultyLogs fails appends with ENOSPC while path (the ballast) exists:
// the disk has room only once the ballast is gone.
type faultyLogs struct {
	raft.LogStore
	path  string
	calls int
}

func (f *faultyLogs) StoreLogs(ls []*raft.Log) error {
	f.calls++
	if _, err := os.Stat(f.path); err == nil {
		return &os.PathError{Op: "write", Path: "raft.db", Err: syscall.ENOSPC}
	}
	return f.LogStore.StoreLogs(ls)
}

// TestBallast: an append that fails for lack of space on a leader is
// retried once the ballast is deleted, and succeeds; a follower's is not
// (the leader resends it), and both leave the guard full. The ballast is
// written again once the reserve and the ballast fit.
func TestBallast(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name   string
		leader bool
	}{{"leader", true}, {"follower", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			g := newDiskGuard("n1", dir, 4096, log)
			if err := g.check(); err == nil {
				g.refill()
			}
			path := filepath.Join(dir, ballastName)
			if fi, err := os.Stat(path); err != nil || fi.Size() != 4096 {
				t.Fatalf("ballast: %v, %v; want 4096 bytes", fi, err)
			}
			fl := &faultyLogs{LogStore: raft.NewInmemStore(), path: path}
			logs := roomyLogs{fl, g, func() bool { return tc.leader }}
			err := logs.StoreLogs([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand}})
			_, statErr := os.Stat(path)
			switch {
			case tc.leader && (err != nil || fl.calls != 2 || statErr == nil):
				t.Fatalf("leader append on a full disk: err %v after %d tries, ballast still there: %v; want success on the second try without the ballast", err, fl.calls, statErr == nil)
			case !tc.leader && (!noSpace(err) || fl.calls != 1 || statErr != nil):
				t.Fatalf("follower append on a full disk: err %v after %d tries, ballast gone: %v; want ENOSPC, one try, ballast kept", err, fl.calls, statErr != nil)
			}
			var dfe *DiskFullError
			if err := g.check(); !errors.As(err, &dfe) || !strings.Contains(dfe.Detail, "no space left on device") {
				t.Fatalf("guard after the failed append: %v", err)
			}
			if !tc.leader {
				return
			}
			// The real disk has room: the next probe clears the state and
			// the watcher writes the ballast again.
			g.mu.Lock()
			g.probed = time.Time{}
			g.mu.Unlock()
			if err := g.check(); err != nil {
				t.Fatalf("guard with room again: %v", err)
			}
			g.refill()
			if fi, err := os.Stat(path); err != nil || fi.Size() != 4096 {
				t.Fatalf("ballast after recovery: %v, %v", fi, err)
			}
			// Someone deletes it: the watcher notices and writes it again.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			for range 2 { // notice, then (after a probe) write
				if err := g.check(); err != nil {
					t.Fatalf("guard: %v", err)
				}
				g.refill()
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() != 4096 {
				t.Fatalf("ballast after it was deleted: %v, %v", fi, err)
			}
		})
	}
}

func TestForwardedDiskFull(t *testing.T) {
	err := responseFor(0, fmt.Errorf("apply: %w", &DiskFullError{Detail: "node n1 has 0 B free in /d/raft"})).err()
	var dfe *DiskFullError
	if !errors.As(err, &dfe) || dfe.Detail != "node n1 has 0 B free in /d/raft" || !errors.Is(err, ErrDiskFull) {
		t.Fatalf("forwarded DiskFullError: got %#v (%v)", err, err)
	}
}
