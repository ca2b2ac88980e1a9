package raftstore

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// spillFSM returns an FSM whose values longer than 16 bytes live in a
// value log in a temporary directory.
func spillFSM(t *testing.T) *fsm {
	t.Helper()
	f := newFSM()
	vl, err := openValueLog(t.TempDir(), 16, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := vl.close(); err != nil {
			t.Errorf("close the value log: %v", err)
		}
	})
	f.vlog = vl
	return f
}

// snapshotOf takes, persists and releases a snapshot of f.
func snapshotOf(t *testing.T, f *fsm) *bytes.Buffer {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var buf bytes.Buffer
	if err := encodeSnapshot(&buf, snap.(*fsmSnapshot)); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// applyAt applies b at index as ApplyBatch would, publishing the view.
func applyAt(f *fsm, index uint64, b *Batch) applyResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := f.applyBatch(index, b)
	f.applied = index
	f.flushDirs()
	f.publish()
	return res
}

func long(i, round int) []byte {
	return []byte(fmt.Sprintf("value %04d of round %d, long enough to spill", i, round))
}

// TestValueLogSpillsLongValues checks that long values leave memory for
// the value log, short ones stay, and every read path (Get, List, Range,
// digest, a snapshot and its restore) returns the same bytes.
func TestValueLogSpillsLongValues(t *testing.T) {
	f := spillFSM(t)
	b := &Batch{}
	for i := range 100 {
		b.Put(fmt.Sprintf("v/%04d", i), long(i, 1))
	}
	b.Put("short", []byte("tiny"))
	if res := applyAt(f, 1, b); res.err != nil {
		t.Fatal(res.err)
	}
	spilled := 0
	f.view.Load().entries.Ascend(func(e *Entry) bool {
		if e.seg != nil {
			spilled++
			if e.Value != nil {
				t.Errorf("%s: spilled but still holds its value in memory", e.Key)
			}
		}
		return true
	})
	if spilled != 100 {
		t.Errorf("%d entries spilled, want the 100 long ones", spilled)
	}
	if e, ok := f.get("v/0042"); !ok || !bytes.Equal(e.Value, long(42, 1)) || e.Index != 1 {
		t.Errorf("get v/0042 = %q %v", e.Value, ok)
	}
	if e, ok := f.get("short"); !ok || string(e.Value) != "tiny" {
		t.Errorf("get short = %q %v", e.Value, ok)
	}
	list, _ := f.list("v/", "", 0)
	if len(list) != 100 || !bytes.Equal(list[99].Value, long(99, 1)) {
		t.Errorf("list v/: %d entries", len(list))
	}
	n := 0
	f.rangePrefix("v/", func(e Entry) bool {
		if !bytes.Equal(e.Value, long(n, 1)) {
			t.Errorf("range: %s = %q", e.Key, e.Value)
		}
		n++
		return true
	})

	// The snapshot and a restore into an FSM that keeps all in memory
	// hold the same state.
	buf := snapshotOf(t, f)
	mem := newFSM()
	if err := mem.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	_, d1 := f.digest()
	_, d2 := mem.digest()
	if d1 != d2 {
		t.Error("the digest of the spilled state differs from its snapshot's restored in memory")
	}
	// A restore into a spilling FSM replaces the segments.
	g := spillFSM(t)
	applyAt(g, 1, (&Batch{}).Put("stale", long(7, 0)))
	before := g.vlog.liveSegments()
	if err := g.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.get("stale"); ok {
		t.Error("a key of the state before the restore survived it")
	}
	if e, ok := g.get("v/0007"); !ok || !bytes.Equal(e.Value, long(7, 1)) {
		t.Errorf("after the restore, v/0007 = %q %v", e.Value, ok)
	}
	for _, s := range g.vlog.liveSegments() {
		for _, old := range before {
			if s == old {
				t.Error("a segment of the state before the restore is still live")
			}
		}
	}
	if g.vlog.reap(time.Now().Add(retireGrace)) != len(before) {
		t.Errorf("reap after the grace closed fewer than the %d retired segments", len(before))
	}
	if _, err := os.Stat(before[0].path); !os.IsNotExist(err) {
		t.Errorf("a reaped segment's file is still there (%v)", err)
	}
}

