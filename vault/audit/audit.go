// Package audit keeps a node's audit trail: one append-only file of JSON
// lines, each record chained to the one before by SHA-256, written by one
// goroutine that fsyncs groups of records. When a write or an fsync fails
// (a full disk) it cuts the file back to what was durable, refuses records
// while it retries, and once it can write again records the gap in the
// chain (how many requests have no record, from when to when, why). It
// can read the trail back with filters and verify it, naming the first
// record that was changed, removed or reordered. It does not decide what
// is recorded (the vault does) and never sees request bodies or
// credentials: a Record has no field that could carry one.
package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/certvault/certvault/internal/objname"
)

// Errors.
var (
	// ErrClosed is returned by appends after Close.
	ErrClosed = errors.New("audit: log is closed")
	// ErrBroken is wrapped by appends while the log cannot be written: a
	// write or fsync failed (the cause is wrapped too: errors.Is(err,
	// syscall.ENOSPC) tells a full disk). The log retries by itself and
	// takes records again once a write and an fsync succeed.
	ErrBroken = errors.New("audit: log cannot be written")
)

// Record is one audited request. The vault fills every field but Seq,
// Prev and Hash, which the log assigns.
type Record struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	Node string    `json:"node"`
	// RequestID is the x-ms-request-id the caller got back.
	RequestID string `json:"request_id"`
	// Principal is who asked: a token's principal, agent:ID, node:ID, or
	// "" when the request carried no valid credential.
	Principal string `json:"principal"`
	// TokenID is the public ID of the token used (never its secret).
	TokenID string `json:"token_id,omitempty"`
	Source  string `json:"source"`
	Method  string `json:"method"`
	// Operation is the route, e.g. "GET /secrets/{name}".
	Operation string `json:"operation"`
	// Action is the permission the request needed (secrets/getSecret).
	Action  string `json:"action,omitempty"`
	Object  string `json:"object,omitempty"`
	Version string `json:"version,omitempty"`
	Status  int    `json:"status"`
	// Outcome is allowed, denied (403), unauthenticated (401), error
	// (allowed, but the request failed) or gap (OutcomeGap).
	Outcome string `json:"outcome"`
	// Lost, on a gap record, is how many requests were answered or
	// refused while the trail could not be written: their records are
	// missing, before this one.
	Lost uint64 `json:"lost,omitempty"`
	// Detail, on a gap record, says from when to when and why the trail
	// could not be written.
	Detail string `json:"detail,omitempty"`
	Prev   string `json:"prev"`
	Hash   string `json:"hash,omitempty"`
}

// chainHash is SHA-256 over the previous hash and the record's JSON
// without its own hash.
func chainHash(r Record) (string, error) {
	r.Hash = ""
	data, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode audit record: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(r.Prev))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// OutcomeGap marks the record the log writes itself once it can write
// again after a failure: Lost and Detail say what is missing.
const OutcomeGap = "gap"

// Retry waits after a failed write: from retryMin, doubling, to retryMax.
const (
	retryMin = 50 * time.Millisecond
	retryMax = time.Second
)

// genesis is the Prev of the first record.
const genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// Head is the last record's sequence number and hash.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Log appends records to one file. Append and AppendSync are safe for
// concurrent use; records are written in the order the writer goroutine
// takes them.
type Log struct {
	dir      string
	path     string
	f        *os.File
	reqs     chan request
	done     chan struct{}
	onChange func(error)
	room     func() error
	// Owned by the writer goroutine. size is the current file's length;
	// at segmentBytes the file becomes a segment and a new one starts.
	// durable is the length known to be on disk, pending the records
	// written since.
	size         int64
	segmentBytes int64
	durable      int64
	pending      uint64

	mu      sync.Mutex
	head    Head // the last record written
	durHead Head // the last record fsynced
	// err is set while the log cannot be written; brokenAt and cause
	// say since when and why, lost counts the requests left without a
	// record, node is the node they belong to (for the gap record).
	err      error
	brokenAt time.Time
	cause    error
	lost     uint64
	node     string
	closed   bool
	wg       sync.WaitGroup
}

type request struct {
	rec  Record
	sync bool
	done chan error // nil for Append
}

// FileName is the trail's current file inside the directory Open is
// given. Full files become segments named SegmentPrefix + the sequence
// number of their last record (20 digits) + ".jsonl", so that names sort
// in order; ReadTrail and VerifyTrail read them all.
const (
	FileName      = "audit.jsonl"
	SegmentPrefix = "audit-"
)

