package raftstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	"github.com/hashicorp/raft"
)

// Entry is one key of the replicated state as of some applied index. The
// Value slice is shared with the state and must not be modified.
type Entry struct {
	Key   string
	Value []byte
	// Index is the log index of the last write to the key (its modify
	// index, the value PutIf and DeleteIf compare against).
	Index uint64
	// CreateIndex is the log index at which the key was last created.
	CreateIndex uint64

	// seg, when set, holds the value (vlen bytes at off) in the value
	// log, and Value is nil. Entries handed to callers never have it.
	seg  *segment
	off  int64
	vlen uint32
}

// value returns e's value, from the value log when it lies there.
func (e *Entry) value() ([]byte, error) {
	if e.seg == nil {
		return e.Value, nil
	}
	return e.seg.read(e.off, e.vlen)
}

// change records the log index of the last write under a key prefix.
type change struct {
	key   string
	index uint64
}

func lessEntry(a, b *Entry) bool  { return a.Key < b.Key }
func lessChange(a, b change) bool { return a.key < b.key }

const btreeDegree = 32

// fsm is the raft.FSM. All state sits in memory behind one RWMutex: an
// ordered B-tree of entries and a B-tree of "last change index" per
// directory prefix (each prefix ending in '/') and per live key, which makes
// watches O(depth) per write. Entries are immutable once inserted, so a
// snapshot is a copy-on-write clone of both trees taken under the lock.
//
// Reads (get, list, appliedIndex) take no lock at all: after every applied
// batch the FSM publishes a view, a copy-on-write clone of the entry tree
// with the applied index it reflects, through an atomic pointer. Cloning
// is O(1); its price is that the next writes copy the B-tree nodes on
// their path once. Readers therefore never wait behind an apply batch, and
// an apply batch never waits for readers to drain.
type fsm struct {
	// view is the state as of the last applied batch, for readers.
	view atomic.Pointer[view]

	mu      sync.RWMutex
	entries *btree.BTreeG[*Entry]
	changes *btree.BTreeG[change]
	applied uint64
	// floor is a lower bound for every last-change index, raised by a
	// restore so that watchers from before it wake once and re-read.
	floor uint64
	// appliedCh is closed and replaced every time applied moves.
	appliedCh chan struct{}
	watchers  map[string]map[*waiter]struct{}
	// dirs collects, during one ApplyBatch, the directory prefixes written
	// under and the last index of each; flushDirs records them once per
	// batch instead of once per write.
	dirs map[string]uint64
	// vlog holds the long values (vlog.go); nil keeps every value in
	// memory.
	vlog *valueLog
	// cmdBytes and cmds count the commands applied since the start and
	// their bytes, for the size of an average log entry.
	cmdBytes, cmds atomic.Uint64
	// persisted, when set, is told the size of every snapshot raft had
	// written (Store.snapshotWritten).
	persisted func(bytes int64)
}

// view is an immutable picture of the entries at one applied index.
type view struct {
	entries *btree.BTreeG[*Entry]
	applied uint64
	// appliedCh is closed when the applied index moves past applied.
	appliedCh chan struct{}
}

// publish makes the current state the readers' view. Called with f.mu held
// for writing, after every change to entries or applied.
func (f *fsm) publish() {
	f.view.Store(&view{entries: f.entries.Clone(), applied: f.applied, appliedCh: f.appliedCh})
}

// applyResult is what Apply returns to the raft future.
type applyResult struct {
	index uint64
	err   error
}

func newFSM() *fsm {
	f := &fsm{
		entries:   btree.NewG(btreeDegree, lessEntry),
		changes:   btree.NewG(btreeDegree, lessChange),
		appliedCh: make(chan struct{}),
		watchers:  make(map[string]map[*waiter]struct{}),
		dirs:      make(map[string]uint64),
	}
	f.publish()
	return f
}

