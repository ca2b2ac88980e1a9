package raftstore

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// MaxHops is how many times a request may be forwarded before it fails
// with ErrTooManyHops. One hop suffices when leadership is stable.
const MaxHops = 3

// Config configures a Store. The zero value of every optional field is a
// working default; the Store does not modify the Config it is given.
type Config struct {
	// NodeID is this node's raft server ID. Required.
	NodeID string
	// Dir holds raft.db (log and stable store, bbolt) and snapshots/.
	// Empty means in-memory stores, for tests only.
	Dir string
	// Transport carries raft RPCs. Required: NewTLSTransport for real
	// clusters, raft.NewInmemTransport in tests.
	Transport raft.Transport
	// Forwarder reaches other nodes for writes, read indexes and membership
	// changes made on a follower. Nil means this node never forwards and
	// such calls fail with ErrNotLeader.
	Forwarder Forwarder
	// Logger receives the store's own messages. Default slog.Default().
	Logger *slog.Logger
	// RaftLogOutput receives hashicorp/raft's log. Default os.Stderr.
	RaftLogOutput io.Writer
	// RaftLogLevel is hashicorp/raft's log level. Default "warn".
	RaftLogLevel string
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one. Default 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often raft checks the threshold. Default 30s.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries are kept behind a snapshot so that a
	// slow follower can catch up from the log. Default 10240.
	TrailingLogs uint64
	// HeartbeatTimeout and ElectionTimeout default to 1s each.
	HeartbeatTimeout time.Duration
	ElectionTimeout  time.Duration
	// CommitTimeout is how long an idle leader waits before it sends an
	// append that tells followers the new commit index. Followers learn of
	// commits no sooner, so it bounds how stale a follower's state is
	// after a quiet period. Default 10ms (raft's own default is 50ms).
	CommitTimeout time.Duration
	// ApplyTimeout bounds how long a write waits to be enqueued and
	// committed when its context has no deadline. Default 10s.
	ApplyTimeout time.Duration
	// RequestTimeout bounds every request forwarded to the leader (a
	// write, a read index, a membership change) and every linearizable
	// read (ReadIndex, Linearize), whatever the caller's context allows:
	// past it they fail with an error wrapping ErrNoLeader, ErrUnreachable
	// or ErrAmbiguous instead of waiting for a partition to heal. A
	// context with an earlier deadline still wins. Default 5s.
	RequestTimeout time.Duration
	// MinFreeBytes is the free space the store keeps on the file system
	// of Dir. Below it, writes and voter additions are refused with a
	// DiskFullError before they are proposed, so that raft's own records
	// (terms, votes, a new leader's first entry) and whatever shares the
	// file system (the vault's audit trail) keep room, and a leader that
	// cannot write hands leadership to another voter. The store also keeps
	// a ballast file of this size (at most 4 MiB) in Dir, which it deletes
	// when a raft write fails for lack of space anyway; writes resume once
	// the reserve and a new ballast fit. Zero means 5 % of the file
	// system, at most 64 MiB; negative turns the check and the ballast off.
	MinFreeBytes int64
	// OnLeader, if set, runs in its own goroutine each time this node
	// becomes leader, after a barrier has applied every earlier entry. Its
	// context is cancelled when leadership is lost or the store closes.
	OnLeader func(ctx context.Context)

	// SpillBytes is the longest value the store keeps in memory; longer
	// ones live in the value log, files under Dir/values (a temporary
	// directory when Dir is empty) that the store empties when it opens
	// and fills again as raft restores its state. Zero means 128;
	// negative keeps every value in memory.
	SpillBytes int
	// KeepInMemory, if set, keeps a longer value in memory anyway when it
	// returns true for its key and length: the records every request
	// reads, which a read of the value log would slow down.
	KeepInMemory func(key string, size int) bool

	// wrapLogs, when set (tests only), wraps the raft log store, to make
	// a follower's appends slow or failing.
	wrapLogs func(raft.LogStore) raft.LogStore
}

// Store is a node of the replicated state machine. All methods are safe
// for concurrent use.
type Store struct {
	cfg Config
	// snapshotFloor is the configured snapshot threshold, under which
	// snapshotWritten never goes.
	snapshotFloor uint64
	// reloadMu serializes the store's read-modify-writes of raft's
	// reloadable configuration (campaignAlone, snapshotWritten), which
	// run on different goroutines.
	reloadMu  sync.Mutex
	log       *slog.Logger
	raft      *raft.Raft
	fsm       *fsm
	logs      raft.LogStore
	stable    raft.StableStore
	snaps     raft.SnapshotStore
	bolt      *raftboltdb.BoltStore
	metrics   *storeMetrics
	leaderMu  sync.Mutex
	leaderCh  chan struct{} // closed and replaced on every leader change
	closeOnce sync.Once
	closed    chan struct{}
	// raftDown is closed once raft has shut down (Close): a write still
	// waiting then was never taken from raft's queue (awaitApply).
	raftDown chan struct{}
	wg       sync.WaitGroup
	// disk refuses writes while the disk is full (nil: no check).
	disk        *diskGuard
	raftRef     atomic.Pointer[raft.Raft] // s.raft, for the stores
	handOffMu   sync.Mutex
	lastHandOff time.Time
}

