package raftstore

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"math"
	"time"
	"unsafe"

	"github.com/google/btree"
)

// snapshotMagic opens every snapshot: the format name and version.
// Version 02 added the time the snapshot was taken; version 01 files
// (without it) still decode, with a zero time.
var (
	snapshotMagic   = []byte("CVSNAP02")
	snapshotMagicV1 = []byte("CVSNAP01")
)

// maxSnapshotString bounds one key or value in a snapshot: a longer length
// is refused at once.
const maxSnapshotString = 64 << 20

// keyArena is the size of the arenas decoded keys share; keyArenaMax the
// longest key read into one.
const (
	keyArena    = 64 << 10
	keyArenaMax = 512
)

// entrySlab is how many entries a decode allocates at once.
const entrySlab = 1024

// snapshotChunk is the most a length prefix makes the decoder allocate
// before the bytes it announces have arrived; see readLen.
const snapshotChunk = 64 << 10

// encodeSnapshot writes the state as: magic, applied index, the time it
// was taken (Unix seconds, 0 when unknown), the entries
// (count, then key, value, index, create index each), the change records
// (count, then key and index each) and a SHA-256 of all the bytes before it.
func encodeSnapshot(w io.Writer, s *fsmSnapshot) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 256<<10)
	var scratch [binary.MaxVarintLen64]byte
	putU := func(v uint64) {
		n := binary.PutUvarint(scratch[:], v)
		bw.Write(scratch[:n])
	}
	putB := func(b []byte) {
		putU(uint64(len(b)))
		bw.Write(b)
	}
	bw.Write(snapshotMagic)
	putU(s.applied)
	var taken uint64
	if !s.taken.IsZero() && s.taken.Unix() > 0 {
		taken = uint64(s.taken.Unix())
	}
	putU(taken)
	putU(uint64(s.entries.Len()))
	var err error
	s.entries.Ascend(func(e *Entry) bool {
		// A long value is read from the value log, which the snapshot
		// pins: the whole state never sits in memory at once.
		var v []byte
		if v, err = e.value(); err != nil {
			return false
		}
		putB([]byte(e.Key))
		putB(v)
		putU(e.Index)
		putU(e.CreateIndex)
		return true
	})
	if err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	putU(uint64(s.changes.Len()))
	s.changes.Ascend(func(c change) bool {
		putB([]byte(c.key))
		putU(c.index)
		return true
	})
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := w.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("write snapshot checksum: %w", err)
	}
	return nil
}

// snapshotState is a decoded, verified snapshot.
type snapshotState struct {
	applied uint64
	// taken is when the snapshot was taken; zero when the file does not
	// say (format 01).
	taken   time.Time
	entries *btree.BTreeG[*Entry]
	changes *btree.BTreeG[change]
	// size is the snapshot's length in bytes.
	size int64
}

// snapshotReader is what decodeSnapshot reads through: a buffer that
// counts the bytes consumed (so a value's offset in the file is known)
// over a tailHasher.
type snapshotReader struct {
	r    *bufio.Reader
	tail *tailHasher
	pos  int64
}

func newSnapshotReader(r io.Reader) *snapshotReader {
	t := &tailHasher{r: r, h: sha256.New()}
	return &snapshotReader{r: bufio.NewReaderSize(t, 256<<10), tail: t}
}

func (sr *snapshotReader) ReadByte() (byte, error) {
	c, err := sr.r.ReadByte()
	if err == nil {
		sr.pos++
	}
	return c, err
}

func (sr *snapshotReader) Read(p []byte) (int, error) {
	n, err := sr.r.Read(p)
	sr.pos += int64(n)
	return n, err
}

