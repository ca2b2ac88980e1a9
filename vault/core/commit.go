package core

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/certvault/certvault/raftstore"
)

// How core code writes: it builds a raftstore.Batch from the state it
// read and commits it; the raft index it returns is what a front reports
// (the Key Vault front: X-Certvault-Index). Core code is the only code
// that builds batches for objects.

// Commit commits b and returns its raft index.
func (c *Core) Commit(ctx context.Context, b *raftstore.Batch) (uint64, error) {
	return c.Store.Apply(ctx, b)
}

// maxCASAttempts bounds commitCAS's retries.
const maxCASAttempts = 16

// CommitCAS commits the batch that build makes from the current state
// and returns its index; when a compare-and-set in it loses a race, it
// brings the local state up to date and builds again. build's own errors
// are returned as they are.
func (c *Core) CommitCAS(ctx context.Context, build func() (*raftstore.Batch, error)) (uint64, error) {
	var err error
	for attempt := 0; attempt < maxCASAttempts; attempt++ {
		var b *raftstore.Batch
		if b, err = build(); err != nil {
			return 0, err
		}
		var idx uint64
		if idx, err = c.Commit(ctx, b); !errors.Is(err, raftstore.ErrConflict) {
			return idx, err
		}
		if err := c.Store.Linearize(ctx); err != nil {
			return 0, err
		}
	}
	return 0, err
}

// nameLockStripes is the number of mutexes that serialize writes to one
// object name on this node (names share a stripe by hash).
const nameLockStripes = 4096

// lockObject serializes writes to one object on this node, so that
// concurrent writers of one name queue instead of losing compare-and-set
// races and wasting raft entries. It returns the unlock function.
func (c *Core) lockObject(kind, name string) func() {
	h := fnv.New32a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(name))
	mu := &c.nameLocks[h.Sum32()%nameLockStripes]
	mu.Lock()
	return mu.Unlock
}

// NewVersionID returns a Key Vault style version id (32 hex digits).
func NewVersionID() (string, error) { return RandomID(16) }

// nowUnix is the core's clock.
func nowUnix() int64 { return time.Now().Unix() }
