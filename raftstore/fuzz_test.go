package raftstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The fuzz targets of the replicated state's two decoders. Their seed
// corpora are in testdata/fuzz/; make test runs them as ordinary tests and
// make fuzz explores from them.

// seededFSM returns an FSM holding a few keys, so that preconditions in
// fuzzed batches can both hold and fail.
func seededFSM() *fsm {
	f := newFSM()
	f.applyBatch(1, (&Batch{}).Put("a/b", []byte("v1")).Put("a/c", nil).Put("k", []byte("x")))
	f.applyBatch(2, (&Batch{}).Put("a/b", []byte("v2")).Delete("k"))
	f.applied = 2
	return f
}

// dumpFSM renders the whole state of f (entries and change records) so
// that two states can be compared.
func dumpFSM(f *fsm) string {
	var b bytes.Buffer
	f.entries.Ascend(func(e *Entry) bool {
		fmt.Fprintf(&b, "e %q=%q @%d/%d\n", e.Key, e.Value, e.Index, e.CreateIndex)
		return true
	})
	f.changes.Ascend(func(c change) bool {
		fmt.Fprintf(&b, "c %q @%d\n", c.key, c.index)
		return true
	})
	return b.String()
}

// dumpValues is dumpFSM with every value read where it lies (memory,
// the value log, a borrowed snapshot file).
func dumpValues(f *fsm) string {
	var b bytes.Buffer
	f.entries.Ascend(func(e *Entry) bool {
		l, ok := f.load(e)
		fmt.Fprintf(&b, "e %q=%q/%v @%d/%d\n", e.Key, l.Value, ok, e.Index, e.CreateIndex)
		return true
	})
	f.changes.Ascend(func(c change) bool {
		fmt.Fprintf(&b, "c %q @%d\n", c.key, c.index)
		return true
	})
	return b.String()
}

// restoredFromFile writes data to a file and restores it with restoreFile
// into an FSM whose values over 16 bytes go to a value log.
func restoredFromFile(t *testing.T, data []byte) *fsm {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f := spillFSM(t)
	if err := f.restoreFile(path); err != nil {
		t.Fatalf("restore from a file: %v", err)
	}
	return f
}

// sameBatch compares two batches op by op (an empty value equals nil: the
// encoding does not tell them apart).
func sameBatch(a, b *Batch) error {
	if len(a.Ops) != len(b.Ops) {
		return fmt.Errorf("%d ops, want %d", len(b.Ops), len(a.Ops))
	}
	for i := range a.Ops {
		x, y := a.Ops[i], b.Ops[i]
		if x.Kind != y.Kind || x.Key != y.Key || !bytes.Equal(x.Value, y.Value) || x.HasIf != y.HasIf || x.IfIndex != y.IfIndex {
			return fmt.Errorf("op %d is %+v, want %+v", i, y, x)
		}
	}
	return nil
}

// applyRecovering applies one command and reports whether it panicked.
func applyRecovering(f *fsm, index uint64, data []byte) (res applyResult, panicked bool) {
	defer func() {
		if recover() != nil {
			panicked = true
		}
	}()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applyCommand(index, data), false
}

