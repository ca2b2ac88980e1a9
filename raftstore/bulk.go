package raftstore

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// BulkState is the state a BulkLoad's fill sees and adds to.
type BulkState interface {
	// Get returns a key's value (as the node left it, or as fill put it).
	Get(key string) ([]byte, bool)
	// Keys returns the keys under prefix, in order.
	Keys(prefix string) []string
	// Put adds or replaces a key. Its index is the node's last log index.
	Put(key string, value []byte)
}

// BulkLoad writes keys straight into the state of a stopped single-node
// cluster whose raft directory is dir, without a raft command per key:
// it rebuilds the state from the latest snapshot and the log, lets fill
// add to it, and writes it as a snapshot at the last log index, which the
// node restores when it starts (hashicorp/raft's RecoverCluster, which
// also empties the log). It is for filling a vault with a large history
// for benchmarks and for tools that migrate a vault offline; it refuses a
// directory whose cluster has other members, which would never see the
// keys. The node must not be running. Values longer than the spill
// threshold wait in a temporary value log, so the state never sits in
// memory whole.
func BulkLoad(dir, nodeID string, fill func(BulkState) error) error {
	if _, err := os.Stat(filepath.Join(dir, "raft.db")); err != nil {
		return fmt.Errorf("bulk load: %s holds no raft state: %w", dir, err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return fmt.Errorf("bulk load: open raft.db (is the node still running?): %w", err)
	}
	defer bolt.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, quietLogger())
	if err != nil {
		return fmt.Errorf("bulk load: snapshot store: %w", err)
	}
	valuesDir, err := os.MkdirTemp(dir, "bulk-values-")
	if err != nil {
		return fmt.Errorf("bulk load: %w", err)
	}
	vl, err := openValueLog(valuesDir, defaultSpillBytes, true)
	if err != nil {
		return fmt.Errorf("bulk load: %w", err)
	}
	defer vl.close()
	f := newFSM()
	f.vlog = vl

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(nodeID)
	conf.Logger = quietLogger()
	_, trans := raft.NewInmemTransport(raft.ServerAddress(nodeID))
	defer trans.Close()
	// The configuration is the latest snapshot's and the log's; the
	// state itself is restored once, by RecoverCluster.
	conf.NoSnapshotRestoreOnStart = true
	cfg, err := raft.GetConfiguration(conf, newFSM(), bolt, bolt, snaps, trans)
	if err != nil {
		return fmt.Errorf("bulk load: read the cluster configuration: %w", err)
	}
	if len(cfg.Servers) != 1 || cfg.Servers[0].ID != raft.ServerID(nodeID) {
		return fmt.Errorf("bulk load: the cluster in %s has %d members; bulk loading works on a single-node cluster (%s) only, before others join", dir, len(cfg.Servers), nodeID)
	}
	bf := &bulkFSM{fsm: f, fill: fill}
	conf = raft.DefaultConfig()
	conf.LocalID = raft.ServerID(nodeID)
	conf.Logger = quietLogger()
	if err := raft.RecoverCluster(conf, bf, bolt, bolt, snaps, trans, cfg); err != nil {
		return fmt.Errorf("bulk load: %w", err)
	}
	if bf.err != nil {
		return fmt.Errorf("bulk load: %w", bf.err)
	}
	if !bf.filled {
		return fmt.Errorf("bulk load: raft took no snapshot")
	}
	return nil
}

// bulkFSM is the FSM RecoverCluster rebuilds; when it takes the final
// snapshot, fill adds its keys first.
type bulkFSM struct {
	*fsm
	fill   func(BulkState) error
	err    error
	filled bool
}

func (b *bulkFSM) Snapshot() (raft.FSMSnapshot, error) {
	if !b.filled {
		b.filled = true
		if b.err = b.fill(bulkState{b.fsm}); b.err != nil {
			return nil, b.err
		}
		b.fsm.mu.Lock()
		b.fsm.flushDirs()
		b.fsm.publish()
		b.fsm.mu.Unlock()
	}
	return b.fsm.Snapshot()
}

// bulkState puts into the fsm at its applied index.
type bulkState struct{ f *fsm }

func (s bulkState) Get(key string) ([]byte, bool) {
	s.f.mu.Lock()
	e, ok := s.f.entries.Get(&Entry{Key: key})
	s.f.mu.Unlock()
	if !ok {
		return nil, false
	}
	v, err := e.value()
	if err != nil {
		panic(fmt.Sprintf("raftstore: bulk load: read %q: %v", key, err))
	}
	return v, true
}

func (s bulkState) Keys(prefix string) []string {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	var out []string
	s.f.entries.AscendGreaterOrEqual(&Entry{Key: prefix}, func(e *Entry) bool {
		if !strings.HasPrefix(e.Key, prefix) {
			return false
		}
		out = append(out, e.Key)
		return true
	})
	return out
}

func (s bulkState) Put(key string, value []byte) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.applyBatch(s.f.applied, (&Batch{}).Put(key, value))
}

// quietLogger drops hashicorp/raft's messages of a bulk load.
func quietLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "bulk", Output: io.Discard, Level: hclog.Off})
}