// Open starts a node. It does not bootstrap a cluster: call Bootstrap on
// the first node of a new cluster, or have a leader add this node with
// AddVoter.
func Open(cfg Config) (*Store, error) {
	if cfg.NodeID == "" {
		return nil, fmt.Errorf("open store: node ID is required")
	}
	if cfg.Transport == nil {
		return nil, fmt.Errorf("open store: transport is required")
	}
	s := &Store{
		cfg:      cfg,
		log:      cfg.Logger,
		fsm:      newFSM(),
		leaderCh: make(chan struct{}),
		closed:   make(chan struct{}),
		raftDown: make(chan struct{}),
		metrics:  newStoreMetrics(),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.Dir == "" {
		mem := raft.NewInmemStore()
		s.logs, s.stable, s.snaps = mem, mem, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("open store: create %s: %w", cfg.Dir, err)
		}
		s.disk = newDiskGuard(cfg.NodeID, cfg.Dir, cfg.MinFreeBytes, s.log)
		if s.disk != nil && s.disk.check() == nil {
			s.disk.refill() // before raft writes anything
		}
		bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db")})
		if err != nil {
			return nil, fmt.Errorf("open store: open raft.db: %w", err)
		}
		s.bolt = bolt
		s.logs, s.stable = bolt, bolt
		if s.disk != nil {
			// raft calls the stores from its goroutines before NewRaft
			// returns: s.raft is not set yet.
			leader := func() bool { r := s.raftRef.Load(); return r != nil && r.State() == raft.Leader }
			s.logs, s.stable = roomyLogs{bolt, s.disk, leader}, roomyStable{bolt, s.disk}
		}
		snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, s.hclog("snapshot"))
		if err != nil {
			bolt.Close()
			return nil, fmt.Errorf("open store: snapshot store: %w", err)
		}
		s.snaps = snaps
	}

	if cfg.wrapLogs != nil {
		s.logs = cfg.wrapLogs(s.logs)
	}
	if cfg.SpillBytes >= 0 {
		dir, temp := filepath.Join(cfg.Dir, "values"), cfg.Dir == ""
		if temp {
			d, err := os.MkdirTemp("", "raftstore-values-")
			if err != nil {
				s.closeStores()
				return nil, fmt.Errorf("open store: value log: %w", err)
			}
			dir = d
		}
		vl, err := openValueLog(dir, cmp.Or(cfg.SpillBytes, defaultSpillBytes), temp)
		if err != nil {
			s.closeStores()
			return nil, fmt.Errorf("open store: %w", err)
		}
		vl.keep = cfg.KeepInMemory
		s.fsm.vlog = vl
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = singleVoterLogger{Logger: s.hclog("raft"), soleVoter: s.soleVoter}
	// Group commit: the leader drains up to MaxAppendEntries queued writes
	// into one StoreLogs call (one bbolt transaction, one fsync) and one
	// AppendEntries RPC per follower.
	rc.MaxAppendEntries = 1024
	rc.BatchApplyCh = true
	rc.SnapshotThreshold = orDefault(cfg.SnapshotThreshold, 8192)
	rc.TrailingLogs = orDefault(cfg.TrailingLogs, 10240)
	rc.SnapshotInterval = orDefaultDur(cfg.SnapshotInterval, 30*time.Second)
	rc.HeartbeatTimeout = orDefaultDur(cfg.HeartbeatTimeout, time.Second)
	rc.ElectionTimeout = orDefaultDur(cfg.ElectionTimeout, time.Second)
	rc.LeaderLeaseTimeout = rc.HeartbeatTimeout / 2
	rc.CommitTimeout = orDefaultDur(cfg.CommitTimeout, 10*time.Millisecond)
	var restored int64 // the size of the snapshot the start restored
	if fss, ok := s.snaps.(*raft.FileSnapshotStore); ok {
		// The store restores the latest snapshot itself, straight from
		// its file (restoreLatest), and raft only takes its index and
		// configuration; raft would read the file twice (a checksum
		// pass, then the restore) and have every long value copied.
		var err error
		if restored, err = s.restoreLatest(fss); err != nil {
			s.closeStores()
			return nil, fmt.Errorf("open store: %w", err)
		}
		rc.NoSnapshotRestoreOnStart = true
	}

	// Set before raft runs: its snapshot goroutine reads them.
	s.snapshotFloor = rc.SnapshotThreshold
	s.fsm.persisted = s.snapshotWritten

	r, err := raft.NewRaft(rc, s.fsm, s.logs, s.stable, s.snaps, cfg.Transport)
	if err != nil {
		s.closeStores()
		return nil, fmt.Errorf("open store: start raft: %w", err)
	}
	s.raft = r
	s.raftRef.Store(r)
	s.campaignAlone(r, rc)
	if restored > 0 {
		s.snapshotWritten(restored)
	}

	obsCh := make(chan raft.Observation, 16)
	r.RegisterObserver(raft.NewObserver(obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))
	s.wg.Add(3)
	go s.observe(obsCh)
	go s.leaderLoop()
	go s.tendValues()
	if s.disk != nil {
		s.wg.Add(1)
		go s.watchDisk()
	}
	return s, nil
}

