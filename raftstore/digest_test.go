package raftstore

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// applyLogs applies batches to f as raft would, one log entry each from
// index 1.
func applyLogs(f *fsm, batches ...*Batch) {
	for i, b := range batches {
		f.ApplyBatch([]*raft.Log{{Index: uint64(i + 1), Term: 1, Type: raft.LogCommand, Data: b.Encode()}})
	}
}

func TestDigest(t *testing.T) {
	batches := func(last string) []*Batch {
		return []*Batch{
			(&Batch{}).Put("secrets/a", []byte("1")),
			(&Batch{}).Put("secrets/b", []byte("2")),
			(&Batch{}).Put("secrets/a", []byte(last)),
		}
	}
	a, b, c := newFSM(), newFSM(), newFSM()
	applyLogs(a, batches("3")...)
	applyLogs(b, batches("3")...)
	applyLogs(c, batches("4")...)
	ia, da := a.digest()
	ib, db := b.digest()
	ic, dc := c.digest()
	if ia != 3 || ib != 3 || ic != 3 {
		t.Fatalf("digest indexes: got %d, %d, %d, want 3 each", ia, ib, ic)
	}
	if da != db {
		t.Errorf("replicas that applied the same log: digests %x and %x differ", da, db)
	}
	if da == dc {
		t.Errorf("replicas with a different value under secrets/a: same digest %x", da)
	}

	// The same keys and values written at other indexes differ too: the
	// modify index is part of the state (PutIf compares against it).
	d := newFSM()
	applyLogs(d, (&Batch{}).Put("secrets/b", []byte("2")), (&Batch{}).Put("secrets/a", []byte("1")), (&Batch{}).Put("secrets/a", []byte("3")))
	if _, dd := d.digest(); dd == da {
		t.Errorf("the same values at other modify indexes: same digest %x", dd)
	}

	// A snapshot restored elsewhere has the digest of its source.
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatalf("capture snapshot: %v", err)
	}
	var buf bytes.Buffer
	if err := encodeSnapshot(&buf, snap.(*fsmSnapshot)); err != nil {
		t.Fatalf("encode snapshot: %v", err)
	}
	e := newFSM()
	if err := e.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if ie, de := e.digest(); ie != ia || de != da {
		t.Errorf("restored replica: got digest %x at %d, want %x at %d", de, ie, da, ia)
	}
}