// DefaultSegmentBytes is the size at which the current file becomes a
// segment.
const DefaultSegmentBytes = 256 << 20

// Open opens (creating if needed) the trail in dir, with segments of
// DefaultSegmentBytes. The last record is read to continue the chain; a
// torn last line (no end of line: a crash mid-write, whose request was
// never answered) is cut off. Nothing else is changed: a damaged record
// stays for Verify to find.
func Open(dir string) (*Log, error) { return OpenWith(dir, Options{}) }

// OpenSegmented is Open with another segment size (at least 4 KiB).
func OpenSegmented(dir string, segmentBytes int64) (*Log, error) {
	return OpenWith(dir, Options{SegmentBytes: segmentBytes})
}

// Options tune OpenWith; the zero value is Open.
type Options struct {
	// SegmentBytes is the size at which the current file becomes a
	// segment. Zero means DefaultSegmentBytes; at least 4 KiB.
	SegmentBytes int64
	// OnChange, if set, is called by the writer goroutine when the log
	// breaks (with the error, which wraps ErrBroken and the cause) and
	// when it can write again (with nil). It must return quickly and not
	// call the Log.
	OnChange func(err error)
	// Room, if set, is asked before each write and before trying again
	// after a failure: an error means the disk must not be written now
	// (what is left is kept for something else, e.g. raft) and counts as
	// a failed write. It must be cheap.
	Room func() error
}