// Snapshot spacing. Every snapshot writes the whole state, so with a
// fixed entry threshold its cost per write grows with the state: a
// million certificate versions make a 1.2 GB snapshot, which 8,192
// creates (40 MB of log) would trigger again. The threshold therefore
// follows the state: a snapshot is due once the log since the last one
// holds about 1/snapshotLogRatio of the last snapshot's bytes, never
// sooner than the configured threshold, and never later than
// maxSnapshotThreshold entries (the log a restart replays).
const (
	snapshotLogRatio     = 4
	maxSnapshotThreshold = 262144
	// assumedEntryBytes stands for the average entry until the node
	// has applied some (a certificate create is a few KB).
	assumedEntryBytes = 4096
)

// snapshotWritten sets raft's snapshot threshold for a state whose last
// snapshot (written, or restored) took size bytes.
func (s *Store) snapshotWritten(size int64) {
	r := s.raftRef.Load()
	if r == nil || size <= 0 {
		return
	}
	entry := uint64(assumedEntryBytes)
	if n := s.fsm.cmds.Load(); n >= 1024 {
		entry = max(s.fsm.cmdBytes.Load()/n, 64)
	}
	want := min(max(s.snapshotFloor, uint64(size)/snapshotLogRatio/entry), max(s.snapshotFloor, maxSnapshotThreshold))
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	rc := r.ReloadableConfig()
	if rc.SnapshotThreshold == want {
		return
	}
	was := rc.SnapshotThreshold
	rc.SnapshotThreshold = want
	if err := r.ReloadConfig(rc); err != nil {
		s.log.Warn("raftstore: set the snapshot threshold", "want", want, "err", err)
		return
	}
	s.log.Debug("raftstore: snapshot threshold follows the state", "snapshot_bytes", size, "entry_bytes", entry, "threshold", want, "was", was)
}

// campaignAlone makes a node that is the only voter of its configuration
// stand for election at once instead of after a heartbeat timeout (one
// to two of them: 1–2 s by default, a second of every single-node
// start). No other node can lead that configuration, so waiting to hear
// from one only delays the start. Lowering the heartbeat timeout is how
// raft lets a running node re-arm a follower's timer (ReloadConfig
// notifies the follower loop, which checks at once, finds no contact
// since the start, and campaigns); the timeout is put back right away.
func (s *Store) campaignAlone(r *raft.Raft, rc *raft.Config) {
	f := r.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters, me := 0, false
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			voters++
			me = me || srv.ID == rc.LocalID
		}
	}
	if voters != 1 || !me {
		return
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	was := r.ReloadableConfig()
	fast := was
	fast.HeartbeatTimeout = rc.LeaderLeaseTimeout
	if err := r.ReloadConfig(fast); err != nil {
		s.log.Debug("raftstore: could not start the election at once", "err", err)
		return
	}
	if err := r.ReloadConfig(was); err != nil {
		s.log.Warn("raftstore: could not put the heartbeat timeout back", "want", was.HeartbeatTimeout, "err", err)
	}
}

// restoreLatest restores the newest snapshot raft's store lists into the
// FSM, from its file (fsm.restoreFile). A snapshot that does not decode
// or verify is moved to DATA/snapshots-bad/ and the next newest tried,
// as raft does when it restores at start; with
// NoSnapshotRestoreOnStart raft takes the newest one it lists as the
// state's, so the bad one must leave the list. An error that is not the
// file's (I/O, memory) fails the open: trying an older snapshot would
// not help. It returns the restored snapshot's size (0: there was none).
func (s *Store) restoreLatest(fss *raft.FileSnapshotStore) (int64, error) {
	metas, err := fss.List()
	if err != nil {
		return 0, fmt.Errorf("list snapshots: %w", err)
	}
	for _, m := range metas {
		dir := filepath.Join(s.cfg.Dir, "snapshots", m.ID)
		t0 := time.Now()
		err := s.fsm.restoreFile(filepath.Join(dir, "state.bin"))
		if err == nil {
			s.log.Info("raftstore: restored the latest snapshot", "id", m.ID, "index", m.Index,
				"bytes", m.Size, "took", time.Since(t0).Round(time.Millisecond))
			return m.Size, nil
		}
		if !errors.Is(err, ErrBadSnapshot) && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
		bad := filepath.Join(s.cfg.Dir, "snapshots-bad")
		if merr := os.MkdirAll(bad, 0o700); merr != nil {
			return 0, fmt.Errorf("%w (and set it aside: %w)", err, merr)
		}
		if merr := os.Rename(dir, filepath.Join(bad, m.ID)); merr != nil {
			return 0, fmt.Errorf("%w (and set it aside: %w)", err, merr)
		}
		s.log.Error("raftstore: a snapshot does not restore; set aside, trying the one before it",
			"id", m.ID, "index", m.Index, "moved_to", filepath.Join(bad, m.ID), "err", err)
	}
	if len(metas) > 0 {
		return 0, fmt.Errorf("no snapshot restores (each is in %s with why in the log): %w",
			filepath.Join(s.cfg.Dir, "snapshots-bad"), ErrBadSnapshot)
	}
	return 0, nil
}

