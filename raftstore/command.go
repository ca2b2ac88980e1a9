package raftstore

import (
	"encoding/binary"
	"fmt"
)

// CommandType is the first byte of every raft log entry the store writes.
// A type with IgnorableFlag set may be skipped by a replica that does not
// know it (an older binary during an upgrade); any other unknown type stops
// the replica, because diverging replicas are worse than a crash.
type CommandType byte

const (
	// CmdBatch is an atomic batch of key operations with preconditions.
	CmdBatch CommandType = 1

	// IgnorableFlag marks a command type that old replicas may skip.
	IgnorableFlag CommandType = 0x80
)

// OpKind says what an Op does.
type OpKind byte

const (
	// OpPut stores Value under Key.
	OpPut OpKind = 1
	// OpDelete removes Key; deleting a missing key is not an error.
	OpDelete OpKind = 2
	// OpCheck changes nothing; it only asserts its precondition, so a batch
	// can depend on a key it does not write.
	OpCheck OpKind = 3
	// OpDeletePrefix removes every key that starts with Key.
	OpDeletePrefix OpKind = 4
)

// NotExist is the value of Op.IfIndex that requires the key to be absent.
const NotExist uint64 = 0

// Op is one operation of a Batch.
type Op struct {
	Kind  OpKind
	Key   string
	Value []byte
	// HasIf makes IfIndex a precondition: the key's current modify index
	// must equal IfIndex, or the key must be absent when IfIndex is
	// NotExist.
	HasIf   bool
	IfIndex uint64
}

// Batch is a list of operations applied atomically: either every
// precondition holds and every operation is applied at one log index, or
// nothing changes and Apply returns ErrConflict.
type Batch struct {
	Ops []Op
}

// Put appends an unconditional put.
func (b *Batch) Put(key string, value []byte) *Batch {
	b.Ops = append(b.Ops, Op{Kind: OpPut, Key: key, Value: value})
	return b
}

// PutIf appends a put that requires the key's modify index to be index
// (NotExist: the key must be absent).
func (b *Batch) PutIf(key string, value []byte, index uint64) *Batch {
	b.Ops = append(b.Ops, Op{Kind: OpPut, Key: key, Value: value, HasIf: true, IfIndex: index})
	return b
}

// Delete appends an unconditional delete.
func (b *Batch) Delete(key string) *Batch {
	b.Ops = append(b.Ops, Op{Kind: OpDelete, Key: key})
	return b
}

// DeleteIf appends a delete that requires the key's modify index to be index.
func (b *Batch) DeleteIf(key string, index uint64) *Batch {
	b.Ops = append(b.Ops, Op{Kind: OpDelete, Key: key, HasIf: true, IfIndex: index})
	return b
}

// DeletePrefix appends the removal of every key under prefix.
func (b *Batch) DeletePrefix(prefix string) *Batch {
	b.Ops = append(b.Ops, Op{Kind: OpDeletePrefix, Key: prefix})
	return b
}

// Check appends a precondition on a key that the batch does not write.
func (b *Batch) Check(key string, index uint64) *Batch {
	b.Ops = append(b.Ops, Op{Kind: OpCheck, Key: key, HasIf: true, IfIndex: index})
	return b
}

// maxCommandSize bounds a decoded command so that a corrupt length cannot
// make a replica allocate without limit.
const maxCommandSize = 64 << 20

// Encode serialises the batch as a raft log entry: the type byte, then a
// compact binary body (uvarint counts and lengths). The encoding is
// deterministic.
func (b *Batch) Encode() []byte {
	size := 1 + binary.MaxVarintLen64
	for _, op := range b.Ops {
		size += 2 + 3*binary.MaxVarintLen64 + len(op.Key) + len(op.Value)
	}
	buf := make([]byte, 0, size)
	buf = append(buf, byte(CmdBatch))
	buf = binary.AppendUvarint(buf, uint64(len(b.Ops)))
	for _, op := range b.Ops {
		flags := byte(0)
		if op.HasIf {
			flags = 1
		}
		buf = append(buf, byte(op.Kind), flags)
		buf = binary.AppendUvarint(buf, op.IfIndex)
		buf = binary.AppendUvarint(buf, uint64(len(op.Key)))
		buf = append(buf, op.Key...)
		buf = binary.AppendUvarint(buf, uint64(len(op.Value)))
		buf = append(buf, op.Value...)
	}
	return buf
}

// decodeBatch parses the body of a CmdBatch entry (without the type byte).
func decodeBatch(data []byte) (*Batch, error) {
	if len(data) > maxCommandSize {
		return nil, fmt.Errorf("decode batch: %d bytes: %w", len(data), ErrBadCommand)
	}
	r := reader{buf: data}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(data)) {
		return nil, fmt.Errorf("decode batch count: %w", ErrBadCommand)
	}
	b := &Batch{Ops: make([]Op, 0, n)}
	for i := uint64(0); i < n; i++ {
		var op Op
		op.Kind = OpKind(r.byte())
		op.HasIf = r.byte() == 1
		op.IfIndex = r.uvarint()
		op.Key = string(r.bytes())
		if v := r.bytes(); len(v) > 0 {
			op.Value = v
		}
		if r.err != nil {
			return nil, fmt.Errorf("decode op %d: %w", i, ErrBadCommand)
		}
		switch op.Kind {
		case OpPut, OpDelete, OpCheck, OpDeletePrefix:
		default:
			return nil, fmt.Errorf("decode op %d: unknown kind %d: %w", i, op.Kind, ErrBadCommand)
		}
		if op.Key == "" && op.Kind != OpDeletePrefix {
			return nil, fmt.Errorf("decode op %d: empty key: %w", i, ErrBadCommand)
		}
		b.Ops = append(b.Ops, op)
	}
	if len(r.buf) != 0 {
		return nil, fmt.Errorf("decode batch: %d trailing bytes: %w", len(r.buf), ErrBadCommand)
	}
	return b, nil
}

// reader is a tiny cursor over a byte slice that remembers the first error.
type reader struct {
	buf []byte
	err error
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.buf) < 1 {
		r.err = ErrBadCommand
		return 0
	}
	c := r.buf[0]
	r.buf = r.buf[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.err = ErrBadCommand
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.buf)) {
		r.err = ErrBadCommand
		return nil
	}
	// Copy so that the state never aliases a raft log buffer.
	out := make([]byte, n)
	copy(out, r.buf[:n])
	r.buf = r.buf[n:]
	return out
}