// OpenWith is Open with options.
func OpenWith(dir string, opts Options) (*Log, error) {
	segmentBytes := opts.SegmentBytes
	if segmentBytes == 0 {
		segmentBytes = DefaultSegmentBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log: %w", err)
	}
	head, end, err := lastRecord(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if head.Seq == 0 {
		// A new current file goes on from the last segment.
		if segs, _ := segments(dir); len(segs) > 0 {
			sf, err := os.Open(segs[len(segs)-1])
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("open audit segment: %w", err)
			}
			head, _, err = lastRecord(sf)
			sf.Close()
			if err != nil {
				f.Close()
				return nil, err
			}
		}
	}
	if err := f.Truncate(end); err != nil {
		f.Close()
		return nil, fmt.Errorf("truncate torn audit record: %w", err)
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek audit log: %w", err)
	}
	l := &Log{dir: dir, path: path, f: f, head: head, durHead: head, size: end, durable: end,
		segmentBytes: max(segmentBytes, 4096), onChange: opts.OnChange, room: opts.Room,
		reqs: make(chan request, 4096), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// segments lists dir's full segments in order.
func segments(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, SegmentPrefix+"*.jsonl"))
	if err != nil {
		return nil, fmt.Errorf("list audit segments: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// files lists the trail's files in order: the segments, then the current
// file.
func files(dir string) ([]string, error) {
	segs, err := segments(dir)
	if err != nil {
		return nil, err
	}
	return append(segs, filepath.Join(dir, FileName)), nil
}

// rotate makes the current file, fsynced, a segment and starts a new
// one. On failure the current file stays what it was. Called by the
// writer only.
func (l *Log) rotate(w *bufio.Writer) error {
	if err := l.sync(); err != nil {
		return err
	}
	seg := filepath.Join(l.dir, fmt.Sprintf("%s%020d.jsonl", SegmentPrefix, l.Head().Seq))
	if err := os.Rename(l.path, seg); err != nil {
		return fmt.Errorf("make audit segment: %w", err)
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if rerr := os.Rename(seg, l.path); rerr != nil {
			return fmt.Errorf("start audit file: %w (and %s could not be renamed back: %v)", err, seg, rerr)
		}
		return fmt.Errorf("start audit file: %w", err)
	}
	l.f.Close() // fsynced above
	if d, err := os.Open(l.dir); err == nil {
		d.Sync()
		d.Close()
	}
	l.f, l.size, l.durable = f, 0, 0
	w.Reset(f)
	return nil
}

// Dir is the trail's directory.
func (l *Log) Dir() string { return l.dir }

// lastRecord finds the last complete record and the offset just after it.
func lastRecord(f *os.File) (Head, int64, error) {
	head := Head{Hash: genesis}
	var end int64
	br := bufio.NewReaderSize(f, 1<<16)
	var off int64
	for {
		line, err := br.ReadBytes('\n')
		off += int64(len(line))
		if errors.Is(err, io.EOF) {
			return head, end, nil // a line without '\n' is torn
		}
		if err != nil {
			return Head{}, 0, fmt.Errorf("read audit log: %w", err)
		}
		// A complete line that does not parse was damaged after it was
		// written: it stays for Verify to name, and the chain goes on
		// from the last record that parses.
		var r Record
		if json.Unmarshal(line, &r) == nil {
			head = Head{Seq: r.Seq, Hash: r.Hash}
		}
		end = off
	}
}

// Path is the trail's file.
func (l *Log) Path() string { return l.path }

// Head returns the last record written.
func (l *Log) Head() Head {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// DurableHead returns the last record known to be on disk (fsynced). A
// record after it can still be lost, and its sequence number given to
// another record, if the disk fails before the next fsync: anchor this
// one.
func (l *Log) DurableHead() Head {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durHead
}

// Err returns why the log cannot be written now, or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Append queues r; it is written soon and fsynced within a second.
func (l *Log) Append(r Record) error {
	return l.send(request{rec: r})
}

// AppendSync writes r and returns once it is on disk (fsynced).
func (l *Log) AppendSync(ctx context.Context, r Record) error {
	done := make(chan error, 1)
	if err := l.send(request{rec: r, sync: true, done: done}); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("audit record not yet durable: %w", ctx.Err())
	}
}

func (l *Log) send(q request) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.err != nil {
		err := l.err
		l.lost++
		if l.node == "" {
			l.node = q.rec.Node
		}
		l.mu.Unlock()
		return err
	}
	l.wg.Add(1)
	l.mu.Unlock()
	defer l.wg.Done()
	select {
	case l.reqs <- q:
		return nil
	case <-l.done:
		return ErrClosed
	}
}

// Close writes what is queued, fsyncs and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.wg.Wait() // no sender is between the closed check and the channel
	close(l.reqs)
	<-l.done
	return l.f.Close()
}

// syncGap caps how long the writer waits between two fsyncs. Under load
// fsyncs come back to back; each one is a journal commit of the file
// system, which raft's log needs too. Waiting, after an fsync, as long as
// that fsync took lets more records share the next one and leaves the
// journal to raft: when the disk is idle an fsync is quick and nobody
// waits; when it is busy fsyncs slow down and batches grow. On the 2-core
// bench machine fsyncing at once held 256 writers on 64 names to 4,300
// writes/s (11,000 without the trail).
const syncGap = 2 * time.Millisecond

// drain adds what is queued (up to a bound) to batch without waiting.
func (l *Log) drain(batch []request) []request {
	for len(batch) < 4096 {
		select {
		case q, ok := <-l.reqs:
			if !ok {
				return batch
			}
			batch = append(batch, q)
		default:
			return batch
		}
	}
	return batch
}

// run is the writer: it takes a batch of queued records, chains and
// writes them, and fsyncs when a caller waits or a second has passed.
// After a failure it retries, with backoff, until it can write the gap
// record.
func (l *Log) run() {
	defer close(l.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	w := bufio.NewWriterSize(l.f, 1<<16)
	var lastSync time.Time
	var syncTook time.Duration
	var batch []request
	var retry <-chan time.Time
	backoff := retryMin
	broke := func(err error, unwritten int) {
		l.fail(w, err, unwritten)
		if retry == nil {
			backoff = retryMin
			retry = time.After(backoff)
		}
	}
	for {
		select {
		case q, ok := <-l.reqs:
			if !ok {
				if l.pending > 0 && l.Err() == nil {
					l.sync()
				}
				return
			}
			batch = l.drain(append(batch[:0], q))
			if err := l.Err(); err != nil {
				// Queued before the log broke.
				l.refuse(batch, err)
				continue
			}
			needSync := slices.ContainsFunc(batch, func(q request) bool { return q.sync })
			if needSync {
				// Spacing fsyncs lets more records share one: wait, since
				// the last fsync, as long as that fsync took (see syncGap).
				if wait := min(syncTook, syncGap) - time.Since(lastSync); wait > 0 {
					time.Sleep(wait)
					batch = l.drain(batch)
				}
			}
			err := l.hasRoom()
			if err == nil {
				err = l.write(w, batch)
			}
			if err != nil {
				broke(err, len(batch))
			} else if needSync {
				t0 := time.Now()
				err = l.sync()
				lastSync = time.Now()
				syncTook = lastSync.Sub(t0)
				if err != nil {
					broke(err, 0)
				}
			}
			if err != nil {
				err = l.Err()
			}
			for _, q := range batch {
				if q.done != nil {
					q.done <- err
				}
			}
			if err == nil && l.size >= l.segmentBytes {
				if err := l.rotate(w); err != nil {
					broke(err, 0)
				}
			}
		case <-tick.C:
			if l.pending > 0 && l.Err() == nil {
				if err := l.sync(); err != nil {
					broke(err, 0)
				}
			}
		case <-retry:
			if l.recover(w) {
				retry = nil
				continue
			}
			backoff = min(2*backoff, retryMax)
			retry = time.After(backoff)
		}
	}
}

// hasRoom asks Options.Room.
func (l *Log) hasRoom() error {
	if l.room == nil {
		return nil
	}
	return l.room()
}

// refuse answers requests that were queued when the log broke: they are
// left without a record.
func (l *Log) refuse(batch []request, err error) {
	l.mu.Lock()
	l.lost += uint64(len(batch))
	if l.node == "" {
		l.node = batch[0].rec.Node
	}
	l.mu.Unlock()
	for _, q := range batch {
		if q.done != nil {
			q.done <- err
		}
	}
}

// write chains and writes batch after the head. Called by the writer.
func (l *Log) write(w *bufio.Writer, batch []request) error {
	recs := make([]Record, len(batch))
	for i, q := range batch {
		recs[i] = q.rec
	}
	head, err := l.encode(w, recs, l.Head())
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.head = head
	if l.node == "" && len(recs) > 0 {
		l.node = recs[0].Node
	}
	l.mu.Unlock()
	l.pending += uint64(len(recs))
	return nil
}

// encode writes recs chained after head and flushes; it returns the new
// head. The file may hold part of them on error.
func (l *Log) encode(w *bufio.Writer, recs []Record, head Head) (Head, error) {
	for _, r := range recs {
		r.Seq = head.Seq + 1
		r.Prev = head.Hash
		// One encoding serves the hash and the line: the hash is the last
		// field and is left out of what it covers.
		data, err := json.Marshal(r)
		if err != nil {
			return Head{}, fmt.Errorf("encode audit record: %w", err)
		}
		sum := sha256.New()
		sum.Write([]byte(r.Prev))
		sum.Write(data)
		h := hex.EncodeToString(sum.Sum(nil))
		w.Write(data[:len(data)-1])
		w.WriteString(`,"hash":"` + h + "\"}\n")
		l.size += int64(len(data)) + int64(len(h)) + 11
		head = Head{Seq: r.Seq, Hash: h}
	}
	if err := w.Flush(); err != nil {
		return Head{}, fmt.Errorf("write audit log: %w", err)
	}
	return head, nil
}

// sync fsyncs the file: what is written is durable. Called by the writer.
func (l *Log) sync() error {
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("sync audit log: %w", err)
	}
	l.durable, l.pending = l.size, 0
	l.mu.Lock()
	l.durHead = l.head
	l.mu.Unlock()
	return nil
}

// fail breaks the log after err: the records written since the last
// fsync, and unwritten more, are counted as lost, and the file is cut
// back to what is durable, so that no record that was not acknowledged as
// durable stays, torn or whole, to be chained to. Called by the writer.
func (l *Log) fail(w *bufio.Writer, err error, unwritten int) {
	l.mu.Lock()
	first := l.err == nil
	if first {
		l.err = fmt.Errorf("%w: %w", ErrBroken, err)
		l.brokenAt, l.cause = time.Now().UTC(), err
	}
	l.lost += l.pending + uint64(unwritten)
	l.pending = 0
	l.rollback(w) // if this fails too, recover tries again
	broken := l.err
	l.mu.Unlock()
	if first && l.onChange != nil {
		l.onChange(broken)
	}
}

// rollback cuts the file back to its durable length and the head back to
// the durable head. Called by the writer with mu held.
func (l *Log) rollback(w *bufio.Writer) error {
	w.Reset(l.f)
	l.head = l.durHead
	if err := l.f.Truncate(l.durable); err != nil {
		return fmt.Errorf("cut audit log back to %d bytes: %w", l.durable, err)
	}
	if _, err := l.f.Seek(l.durable, io.SeekStart); err != nil {
		return fmt.Errorf("seek audit log: %w", err)
	}
	l.size = l.durable
	return nil
}

// recover tries to write and fsync the gap record of a broken log; it
// reports whether the log takes records again. It holds the lock
// throughout (a write and an fsync), so that appends wait and none is
// left out of the count. Called by the writer.
func (l *Log) recover(w *bufio.Writer) bool {
	if l.hasRoom() != nil {
		return false
	}
	l.mu.Lock()
	if err := l.rollback(w); err != nil {
		l.mu.Unlock()
		return false
	}
	now := time.Now().UTC()
	gap := Record{Time: now, Node: l.node, Operation: "audit trail gap", Outcome: OutcomeGap, Lost: l.lost,
		Detail: fmt.Sprintf("the trail could not be written from %s to %s (%v); %d requests were answered or refused in that time and have no record",
			l.brokenAt.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano), l.cause, l.lost)}
	head, err := l.encode(w, []Record{gap}, l.durHead)
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		l.rollback(w)
		l.mu.Unlock()
		return false
	}
	l.head, l.durHead = head, head
	l.durable, l.pending = l.size, 0
	l.err, l.cause, l.lost = nil, nil, 0
	l.mu.Unlock()
	if l.onChange != nil {
		l.onChange(nil)
	}
	return true
}