func orDefault(v, d uint64) uint64 {
	if v == 0 {
		return d
	}
	return v
}

func orDefaultDur(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

func (s *Store) hclog(name string) hclog.Logger {
	out := s.cfg.RaftLogOutput
	if out == nil {
		out = os.Stderr
	}
	level := s.cfg.RaftLogLevel
	if level == "" {
		level = "warn"
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Output: out,
		Level:  hclog.LevelFromString(level),
	})
}

// HasState reports whether the node has raft state on disk (it was
// bootstrapped or joined before).
func (s *Store) HasState() (bool, error) {
	ok, err := raft.HasExistingState(s.logs, s.stable, s.snaps)
	if err != nil {
		return false, fmt.Errorf("check raft state: %w", err)
	}
	return ok, nil
}

// Bootstrap makes this node the single voter of a new cluster. It fails if
// the node already has state.
func (s *Store) Bootstrap(advertise string) error {
	cfg := raft.Configuration{Servers: []raft.Server{{
		ID: raft.ServerID(s.cfg.NodeID), Address: raft.ServerAddress(advertise), Suffrage: raft.Voter,
	}}}
	if err := s.raft.BootstrapCluster(cfg).Error(); err != nil {
		return fmt.Errorf("bootstrap cluster: %w", err)
	}
	return nil
}

// observe turns leader observations into a broadcast that WaitLeader uses.
func (s *Store) observe(ch <-chan raft.Observation) {
	defer s.wg.Done()
	for {
		select {
		case <-s.closed:
			return
		case <-ch:
			s.leaderMu.Lock()
			close(s.leaderCh)
			s.leaderCh = make(chan struct{})
			s.leaderMu.Unlock()
		}
	}
}

// leaderLoop starts and stops OnLeader work as leadership comes and goes.
func (s *Store) leaderLoop() {
	defer s.wg.Done()
	var cancel context.CancelFunc = func() {}
	defer func() { cancel() }()
	for {
		select {
		case <-s.closed:
			return
		case isLeader := <-s.raft.LeaderCh():
			cancel()
			cancel = func() {}
			s.metrics.leader.Set(boolFloat(isLeader))
			if !isLeader {
				s.log.Info("lost leadership", "node", s.cfg.NodeID)
				continue
			}
			s.log.Info("became leader", "node", s.cfg.NodeID)
			if s.cfg.OnLeader == nil {
				continue
			}
			ctx, c := context.WithCancel(context.Background())
			cancel = c
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				// Read after a barrier: every entry of earlier terms is
				// applied before leader-only work looks at the state.
				if err := s.raft.Barrier(0).Error(); err != nil {
					s.log.Warn("leader barrier failed", "err", err)
					return
				}
				if ctx.Err() == nil {
					s.cfg.OnLeader(ctx)
				}
			}()
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// IsLeader reports whether this node is the leader right now.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the current leader's ID and raft address, empty if none
// is known.
func (s *Store) Leader() (id, addr string) {
	a, i := s.raft.LeaderWithID()
	return string(i), string(a)
}

// NodeID returns this node's ID.
func (s *Store) NodeID() string { return s.cfg.NodeID }

// WaitLeader blocks until a leader is known or ctx is done.
func (s *Store) WaitLeader(ctx context.Context) (string, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		s.leaderMu.Lock()
		ch := s.leaderCh
		s.leaderMu.Unlock()
		if id, _ := s.Leader(); id != "" {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for leader: %w", ErrNoLeader)
		case <-s.closed:
			return "", ErrClosed
		case <-ch:
		case <-tick.C:
		}
	}
}

// Get returns the local value of key, which may lag the leader. Use
// Linearize first for a read that must see every completed write.
func (s *Store) Get(key string) (Entry, bool) { return s.fsm.get(key) }

// List returns up to limit local entries under prefix whose keys sort after
// `after` (exclusive; "" from the start), with the applied index they
// reflect. limit <= 0 means all.
func (s *Store) List(prefix, after string, limit int) ([]Entry, uint64) {
	return s.fsm.list(prefix, after, limit)
}

// Range calls fn for each local entry under prefix, in key order, as of
// one applied index, which it returns; fn returning false stops the walk.
// It copies nothing: the entries are shared with the state and must not
// be modified. Like Get, it may lag the leader.
func (s *Store) Range(prefix string, fn func(Entry) bool) uint64 {
	return s.fsm.rangePrefix(prefix, fn)
}

// Keys returns the local keys under prefix, in order, without their
// values (which a long one would cost a read of the value log).
func (s *Store) Keys(prefix string) []string {
	var out []string
	v := s.fsm.view.Load()
	v.entries.AscendGreaterOrEqual(&Entry{Key: prefix}, func(e *Entry) bool {
		if !strings.HasPrefix(e.Key, prefix) {
			return false
		}
		out = append(out, e.Key)
		return true
	})
	return out
}

// LastChange returns the log index of the last write applied locally at
// or under any of prefixes (each a key or a directory ending in '/'): a
// later index when the exact record is gone, never an earlier one. A
// cache of what lies under the prefixes, filled from a Range that
// returned index i, is current while LastChange stays at or below i.
func (s *Store) LastChange(prefixes ...string) uint64 {
	s.fsm.mu.RLock()
	defer s.fsm.mu.RUnlock()
	return s.fsm.maxChange(prefixes)
}

// Digest returns the applied index of the local state and a SHA-256 of
// that state, as hex. Two replicas that report the same index hold the
// same state exactly when their digests are equal. It reads the whole
// state: for checks, not for every request.
func (s *Store) Digest() (uint64, string) {
	idx, sum := s.fsm.digest()
	return idx, hex.EncodeToString(sum[:])
}

// AppliedIndex returns the index of the last command applied locally.
func (s *Store) AppliedIndex() uint64 {
	i, _ := s.fsm.appliedIndex()
	return i
}

// Apply commits b through raft and returns the log index it was applied
// at. A follower forwards it to the leader. A failed precondition returns
// an error wrapping ErrConflict and changes nothing; ErrAmbiguous means the
// outcome is unknown.
func (s *Store) Apply(ctx context.Context, b *Batch) (uint64, error) {
	if len(b.Ops) == 0 {
		return 0, fmt.Errorf("apply: empty batch: %w", ErrBadCommand)
	}
	return s.applyData(ctx, b.Encode(), 0)
}

func (s *Store) applyTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return orDefaultDur(s.cfg.ApplyTimeout, 10*time.Second)
}

