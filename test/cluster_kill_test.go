package test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/history"
	"github.com/certvault/certvault/test/testcluster"
)

// Parameters of TestClusterKillLeader.
const (
	// ckRegisters is how many secrets the clients share, ckClients how many
	// clients write and read them concurrently.
	ckRegisters = 8
	ckClients   = 16
	// ckLoadBefore and ckLoadAfter are how long the load runs before the
	// leader is killed and, at least, after a new leader is seen.
	ckLoadBefore = 3 * time.Second
	ckLoadAfter  = 3 * time.Second
	// ckOpTimeout bounds one request; a write that runs out of it is
	// "unknown".
	ckOpTimeout = 5 * time.Second
	// ckSnapshotThreshold and ckTrailingLogs are small, so that every
	// phase snapshots and compacts the raft log.
	ckSnapshotThreshold = 128
	ckTrailingLogs      = 64
	// ckSnapshotWrites is the least number of writes made while a follower
	// is down in the snapshot phase, by ckSnapshotWriters writers over
	// ckFillKeys secrets besides the registers.
	ckSnapshotWrites  = 600
	ckSnapshotWriters = 8
	ckFillKeys        = 32
	// ckWait bounds every wait for a condition (a leader, a catch-up), and
	// ckDeadline the whole test; both only matter when something is wrong,
	// so they leave room for a loaded machine (the test takes about 30 s
	// on a quiet one).
	ckWait     = 2 * time.Minute
	ckDeadline = 8 * time.Minute
)

