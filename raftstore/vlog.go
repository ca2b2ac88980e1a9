package raftstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The value log keeps the large values of the state on disk instead of in
// memory: a value longer than the spill threshold is appended to a
// segment file and its entry holds only where it lies. It bounds the
// memory of a vault with many versions by the number of keys rather than
// the bytes of chains, wrapped keys and secret values they hold.
//
// The log is a spill area, not a second copy of the truth: the raft log
// and snapshots remain what a node restarts from, so the files need no
// fsync and no recovery. A node empties its value directory when it
// opens the store and fills it again as raft restores the snapshot and
// replays the log.
//
// Values are immutable once written, so a reader holding an older view
// reads them without a lock: a segment stays open until no state refers
// to it (compaction copied its live values elsewhere, or a restore
// replaced the state), no snapshot being written pins it, and retireGrace
// has passed. A read that still finds its segment gone retries on the
// latest view.

const (
	// defaultSpillBytes is the longest value kept in memory.
	defaultSpillBytes = 128
	// segmentBytes is the size at which the active segment is closed for
	// appends and a new one started.
	segmentBytes = 64 << 20
	// retireGrace is how long a segment no state refers to stays open
	// for readers of older views.
	retireGrace = 30 * time.Second
)

// errSegmentGone is a read of a value whose segment was retired and
// closed; the reader retries on the current view.
var errSegmentGone = errors.New("raftstore: value segment retired")

// segment is one file of the value log.
type segment struct {
	id   uint32
	path string
	f    *os.File
	// size is the bytes written; garbage the bytes of values the state
	// no longer refers to. Both change under the fsm's lock only.
	size, garbage int64
	// gone is set when the file is closed.
	gone atomic.Bool
	// borrowed marks a file the value log reads but does not own: the
	// raft snapshot a start restored from, whose values are read where
	// they lie instead of being copied (fsm.restoreFile). It is never
	// written to, and closing it leaves the file to raft.
	borrowed bool
}

// read returns the n bytes at off.
func (s *segment) read(off int64, n uint32) ([]byte, error) {
	if s.gone.Load() {
		return nil, errSegmentGone
	}
	b := make([]byte, n)
	if _, err := s.f.ReadAt(b, off); err != nil {
		if s.gone.Load() || errors.Is(err, os.ErrClosed) {
			return nil, errSegmentGone
		}
		return nil, fmt.Errorf("read value at %s:%d: %w", s.path, off, err)
	}
	return b, nil
}

// retiredSegment waits to be closed.
type retiredSegment struct {
	seg *segment
	at  time.Time
}

// valueLog is the set of segments. Appends and the state's accounting
// happen under the fsm's lock; mu guards the segment lists and pins.
type valueLog struct {
	dir string
	// threshold is the longest value kept in memory, unless keep (if
	// set) keeps a longer one there too.
	threshold int
	keep      func(key string, size int) bool
	// removeDir says Close removes dir (a temporary directory).
	removeDir bool

	mu      sync.Mutex
	nextID  uint32
	active  *segment
	live    map[*segment]struct{}
	retired []retiredSegment
	// pins counts snapshots being written from an older state: while
	// any is, no retired segment is closed.
	pins   int
	closed bool
}

// openValueLog empties dir (what an earlier run left there is stale: the
// state is rebuilt from raft) and starts a value log in it.
func openValueLog(dir string, threshold int, removeDir bool) (*valueLog, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("value log: clear %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("value log: create %s: %w", dir, err)
	}
	return &valueLog{dir: dir, threshold: threshold, removeDir: removeDir, live: map[*segment]struct{}{}}, nil
}

// newSegment creates an empty segment file; live says whether the state
// refers to it at once (the active segment) or only after a swap (a
// restore's or a compaction's).
func (l *valueLog) newSegment(live bool) (*segment, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("value log: closed")
	}
	l.nextID++
	path := filepath.Join(l.dir, fmt.Sprintf("%08d.vlog", l.nextID))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("value log: create segment: %w", err)
	}
	s := &segment{id: l.nextID, path: path, f: f}
	if live {
		l.live[s] = struct{}{}
	}
	return s, nil
}

