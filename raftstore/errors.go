package raftstore

import "errors"

// Sentinel errors returned by the Store. Callers match them with errors.Is.
var (
	// ErrConflict means a precondition of a batch did not hold: a key's
	// modify index was not the expected one, or a key that had to be absent
	// exists. Nothing of the batch was applied.
	ErrConflict = errors.New("raftstore: precondition failed")
	// ErrNoLeader means no leader was known before the context expired.
	ErrNoLeader = errors.New("raftstore: no leader")
	// ErrNotLeader means the operation must run on the leader and this node
	// is not it (returned by operations that are not forwarded).
	ErrNotLeader = errors.New("raftstore: not the leader")
	// ErrTooManyHops means a forwarded request bounced between nodes more
	// often than MaxHops, which happens only while leadership is changing.
	ErrTooManyHops = errors.New("raftstore: too many forwarding hops")
	// ErrBadCommand means a command could not be decoded or is not valid.
	ErrBadCommand = errors.New("raftstore: malformed command")
	// ErrBadSnapshot means a snapshot file is truncated, corrupt or not a
	// certvault snapshot. Nothing was restored.
	ErrBadSnapshot = errors.New("raftstore: invalid snapshot")
	// ErrClosed means the store has been shut down.
	ErrClosed = errors.New("raftstore: store is closed")
	// ErrAmbiguous means a write was handed to raft but its outcome is
	// unknown (leadership was lost before it was confirmed); it may or may
	// not have been committed. Callers must re-read before retrying.
	ErrAmbiguous = errors.New("raftstore: write outcome unknown")
	// ErrUnreachable means a request that is safe to repeat (a read index,
	// or any request that never left this node because no connection to
	// the leader could be made) could not be forwarded to the leader, or
	// its answer was lost: the leader died or is partitioned away. A
	// forwarded write or membership change that may have reached the
	// leader returns ErrAmbiguous instead.
	ErrUnreachable = errors.New("raftstore: leader unreachable")
	// ErrDiskFull means the leader refused a write for lack of disk space
	// (see DiskFullError, which wraps it and says where): it was never
	// proposed, or its append failed before it reached any log, so nothing
	// was applied. Writes resume by themselves once space is freed.
	ErrDiskFull = errors.New("raftstore: disk full")
)
