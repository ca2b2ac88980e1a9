package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// A full disk. raft's leader steps down when an append to its log fails,
// whatever the error, a new leader's first act is another append, and a
// node that cannot record a new term panics: on a full disk a single node
// used to lose and win leadership every couple of seconds, answering each
// write with an internal error and leaving reads without a leader. So:
//
//   - The store refuses writes before it proposes them while the file
//     system of its directory has less than a reserve free (a statfs,
//     cached for diskProbeEvery). A refused write changed nothing.
//   - It keeps a ballast file (ballastName, up to ballastMax) in its
//     directory. A leader's append or a term/vote record that fails for
//     lack of space anyway (someone else filled the disk between two
//     probes) deletes the ballast and is tried once more on the space
//     that frees: the write in flight completes, raft does not step down,
//     and a term can still be recorded. From then on writes are refused.
//     A follower's append does not touch the ballast: the leader sends it
//     again later, and the space is kept for terms and votes.
//   - Recovery needs no restart: once the reserve and a new ballast fit,
//     the ballast is written again and the next write goes through.

// ballastName is the ballast file in the store's directory.
const ballastName = "disk-reserve"

// ballastMax caps the ballast; it is the reserve when that is smaller.
const ballastMax = 4 << 20

// diskProbeEvery is how long a statfs result is trusted.
const diskProbeEvery = 100 * time.Millisecond

// waitStalled is how long WaitApplied waits without progress on a node
// whose disk is full before it gives up.
const waitStalled = 250 * time.Millisecond

// handOffEvery spaces a full leader's attempts to hand leadership over.
const handOffEvery = 10 * time.Second

// defaultReserveCap caps the default reserve (5 % of the file system).
const defaultReserveCap = 64 << 20

// DiskFullError is returned, wrapping ErrDiskFull, when this node (or, for
// a forwarded write, the leader) refused a write for lack of disk space.
// The write was not proposed, or its append failed before it reached any
// log: nothing was applied.
type DiskFullError struct {
	// Detail names the node, the directory and the space, in words.
	Detail string
}

func (e *DiskFullError) Error() string { return ErrDiskFull.Error() + ": " + e.Detail }

// Is makes errors.Is(err, ErrDiskFull) hold.
func (e *DiskFullError) Is(target error) bool { return target == ErrDiskFull }

// diskGuard decides whether the store may propose a write, and keeps the
// ballast. Safe for concurrent use; a nil guard allows everything.
type diskGuard struct {
	node    string
	dir     string
	reserve int64 // 0: 5 % of the file system, at most 64 MiB
	log     *slog.Logger

	mu           sync.Mutex
	probed       time.Time
	free, need   uint64 // need: the reserve, and room for a ballast when there is none
	base         uint64 // the reserve alone
	ballast      int64  // size of the ballast on disk, 0 when there is none
	noBallast    bool   // it cannot be made (not for lack of space): do without
	full         bool
	appendFailed error // the append that failed for lack of space
}

func newDiskGuard(node, dir string, reserve int64, log *slog.Logger) *diskGuard {
	if dir == "" || reserve < 0 {
		return nil
	}
	g := &diskGuard{node: node, dir: dir, reserve: reserve, log: log}
	if fi, err := os.Stat(g.ballastPath()); err == nil {
		g.ballast = fi.Size()
	}
	return g
}

func (g *diskGuard) ballastPath() string { return filepath.Join(g.dir, ballastName) }

// check returns a *DiskFullError while writes must be refused.
func (g *diskGuard) check() error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now := time.Now(); now.Sub(g.probed) >= diskProbeEvery {
		g.probe(now)
	}
	if !g.full {
		return nil
	}
	return g.errLocked()
}

// isFull reports the last known state without probing.
func (g *diskGuard) isFull() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.full
}