// borrow opens path, a raft snapshot file, as a segment the value log
// reads but does not own. It joins the state only through adopt.
func (l *valueLog) borrow(path string) (*segment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("value log: open snapshot %s: %w", path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("value log: open snapshot %s: %w", path, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		f.Close()
		return nil, fmt.Errorf("value log: closed")
	}
	l.nextID++
	return &segment{id: l.nextID, path: path, f: f, size: fi.Size(), borrowed: true}, nil
}

// unlinked reports whether a borrowed segment's file is no longer at its
// path (raft removed the snapshot, or replaced it): the open descriptor
// then holds disk space no directory shows, and compaction moves its
// values into segments of the value log's own.
func (s *segment) unlinked() bool {
	fi, err := os.Stat(s.path)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	own, err := s.f.Stat()
	return err == nil && !os.SameFile(fi, own)
}

// write appends b to s and returns its offset.
func (s *segment) write(b []byte) (int64, error) {
	off := s.size
	if _, err := s.f.WriteAt(b, off); err != nil {
		return 0, fmt.Errorf("value log: write %s: %w", s.path, err)
	}
	s.size += int64(len(b))
	return off, nil
}

// spill moves e's value to the active segment when it is long enough
// and the write succeeds; otherwise e keeps its value in memory (a full
// disk costs memory, not correctness). Called with the fsm's lock held,
// before e is visible to readers.
func (l *valueLog) spill(e *Entry) {
	if l == nil || !l.spills(e.Key, len(e.Value)) {
		return
	}
	if l.active == nil || l.active.size >= segmentBytes {
		s, err := l.newSegment(true)
		if err != nil {
			return
		}
		l.active = s
	}
	off, err := l.active.write(e.Value)
	if err != nil {
		return
	}
	e.seg, e.off, e.vlen, e.Value = l.active, off, uint32(len(e.Value)), nil
}

// spills reports whether a value of n bytes under key goes to the log.
func (l *valueLog) spills(key string, n int) bool {
	return n > l.threshold && (l.keep == nil || !l.keep(key, n))
}

// drop counts the value of e, which the state no longer refers to, as
// its segment's garbage. Called with the fsm's lock held.
func (l *valueLog) drop(e *Entry) {
	if e.seg != nil {
		e.seg.garbage += int64(e.vlen)
	}
}

// pin keeps every segment open until unpin.
func (l *valueLog) pin() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.pins++
	l.mu.Unlock()
}

func (l *valueLog) unpin() {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.pins--
	l.mu.Unlock()
}

// retire marks segs as referred to by no state.
func (l *valueLog) retire(segs []*segment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for _, s := range segs {
		delete(l.live, s)
		if l.active == s {
			l.active = nil
		}
		l.retired = append(l.retired, retiredSegment{seg: s, at: now})
	}
}

// adopt makes segs (a restore's) part of the state.
func (l *valueLog) adopt(segs []*segment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range segs {
		l.live[s] = struct{}{}
	}
}

// liveSegments lists the segments the state refers to.
func (l *valueLog) liveSegments() []*segment {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*segment, 0, len(l.live))
	for s := range l.live {
		out = append(out, s)
	}
	return out
}

// discard closes and removes segments no reader ever saw (a failed
// restore's or compaction's).
func (l *valueLog) discard(segs []*segment) {
	for _, s := range segs {
		s.close()
	}
}

// close closes s's file and removes it, unless it is borrowed.
func (s *segment) close() {
	s.gone.Store(true)
	s.f.Close()
	if !s.borrowed {
		os.Remove(s.path)
	}
}

// reap closes the retired segments whose grace has passed, unless a
// snapshot pins them; it returns how many it closed.
func (l *valueLog) reap(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pins > 0 {
		return 0
	}
	n := 0
	kept := l.retired[:0]
	for _, r := range l.retired {
		if now.Sub(r.at) >= retireGrace {
			r.seg.close()
			n++
		} else {
			kept = append(kept, r)
		}
	}
	l.retired = kept
	return n
}