// skip consumes n bytes without copying them anywhere.
func (sr *snapshotReader) skip(n int) error {
	k, err := sr.r.Discard(n)
	sr.pos += int64(k)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// tailHasher hashes every byte it reads except the last sha256.Size of
// the stream, which it holds back: at the end of the stream, those are
// the trailer and the hash covers exactly what came before. It hashes
// below the decoder's buffer, a buffer at a time, not a byte at a time.
type tailHasher struct {
	r    io.Reader
	h    hash.Hash
	held [sha256.Size]byte
	n    int
}

func (t *tailHasher) Read(p []byte) (int, error) {
	k, err := t.r.Read(p)
	if k > 0 && t.h != nil {
		t.feed(p[:k])
	}
	return k, err
}

// feed takes b, the next bytes of the stream.
func (t *tailHasher) feed(b []byte) {
	total := t.n + len(b)
	if total <= len(t.held) {
		copy(t.held[t.n:], b)
		t.n = total
		return
	}
	out := total - len(t.held) // bytes that can no longer be the trailer
	if out <= t.n {
		t.h.Write(t.held[:out])
		kept := copy(t.held[:], t.held[out:t.n])
		copy(t.held[kept:], b)
	} else {
		t.h.Write(t.held[:t.n])
		t.h.Write(b[:out-t.n])
		copy(t.held[:], b[out-t.n:])
	}
	t.n = len(t.held)
}

// readLen reads exactly n bytes from r. It trusts n only as far as the
// input bears it out: it allocates at most snapshotChunk up front and then
// doubles the buffer as the bytes arrive, so a length prefix that claims
// more than the input holds fails at the end of the input having allocated
// at most a few times what was actually read (a 20-byte file claiming a
// 64 MiB value used to allocate the 64 MiB before reading anything).
func readLen(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, 0, min(n, snapshotChunk))
	for {
		k, err := io.ReadFull(r, b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, fmt.Errorf("read %d of %d bytes: %w", len(b), n, err)
		}
		if len(b) == n {
			return b, nil
		}
		grown := make([]byte, len(b), min(n, 2*cap(b)))
		copy(grown, b)
		b = grown
	}
}

// decodeSnapshot reads and verifies a whole snapshot, writing its long
// values to sp's segments (nil: all in memory), or, when sp borrows the
// file r reads (from its first byte), pointing them at where they lie in
// it. Any error wraps ErrBadSnapshot, and no partial state escapes (the
// caller discards sp).
func decodeSnapshot(r io.Reader, sp *spiller) (*snapshotState, error) {
	return decodeSnapshotSum(r, sp, true)
}