// requestTimeout is Config.RequestTimeout with its default.
func (s *Store) requestTimeout() time.Duration {
	return orDefaultDur(s.cfg.RequestTimeout, 5*time.Second)
}

// waitFuture waits for f unless ctx ends first. raft resolves every
// future eventually (on commit, on loss of leadership, at shutdown), so
// the goroutine left behind on a cancelled wait ends too.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// awaitApply waits for raft's answer to an apply. raft answers every
// write it took from its queue (committed, or leadership lost), but with
// BatchApplyCh the queue is a buffered channel that nothing drains once
// raft shuts down: a write enqueued just before then would wait forever
// (seen as a node whose Shutdown hung on a renewal's write). Once raft is
// down, a write not yet answered was never taken, so never applied.
func (s *Store) awaitApply(f raft.ApplyFuture) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-s.raftDown:
		// raft answered every write it took before its goroutines
		// ended; give the answer time to cross from the goroutine above.
		t := time.NewTimer(raftDownGrace)
		defer t.Stop()
		select {
		case err := <-done:
			return err
		case <-t.C:
			return raft.ErrRaftShutdown // the waiting goroutine stays with the dead future
		}
	}
}

// raftDownGrace bounds how long awaitApply waits, once raft is down, for
// an answer raft already gave.
const raftDownGrace = 5 * time.Second

func (s *Store) applyData(ctx context.Context, data []byte, hops int) (uint64, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("apply: %w", err)
		}
		if s.IsLeader() {
			if err := s.disk.check(); err != nil {
				s.handOff()
				return 0, fmt.Errorf("apply: %w", err)
			}
			start := time.Now()
			f := s.raft.Apply(data, s.applyTimeout(ctx))
			if err := s.awaitApply(f); err != nil {
				switch {
				case errors.Is(err, raft.ErrNotLeader):
					// Refused before it was enqueued: safe to forward.
					continue
				case errors.Is(err, raft.ErrLeadershipLost):
					return 0, fmt.Errorf("apply: %v: %w", err, ErrAmbiguous)
				case errors.Is(err, raft.ErrRaftShutdown):
					return 0, ErrClosed
				case noSpace(err):
					// The leader appends to its own log before it sends
					// anything to a follower, so an append that failed
					// reached no log: not applied. (raft stepped down;
					// the guard keeps the next leader from failing again.)
					return 0, fmt.Errorf("apply: %w", s.diskFullError(err))
				default:
					return 0, fmt.Errorf("apply: %w", err)
				}
			}
			s.metrics.commit.Observe(time.Since(start).Seconds())
			res := f.Response().(applyResult)
			if res.err != nil {
				s.metrics.conflicts.Inc()
			}
			return res.index, res.err
		}
		resp, err := s.forward(ctx, &ForwardRequest{Kind: ForwardApply, Data: data, Hops: hops + 1})
		if errors.Is(err, errLeaderHere) {
			// Nothing was sent: this node leads now, so it applies the
			// batch itself (a leader whose disk was full hands over to the
			// node that forwarded to it, which used to fail this write).
			continue
		}
		if err != nil {
			return 0, err
		}
		return resp.Index, resp.err()
	}
}