// TestValueLogCompaction overwrites and deletes most values, compacts,
// and checks that every live value reads the same, the old segment is
// retired but stays readable for the grace, a snapshot pins it past the
// grace, and a reader of an old view after the segment closed reads the
// latest value instead.
func TestValueLogCompaction(t *testing.T) {
	f := spillFSM(t)
	b := &Batch{}
	for i := range 50 {
		b.Put(fmt.Sprintf("v/%04d", i), long(i, 1))
	}
	applyAt(f, 1, b)
	first := f.view.Load()
	old, _ := first.entries.Get(&Entry{Key: "v/0003"})
	oldSeg := old.seg
	// A new segment takes the next writes, so the first stops being the
	// active one and may be compacted.
	f.mu.Lock()
	f.vlog.active = nil
	f.mu.Unlock()
	b = &Batch{}
	for i := range 40 {
		if i%2 == 0 {
			b.Delete(fmt.Sprintf("v/%04d", i))
		} else {
			b.Put(fmt.Sprintf("v/%04d", i), long(i, 2))
		}
	}
	applyAt(f, 2, b)
	if oldSeg.garbage*2 < oldSeg.size {
		t.Fatalf("segment garbage %d of %d bytes after replacing 40 of 50 values", oldSeg.garbage, oldSeg.size)
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	n, err := f.compactValues()
	if err != nil || n != 1 {
		t.Fatalf("compactValues = %d, %v; want the one old segment retired", n, err)
	}
	check := func(when string) {
		for i := range 50 {
			k := fmt.Sprintf("v/%04d", i)
			e, ok := f.get(k)
			switch {
			case i < 40 && i%2 == 0:
				if ok {
					t.Errorf("%s: deleted %s reads %q", when, k, e.Value)
				}
			case i < 40:
				if !ok || !bytes.Equal(e.Value, long(i, 2)) {
					t.Errorf("%s: %s = %q, want round 2", when, k, e.Value)
				}
			default:
				if !ok || !bytes.Equal(e.Value, long(i, 1)) {
					t.Errorf("%s: %s = %q, want round 1", when, k, e.Value)
				}
			}
		}
	}
	check("after compaction")
	// The snapshot taken before still reads the old segment, pinned past
	// the grace.
	if f.vlog.reap(time.Now().Add(2*retireGrace)) != 0 {
		t.Error("reap closed a segment a snapshot pins")
	}
	var buf bytes.Buffer
	if err := encodeSnapshot(&buf, snap.(*fsmSnapshot)); err != nil {
		t.Fatalf("persist a snapshot from before the compaction: %v", err)
	}
	snap.Release()
	if f.vlog.reap(time.Now().Add(2*retireGrace)) != 1 {
		t.Error("reap after the snapshot's release did not close the retired segment")
	}
	check("after the reap")
	// A reader that took its entry from the first view reads the latest
	// value of the key once the segment is closed.
	if e, ok := f.load(old); !ok || !bytes.Equal(e.Value, long(3, 2)) {
		t.Errorf("load of an entry from a closed segment = %q %v, want the current value", e.Value, ok)
	}
	gone, _ := first.entries.Get(&Entry{Key: "v/0002"})
	if _, ok := f.load(gone); ok {
		t.Error("load of an entry deleted since, from a closed segment: found")
	}
}

// TestValueLogConcurrentReads reads while values are rewritten and the
// log compacted (run with -race): every read returns one of the values
// the key had.
func TestValueLogConcurrentReads(t *testing.T) {
	f := spillFSM(t)
	const keys = 20
	b := &Batch{}
	for i := range keys {
		b.Put(fmt.Sprintf("v/%02d", i), long(i, 0))
	}
	applyAt(f, 1, b)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := range keys {
					e, ok := f.get(fmt.Sprintf("v/%02d", i))
					if !ok || !bytes.HasPrefix(e.Value, []byte(fmt.Sprintf("value %04d of round", i))) {
						errs <- fmt.Errorf("v/%02d = %q %v", i, e.Value, ok)
						return
					}
				}
			}
		}()
	}
	for round := 1; round <= 30; round++ {
		b := &Batch{}
		for i := range keys {
			b.Put(fmt.Sprintf("v/%02d", i), long(i, round))
		}
		f.mu.Lock()
		f.vlog.active = nil // every round in a segment of its own
		f.mu.Unlock()
		applyAt(f, uint64(round+1), b)
		if _, err := f.compactValues(); err != nil {
			t.Fatal(err)
		}
		f.vlog.reap(time.Now().Add(retireGrace))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestValueLogKeepInMemory checks that keep holds a long value in memory
// (on apply and on restore) and lets the others spill.
func TestValueLogKeepInMemory(t *testing.T) {
	f := spillFSM(t)
	f.vlog.keep = func(key string, _ int) bool { return strings.HasPrefix(key, "hot/") }
	applyAt(f, 1, (&Batch{}).Put("hot/a", long(1, 1)).Put("cold/a", long(2, 1)))
	check := func(f *fsm, when string) {
		t.Helper()
		for key, spilled := range map[string]bool{"hot/a": false, "cold/a": true} {
			e, _ := f.view.Load().entries.Get(&Entry{Key: key})
			if (e.seg != nil) != spilled {
				t.Errorf("%s: %s spilled = %v, want %v", when, key, e.seg != nil, spilled)
			}
		}
	}
	check(f, "applied")
	buf := snapshotOf(t, f)
	g := spillFSM(t)
	g.vlog.keep = f.vlog.keep
	if err := g.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	check(g, "restored")
}