// Apply implements raft.FSM.
func (f *fsm) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: one lock and one wake-up for all
// the entries raft committed together.
func (f *fsm) ApplyBatch(logs []*raft.Log) []interface{} {
	out := make([]interface{}, len(logs))
	f.mu.Lock()
	moved := false
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		out[i] = f.applyCommand(l.Index, l.Data)
		f.applied = l.Index
		f.cmdBytes.Add(uint64(len(l.Data)))
		f.cmds.Add(1)
		moved = true
	}
	f.flushDirs()
	if moved {
		close(f.appliedCh)
		f.appliedCh = make(chan struct{})
		f.publish()
	}
	f.mu.Unlock()
	return out
}

// applyCommand dispatches on the type byte. It is called with f.mu held.
func (f *fsm) applyCommand(index uint64, data []byte) applyResult {
	if len(data) == 0 {
		panic(fmt.Sprintf("raftstore: empty command at index %d", index))
	}
	switch CommandType(data[0]) {
	case CmdBatch:
		b, err := decodeBatch(data[1:])
		if err != nil {
			// A batch the leader encoded must decode everywhere; one that
			// does not is a bug or corruption and every replica rejects it
			// the same way, so the state stays identical.
			return applyResult{index: index, err: err}
		}
		return f.applyBatch(index, b)
	default:
		if CommandType(data[0])&IgnorableFlag != 0 {
			return applyResult{index: index}
		}
		panic(fmt.Sprintf("raftstore: unknown command type %d at index %d", data[0], index))
	}
}

// applyBatch checks every precondition, then applies every operation. It
// is deterministic: it reads nothing but the state and the command.
func (f *fsm) applyBatch(index uint64, b *Batch) applyResult {
	for _, op := range b.Ops {
		if !op.HasIf {
			continue
		}
		cur, ok := f.entries.Get(&Entry{Key: op.Key})
		switch {
		case op.IfIndex == NotExist && ok:
			return applyResult{index: index, err: fmt.Errorf("%q exists: %w", op.Key, ErrConflict)}
		case op.IfIndex != NotExist && !ok:
			return applyResult{index: index, err: fmt.Errorf("%q does not exist: %w", op.Key, ErrConflict)}
		case ok && op.IfIndex != NotExist && cur.Index != op.IfIndex:
			return applyResult{index: index, err: fmt.Errorf("%q is at index %d, not %d: %w", op.Key, cur.Index, op.IfIndex, ErrConflict)}
		}
	}
	for _, op := range b.Ops {
		switch op.Kind {
		case OpPut:
			e := &Entry{Key: op.Key, Value: op.Value, Index: index, CreateIndex: index}
			f.vlog.spill(e)
			if old, ok := f.entries.ReplaceOrInsert(e); ok {
				// e is not visible to readers before the batch is
				// published, so it may still be changed.
				e.CreateIndex = old.CreateIndex
				f.vlog.drop(old)
			}
			f.touch(op.Key, index)
		case OpDelete:
			if old, ok := f.entries.Delete(&Entry{Key: op.Key}); ok {
				f.vlog.drop(old)
				f.touch(op.Key, index)
			}
		case OpDeletePrefix:
			var doomed []string
			f.entries.AscendGreaterOrEqual(&Entry{Key: op.Key}, func(e *Entry) bool {
				if !strings.HasPrefix(e.Key, op.Key) {
					return false
				}
				doomed = append(doomed, e.Key)
				return true
			})
			for _, k := range doomed {
				if old, ok := f.entries.Delete(&Entry{Key: k}); ok {
					f.vlog.drop(old)
				}
				f.touch(k, index)
			}
		case OpCheck:
		}
	}
	return applyResult{index: index}
}

// touch notes a write to key at index for every directory prefix above
// it (flushDirs records those at the end of the batch) and wakes the
// key's watchers. A key needs no record of its own: a live key's entry
// holds the index of its last write, and a deleted key's lookups fall
// back to its directory, so the change tree holds directories only.
func (f *fsm) touch(key string, index uint64) {
	f.fire(key)
	for i := len(key) - 2; i >= 0; i-- {
		if key[i] == '/' {
			f.dirs[key[:i+1]] = index
		}
	}
	f.dirs[""] = index
}