// TestClusterKillLeader is issue #2's fault-injection test. It starts 3
// real certvaultd processes on 127.0.0.1, writes through a follower,
// SIGKILLs the leader while 16 clients keep writing and reading
// single-key registers on every node, checks that a new leader takes over
// and writes succeed again, restarts the killed node and checks it
// catches up, then stops a follower, writes until the leader has compacted
// its log past that follower, restarts it and checks it caught up from an
// installed snapshot. Every operation goes into one history; package
// history asserts that no acknowledged write is lost and no read returns
// a value older than a write that had completed before the read began.
// No request may be answered 500 meanwhile: the API promises 502 or 503
// while there is no leader, and keeps 500 for bugs.
func TestClusterKillLeader(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{ExtraArgs: []string{
		"--snapshot-threshold", strconv.Itoa(ckSnapshotThreshold),
		"--trailing-logs", strconv.Itoa(ckTrailingLogs),
		"--snapshot-interval", "200ms",
	}})
	ctx, cancel := context.WithTimeout(context.Background(), ckDeadline)
	defer cancel()
	r := newCKRun(c)
	began := time.Now()
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		start := time.Now()
		ok := t.Run(name, f)
		t.Logf("%s took %s", name, time.Since(start).Round(time.Millisecond))
		if !ok {
			t.FailNow()
		}
	}

	var leader, killed *testcluster.Node
	step("WriteThroughFollower", func(t *testing.T) {
		for _, key := range r.registers {
			// On a loaded machine leadership can change under a write: it
			// is then "unknown" (the history keeps it) and made again
			// through whichever node follows now.
			var w history.Op
			var via *testcluster.Node
			ckPoll(ctx, t, fmt.Sprintf("a write of %s through a follower", key), func() (bool, string) {
				leader = ckWaitLeader(ctx, t, c, nil)
				via = ckOther(t, c, leader)
				w = r.write(ctx, -1, via, key)
				return w.Outcome == history.OK, fmt.Sprintf("%s through %s: %s", w.Outcome, via.ID, w.Err)
			})
			for _, n := range c.Nodes {
				var got history.Op
				ckPoll(ctx, t, fmt.Sprintf("a read of %s from %s", key, n.ID), func() (bool, string) {
					got = r.read(ctx, -1, n, key, false)
					return got.Outcome == history.OK, fmt.Sprintf("%s: %s", got.Outcome, got.Err)
				})
				if got.Value != w.Value || got.Index != w.Index {
					t.Fatalf("read %s from %s after writing it through %s: got %q at index %d, want %q at index %d",
						key, n.ID, via.ID, got.Value, got.Index, w.Value, w.Index)
				}
			}
		}
	})

	step("KillLeaderUnderLoad", func(t *testing.T) {
		var acked atomic.Int64                // writes acknowledged that began after newSeen
		var newSeen atomic.Pointer[time.Time] // when the new leader was seen
		load := r.load(ctx, 0, ckClients, c.Nodes, r.registers, true, func(op history.Op) {
			if seen := newSeen.Load(); seen != nil && op.Kind == history.Write && op.Outcome == history.OK && op.Start.After(*seen) {
				acked.Add(1)
			}
		})
		defer load.Stop()
		select {
		case <-time.After(ckLoadBefore):
		case <-ctx.Done():
			t.Fatal("deadline before the kill")
		}
		before := history.Summarize(r.rec.Ops())
		if before.Writes[history.OK] == 0 || before.Reads[history.OK] == 0 {
			t.Fatalf("before the kill: got %s, want acknowledged writes and reads", before)
		}
		killed = leader
		killedAt := time.Now()
		killed.Kill()
		leader = ckWaitLeader(ctx, t, c, killed)
		seen := time.Now()
		newSeen.Store(&seen)
		t.Logf("killed leader %s; %s leads %s later", killed.ID, leader.ID, time.Since(killedAt).Round(time.Millisecond))
		if leader == killed {
			t.Fatalf("leader after the kill: got %s, want another node", leader.ID)
		}

		// Writes succeed again, through the new leader and the surviving
		// follower alike.
		for _, n := range []*testcluster.Node{leader, ckOther(t, c, leader, killed)} {
			ckPoll(ctx, t, fmt.Sprintf("a write through %s after the kill", n.ID), func() (bool, string) {
				w := r.write(ctx, -1, n, r.registers[0])
				return w.Outcome == history.OK, fmt.Sprintf("%s: %s", w.Outcome, w.Err)
			})
		}
		// And under load: the clients keep being acknowledged.
		minEnd := time.Now().Add(ckLoadAfter)
		ckPoll(ctx, t, "acknowledged writes from the load after the new leader", func() (bool, string) {
			n := acked.Load()
			return n >= 50 && time.Now().After(minEnd), fmt.Sprintf("%d acknowledged", n)
		})
		load.Stop()
		t.Logf("history so far: %s", history.Summarize(r.rec.Ops()))

		r.finalReads(ctx, t, leader, r.registers)
		r.check(t)
	})

	step("RestartedNodeCatchesUp", func(t *testing.T) {
		killed.Restart()
		want := ckStatus(ctx, t, c, leader).AppliedIndex
		ckPoll(ctx, t, fmt.Sprintf("restarted %s to apply index %d", killed.ID, want), func() (bool, string) {
			st, err := c.Status(killed)
			if err != nil {
				return false, err.Error()
			}
			return st.AppliedIndex >= want, fmt.Sprintf("applied %d", st.AppliedIndex)
		})
		st := ckStatus(ctx, t, c, killed)
		t.Logf("%s caught up to index %d (its last snapshot is at %d)", killed.ID, st.AppliedIndex, st.LastSnapshotIndex)
		r.compare(ctx, t, leader, killed, r.registers)
		r.check(t)
	})

	step("CatchUpFromSnapshot", func(t *testing.T) {
		leader = ckWaitLeader(ctx, t, c, nil)
		follower := ckOther(t, c, leader)
		down := ckStatus(ctx, t, c, follower)
		follower.Kill()
		// The follower's log ends at or before the leader's commit index:
		// nothing was being written when it stopped. Once the leader's
		// snapshot is more than the trailing logs past that, the entries
		// the follower needs next are gone from the leader's log.
		mark := max(ckStatus(ctx, t, c, leader).CommitIndex, down.CommitIndex)
		writeTo := []*testcluster.Node{leader, ckOther(t, c, leader, follower)}
		keys := append([]string(nil), r.registers...)
		for i := range ckFillKeys {
			keys = append(keys, fmt.Sprintf("fill-%02d", i))
		}

		var acked atomic.Int64
		load := r.load(ctx, ckClients, ckSnapshotWriters, writeTo, keys, false, func(op history.Op) {
			if op.Outcome == history.OK {
				acked.Add(1)
			}
		})
		defer load.Stop()
		// Both running nodes must have compacted past the stopped one:
		// leadership can move while the machine is loaded, and whichever
		// node leads when the follower returns must have to send it a
		// snapshot.
		var leaderSnap uint64
		ckPoll(ctx, t, "both running nodes to snapshot and compact past the stopped follower", func() (bool, string) {
			seen := fmt.Sprintf("%d writes acknowledged", acked.Load())
			done := acked.Load() >= ckSnapshotWrites
			for _, n := range writeTo {
				st, err := c.Status(n)
				if err != nil {
					return false, fmt.Sprintf("%s; %s: %v", seen, n.ID, err)
				}
				if n == leader {
					leaderSnap = st.LastSnapshotIndex
				}
				seen += fmt.Sprintf("; %s's snapshot at %d", n.ID, st.LastSnapshotIndex)
				done = done && st.LastSnapshotIndex > mark+ckTrailingLogs
			}
			return done, fmt.Sprintf("%s, want both past %d", seen, mark+ckTrailingLogs)
		})
		load.Stop()
		t.Logf("%s stopped at applied index %d (snapshot %d); %d writes later the leader's snapshot is at %d",
			follower.ID, down.AppliedIndex, down.LastSnapshotIndex, acked.Load(), leaderSnap)

		// raft says at info level when it installs a snapshot from the
		// leader; the restarted follower logs at that level.
		follower.Args = append(follower.Args, "--raft-log-level", "info")
		follower.Restart()
		want := ckStatus(ctx, t, c, leader).AppliedIndex
		ckPoll(ctx, t, fmt.Sprintf("restarted %s to apply index %d", follower.ID, want), func() (bool, string) {
			st, err := c.Status(follower)
			if err != nil {
				return false, err.Error()
			}
			return st.AppliedIndex >= want, fmt.Sprintf("applied %d", st.AppliedIndex)
		})
		// raft restores the snapshot into the state machine (which moves
		// the applied index) a few milliseconds before it records the
		// snapshot and logs the install, so both are waited for, not
		// looked for once.
		installed := func() bool { return strings.Contains(follower.Log(), "Installed remote snapshot") }
		var up testcluster.Status
		var upErr error
		deadline := time.Now().Add(ckWait)
		for ctx.Err() == nil {
			up, upErr = c.Status(follower)
			if upErr == nil && up.LastSnapshotIndex > down.AppliedIndex && installed() {
				break
			}
			if time.Now().After(deadline) {
				break
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		if upErr != nil || up.LastSnapshotIndex <= down.AppliedIndex {
			t.Errorf("%s last_snapshot_index after the restart: got %d (%v), want more than %d (its applied index when stopped) within %s",
				follower.ID, up.LastSnapshotIndex, upErr, down.AppliedIndex, ckWait)
		}
		if !installed() {
			t.Errorf("%s caught up without installing a snapshot from the leader (no %q in its log within %s; leader now %s); its log:\n%s",
				follower.ID, "Installed remote snapshot", ckWait, up.Leader, follower.Log())
		}
		r.compare(ctx, t, leader, follower, keys)
		r.check(t)
	})
	t.Logf("history: %s; the test took %s", history.Summarize(r.rec.Ops()), time.Since(began).Round(time.Millisecond))
}

// ckRun is the state of one TestClusterKillLeader: the cluster, a client
// per node and the history of every operation.
type ckRun struct {
	c         *testcluster.Cluster
	clients   map[string]*client.Client
	registers []string
	rec       history.Recorder
	seq       atomic.Int64
	// internal holds the operations answered 500: the API promises 502 or
	// 503 while the leader is gone and keeps 500 for bugs.
	mu       sync.Mutex
	internal []history.Op
	// badIndex holds the successful answers without a valid
	// X-Certvault-Index header, which every one must carry.
	badIndex []string
}

func newCKRun(c *testcluster.Cluster) *ckRun {
	r := &ckRun{c: c, clients: map[string]*client.Client{}}
	for _, n := range c.Nodes {
		r.clients[n.ID] = c.Client(n)
	}
	for i := range ckRegisters {
		r.registers = append(r.registers, fmt.Sprintf("reg-%d", i))
	}
	return r
}

// write sets key to a new unique value through node n and records it. A
// refusal (4xx) certainly changed nothing; any other failure may have.
func (r *ckRun) write(ctx context.Context, clientID int, n *testcluster.Node, key string) history.Op {
	op := history.Op{Client: clientID, Node: n.ID, Kind: history.Write, Key: key,
		Value: fmt.Sprintf("v%d-c%d", r.seq.Add(1), clientID), Start: time.Now()}
	octx, cancel := context.WithTimeout(ctx, ckOpTimeout)
	defer cancel()
	resp, err := r.clients[n.ID].DoResponse(octx, http.MethodPut, "/secrets/"+key, map[string]string{"value": op.Value}, nil)
	op.End = time.Now()
	var ae *client.Error
	switch {
	case err == nil:
		op.Outcome = history.OK
		op.Index = r.index(op, resp.Header)
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500:
		op.Outcome, op.Err = history.Failed, err.Error()
	default:
		op.Outcome, op.Err = history.Unknown, err.Error()
	}
	r.record(op, ae)
	return op
}

// read gets the current value of key from node n and records it. A
// missing key is an OK read of "" at index 0.
func (r *ckRun) read(ctx context.Context, clientID int, n *testcluster.Node, key string, final bool) history.Op {
	op := history.Op{Client: clientID, Node: n.ID, Kind: history.Read, Key: key, Final: final, Start: time.Now()}
	octx, cancel := context.WithTimeout(ctx, ckOpTimeout)
	defer cancel()
	var out struct {
		Value string `json:"value"`
	}
	resp, err := r.clients[n.ID].DoResponse(octx, http.MethodGet, "/secrets/"+key+"/", nil, &out)
	op.End = time.Now()
	var ae *client.Error
	switch {
	case err == nil:
		op.Outcome, op.Value = history.OK, out.Value
		op.Index = r.index(op, resp.Header)
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound && ae.Code == "SecretNotFound":
		op.Outcome = history.OK
	default:
		op.Outcome, op.Err = history.Failed, err.Error()
	}
	r.record(op, ae)
	return op
}

// record adds op to the history; ae is the API error it got, if any.
// index returns the raft index a successful answer carries in its
// X-Certvault-Index header; a missing or malformed one is recorded and
// fails the test at the next check.
func (r *ckRun) index(op history.Op, h http.Header) uint64 {
	idx, err := strconv.ParseUint(h.Get("X-Certvault-Index"), 10, 64)
	if err != nil {
		r.mu.Lock()
		r.badIndex = append(r.badIndex, fmt.Sprintf("%s: X-Certvault-Index: %v", op, err))
		r.mu.Unlock()
	}
	return idx
}

func (r *ckRun) record(op history.Op, ae *client.Error) {
	r.rec.Add(op)
	if ae != nil && ae.Status == http.StatusInternalServerError {
		r.mu.Lock()
		r.internal = append(r.internal, op)
		r.mu.Unlock()
	}
}

// ckLoad is a running set of clients.
type ckLoad struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// Stop ends the clients and waits for them; it may be called again.
func (l *ckLoad) Stop() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// load starts clients goroutines, numbered from firstID, that write random
// keys through random nodes (dead ones too), alternating with reads when
// reads is set, until Stop or the end of ctx. Each operation is recorded
// and passed to seen.
func (r *ckRun) load(ctx context.Context, firstID, clients int, nodes []*testcluster.Node, keys []string, reads bool, seen func(history.Op)) *ckLoad {
	l := &ckLoad{stop: make(chan struct{})}
	for i := firstID; i < firstID+clients; i++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for j := 0; ctx.Err() == nil; j++ {
				select {
				case <-l.stop:
					return
				default:
				}
				n, key := nodes[rng.IntN(len(nodes))], keys[rng.IntN(len(keys))]
				var op history.Op
				if reads && j%2 == 1 {
					op = r.read(ctx, i, n, key, false)
				} else {
					op = r.write(ctx, i, n, key)
				}
				seen(op)
				if op.Outcome != history.OK {
					// Back off a little, so that the clients of a dead
					// node do not spin.
					select {
					case <-l.stop:
						return
					case <-ctx.Done():
						return
					case <-time.After(time.Duration(10+rng.IntN(20)) * time.Millisecond):
					}
				}
			}
		}()
	}
	return l
}