// probe reads the free space and updates the state. Without its
// ballast the store needs room for a new one too. Called with mu held.
func (g *diskGuard) probe(now time.Time) {
	g.probed = now
	var st syscall.Statfs_t
	if err := syscall.Statfs(g.dir, &st); err != nil {
		// Unknown: an append will tell.
		return
	}
	bsize := uint64(st.Bsize)
	g.free = st.Bavail * bsize
	g.base = uint64(g.reserve)
	if g.reserve == 0 {
		g.base = min(st.Blocks*bsize/20, defaultReserveCap)
	}
	g.need = g.base
	if g.ballast == 0 && !g.noBallast {
		g.need += g.ballastSize()
	}
	full := g.free < g.need
	if full == g.full {
		return
	}
	g.full = full
	if full {
		g.log.Error("disk full: this node refuses writes until space is freed",
			"node", g.node, "dir", g.dir, "free_bytes", g.free, "needed_bytes", g.need)
	} else {
		g.appendFailed = nil
		g.log.Warn("disk has room again: this node takes writes", "node", g.node, "dir", g.dir, "free_bytes", g.free)
	}
}

// ballastSize is the size of a new ballast.
func (g *diskGuard) ballastSize() uint64 { return min(g.base, ballastMax) }

// retry runs an append (or a term or vote record); if it fails for lack
// of space and ballast is true, it deletes the ballast and runs it once
// more. Raft steps down, or panics, on the error it returns.
func (g *diskGuard) retry(ballast bool, fn func() error) error {
	err := fn()
	if err == nil || !noSpace(err) || g == nil {
		return err
	}
	if ballast && g.dropBallast(err) {
		if err = fn(); err == nil {
			return nil
		}
	}
	g.failed(err)
	return err
}

// dropBallast deletes the ballast after err (a lack of space) and marks
// the disk full; it reports whether there was one to delete.
func (g *diskGuard) dropBallast(err error) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.markFullLocked(err, "a raft write failed for lack of space")
	if g.ballast == 0 {
		return false
	}
	if rerr := os.Remove(g.ballastPath()); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		g.log.Error("disk full: cannot delete the ballast", "path", g.ballastPath(), "err", rerr)
		return false
	}
	g.log.Warn("disk full: deleted the ballast so that raft can finish its write", "path", g.ballastPath(), "bytes", g.ballast)
	g.ballast = 0
	return true
}

// failed records that an append failed with err; it reports whether err
// is a lack of space, in which case the store is full from now on.
func (g *diskGuard) failed(err error) bool {
	if !noSpace(err) {
		return false
	}
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.markFullLocked(err, "an append to the raft log failed")
	return true
}

// markFullLocked records that a raft write failed with err (what says
// which) and marks the disk full, logging the change once. g.mu is held.
func (g *diskGuard) markFullLocked(err error, what string) {
	g.appendFailed = err
	g.probed = time.Now()
	if !g.full {
		g.full = true
		g.log.Error("disk full: "+what+"; this node refuses writes until space is freed",
			"node", g.node, "dir", g.dir, "err", err)
	}
}

// refill writes the ballast when there is none (or someone deleted it)
// and the disk has room for it on top of the reserve. Called by the disk
// watcher only.
func (g *diskGuard) refill() {
	g.mu.Lock()
	if g.ballast != 0 {
		if _, err := os.Stat(g.ballastPath()); errors.Is(err, os.ErrNotExist) {
			// The next probe asks room for a new one.
			g.ballast, g.probed = 0, time.Time{}
			g.mu.Unlock()
			return
		}
	}
	if g.ballast != 0 || g.noBallast || g.full || g.base == 0 {
		g.mu.Unlock()
		return
	}
	size := int64(g.ballastSize())
	g.mu.Unlock()
	err := writeBallast(g.ballastPath(), size)
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case err == nil:
		g.ballast = size
	case noSpace(err):
		g.probed = time.Time{} // probe again at once
	default:
		g.noBallast = true
		g.log.Error("cannot write the ballast; the node does without it", "path", g.ballastPath(), "err", err)
	}
}

