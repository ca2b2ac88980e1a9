package raftstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
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
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("capture snapshot: %v", err)
	}
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
	snap, err := f.Snapshot()
	if err != nil {
		b.Fatalf("capture snapshot: %v", err)
	}
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
			if _, err := f.Snapshot(); err != nil {
				b.Fatalf("capture snapshot: %v", err)
			}
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

// snapshotPrefix is a valid snapshot header: magic, applied index 7, and
// one entry whose key follows.
func snapshotPrefix() []byte {
	b := append([]byte(nil), snapshotMagic...)
	b = binary.AppendUvarint(b, 7)
	return binary.AppendUvarint(b, 1)
}

// TestDecodeSnapshotHugeLengthAllocatesLittle checks that a length prefix
// is trusted only as far as the input holds bytes: a file of a few bytes
// that claims a 64 MiB key (or value) is refused as a bad snapshot without
// the decoder allocating the 64 MiB it announces.
func TestDecodeSnapshotHugeLengthAllocatesLittle(t *testing.T) {
	key := binary.AppendUvarint(snapshotPrefix(), maxSnapshotString)
	value := binary.AppendUvarint(snapshotPrefix(), 1)
	value = append(value, 'k')
	value = binary.AppendUvarint(value, maxSnapshotString)
	const budget = 2 << 20 // the 256 KiB read buffer, the chunks read so far, the hash
	for _, tc := range []struct {
		name  string
		input []byte
	}{
		{"key", key},
		{"value", value},
		{"key with some bytes", append(key, bytes.Repeat([]byte{'x'}, 100_000)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			st, err := decodeSnapshot(bytes.NewReader(tc.input), nil)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("decode %d bytes claiming %d: got %v, %v; want ErrBadSnapshot", len(tc.input), maxSnapshotString, st, err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > budget {
				t.Errorf("decode %d bytes claiming a %d-byte string allocated %d bytes, want at most %d", len(tc.input), maxSnapshotString, got, budget)
			}
		})
	}
}

// TestSnapshotRoundTripLargeValues checks values around and well past the
// decoder's first allocation (snapshotChunk), which it reads by doubling.
func TestSnapshotRoundTripLargeValues(t *testing.T) {
	f := newFSM()
	sizes := []int{0, 1, snapshotChunk - 1, snapshotChunk, snapshotChunk + 1, 3*snapshotChunk + 17, 1 << 20}
	for i, size := range sizes {
		v := make([]byte, size)
		for j := range v {
			v[j] = byte(i + j)
		}
		f.applyBatch(uint64(i+1), (&Batch{}).Put(fmt.Sprintf("k%02d", i), v))
		f.applied = uint64(i + 1)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	var buf bytes.Buffer
	if err := encodeSnapshot(&buf, snap.(*fsmSnapshot)); err != nil {
		t.Fatalf("encode snapshot: %v", err)
	}
	st, err := decodeSnapshot(bytes.NewReader(buf.Bytes()), nil)
	if err != nil {
		t.Fatalf("decode snapshot: %v", err)
	}
	for i, size := range sizes {
		k := fmt.Sprintf("k%02d", i)
		got, ok := st.entries.Get(&Entry{Key: k})
		want, wok := f.entries.Get(&Entry{Key: k})
		if !ok || !wok {
			t.Fatalf("entry %s: present after round trip %v, before %v; want both", k, ok, wok)
		}
		if len(got.Value) != size || !bytes.Equal(got.Value, want.Value) {
			t.Errorf("entry %s: got %d bytes, want %d equal to the original", k, len(got.Value), size)
		}
	}
	// Cut inside the largest value, the file is refused.
	cut := buf.Bytes()[:buf.Len()-sha256.Size-(1<<19)]
	if _, err := decodeSnapshot(bytes.NewReader(cut), nil); !errors.Is(err, ErrBadSnapshot) {
		t.Errorf("decode truncated snapshot: got %v, want ErrBadSnapshot", err)
	}
}