// finalReads reads every key from n, marked final: no other operation is
// running. A failed read is retried until the wait ends.
func (r *ckRun) finalReads(ctx context.Context, t *testing.T, n *testcluster.Node, keys []string) map[string]history.Op {
	t.Helper()
	out := map[string]history.Op{}
	for _, key := range keys {
		ckPoll(ctx, t, fmt.Sprintf("a final read of %s from %s", key, n.ID), func() (bool, string) {
			op := r.read(ctx, -1, n, key, true)
			out[key] = op
			return op.Outcome == history.OK, op.Err
		})
	}
	return out
}

// compare reads every key from leader and then from node and wants the
// same value at the same index.
func (r *ckRun) compare(ctx context.Context, t *testing.T, leader, node *testcluster.Node, keys []string) {
	t.Helper()
	want := r.finalReads(ctx, t, leader, keys)
	got := r.finalReads(ctx, t, node, keys)
	for _, key := range keys {
		if g, w := got[key], want[key]; g.Value != w.Value || g.Index != w.Index {
			t.Errorf("%s on %s: got %q at index %d, want %q at index %d as on leader %s",
				key, node.ID, g.Value, g.Index, w.Value, w.Index, leader.ID)
		}
	}
}

// check runs the history checker over everything recorded so far, and
// wants no 500 answer.
func (r *ckRun) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	internal, badIndex := r.internal, r.badIndex
	r.mu.Unlock()
	for i, e := range badIndex {
		if i == 5 {
			t.Errorf("... and %d more answers without an index", len(badIndex)-i)
			break
		}
		t.Errorf("%s, want the index of the answer", e)
	}
	for i, op := range internal {
		if i == 5 {
			t.Errorf("... and %d more answers 500", len(internal)-i)
			break
		}
		t.Errorf("%s: got 500, want success, 502 or 503 while the cluster fails over", op)
	}
	ops := r.rec.Ops()
	vs := history.Check(ops)
	for i, v := range vs {
		if i == 20 {
			t.Errorf("... and %d more violations", len(vs)-i)
			break
		}
		t.Errorf("history: %s", v)
	}
	t.Logf("checked a history of %d operations (%s): %d violations", len(ops), history.Summarize(ops), len(vs))
}