// writeBallast writes size bytes that no file system can compress away,
// fsynced; on failure it removes what it wrote.
func writeBallast(path string, size int64) (err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create ballast: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close ballast: %w", cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	buf := make([]byte, 64<<10)
	rng := rand.NewPCG(uint64(size), 0x5eed)
	for written := int64(0); written < size; {
		for i := 0; i+8 <= len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
		}
		n, err := f.Write(buf[:min(int64(len(buf)), size-written)])
		if err != nil {
			return fmt.Errorf("write ballast: %w", err)
		}
		written += int64(n)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync ballast: %w", err)
	}
	return nil
}

func (g *diskGuard) errLocked() error {
	if g.appendFailed != nil {
		return &DiskFullError{Detail: fmt.Sprintf("node %s could not write its raft log in %s (%s); it takes writes again once %s are free there",
			g.node, g.dir, errnoText(g.appendFailed), fmtBytes(g.need))}
	}
	return &DiskFullError{Detail: fmt.Sprintf("node %s has %s free in %s, less than the %s it keeps for raft and its audit trail",
		g.node, fmtBytes(g.free), g.dir, fmtBytes(g.need))}
}

// noSpace reports whether err is a lack of disk space (or quota).
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// diskFullError is the error for an append that failed for lack of
// space.
func (s *Store) diskFullError(err error) error {
	if g := s.disk; g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.errLocked()
	}
	return &DiskFullError{Detail: fmt.Sprintf("node %s could not append to its raft log in %s (%s)", s.cfg.NodeID, s.cfg.Dir, errnoText(err))}
}

// roomyLogs and roomyStable pass raft's writes to the stores through
// diskGuard.retry: terms and votes, and a leader's appends, may use the
// ballast.
type roomyLogs struct {
	raft.LogStore
	g      *diskGuard
	leader func() bool
}

func (s roomyLogs) StoreLog(l *raft.Log) error {
	return s.g.retry(s.leader(), func() error { return s.LogStore.StoreLog(l) })
}

func (s roomyLogs) StoreLogs(ls []*raft.Log) error {
	return s.g.retry(s.leader(), func() error { return s.LogStore.StoreLogs(ls) })
}

type roomyStable struct {
	raft.StableStore
	g *diskGuard
}

func (s roomyStable) Set(k, v []byte) error {
	return s.g.retry(true, func() error { return s.StableStore.Set(k, v) })
}

func (s roomyStable) SetUint64(k []byte, v uint64) error {
	return s.g.retry(true, func() error { return s.StableStore.SetUint64(k, v) })
}

// errnoText is the system error inside err ("no space left on device"),
// without the path that the directory already names.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// fmtBytes writes n in B, KiB, MiB or GiB with one decimal.
func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 2; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMG"[exp])
}

// DiskFull returns a *DiskFullError (wrapping ErrDiskFull) while this
// node refuses writes for lack of disk space, else nil. It costs a statfs
// at most every 100 ms. Whatever shares the file system (the vault's
// audit trail) asks it to leave the reserve to raft.
func (s *Store) DiskFull() error { return s.disk.check() }

// watchDisk probes the disk every second, so that the state (and its log
// lines, and the metric) follows the disk without writes, and a leader
// that cannot write hands leadership over even when nobody writes.
func (s *Store) watchDisk() {
	defer s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
			if s.disk.check() != nil && s.IsLeader() {
				s.handOff()
			}
			s.disk.refill()
		}
	}
}

// handOff hands leadership to another voter, at most once every
// handOffEvery, when this leader cannot write: a follower with room can
// take the cluster's writes. A single voter keeps leading and refusing.
func (s *Store) handOff() {
	s.handOffMu.Lock()
	if time.Since(s.lastHandOff) < handOffEvery {
		s.handOffMu.Unlock()
		return
	}
	s.lastHandOff = time.Now()
	s.handOffMu.Unlock()
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters := 0
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters++
		}
	}
	if voters < 2 {
		return
	}
	select {
	case <-s.closed:
		return
	default:
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.raft.LeadershipTransfer().Error(); err != nil {
			s.log.Warn("disk full: could not hand leadership to another voter", "node", s.cfg.NodeID, "err", err)
			return
		}
		s.log.Warn("disk full: handed leadership to another voter", "node", s.cfg.NodeID)
	}()
}