// errLeaderHere is forward finding that this node became the leader while
// it waited for one: nothing was sent, and the caller does it locally.
var errLeaderHere = fmt.Errorf("forward: leadership moved here: %w", ErrNotLeader)

// forward sends req to the current leader, waiting for one to be known.
func (s *Store) forward(ctx context.Context, req *ForwardRequest) (*ForwardResponse, error) {
	if s.cfg.Forwarder == nil {
		return nil, ErrNotLeader
	}
	if req.Hops > MaxHops {
		return nil, ErrTooManyHops
	}
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	leader, err := s.WaitLeader(ctx)
	if err != nil {
		return nil, err
	}
	if leader == s.cfg.NodeID {
		// We became leader while waiting; let the caller retry locally.
		return nil, errLeaderHere
	}
	s.metrics.forwards.Inc()
	resp, err := s.cfg.Forwarder.Forward(ctx, leader, req)
	if err != nil {
		// The request may have reached the leader and taken effect before
		// the connection failed (or the deadline passed): only a read
		// index, or a request the Forwarder knows it never sent, is
		// known to be harmless.
		outcome := ErrAmbiguous
		if req.Kind == ForwardReadIndex || errors.Is(err, ErrUnreachable) {
			outcome = ErrUnreachable
		}
		return nil, fmt.Errorf("forward %s to %s: %w: %w", req.Kind, leader, err, outcome)
	}
	return resp, nil
}

// ReadIndex returns an index such that a local read made once the node has
// applied it reflects every write that completed before ReadIndex was
// called. On the leader it confirms leadership with a quorum; a follower
// asks the leader. It gives up after Config.RequestTimeout: a node cut
// off from the quorum (an isolated old leader included) fails with an
// error wrapping ErrNoLeader or ErrUnreachable, never serves a stale read
// and never waits for the partition to heal.
func (s *Store) ReadIndex(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	return s.readIndex(ctx, 0)
}

func (s *Store) readIndex(ctx context.Context, hops int) (uint64, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("read index: %w: %w", err, ErrNoLeader)
		}
		if s.IsLeader() {
			idx := s.raft.LastIndex()
			if err := waitFuture(ctx, s.raft.VerifyLeader()); err != nil {
				if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
					continue
				}
				if ctx.Err() != nil {
					return 0, fmt.Errorf("verify leader: no quorum answered: %w: %w", err, ErrNoLeader)
				}
				return 0, fmt.Errorf("verify leader: %w", err)
			}
			return s.lastCommandAtOrBefore(ctx, idx)
		}
		resp, err := s.forward(ctx, &ForwardRequest{Kind: ForwardReadIndex, Hops: hops + 1})
		if errors.Is(err, ErrNotLeader) && s.cfg.Forwarder != nil {
			continue
		}
		if err != nil {
			return 0, err
		}
		return resp.Index, resp.err()
	}
}

// lastCommandAtOrBefore walks back from idx to the last entry the FSM will
// see (raft hands only commands to the FSM, not no-ops or configuration
// changes), so that waiting for it cannot hang. Where the log has a hole (a
// restored snapshot) it falls back to a barrier.
func (s *Store) lastCommandAtOrBefore(ctx context.Context, idx uint64) (uint64, error) {
	applied := s.AppliedIndex()
	for idx > applied {
		var l raft.Log
		if err := s.logs.GetLog(idx, &l); err != nil {
			if err := waitFuture(ctx, s.raft.Barrier(s.applyTimeout(ctx))); err != nil {
				return 0, fmt.Errorf("read index barrier: %w", err)
			}
			return s.AppliedIndex(), nil
		}
		if l.Type == raft.LogCommand {
			return idx, nil
		}
		idx--
	}
	return idx, nil
}

// WaitApplied blocks until the local state has applied index idx. On a
// node whose disk is full, which may never get there, it gives up with a
// DiskFullError once applying has stalled for waitStalled.
func (s *Store) WaitApplied(ctx context.Context, idx uint64) error {
	var stalled <-chan time.Time
	var last uint64
	for {
		applied, ch := s.fsm.appliedIndex()
		if applied >= idx {
			return nil
		}
		if stalled == nil && s.disk != nil {
			t := time.NewTicker(waitStalled)
			defer t.Stop()
			stalled, last = t.C, applied
		}
		select {
		case <-stalled:
			if err := s.disk.check(); err != nil && applied == last {
				return fmt.Errorf("wait for index %d (applied %d): %w", idx, applied, err)
			}
			last = applied
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for index %d (applied %d): %w", idx, applied, ctx.Err())
		case <-s.closed:
			return ErrClosed
		}
	}
}

// Linearize makes the next local read linearizable: it obtains a read
// index and waits until this node has applied it, both within
// Config.RequestTimeout (see ReadIndex).
func (s *Store) Linearize(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout())
	defer cancel()
	idx, err := s.ReadIndex(ctx)
	if err != nil {
		return err
	}
	return s.WaitApplied(ctx, idx)
}

