package raftstore

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// tcpStream is a plain TCP raft.StreamLayer on 127.0.0.1: the network
// transport the product uses (newNetworkTransport), without the TLS that
// is not what these tests are about.
type tcpStream struct{ net.Listener }

func (s tcpStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(addr), timeout)
}

// stallingLogs is a log store whose appends can be made slow and can
// fail once: a follower's disk that stalls, then reports an error (as a
// full disk does).
type stallingLogs struct {
	raft.LogStore
	slow     atomic.Bool
	failNext atomic.Bool
	failed   atomic.Int32
}

func (l *stallingLogs) StoreLog(e *raft.Log) error { return l.StoreLogs([]*raft.Log{e}) }

func (l *stallingLogs) StoreLogs(ls []*raft.Log) error {
	if l.slow.Load() {
		time.Sleep(5 * time.Millisecond) // a slow disk is what is simulated
	}
	if l.failNext.CompareAndSwap(true, false) {
		l.failed.Add(1)
		return errors.New("injected append failure")
	}
	return l.LogStore.StoreLogs(ls)
}

// TestFollowerCatchesUpAfterFailedAppend: a follower whose append fails
// once, while the leader is sending it entries as fast as it can, gets
// every later entry. With hashicorp/raft's pipelined replication the
// leader's sender for that follower deadlocked (transport.go), and the
// follower, still hearing heartbeats, stayed behind for good: the chaos
// harness saw a node stuck at one applied index after a disk-full.
func TestFollowerCatchesUpAfterFailedAppend(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	logs := map[string]*stallingLogs{}
	c := startCluster(t, 3, &testCluster{
		network: func(id string) (raft.Transport, string) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatalf("listen for %s: %v", id, err)
			}
			return newNetworkTransport(tcpStream{ln}, io.Discard), ln.Addr().String()
		},
		wrapLogs: func(id string) func(raft.LogStore) raft.LogStore {
			return func(inner raft.LogStore) raft.LogStore {
				l := &stallingLogs{LogStore: inner}
				mu.Lock()
				logs[id] = l
				mu.Unlock()
				return l
			}
		},
	}, false)
	leader := c.waitLeader()
	var follower *Store
	for _, s := range c.stores {
		if s != leader {
			follower = s
			break
		}
	}
	mu.Lock()
	fl := logs[follower.cfg.NodeID]
	mu.Unlock()

	// Many writers, and a follower whose appends take a while: the leader
	// has entries for it all the time.
	fl.slow.Store(true)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr atomic.Value
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := leader.Apply(ctx(t), (&Batch{}).Put(fmt.Sprintf("w%d-%d", w, i), []byte("v"))); err != nil {
					writeErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	progress := func(n uint64) {
		t.Helper()
		from := leader.AppliedIndex()
		waitFor(t, fmt.Sprintf("%d more writes on the leader", n), func() (bool, string) {
			return leader.AppliedIndex() >= from+n, fmt.Sprintf("applied %d (from %d); write error %v", leader.AppliedIndex(), from, writeErr.Load())
		})
	}
	progress(200)
	// One of the follower's appends fails; the leader goes on writing.
	fl.failNext.Store(true)
	waitFor(t, "the injected append failure", func() (bool, string) { return fl.failed.Load() == 1, "not yet" })
	progress(300)
	close(stop)
	wg.Wait()
	if err := writeErr.Load(); err != nil {
		t.Fatalf("a write on the leader failed: %v", err)
	}
	fl.slow.Store(false)

	// The follower catches up with every write.
	want := leader.AppliedIndex()
	waitFor(t, "the follower to catch up with the leader", func() (bool, string) {
		return follower.AppliedIndex() >= want, fmt.Sprintf("follower %s applied %d, leader %d", follower.cfg.NodeID, follower.AppliedIndex(), want)
	})
}