// spiller writes the long values of a snapshot being decoded to fresh
// segments, which become the state's only if the restore succeeds; it
// buffers them, so a restore costs a write per spillBuffer, not per
// value. A nil spiller (no value log) keeps every value in memory.
type spiller struct {
	l    *valueLog
	cur  *segment
	segs []*segment
	// buf holds the values not yet written to cur.
	buf []byte
	// borrow, when set, is the file being decoded, opened as a segment:
	// long values stay where they lie in it (borrowAt) instead of being
	// copied; borrowed counts their bytes.
	borrow   *segment
	borrowed int64
}

// spillBuffer is how many bytes a restore writes at once.
const spillBuffer = 1 << 20

// spiller returns a spiller for a restore into l (nil for a nil l).
func (l *valueLog) spiller() *spiller {
	if l == nil {
		return nil
	}
	return &spiller{l: l}
}

// wants reports whether a value of n bytes goes to the value log: longer
// than the threshold, and not so long that buffering it would trust a
// length the stream has not borne out yet.
func (sp *spiller) wants(key string, n int) bool {
	return sp != nil && n <= spillBuffer && sp.l.spills(key, n)
}

// spillFrom reads the n bytes of e's value from r into the buffer and
// points e at where they will lie.
func (sp *spiller) spillFrom(r io.Reader, n int, e *Entry) error {
	if sp.cur == nil || sp.cur.size+int64(len(sp.buf)) >= segmentBytes {
		if err := sp.flush(); err != nil {
			return err
		}
		s, err := sp.l.newSegment(false)
		if err != nil {
			return err
		}
		sp.cur, sp.segs = s, append(sp.segs, s)
	}
	if len(sp.buf)+n > spillBuffer {
		if err := sp.flush(); err != nil {
			return err
		}
	}
	off := sp.cur.size + int64(len(sp.buf))
	start := len(sp.buf)
	sp.buf = slices.Grow(sp.buf, n)[:start+n]
	if _, err := io.ReadFull(r, sp.buf[start:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	e.seg, e.off, e.vlen, e.Value = sp.cur, off, uint32(n), nil
	return nil
}

// borrowAt points e at the n bytes at off in the borrowed file.
func (sp *spiller) borrowAt(off int64, n int, e *Entry) {
	e.seg, e.off, e.vlen, e.Value = sp.borrow, off, uint32(n), nil
	sp.borrowed += int64(n)
}

// spill moves e's value, read whole (too long to buffer), to the
// restore's segments.
func (sp *spiller) spill(e *Entry) error {
	if sp == nil || !sp.l.spills(e.Key, len(e.Value)) {
		return nil
	}
	if err := sp.flush(); err != nil {
		return err
	}
	if sp.cur == nil || sp.cur.size >= segmentBytes {
		s, err := sp.l.newSegment(false)
		if err != nil {
			return err
		}
		sp.cur, sp.segs = s, append(sp.segs, s)
	}
	off, err := sp.cur.write(e.Value)
	if err != nil {
		return err
	}
	e.seg, e.off, e.vlen, e.Value = sp.cur, off, uint32(len(e.Value)), nil
	return nil
}

// flush writes the buffered values to the current segment. It also
// settles the borrowed file's accounting: what no entry refers to (keys,
// short values, the framing) counts as its garbage.
func (sp *spiller) flush() error {
	if sp != nil && sp.borrow != nil {
		sp.borrow.garbage = sp.borrow.size - sp.borrowed
	}
	if sp == nil || len(sp.buf) == 0 {
		return nil
	}
	if _, err := sp.cur.write(sp.buf); err != nil {
		return err
	}
	sp.buf = sp.buf[:0]
	return nil
}

// discard removes the restore's segments (it failed, or its state was
// only read).
func (sp *spiller) discard() {
	if sp != nil {
		sp.l.discard(sp.segs)
	}
}

// close closes every segment and, for a temporary directory, removes it.
func (l *valueLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	for s := range l.live {
		s.close()
	}
	for _, r := range l.retired {
		r.seg.close()
	}
	l.live, l.retired, l.active = nil, nil, nil
	if l.removeDir {
		return os.RemoveAll(l.dir)
	}
	return nil
}