// flushDirs records the directory changes noted by touch during an apply
// batch and wakes their watchers. Nothing reads the change tree between
// the writes of one batch (watchers take the lock only after it), so
// recording a directory once with its last index is the same as recording
// it at every write.
func (f *fsm) flushDirs() {
	for dir, index := range f.dirs {
		f.changes.ReplaceOrInsert(change{key: dir, index: index})
		f.fire(dir)
		delete(f.dirs, dir)
	}
}

// lastChange returns the index of the last write at or under prefix, or a
// later index when that exact record is gone (never an earlier one): a
// key's entry, else the nearest directory's record. It is called with
// f.mu held.
func (f *fsm) lastChange(prefix string) uint64 {
	p := prefix
	if p != "" && !strings.HasSuffix(p, "/") {
		if e, ok := f.entries.Get(&Entry{Key: p}); ok {
			return max(e.Index, f.floor)
		}
		p = parentDir(p)
	}
	for {
		if c, ok := f.changes.Get(change{key: p}); ok {
			return max(c.index, f.floor)
		}
		if p == "" {
			return f.floor
		}
		p = parentDir(p)
	}
}

// parentDir returns the longest prefix of p, shorter than p, that ends in
// '/', or "": "a/b/c" gives "a/b/", and "a/b/" gives "a/".
func parentDir(p string) string {
	i := strings.LastIndexByte(p[:len(p)-1], '/')
	if i < 0 {
		return ""
	}
	return p[:i+1]
}

// get returns the entry for key as of the last applied batch.
func (f *fsm) get(key string) (Entry, bool) {
	e, ok := f.view.Load().entries.Get(&Entry{Key: key})
	if !ok {
		return Entry{}, false
	}
	return f.load(e)
}

// load returns e with its value in memory. When e's value lay in a
// segment retired since e's view was taken (vlog.go), the key is read
// from the latest view instead: a newer state, never an older one; ok is
// false when the key is gone there. Any other failure to read a value is
// a broken disk, which no caller could handle: it panics.
func (f *fsm) load(e *Entry) (Entry, bool) {
	for attempt := 0; ; attempt++ {
		v, err := e.value()
		if err == nil {
			return Entry{Key: e.Key, Value: v, Index: e.Index, CreateIndex: e.CreateIndex}, true
		}
		if !errors.Is(err, errSegmentGone) || attempt >= 5 {
			panic(fmt.Sprintf("raftstore: read the value of %q: %v", e.Key, err))
		}
		cur, ok := f.view.Load().entries.Get(&Entry{Key: e.Key})
		if !ok {
			return Entry{}, false
		}
		e = cur
	}
}

// list returns up to limit entries with the prefix, in key order, starting
// after the key `after` (exclusive; "" starts at the beginning). limit <= 0
// means no limit. It also returns the applied index the listing reflects.
func (f *fsm) list(prefix, after string, limit int) ([]Entry, uint64) {
	v := f.view.Load()
	var out []Entry
	start := prefix
	if after > start {
		start = after
	}
	v.entries.AscendGreaterOrEqual(&Entry{Key: start}, func(e *Entry) bool {
		if !strings.HasPrefix(e.Key, prefix) {
			return false
		}
		if e.Key == after {
			return true
		}
		if l, ok := f.load(e); ok {
			out = append(out, l)
		}
		return limit <= 0 || len(out) < limit
	})
	return out, v.applied
}

// rangePrefix calls fn for each entry with the prefix, in key order, until
// it returns false, and returns the applied index the walk reflects.
func (f *fsm) rangePrefix(prefix string, fn func(Entry) bool) uint64 {
	v := f.view.Load()
	v.entries.AscendGreaterOrEqual(&Entry{Key: prefix}, func(e *Entry) bool {
		if !strings.HasPrefix(e.Key, prefix) {
			return false
		}
		l, ok := f.load(e)
		return !ok || fn(l)
	})
	return v.applied
}

// appliedIndex returns the index of the last command applied and a channel
// closed when it moves.
func (f *fsm) appliedIndex() (uint64, <-chan struct{}) {
	v := f.view.Load()
	return v.applied, v.appliedCh
}