// Filter selects records when reading. Zero fields match everything.
type Filter struct {
	Since     time.Time
	Until     time.Time
	Principal string
	// Object matches the record's object exactly, or any object under it
	// when it ends with "/" (e.g. "/secrets/"), in any letter case.
	Object string
	// Outcome matches exactly (allowed, denied, ...).
	Outcome string
}

// Match reports whether r passes the filter.
func (f Filter) Match(r Record) bool {
	if !f.Since.IsZero() && r.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !r.Time.Before(f.Until) {
		return false
	}
	if f.Principal != "" && r.Principal != f.Principal {
		return false
	}
	if f.Outcome != "" && r.Outcome != f.Outcome {
		return false
	}
	if f.Object != "" {
		// Object names are case-insensitive: compared on the canonical
		// form, so records written before names were canonical match too.
		if f.Object[len(f.Object)-1] == '/' {
			return objname.HasPrefix(r.Object, f.Object)
		}
		return objname.Equal(r.Object, f.Object)
	}
	return true
}

// Read calls fn for every record of the file at path that matches f, in
// order, until fn returns false. Lines that do not parse are skipped
// (Verify reports them).
func Read(path string, f Filter, fn func(Record) bool) error {
	_, err := readFile(path, f, fn)
	return err
}

// ReadTrail is Read over every file of the trail in dir, oldest first.
func ReadTrail(dir string, f Filter, fn func(Record) bool) error {
	paths, err := files(dir)
	if err != nil {
		return err
	}
	for _, p := range paths {
		stopped, err := readFile(p, f, fn)
		if err != nil || stopped {
			return err
		}
	}
	return nil
}