// FuzzCommand feeds raw raft log entries to the command decoder and the
// FSM. Properties: a batch that decodes re-encodes to bytes that decode to
// the same batch, and that encoding is a fixed point; an entry that does
// not decode is refused with ErrBadCommand and changes nothing; a batch
// whose precondition fails changes nothing; applying is deterministic; an
// unknown command type panics unless it is flagged ignorable, and an
// ignorable one changes nothing.
func FuzzCommand(f *testing.F) {
	f.Add((&Batch{}).Put("a/b", []byte("v")).PutIf("a/c", nil, NotExist).DeleteIf("x", 7).DeletePrefix("p/").Check("k", 3).Encode())
	f.Add((&Batch{}).PutIf("a/b", []byte("v3"), 2).Delete("a/c").Encode())
	f.Add((&Batch{}).PutIf("a/b", []byte("v3"), 1).Encode())
	f.Add((&Batch{}).DeletePrefix("").Encode())
	f.Add([]byte{byte(CmdBatch)})
	f.Add([]byte{byte(IgnorableFlag | 5), 1, 2, 3})
	f.Add([]byte{7})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return // raft never hands the FSM an empty command (Store.Apply refuses to propose one)
		}
		typ := CommandType(data[0])
		if typ != CmdBatch {
			st := seededFSM()
			before := dumpFSM(st)
			res, panicked := applyRecovering(st, 3, data)
			switch {
			case typ&IgnorableFlag == 0 && !panicked:
				t.Fatalf("unknown command type %d: applied (%+v), want a panic", typ, res)
			case typ&IgnorableFlag != 0 && panicked:
				t.Fatalf("ignorable command type %d panicked", typ)
			case typ&IgnorableFlag != 0 && (res.err != nil || dumpFSM(st) != before):
				t.Fatalf("ignorable command type %d changed the state or failed: %v", typ, res.err)
			}
			return
		}

		b, err := decodeBatch(data[1:])
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("decode error %v does not wrap ErrBadCommand", err)
			}
			st := seededFSM()
			before := dumpFSM(st)
			res, panicked := applyRecovering(st, 3, data)
			if panicked || !errors.Is(res.err, ErrBadCommand) || dumpFSM(st) != before {
				t.Fatalf("undecodable batch: apply panicked=%v err=%v, state changed=%v; want ErrBadCommand and no change", panicked, res.err, dumpFSM(st) != before)
			}
			return
		}

		enc := b.Encode()
		if CommandType(enc[0]) != CmdBatch {
			t.Fatalf("encoded batch starts with type %d, want %d", enc[0], CmdBatch)
		}
		b2, err := decodeBatch(enc[1:])
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if err := sameBatch(b, b2); err != nil {
			t.Fatalf("decode(encode(batch)): %v", err)
		}
		if enc2 := b2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not a fixed point:\n first %x\nsecond %x", enc, enc2)
		}

		st1, st2 := seededFSM(), seededFSM()
		before := dumpFSM(st1)
		res1, p1 := applyRecovering(st1, 3, data)
		res2, p2 := applyRecovering(st2, 3, enc)
		if p1 || p2 {
			t.Fatalf("a decodable batch panicked in apply (original %v, re-encoded %v)", p1, p2)
		}
		if (res1.err == nil) != (res2.err == nil) || dumpFSM(st1) != dumpFSM(st2) {
			t.Fatalf("the batch and its re-encoding applied differently: %v vs %v\n%s\nvs\n%s", res1.err, res2.err, dumpFSM(st1), dumpFSM(st2))
		}
		if res1.err != nil {
			if !errors.Is(res1.err, ErrConflict) {
				t.Fatalf("apply of a decodable batch failed with %v, want nil or ErrConflict", res1.err)
			}
			if dumpFSM(st1) != before {
				t.Fatalf("a batch refused with %v changed the state", res1.err)
			}
		}
	})
}

