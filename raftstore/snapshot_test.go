package raftstore

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
)

// fill applies n keys of size bytes each to a fresh FSM, in batches.
func fill(tb testing.TB, n, size int) *fsm {
	tb.Helper()
	f := newFSM()
	val := bytes.Repeat([]byte{'x'}, size)
	for i := 0; i < n; i++ {
		f.applyBatch(uint64(i+1), (&Batch{}).Put(fmt.Sprintf("certificates/c%07d/v/0001", i), val))
		f.applied = uint64(i + 1)
	}
	return f
}

func TestSnapshotRoundTripKeepsWatchIndexes(t *testing.T) {
	f := fill(t, 100, 10)
	f.applyBatch(101, (&Batch{}).Delete("certificates/c0000007/v/0001"))
	f.applied = 101
	snap, _ := f.Snapshot()
	var buf bytes.Buffer
	if err := encodeSnapshot(&buf, snap.(*fsmSnapshot)); err != nil {
		t.Fatal(err)
	}
	g := newFSM()
	if err := g.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	if got, want := g.entries.Len(), 99; got != want {
		t.Fatalf("entries: got %d, want %d", got, want)
	}
	// A watcher of the deleted key from before the delete wakes at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	idx, err := g.watch(ctx, []string{"certificates/c0000007/v/0001"}, 100)
	if err != nil || idx < 101 {
		t.Fatalf("watch after restore: got %d %v, want >= 101", idx, err)
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// BenchmarkSnapshot measures persisting and restoring 100,000 keys of 1 KiB
// (the size of a certificate version), the figures raftstore/DESIGN.md
// quotes for snapshot cost and restart time.
func BenchmarkSnapshot(b *testing.B) {
	f := fill(b, 100_000, 1024)
	snap, _ := f.Snapshot()
	var buf bytes.Buffer
	b.Run("persist", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			buf.Reset()
			if err := encodeSnapshot(&buf, snap.(*fsmSnapshot)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(buf.Len())/1e6, "MB")
	})
	b.Run("restore", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			g := newFSM()
			if err := g.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("capture", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			f.Snapshot()
		}
	})
}

// BenchmarkApplyBatch measures applying one put to a 100,000-key state.
func BenchmarkApplyBatch(b *testing.B) {
	f := fill(b, 100_000, 64)
	val := make([]byte, 1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f.applyBatch(uint64(200_000+i), (&Batch{}).Put(fmt.Sprintf("secrets/s%06d/v/x", i%1000), val))
	}
}