// Snapshot implements raft.FSM. It only takes references; Persist does the
// I/O without holding the lock.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// The snapshot's entries keep referring to the segments of this
	// state until Release, whatever compaction or a restore do.
	f.vlog.pin()
	return &fsmSnapshot{
		persisted: f.persisted,
		applied:   f.applied,
		taken:     time.Now(),
		entries:   f.entries.Clone(),
		changes:   f.changes.Clone(),
		vlog:      f.vlog,
	}, nil
}

// Restore implements raft.FSM: it decodes and verifies the whole snapshot
// before it replaces the state, so a corrupt stream changes nothing.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	sp := f.vlog.spiller()
	st, err := decodeSnapshot(rc, sp)
	if err != nil {
		sp.discard()
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.install(st, sp)
	return nil
}

// restoreFile restores the snapshot in the file at path, which raft's
// snapshot store keeps (a node's start, Store.Open). Unlike Restore it
// copies no long value: the file itself becomes a segment of the value
// log, read where the values lie, so a start reads the snapshot once and
// writes nothing. Compaction moves the values out once raft removes the
// file. Errors wrap ErrBadSnapshot when the file is not a whole,
// verified snapshot.
func (f *fsm) restoreFile(path string) error {
	sp := f.vlog.spiller()
	var fh *os.File
	var size int64
	if sp != nil {
		seg, err := f.vlog.borrow(path)
		if err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		sp.borrow, sp.segs = seg, append(sp.segs, seg)
		fh, size = seg.f, seg.size
	} else {
		var err error
		if fh, err = os.Open(path); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		defer fh.Close()
		fi, err := fh.Stat()
		if err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		size = fi.Size()
	}
	// The checksum is computed on another core, from its own reads of
	// the file, while this one decodes.
	sum := make(chan error, 1)
	go func() { sum <- verifyFileSum(fh, size) }()
	st, err := decodeSnapshotSum(io.NewSectionReader(fh, 0, size), sp, false)
	if serr := <-sum; err == nil && serr != nil {
		err = serr
	}
	if err != nil {
		sp.discard()
		return fmt.Errorf("restore snapshot %s: %w", path, err)
	}
	f.install(st, sp)
	return nil
}

// verifyFileSum checks the SHA-256 trailer of the snapshot in the first
// size bytes of fh; an error wraps ErrBadSnapshot.
func verifyFileSum(fh *os.File, size int64) error {
	if size < sha256.Size {
		return fmt.Errorf("shorter than its checksum: %w", ErrBadSnapshot)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(fh, 0, size-sha256.Size)); err != nil {
		return fmt.Errorf("read for the checksum: %w: %w", err, ErrBadSnapshot)
	}
	want := make([]byte, sha256.Size)
	if _, err := fh.ReadAt(want, size-sha256.Size); err != nil {
		return fmt.Errorf("read the checksum: %w: %w", err, ErrBadSnapshot)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("checksum mismatch (file is corrupt): %w", ErrBadSnapshot)
	}
	return nil
}

// install makes a decoded, verified snapshot the state, with sp's
// segments in place of the value log's old ones.
func (f *fsm) install(st *snapshotState, sp *spiller) {
	f.mu.Lock()
	if f.vlog != nil {
		f.vlog.retire(f.vlog.liveSegments())
		f.vlog.adopt(sp.segs)
	}
	f.entries = st.entries
	f.changes = st.changes
	// A user restore may bring an older applied index than the one this
	// replica reached; never move backwards, or WaitApplied would hang.
	f.applied = max(f.applied, st.applied)
	f.floor = f.applied
	close(f.appliedCh)
	f.appliedCh = make(chan struct{})
	f.publish()
	// Every watcher re-checks against the restored state.
	for p := range f.watchers {
		f.fire(p)
	}
	f.mu.Unlock()
	// Decoding a snapshot allocates about its size, most of it garbage
	// once the values sit in the value log; a restore is rare (start,
	// install, an operator's restore), so its memory goes back to the
	// system at once instead of staying the process's for good.
	debug.FreeOSMemory()
	if f.persisted != nil {
		f.persisted(st.size) // the next snapshot is due by this one's size
	}
}