// decodeSnapshotSum is decodeSnapshot that, unless verify is set, leaves
// the checksum to the caller (restoreFile hashes the file on another
// core while this decodes it); everything else is checked all the same.
func decodeSnapshotSum(r io.Reader, sp *spiller, verify bool) (*snapshotState, error) {
	hr := newSnapshotReader(r)
	if !verify {
		hr.tail.h = nil
	}
	bad := func(what string, err error) error {
		if err == nil {
			return fmt.Errorf("%s: %w", what, ErrBadSnapshot)
		}
		return fmt.Errorf("%s: %w: %w", what, err, ErrBadSnapshot)
	}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(hr, magic); err != nil || !bytes.Equal(magic, snapshotMagic) && !bytes.Equal(magic, snapshotMagicV1) {
		return nil, bad("not a certvault snapshot (bad header)", err)
	}
	getU := func() (uint64, error) { return binary.ReadUvarint(hr) }
	getB := func() ([]byte, error) {
		n, err := getU()
		if err != nil {
			return nil, err
		}
		if n > maxSnapshotString {
			return nil, fmt.Errorf("length %d over the limit of %d", n, maxSnapshotString)
		}
		return readLen(hr, int(n))
	}
	// Keys up to keyArenaMax bytes are read into shared arenas, and each
	// key's string points into one: a million-version state has millions
	// of keys, and the garbage collector marks one arena of 64 KiB
	// instead of some hundreds of separate strings. An arena's bytes are
	// never written again once a key points at them.
	var arena []byte
	getKey := func() (string, error) {
		n, err := getU()
		if err != nil {
			return "", err
		}
		if n > keyArenaMax {
			if n > maxSnapshotString {
				return "", fmt.Errorf("length %d over the limit of %d", n, maxSnapshotString)
			}
			b, err := readLen(hr, int(n))
			return string(b), err
		}
		if n == 0 {
			return "", nil
		}
		if len(arena)+int(n) > cap(arena) {
			arena = make([]byte, 0, keyArena)
		}
		b := arena[len(arena) : len(arena)+int(n)]
		if _, err := io.ReadFull(hr, b); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		arena = arena[:len(arena)+int(n)]
		return unsafe.String(&b[0], len(b)), nil
	}
	st := &snapshotState{
		entries: btree.NewG(btreeDegree, lessEntry),
		changes: btree.NewG(btreeDegree, lessChange),
	}
	var err error
	if st.applied, err = getU(); err != nil {
		return nil, bad("read applied index", err)
	}
	if bytes.Equal(magic, snapshotMagic) {
		taken, err := getU()
		if err != nil {
			return nil, bad("read snapshot time", err)
		}
		if taken > math.MaxInt32*4 { // past the year 2514: not a time this code wrote
			return nil, bad(fmt.Sprintf("snapshot time %d out of range", taken), nil)
		}
		if taken > 0 {
			st.taken = time.Unix(int64(taken), 0).UTC()
		}
	}
	n, err := getU()
	if err != nil {
		return nil, bad("read entry count", err)
	}
	var slab []Entry
	for i := uint64(0); i < n; i++ {
		// Entries come from slabs: one allocation per slab instead of
		// one per entry (a million versions are several million).
		if len(slab) == 0 {
			slab = make([]Entry, min(n-i, entrySlab))
		}
		e := &slab[0]
		slab = slab[1:]
		if e.Key, err = getKey(); err != nil {
			return nil, bad(fmt.Sprintf("read entry %d key", i), err)
		}
		vlen, err := getU()
		if err == nil && vlen > maxSnapshotString {
			err = fmt.Errorf("length %d over the limit of %d", vlen, maxSnapshotString)
		}
		if err != nil {
			return nil, bad(fmt.Sprintf("read entry %q value", e.Key), err)
		}
		// A long value stays where it lies in a borrowed file, or goes
		// straight from the stream to the value log; never a slice of
		// its own.
		if sp.wants(e.Key, int(vlen)) && sp.borrow != nil {
			sp.borrowAt(hr.pos, int(vlen), e)
			err = hr.skip(int(vlen))
		} else if sp.wants(e.Key, int(vlen)) {
			err = sp.spillFrom(hr, int(vlen), e)
		} else if e.Value, err = readLen(hr, int(vlen)); err == nil {
			err = sp.spill(e)
		}
		if err != nil {
			return nil, bad(fmt.Sprintf("read entry %q value", e.Key), err)
		}
		if len(e.Value) == 0 {
			e.Value = nil
		}
		if e.Index, err = getU(); err != nil {
			return nil, bad(fmt.Sprintf("read entry %q index", e.Key), err)
		}
		if e.CreateIndex, err = getU(); err != nil {
			return nil, bad(fmt.Sprintf("read entry %q create index", e.Key), err)
		}
		st.entries.ReplaceOrInsert(e)
	}
	if n, err = getU(); err != nil {
		return nil, bad("read change count", err)
	}
	for i := uint64(0); i < n; i++ {
		k, err := getB()
		if err != nil {
			return nil, bad(fmt.Sprintf("read change %d key", i), err)
		}
		idx, err := getU()
		if err != nil {
			return nil, bad(fmt.Sprintf("read change %q index", k), err)
		}
		// Snapshots written before keys lost their own records hold
		// them too; a directory's is all a restored state needs.
		if len(k) == 0 || k[len(k)-1] == '/' {
			st.changes.ReplaceOrInsert(change{key: string(k), index: idx})
		}
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(hr, got); err != nil {
		return nil, bad("read checksum", err)
	}
	if _, err := hr.r.ReadByte(); err != io.EOF {
		return nil, bad("trailing data after checksum", nil)
	}
	// At the end of the stream the hasher holds back exactly the
	// trailer just read and has hashed everything before it.
	if verify && (hr.tail.n != sha256.Size || !bytes.Equal(got, hr.tail.held[:]) || !bytes.Equal(got, hr.tail.h.Sum(nil))) {
		return nil, bad("checksum mismatch (file is corrupt)", nil)
	}
	if err := sp.flush(); err != nil {
		return nil, bad("write the value log", err)
	}
	st.size = hr.pos
	return st, nil
}