// Watch blocks until a key at or under one of the prefixes changes at an
// index greater than after, or ctx is done, and returns the latest change
// index of the prefixes. It reads local state, so any node can serve it;
// spurious wake-ups are possible, missed changes are not. Each prefix is an
// exact key or a directory ending in '/'.
func (s *Store) Watch(ctx context.Context, prefixes []string, after uint64) (uint64, error) {
	s.metrics.watchers.Inc()
	defer s.metrics.watchers.Dec()
	return s.fsm.watch(ctx, prefixes, after)
}

// AddVoter adds a node to the cluster as a voter (forwarded to the leader).
func (s *Store) AddVoter(ctx context.Context, id, addr string) error {
	return s.membership(ctx, &ForwardRequest{Kind: ForwardAddVoter, ID: id, Address: addr})
}

// RemoveServer removes a node from the cluster (forwarded to the leader).
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	return s.membership(ctx, &ForwardRequest{Kind: ForwardRemoveServer, ID: id})
}

func (s *Store) membership(ctx context.Context, req *ForwardRequest) error {
	for {
		if s.IsLeader() {
			var f raft.IndexFuture
			switch req.Kind {
			case ForwardAddVoter:
				// Removing a server stays possible: the reserve is there
				// for such records.
				if err := s.disk.check(); err != nil {
					return fmt.Errorf("%s %s: %w", req.Kind, req.ID, err)
				}
				f = s.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.Address), 0, s.applyTimeout(ctx))
			case ForwardRemoveServer:
				if !s.isMember(req.ID) {
					return fmt.Errorf("remove server %q: %w", req.ID, ErrUnknownServer)
				}
				f = s.raft.RemoveServer(raft.ServerID(req.ID), 0, s.applyTimeout(ctx))
			}
			err := f.Error()
			if errors.Is(err, raft.ErrNotLeader) {
				continue
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", req.Kind, req.ID, err)
			}
			return nil
		}
		req.Hops++
		resp, err := s.forward(ctx, req)
		if errors.Is(err, ErrNotLeader) && s.cfg.Forwarder != nil {
			continue
		}
		if err != nil {
			return err
		}
		return resp.err()
	}
}

func (s *Store) isMember(id string) bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == id {
			return true
		}
	}
	return false
}

// ErrUnknownServer means a membership change named a server that is not in
// the configuration.
var ErrUnknownServer = errors.New("raftstore: no such server")

// Server is one member of the cluster as this node sees it.
type Server struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	// State is "leader" or "follower" as seen by this node; a non-voter is
	// "nonvoter".
	State string `json:"state"`
}

// Status is the cluster as this node sees it.
type Status struct {
	NodeID       string `json:"node_id"`
	State        string `json:"state"`
	Leader       string `json:"leader"`
	Term         uint64 `json:"term"`
	LastIndex    uint64 `json:"last_index"`
	CommitIndex  uint64 `json:"commit_index"`
	AppliedIndex uint64 `json:"applied_index"`
	// LastSnapshotIndex is the log index of this node's latest snapshot
	// (taken locally or installed from the leader).
	LastSnapshotIndex uint64   `json:"last_snapshot_index"`
	Servers           []Server `json:"servers"`
	// DiskFull, when set, says why this node refuses writes for lack of
	// disk space.
	DiskFull string `json:"disk_full,omitempty"`
}

// Status returns the membership and indexes as this node sees them.
func (s *Store) Status() (Status, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return Status{}, fmt.Errorf("get configuration: %w", err)
	}
	leader, _ := s.Leader()
	st := Status{
		NodeID:       s.cfg.NodeID,
		State:        lower(s.raft.State().String()),
		Leader:       leader,
		LastIndex:    s.raft.LastIndex(),
		CommitIndex:  s.raft.CommitIndex(),
		AppliedIndex: s.AppliedIndex(),
	}
	var dfe *DiskFullError
	if errors.As(s.disk.check(), &dfe) {
		st.DiskFull = dfe.Detail
	}
	stats := s.raft.Stats()
	if t, err := parseUint(stats["term"]); err == nil {
		st.Term = t
	}
	if t, err := parseUint(stats["last_snapshot_index"]); err == nil {
		st.LastSnapshotIndex = t
	}
	for _, srv := range f.Configuration().Servers {
		out := Server{ID: string(srv.ID), Address: string(srv.Address), Suffrage: lower(srv.Suffrage.String()), State: "follower"}
		switch {
		case string(srv.ID) == leader:
			out.State = "leader"
		case srv.Suffrage != raft.Voter:
			out.State = "nonvoter"
		}
		st.Servers = append(st.Servers, out)
	}
	return st, nil
}

// Snapshot forces raft to take a snapshot and compact its log now.
func (s *Store) Snapshot() error {
	if err := s.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("take snapshot: %w", err)
	}
	return nil
}

// SaveSnapshot writes a consistent snapshot of the whole state, as of a
// linearizable read, to w.
func (s *Store) SaveSnapshot(ctx context.Context, w io.Writer) error {
	if err := s.Linearize(ctx); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	snap, err := s.fsm.Snapshot()
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	defer snap.Release()
	if err := encodeSnapshot(w, snap.(*fsmSnapshot)); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	return nil
}