// fsmSnapshot is a point-in-time view of the state.
type fsmSnapshot struct {
	applied uint64
	// taken is when the snapshot was taken (zero: unknown).
	taken   time.Time
	entries *btree.BTreeG[*Entry]
	changes *btree.BTreeG[change]
	// vlog is pinned until Release.
	vlog     *valueLog
	released sync.Once
	// persisted, when set, is told the bytes written once the sink is
	// closed.
	persisted func(bytes int64)
}

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	cw := &countingWriter{w: sink}
	if err := encodeSnapshot(cw, s); err != nil {
		sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return err
	}
	if s.persisted != nil {
		s.persisted(cw.n)
	}
	return nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() { s.released.Do(s.vlog.unpin) }

// compactSwapBatch is how many moved entries compactValues swaps in per
// hold of the lock.
const compactSwapBatch = 4096

// compactValues copies the values still referred to out of the value
// log's segments that are at least half garbage into a new segment,
// points their entries there and retires the old segments; it returns
// how many segments it retired. The copy runs without the lock, from the
// published view; only the swap holds it, and an entry written since
// the view keeps its new value (the copy of the old one is garbage).
func (f *fsm) compactValues() (int, error) {
	l := f.vlog
	if l == nil {
		return 0, nil
	}
	f.mu.Lock()
	victims := map[*segment]bool{}
	for _, s := range l.liveSegments() {
		if s != l.active && s.size > 0 && (2*s.garbage >= s.size || s.borrowed && s.unlinked()) {
			victims[s] = true
		}
	}
	v := f.view.Load()
	f.mu.Unlock()
	if len(victims) == 0 {
		return 0, nil
	}
	dst, err := l.newSegment(false)
	if err != nil {
		return 0, err
	}
	type move struct {
		old *Entry
		off int64
	}
	var moves []move
	v.entries.Ascend(func(e *Entry) bool {
		if e.seg == nil || !victims[e.seg] {
			return true
		}
		var b []byte
		if b, err = e.value(); err != nil {
			return false
		}
		var off int64
		if off, err = dst.write(b); err != nil {
			return false
		}
		moves = append(moves, move{e, off})
		return true
	})
	if err != nil {
		l.discard([]*segment{dst})
		return 0, fmt.Errorf("compact the value log: %w", err)
	}
	// The swap takes the lock for compactSwapBatch entries at a time, so
	// that moving a large segment (a borrowed snapshot's values) never
	// holds writes back for long. Until the last batch, the state refers
	// to both the victims and dst.
	l.adopt([]*segment{dst})
	for len(moves) > 0 {
		batch := moves[:min(len(moves), compactSwapBatch)]
		moves = moves[len(batch):]
		f.mu.Lock()
		for _, m := range batch {
			if cur, ok := f.entries.Get(&Entry{Key: m.old.Key}); ok && cur == m.old {
				moved := *cur
				moved.seg, moved.off = dst, m.off
				f.entries.ReplaceOrInsert(&moved)
			} else {
				dst.garbage += int64(m.old.vlen)
			}
		}
		f.publish()
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var retired []*segment
	live := map[*segment]bool{}
	for _, s := range l.liveSegments() {
		live[s] = true
	}
	for s := range victims {
		if live[s] { // a restore may have retired it already
			retired = append(retired, s)
		}
	}
	l.retire(retired)
	f.publish()
	return len(retired), nil
}

// digest returns a SHA-256 over every entry of the current view (key,
// value, modify and create index, in key order) and the applied index it
// reflects. Replicas that applied the same log hold the same bytes (the
// leader encrypts and decides before it proposes), so their digests at
// one index are equal.
func (f *fsm) digest() (uint64, [sha256.Size]byte) {
	v := f.view.Load()
	h := sha256.New()
	var n [8]byte
	put := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	v.entries.Ascend(func(e *Entry) bool {
		l, ok := f.load(e)
		if !ok {
			return true
		}
		put([]byte(l.Key))
		put(l.Value)
		binary.BigEndian.PutUint64(n[:], l.Index)
		h.Write(n[:])
		binary.BigEndian.PutUint64(n[:], l.CreateIndex)
		h.Write(n[:])
		return true
	})
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return v.applied, sum
}