// ckWaitLeader polls the running nodes until one reports a running leader
// other than not (nil: any) and that leader agrees.
func ckWaitLeader(ctx context.Context, t *testing.T, c *testcluster.Cluster, not *testcluster.Node) *testcluster.Node {
	t.Helper()
	var leader *testcluster.Node
	ckPoll(ctx, t, "a leader", func() (bool, string) {
		var seen []string
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			st, err := c.Status(n)
			if err != nil {
				seen = append(seen, fmt.Sprintf("%s: %v", n.ID, err))
				continue
			}
			seen = append(seen, fmt.Sprintf("%s sees leader %q", n.ID, st.Leader))
			if st.Leader == "" || (not != nil && st.Leader == not.ID) {
				continue
			}
			for _, l := range c.Nodes {
				if l.ID == st.Leader && l.Running() {
					if lst, err := c.Status(l); err == nil && lst.Leader == l.ID {
						leader = l
						return true, ""
					}
				}
			}
		}
		return false, strings.Join(seen, "; ")
	})
	return leader
}

// ckOther returns a running node that is none of the given ones.
func ckOther(t *testing.T, c *testcluster.Cluster, not ...*testcluster.Node) *testcluster.Node {
	t.Helper()
	for _, n := range c.Nodes {
		excluded := false
		for _, x := range not {
			excluded = excluded || n == x
		}
		if !excluded && n.Running() {
			return n
		}
	}
	t.Fatalf("no running node besides %d others", len(not))
	return nil
}

// ckStatus asks n for the cluster status, retrying for a while.
func ckStatus(ctx context.Context, t *testing.T, c *testcluster.Cluster, n *testcluster.Node) testcluster.Status {
	t.Helper()
	var st testcluster.Status
	ckPoll(ctx, t, "the status of "+n.ID, func() (bool, string) {
		var err error
		st, err = c.Status(n)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return st
}

// ckPoll calls cond until it reports true, failing the test when ckWait or
// ctx runs out first; cond's second result says how far it got.
func ckPoll(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(ckWait)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("the test's %s ran out while waiting for %s: got %s", ckDeadline, what, state)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: got %s", ckWait, what, state)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}