// SnapshotView lets a caller inspect a snapshot before it is restored.
type SnapshotView interface {
	// Index is the applied index of the state the snapshot holds, as the
	// cluster that saved it numbered its log.
	Index() uint64
	// Taken is when the snapshot was taken; zero when the file does not
	// say (snapshots saved before the format recorded it).
	Taken() time.Time
	// Get returns the value of key in the snapshot.
	Get(key string) ([]byte, bool)
	// Keys returns the keys under prefix in the snapshot, in order.
	Keys(prefix string) []string
}

type snapshotView struct{ st *snapshotState }

func (v snapshotView) Index() uint64 { return v.st.applied }

func (v snapshotView) Taken() time.Time { return v.st.taken }

func (v snapshotView) Keys(prefix string) []string {
	var out []string
	v.st.entries.AscendGreaterOrEqual(&Entry{Key: prefix}, func(e *Entry) bool {
		if !strings.HasPrefix(e.Key, prefix) {
			return false
		}
		out = append(out, e.Key)
		return true
	})
	return out
}

func (v snapshotView) Get(key string) ([]byte, bool) {
	e, ok := v.st.entries.Get(&Entry{Key: key})
	if !ok {
		return nil, false
	}
	b, err := e.value()
	if err != nil {
		// The segments of an upload being checked are its own and stay
		// until the check is over: a failed read is a broken disk.
		panic(fmt.Sprintf("raftstore: read the value of %q in the snapshot: %v", key, err))
	}
	return b, true
}

// RestoreSnapshot replaces the whole state with the snapshot read from r.
// It runs on the leader only (ErrNotLeader otherwise). The snapshot is read
// to a temporary file and verified completely (format, checksum, and the
// caller's check, which may be nil) before anything changes; a bad file
// returns an error wrapping ErrBadSnapshot and leaves the state as it was.
func (s *Store) RestoreSnapshot(ctx context.Context, r io.Reader, check func(SnapshotView) error) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	dir := s.cfg.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	tmp, err := os.CreateTemp(dir, "restore-*.snap")
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, r)
	if err != nil {
		return fmt.Errorf("restore snapshot: read upload: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	// The upload's long values go to segments of their own, read while
	// it is checked and encoded again, then removed: raft's restore
	// writes its own.
	sp := s.fsm.vlog.spiller()
	defer sp.discard()
	st, err := decodeSnapshot(tmp, sp)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if check != nil {
		if err := check(snapshotView{st}); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
	}
	// Raft gives the restored state the index after its last entry. The
	// state records that index as its applied index, so that on every
	// replica a read index taken after the restore is reached exactly when
	// the restored state is in place. With the file's own (older) applied
	// index, a replica that had not applied the last write before the
	// restore would wait for it forever, and one that had not installed
	// the restore yet would serve the old state.
	last := s.raft.LastIndex()
	st.applied = last + 1
	if err := tmp.Truncate(0); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if err := encodeSnapshot(tmp, &fsmSnapshot{applied: st.applied, taken: st.taken, entries: st.entries, changes: st.changes}); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if size, err = tmp.Seek(0, io.SeekCurrent); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: last, Size: size}
	if err := s.raft.Restore(meta, tmp, s.applyTimeout(ctx)); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	return nil
}

// TransferLeadership hands leadership to another voter, if this node leads
// a cluster of more than one.
func (s *Store) TransferLeadership() error {
	if !s.IsLeader() {
		return nil
	}
	f := s.raft.GetConfiguration()
	if f.Error() != nil || len(f.Configuration().Servers) < 2 {
		return nil
	}
	if err := s.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	return nil
}

// Close shuts the node down: raft stops, the stores are closed, watches and
// waits return ErrClosed. It does not remove the node from the cluster.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		if e := s.raft.Shutdown().Error(); e != nil {
			err = fmt.Errorf("shutdown raft: %w", e)
		}
		close(s.raftDown)
		if c, ok := s.cfg.Transport.(io.Closer); ok {
			c.Close()
		}
		s.wg.Wait()
		s.closeStores()
	})
	return err
}

func (s *Store) closeStores() {
	if s.bolt != nil {
		s.bolt.Close()
	}
	if s.fsm.vlog != nil {
		if err := s.fsm.vlog.close(); err != nil {
			s.log.Warn("raftstore: close the value log", "err", err)
		}
	}
}

// tendValuesEvery is how often the value log is compacted and its
// retired segments closed.
const tendValuesEvery = 10 * time.Second

// tendValues compacts the value log and closes the segments retired
// long enough ago, until the store closes.
func (s *Store) tendValues() {
	defer s.wg.Done()
	if s.fsm.vlog == nil {
		return
	}
	t := time.NewTicker(tendValuesEvery)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case now := <-t.C:
			if n, err := s.fsm.compactValues(); err != nil {
				s.log.Warn("raftstore: compact the value log", "err", err)
			} else if n > 0 {
				s.log.Debug("raftstore: compacted the value log", "segments", n)
			}
			s.fsm.vlog.reap(now)
		}
	}
}