// readFile is Read that says whether fn stopped it.
func readFile(path string, f Filter, fn func(Record) bool) (bool, error) {
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // a segment made or removed meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("open audit log: %w", err)
	}
	defer file.Close()
	br := bufio.NewReaderSize(file, 1<<16)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var r Record
			if json.Unmarshal(line, &r) == nil && f.Match(r) && !fn(r) {
				return true, nil
			}
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("read audit log: %w", err)
		}
	}
}

// Problem names the first bad record a verification found.
type Problem struct {
	// File is the trail file (base name) and Line the 1-based line in
	// it; Seq is the sequence number expected there.
	File   string `json:"file,omitempty"`
	Line   int    `json:"line"`
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

// Result is the outcome of Verify.
type Result struct {
	Records uint64 `json:"records"`
	// Start is the first record the trail still holds: above 1 when
	// older segments were removed (after shipping them elsewhere).
	Start   uint64   `json:"start,omitempty"`
	Head    Head     `json:"head"`
	OK      bool     `json:"ok"`
	Problem *Problem `json:"problem,omitempty"`
	// Gaps is how many gap records the trail holds (times it could not
	// be written, a full disk), and Lost how many requests they say have
	// no record. The chain is whole across a gap: verify accepts it.
	Gaps int    `json:"gaps,omitempty"`
	Lost uint64 `json:"lost,omitempty"`
}

// Verify checks one trail file that starts at record 1; see VerifyTrail.
func Verify(path string, anchors ...Head) (Result, error) {
	return verifyFiles([]string{path}, anchors, false)
}

// VerifyTrail checks the trail in dir, segments and current file in
// order: every line parses, sequence numbers follow each other, each
// record's prev is the hash before it and its hash is right. anchors are
// heads recorded elsewhere (in Raft): the trail must still hold each of
// them unchanged, which catches a trail rewritten from some record on or
// cut short. Segments removed from the front (retention) are allowed: the
// trail then starts at a later record, which Result.Start says, and
// anchors before it are not checked.
func VerifyTrail(dir string, anchors ...Head) (Result, error) {
	paths, err := files(dir)
	if err != nil {
		return Result{}, err
	}
	return verifyFiles(paths, anchors, len(paths) > 1)
}

// VerifyTrailFrom is VerifyTrail over only the files that hold records at
// or after from (the current file and the segments whose last record is
// not before it): a check against recent anchors without reading years of
// trail.
func VerifyTrailFrom(dir string, from uint64, anchors ...Head) (Result, error) {
	paths, err := files(dir)
	if err != nil {
		return Result{}, err
	}
	keep := paths[:0:0]
	for _, p := range paths[:len(paths)-1] {
		var last uint64
		if _, err := fmt.Sscanf(filepath.Base(p), SegmentPrefix+"%d.jsonl", &last); err == nil && last < from {
			continue
		}
		keep = append(keep, p)
	}
	keep = append(keep, paths[len(paths)-1])
	return verifyFiles(keep, anchors, true)
}

// verifyFiles checks paths in order; laterStart lets the first file
// begin after record 1 (older files removed or left out).
func verifyFiles(paths []string, anchors []Head, laterStart bool) (Result, error) {
	want := map[uint64]string{}
	var maxAnchor uint64
	for _, a := range anchors {
		if a.Seq > 0 {
			want[a.Seq] = a.Hash
			maxAnchor = max(maxAnchor, a.Seq)
		}
	}
	res := Result{Head: Head{Hash: genesis}}
	first := laterStart
	var goodAnchor uint64 // the last anchored record found intact
	var file string
	line := 0
	fail := func(seq uint64, format string, args ...any) (Result, error) {
		res.Problem = &Problem{File: file, Line: line, Seq: seq, Reason: fmt.Sprintf(format, args...)}
		return res, nil
	}
	for _, path := range paths {
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) && len(paths) > 1 {
			continue
		}
		if err != nil {
			return Result{}, fmt.Errorf("open audit log: %w", err)
		}
		file, line = filepath.Base(path), 0
		br := bufio.NewReaderSize(f, 1<<16)
		for {
			data, rerr := br.ReadBytes('\n')
			if len(data) > 0 {
				line++
				next := res.Head.Seq + 1
				if data[len(data)-1] != '\n' {
					f.Close()
					return fail(next, "record %d is cut short (no end of line)", next)
				}
				var r Record
				dec := json.NewDecoder(bytes.NewReader(data))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&r); err != nil {
					f.Close()
					return fail(next, "record %d does not parse: it was edited", next)
				}
				if first {
					// The oldest file present: older ones may have been
					// removed, so it may start after record 1.
					first = false
					if r.Seq > 1 {
						res.Start = r.Seq
						res.Head = Head{Seq: r.Seq - 1, Hash: r.Prev}
						next = r.Seq
					}
				}
				switch {
				case r.Seq > next:
					f.Close()
					return fail(next, "record %d is missing or out of order: found %d after %d (removed or reordered)", next, r.Seq, res.Head.Seq)
				case r.Seq < next:
					f.Close()
					return fail(next, "record %d is out of order: found %d after %d (reordered or duplicated)", next, r.Seq, res.Head.Seq)
				case r.Prev != res.Head.Hash:
					f.Close()
					return fail(next, "record %d does not follow the record before it (removed or reordered)", next)
				}
				h, err := chainHash(r)
				if err != nil {
					f.Close()
					return Result{}, err
				}
				if h != r.Hash {
					f.Close()
					return fail(next, "record %d was changed: its hash does not match its content", next)
				}
				if a, ok := want[r.Seq]; ok {
					if a != r.Hash {
						f.Close()
						return fail(next, "record %d differs from its anchor replicated through raft: after record %d the trail was changed, or cut and written on, or rewritten", next, goodAnchor)
					}
					goodAnchor = r.Seq
				}
				if r.Outcome == OutcomeGap {
					res.Gaps++
					res.Lost += r.Lost
				}
				res.Records++
				res.Head = Head{Seq: r.Seq, Hash: r.Hash}
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				f.Close()
				return Result{}, fmt.Errorf("read audit log: %w", rerr)
			}
		}
		f.Close()
	}
	if res.Head.Seq < maxAnchor {
		line++
		return fail(res.Head.Seq+1, "the trail ends at record %d but raft anchored record %d: records were removed from the end", res.Head.Seq, maxAnchor)
	}
	res.OK = true
	return res, nil
}