// FuzzSnapshot feeds snapshot files to the decoder. When seal is true the
// target appends the SHA-256 trailer itself, so that the fuzzer explores
// the structure behind the checksum rather than the checksum. Properties:
// a snapshot that decodes re-encodes to one that decodes to the same
// state, and that encoding is a fixed point; one that does not decode is
// refused with ErrBadSnapshot and Restore leaves the FSM as it was.
func FuzzSnapshot(f *testing.F) {
	for _, st := range []*fsm{seededFSM(), newFSM(), fill(f, 5, 3)} {
		snap, err := st.Snapshot()
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		if err := encodeSnapshot(&buf, snap.(*fsmSnapshot)); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes(), false)
		f.Add(buf.Bytes()[:buf.Len()-sha256.Size], true)
	}
	f.Add([]byte("CVSNAP01"), true)
	f.Add([]byte("CVSNAP01\x00\x01\x01k\x00\x01\x01\x00"), true)
	f.Fuzz(func(t *testing.T, data []byte, seal bool) {
		if seal {
			sum := sha256.Sum256(data)
			data = append(data[:len(data):len(data)], sum[:]...)
		}
		if declaresGiantLength(data) {
			return
		}
		st, err := decodeSnapshot(bytes.NewReader(data), nil)
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("decode error %v does not wrap ErrBadSnapshot", err)
			}
			g := seededFSM()
			before := dumpFSM(g)
			if err := g.Restore(nopCloser{bytes.NewReader(data)}); err == nil {
				t.Fatal("Restore accepted a snapshot that decodeSnapshot refuses")
			}
			if dumpFSM(g) != before {
				t.Fatal("a refused snapshot changed the state")
			}
			path := filepath.Join(t.TempDir(), "state.bin")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := spillFSM(t).restoreFile(path); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("restored from a file: got %v, want ErrBadSnapshot like the stream", err)
			}
			return
		}
		// The same bytes restored from a file, long values borrowed where
		// they lie, give the same state (a refusal was checked above).
		if got, want := dumpValues(restoredFromFile(t, data)), dumpValues(&fsm{entries: st.entries, changes: st.changes}); got != want {
			t.Fatalf("restored from a file:\n%s\nvs decoded:\n%s", got, want)
		}
		var enc bytes.Buffer
		if err := encodeSnapshot(&enc, &fsmSnapshot{applied: st.applied, entries: st.entries, changes: st.changes}); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		st2, err := decodeSnapshot(bytes.NewReader(enc.Bytes()), nil)
		if err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
		one := &fsm{entries: st.entries, changes: st.changes}
		two := &fsm{entries: st2.entries, changes: st2.changes}
		if st.applied != st2.applied || dumpFSM(one) != dumpFSM(two) {
			t.Fatalf("decode(encode(snapshot)) differs: applied %d vs %d\n%s\nvs\n%s", st.applied, st2.applied, dumpFSM(one), dumpFSM(two))
		}
		var enc2 bytes.Buffer
		if err := encodeSnapshot(&enc2, &fsmSnapshot{applied: st2.applied, entries: st2.entries, changes: st2.changes}); err != nil {
			t.Fatalf("re-encode twice: %v", err)
		}
		if !bytes.Equal(enc.Bytes(), enc2.Bytes()) {
			t.Fatal("snapshot encoding is not a fixed point")
		}
		g := newFSM()
		if err := g.Restore(nopCloser{bytes.NewReader(data)}); err != nil {
			t.Fatalf("Restore refused a snapshot that decodes: %v", err)
		}
		if dumpFSM(g) != dumpFSM(one) {
			t.Fatal("Restore installed another state than the decoder read")
		}
	})
}

// declaresGiantLength walks data as a snapshot and reports whether a key
// or value length in it is over 1 MiB and longer than the input. Today
// decodeSnapshot allocates such a length before it reads (up to 64 MiB,
// ~200 ms each), which stalls the fuzzer; the decoder's allocation bound
// is issue 14 item 7, fixed elsewhere. Until then the target skips those
// inputs; afterwards the skip is harmless.
func declaresGiantLength(data []byte) bool {
	r := data[min(len(snapshotMagic), len(data)):]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(r)
		if n <= 0 {
			return 0, false
		}
		r = r[n:]
		return v, true
	}
	str := func() (giant, ok bool) {
		n, ok := uv()
		if !ok {
			return false, false
		}
		if n > uint64(len(r)) {
			return n > 1<<20, false
		}
		r = r[n:]
		return false, true
	}
	if _, ok := uv(); !ok { // applied index
		return false
	}
	n, ok := uv()
	for i := uint64(0); ok && i < n; i++ {
		for j := 0; j < 2; j++ { // key, value
			if giant, ok := str(); !ok {
				return giant
			}
		}
		if _, ok = uv(); ok {
			_, ok = uv()
		}
	}
	if !ok {
		return false
	}
	if n, ok = uv(); !ok {
		return false
	}
	for i := uint64(0); i < n; i++ {
		if giant, ok := str(); !ok {
			return giant
		}
		if _, ok := uv(); !ok {
			return false
		}
	}
	return false
}
