package raftstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// memForwarder forwards between stores of one test process.
type memForwarder struct {
	mu     sync.Mutex
	stores map[string]*Store
	// broken, when set, is the transport error every Forward returns.
	broken error
	// hang, when set, makes every Forward wait, as for a leader that was
	// stopped, until its context ends or hang is closed.
	hang chan struct{}
}

func (m *memForwarder) Forward(ctx context.Context, nodeID string, req *ForwardRequest) (*ForwardResponse, error) {
	m.mu.Lock()
	s, broken, hang := m.stores[nodeID], m.broken, m.hang
	m.mu.Unlock()
	if broken != nil {
		return nil, broken
	}
	if hang != nil {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("post to %s: %w", nodeID, ctx.Err())
		case <-hang:
			return nil, fmt.Errorf("post to %s: connection closed", nodeID)
		}
	}
	if s == nil {
		return nil, fmt.Errorf("no node %s", nodeID)
	}
	// Round-trip through the wire form, as the HTTP forwarder does.
	cp := *req
	return s.HandleForward(ctx, &cp), nil
}

type testCluster struct {
	t      *testing.T
	fwd    *memForwarder
	trans  map[string]*raft.InmemTransport
	stores map[string]*Store
	// requestTimeout is each store's Config.RequestTimeout (0: default).
	requestTimeout time.Duration
	// network, when set, gives each node a transport of its own (a real
	// one over 127.0.0.1) and the address it is reached at, in place of
	// the in-memory transports.
	network func(id string) (raft.Transport, string)
	// addrs are the raft addresses of the nodes on a network (else the
	// node ID is the address).
	addrs map[string]string
	// wrapLogs, when set, wraps each node's log store (Config.wrapLogs).
	wrapLogs func(id string) func(raft.LogStore) raft.LogStore
	// spillBytes and snapshotThreshold are each store's
	// Config.SpillBytes and SnapshotThreshold (0: default).
	spillBytes        int
	snapshotThreshold uint64
}

// config is node id's store configuration on dir, without a transport.
func (c *testCluster) config(id, dir string) Config {
	cfg := Config{
		NodeID: id, Dir: dir, Forwarder: c.fwd,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		RaftLogOutput: io.Discard, HeartbeatTimeout: testRaftTimeout, ElectionTimeout: testRaftTimeout,
		RequestTimeout: c.requestTimeout, SpillBytes: c.spillBytes, SnapshotThreshold: c.snapshotThreshold,
	}
	if c.wrapLogs != nil {
		cfg.wrapLogs = c.wrapLogs(id)
	}
	return cfg
}

// addr is the raft address of node id.
func (c *testCluster) addr(id string) string {
	if a, ok := c.addrs[id]; ok {
		return a
	}
	return id
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return newTestClusterTimeout(t, n, 0)
}

// newTestClusterTimeout starts a cluster whose stores have requestTimeout
// as Config.RequestTimeout.
func newTestClusterTimeout(t *testing.T, n int, requestTimeout time.Duration) *testCluster {
	t.Helper()
	return startTestCluster(t, n, requestTimeout, false)
}

// startTestCluster starts n stores with requestTimeout as their
// Config.RequestTimeout, in memory or (onDisk) each in a directory of its
// own, bootstraps n1 and adds the others as voters.
func startTestCluster(t *testing.T, n int, requestTimeout time.Duration, onDisk bool) *testCluster {
	t.Helper()
	return startCluster(t, n, &testCluster{requestTimeout: requestTimeout}, onDisk)
}

// startCluster starts n stores as c's options say (a zero c: in memory,
// default timeouts), bootstraps n1 and adds the others as voters.
func startCluster(t *testing.T, n int, c *testCluster, onDisk bool) *testCluster {
	t.Helper()
	c.t, c.fwd, c.trans, c.stores, c.addrs = t, &memForwarder{stores: map[string]*Store{}}, map[string]*raft.InmemTransport{}, map[string]*Store{}, map[string]string{}
	for i := 1; i <= n; i++ {
		dir := ""
		if onDisk {
			dir = t.TempDir()
		}
		c.start(fmt.Sprintf("n%d", i), dir)
	}
	// Bootstrap n1, then add the others through a follower-agnostic call.
	if err := c.stores["n1"].Bootstrap(c.addr("n1")); err != nil {
		t.Fatal(err)
	}
	c.waitLeader()
	for i := 2; i <= n; i++ {
		c.addVoter(fmt.Sprintf("n%d", i))
	}
	return c
}

// addVoter adds id as a voter through whichever store leads. On a loaded
// machine the election timeout can pass while the change commits
// ("leadership lost while committing log"): adding the same voter again is
// harmless, so it is retried through the new leader until waitLimit.
func (c *testCluster) addVoter(id string) {
	c.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		err := c.waitLeader().AddVoter(ctx(c.t), id, c.addr(id))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("add voter %s: still failing after %s: %v", id, waitLimit, err)
		}
		c.t.Logf("add voter %s: %v; retrying through the leader", id, err)
		time.Sleep(50 * time.Millisecond) // a pause between tries, not a wait for a condition
	}
}

// testRaftTimeout is the stores' heartbeat and election timeout: the
// default certvaultd runs with. Shorter ones made elections in tests
// quicker, but a -race build beside two CPU-hog processes (make
// test-busy) then lost its leader to a late heartbeat in the middle of
// tests that are not about elections.
const testRaftTimeout = time.Second

func (c *testCluster) start(id, dir string) *Store {
	c.t.Helper()
	var tr raft.Transport
	if c.network != nil {
		var addr string
		tr, addr = c.network(id)
		c.addrs[id] = addr
	} else {
		_, mem := raft.NewInmemTransport(raft.ServerAddress(id))
		for oid, other := range c.trans {
			mem.Connect(raft.ServerAddress(oid), other)
			other.Connect(raft.ServerAddress(id), mem)
		}
		c.trans[id] = mem
		tr = mem
	}
	cfg := c.config(id, dir)
	cfg.Transport = tr
	s, err := Open(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.stores[id] = s
	c.fwd.mu.Lock()
	c.fwd.stores[id] = s
	c.fwd.mu.Unlock()
	c.t.Cleanup(func() {
		// Bounded: a store whose raft goroutines are stuck must fail the
		// test, not hang the package.
		done := make(chan struct{})
		go func() { s.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(waitLimit):
			c.t.Errorf("close %s: still closing after %s (a raft goroutine is stuck)", id, waitLimit)
		}
	})
	return s
}

func (c *testCluster) waitLeader() *Store {
	c.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		for _, s := range c.stores {
			if s.IsLeader() {
				return s
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	ids := make([]string, 0, len(c.stores))
	for id := range c.stores {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	c.t.Fatalf("no leader within %v: none of %v reports itself leader", waitLimit, ids)
	return nil
}

func (c *testCluster) follower() *Store {
	leader := c.waitLeader()
	for _, s := range c.stores {
		if s != leader {
			return s
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// waitLimit bounds each wait of these tests and the context of each call
// (ctx). It only matters when a test fails: it is generous so that the
// tests hold on a loaded 2-core machine under -race.
const waitLimit = 60 * time.Second

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), waitLimit)
	t.Cleanup(cancel)
	return c
}

func TestBatchEncodingRoundTrip(t *testing.T) {
	b := (&Batch{}).Put("a/b", []byte("v")).PutIf("a/c", nil, NotExist).DeleteIf("x", 7).DeletePrefix("p/").Check("k", 3)
	got, err := decodeBatch(b.Encode()[1:])
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Ops) != len(b.Ops) {
		t.Fatalf("got %d ops, want %d", len(got.Ops), len(b.Ops))
	}
	for i := range b.Ops {
		w, g := b.Ops[i], got.Ops[i]
		if w.Kind != g.Kind || w.Key != g.Key || !bytes.Equal(w.Value, g.Value) || w.HasIf != g.HasIf || w.IfIndex != g.IfIndex {
			t.Errorf("op %d: got %+v, want %+v", i, g, w)
		}
	}
	for _, bad := range [][]byte{{}, {5}, {1, 9, 1}, append(b.Encode()[1:], 0)} {
		if _, err := decodeBatch(bad); !errors.Is(err, ErrBadCommand) {
			t.Errorf("decode %x: got %v, want ErrBadCommand", bad, err)
		}
	}
}

func TestApplyPreconditions(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.stores["n1"]
	idx, err := s.Apply(ctx(t), (&Batch{}).PutIf("k", []byte("1"), NotExist))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx(t), (&Batch{}).PutIf("k", []byte("2"), NotExist)); !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: got %v, want ErrConflict", err)
	}
	// A batch whose second precondition fails applies nothing.
	if _, err := s.Apply(ctx(t), (&Batch{}).Put("other", []byte("x")).PutIf("k", []byte("3"), idx+100)); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale CAS: got %v, want ErrConflict", err)
	}
	if _, ok := s.Get("other"); ok {
		t.Fatal("a failed batch applied one of its operations")
	}
	idx2, err := s.Apply(ctx(t), (&Batch{}).PutIf("k", []byte("4"), idx))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := s.Get("k")
	if string(e.Value) != "4" || e.Index != idx2 || e.CreateIndex != idx {
		t.Fatalf("got %+v, want value 4 index %d create %d", e, idx2, idx)
	}
	if _, err := s.Apply(ctx(t), (&Batch{}).Put("dir/a", nil).Put("dir/b", nil).Put("dir2/c", nil)); err != nil {
		t.Fatalf("put dir/a, dir/b, dir2/c: %v", err)
	}
	if _, err := s.Apply(ctx(t), (&Batch{}).DeletePrefix("dir/")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.List("dir", "", 0); len(got) != 1 || got[0].Key != "dir2/c" {
		t.Fatalf("after delete prefix: got %+v, want only dir2/c", got)
	}
	if _, err := s.Apply(ctx(t), &Batch{}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("empty batch: got %v, want ErrBadCommand", err)
	}
}

func TestListPaging(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.stores["n1"]
	b := &Batch{}
	for i := 0; i < 10; i++ {
		b.Put(fmt.Sprintf("p/%02d", i), nil)
	}
	b.Put("q/0", nil)
	if _, err := s.Apply(ctx(t), b); err != nil {
		t.Fatalf("put p/00..p/09 and q/0: %v", err)
	}
	var keys []string
	after := ""
	for {
		page, _ := s.List("p/", after, 3)
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			keys = append(keys, e.Key)
		}
		after = page[len(page)-1].Key
	}
	if len(keys) != 10 || keys[0] != "p/00" || keys[9] != "p/09" {
		t.Fatalf("got %v, want p/00..p/09", keys)
	}
}

// TestRangeAndLastChange checks Range's order, early stop and index, and
// that LastChange moves with writes under its prefixes only.
func TestRangeAndLastChange(t *testing.T) {
	c := newTestCluster(t, 1)
	s := c.stores["n1"]
	b := &Batch{}
	for i := range 5 {
		b.Put(fmt.Sprintf("p/%02d", i), []byte{byte(i)})
	}
	b.Put("pq/0", nil)
	idx, err := s.Apply(ctx(t), b)
	if err != nil {
		t.Fatalf("put p/00..p/04: %v", err)
	}
	var keys []string
	at := s.Range("p/", func(e Entry) bool {
		keys = append(keys, e.Key)
		return true
	})
	if fmt.Sprint(keys) != "[p/00 p/01 p/02 p/03 p/04]" || at < idx {
		t.Errorf("Range(p/) = %v at index %d, want p/00..p/04 at %d or later", keys, at, idx)
	}
	if got := s.Keys("p/"); fmt.Sprint(got) != fmt.Sprint(keys) {
		t.Errorf("Keys(p/) = %v, want %v", got, keys)
	}
	n := 0
	s.Range("p/", func(Entry) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("Range went on for %d entries after fn said stop at 2", n)
	}
	if lc := s.LastChange("p/"); lc != idx {
		t.Errorf("LastChange(p/) = %d, want %d", lc, idx)
	}
	b = &Batch{}
	b.Put("q/0", nil)
	other, err := s.Apply(ctx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if lc := s.LastChange("p/"); lc != idx {
		t.Errorf("LastChange(p/) after a write to q/ = %d, want %d", lc, idx)
	}
	if lc := s.LastChange("p/", "q/"); lc != other {
		t.Errorf("LastChange(p/, q/) = %d, want %d", lc, other)
	}
	b = &Batch{}
	b.Delete("p/03")
	del, err := s.Apply(ctx(t), b)
	if err != nil {
		t.Fatal(err)
	}
	if lc := s.LastChange("p/"); lc != del {
		t.Errorf("LastChange(p/) after a delete = %d, want %d", lc, del)
	}
}

func TestFollowerWritesAndLinearizableReads(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.follower()
	for i := 0; i < 20; i++ {
		key := fmt.Sprintf("r/%d", i%3)
		idx, err := f.Apply(ctx(t), (&Batch{}).Put(key, []byte(fmt.Sprint(i))))
		if err != nil {
			t.Fatalf("write through follower: %v", err)
		}
		// Every node, after Linearize, sees the write.
		for id, s := range c.stores {
			if err := s.Linearize(ctx(t)); err != nil {
				t.Fatalf("%s linearize: %v", id, err)
			}
			e, ok := s.Get(key)
			if !ok || e.Index < idx || string(e.Value) != fmt.Sprint(i) {
				t.Fatalf("%s read %s after linearize: got %+v, want value %d at index >= %d", id, key, e, i, idx)
			}
		}
	}
	st, err := f.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Servers) != 3 || st.Leader == "" {
		t.Fatalf("status: got %+v, want 3 servers and a leader", st)
	}
	leaders := 0
	for _, srv := range st.Servers {
		if srv.State == "leader" {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("status shows %d leaders, want 1", leaders)
	}
}

// TestForwardTransportError: when a follower cannot reach the leader (it
// died mid-request), a read index fails as ErrUnreachable, safe to retry,
// and a write as ErrAmbiguous, since the leader may have applied it; the
// API turns both into 503, not 500. The codes survive a forwarding hop.
func TestForwardTransportError(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.follower()
	c.fwd.mu.Lock()
	c.fwd.broken = errors.New("post to leader: unexpected EOF")
	c.fwd.mu.Unlock()
	if _, err := f.ReadIndex(ctx(t)); !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrAmbiguous) {
		t.Errorf("read index through a follower that cannot reach the leader: got %v, want ErrUnreachable", err)
	}
	_, err := f.Apply(ctx(t), (&Batch{}).Put("k", []byte("v")))
	if !errors.Is(err, ErrAmbiguous) || errors.Is(err, ErrUnreachable) {
		t.Errorf("write through a follower that cannot reach the leader: got %v, want ErrAmbiguous", err)
	}
	for _, sentinel := range []error{ErrUnreachable, ErrAmbiguous} {
		if got := responseFor(0, fmt.Errorf("forward: %w", sentinel)).err(); !errors.Is(got, sentinel) {
			t.Errorf("%v across the wire: got %v, want it wrapped", sentinel, got)
		}
	}
}

func TestMembershipThroughFollower(t *testing.T) {
	c := newTestCluster(t, 3)
	f := c.follower()
	c.start("n4", "")
	if err := f.AddVoter(ctx(t), "n4", "n4"); err != nil {
		t.Fatalf("add voter through follower: %v", err)
	}
	idx, err := f.Apply(ctx(t), (&Batch{}).Put("after-join", []byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.stores["n4"].WaitApplied(ctx(t), idx); err != nil {
		t.Fatalf("new voter did not catch up: %v", err)
	}
	if err := f.RemoveServer(ctx(t), "n4"); err != nil {
		t.Fatalf("remove through follower: %v", err)
	}
	if err := f.RemoveServer(ctx(t), "nope"); !errors.Is(err, ErrUnknownServer) {
		t.Fatalf("remove unknown: got %v, want ErrUnknownServer", err)
	}
	st, err := c.waitLeader().Status()
	if err != nil {
		t.Fatalf("status after remove: %v", err)
	}
	if len(st.Servers) != 3 {
		t.Fatalf("after remove: %d servers, want 3", len(st.Servers))
	}
}

func TestWatch(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader()
	f := c.follower()
	idx, err := leader.Apply(ctx(t), (&Batch{}).Put("agents/a1/target", []byte("v1")))
	if err != nil {
		t.Fatalf("put agents/a1/target: %v", err)
	}
	if err := f.WaitApplied(ctx(t), idx); err != nil {
		t.Fatalf("follower wait for index %d: %v", idx, err)
	}

	// Already changed after 0: returns at once.
	if got, err := f.Watch(ctx(t), []string{"agents/a1/"}, 0); err != nil || got != idx {
		t.Fatalf("watch after 0: got %d %v, want %d", got, err, idx)
	}
	// Nothing new: times out with the current index.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	got, err := f.Watch(short, []string{"agents/a1/"}, idx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) || got != idx {
		t.Fatalf("idle watch: got %d %v, want %d and deadline", got, err, idx)
	}

	// 2,000 watchers on other agents, 1 on a1: a write to a1 wakes only it.
	const others = 2000
	var woke sync.WaitGroup
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	wrong := make(chan string, others)
	for i := 0; i < others; i++ {
		woke.Add(1)
		go func(i int) {
			defer woke.Done()
			if _, err := f.Watch(wctx, []string{fmt.Sprintf("agents/b%d/", i)}, idx); err == nil {
				wrong <- fmt.Sprintf("b%d", i)
			}
		}(i)
	}
	type watched struct {
		index uint64
		err   error
	}
	done := make(chan watched, 1)
	go func() {
		got, err := f.Watch(ctx(t), []string{"agents/a1/", "certs/www"}, idx)
		done <- watched{got, err}
	}()
	waitFor(t, fmt.Sprintf("%d watchers registered on the follower", others+2), func() (bool, string) {
		n := f.fsm.watcherCount()
		return n == others+2, fmt.Sprintf("%d registered", n)
	})
	idx2, err := leader.Apply(ctx(t), (&Batch{}).Put("certs/www", []byte("v2")))
	if err != nil {
		t.Fatalf("put certs/www: %v", err)
	}
	select {
	case got := <-done:
		if got.err != nil || got.index != idx2 {
			t.Fatalf("woken watch: got index %d (%v), want %d", got.index, got.err, idx2)
		}
	case <-time.After(waitLimit):
		t.Fatalf("watch on certs/www did not wake within %v of the write at index %d", waitLimit, idx2)
	}
	if n := f.fsm.watcherCount(); n != others {
		t.Fatalf("after wake: %d waiters registered, want %d", n, others)
	}
	wcancel()
	woke.Wait()
	close(wrong)
	for id := range wrong {
		t.Fatalf("watcher %s woke for a write it does not watch", id)
	}
	if n := f.fsm.watcherCount(); n != 0 {
		t.Fatalf("after cancel: %d waiters left, want 0", n)
	}

	// A delete wakes a watcher of the deleted key.
	go func() {
		got, err := f.Watch(ctx(t), []string{"certs/www"}, idx2)
		done <- watched{got, err}
	}()
	waitFor(t, "1 watcher registered on the follower", func() (bool, string) {
		n := f.fsm.watcherCount()
		return n == 1, fmt.Sprintf("%d registered", n)
	})
	idx3, err := leader.Apply(ctx(t), (&Batch{}).Delete("certs/www"))
	if err != nil {
		t.Fatalf("delete certs/www: %v", err)
	}
	if got := <-done; got.err != nil || got.index < idx3 {
		t.Fatalf("watch of deleted key: got %d (%v), want >= %d", got.index, got.err, idx3)
	}
}

// waitFor polls cond until it holds or waitLimit passes; then it fails
// naming what (the condition waited for) and what cond saw last.
func waitFor(t *testing.T, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: last saw %s", waitLimit, what, seen)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSnapshotSaveRestore(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitLeader()
	if _, err := leader.Apply(ctx(t), (&Batch{}).Put("a", []byte("1")).Put("b/c", []byte("2"))); err != nil {
		t.Fatalf("put a and b/c: %v", err)
	}
	var buf bytes.Buffer
	if err := c.follower().SaveSnapshot(ctx(t), &buf); err != nil {
		t.Fatal(err)
	}
	saved := buf.Bytes()
	idx, err := leader.Apply(ctx(t), (&Batch{}).Put("a", []byte("changed")).Delete("b/c").Put("new", nil))
	if err != nil {
		t.Fatalf("change a, delete b/c, put new: %v", err)
	}

	// Corrupt files are refused and change nothing.
	for name, data := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("not a snapshot at all"),
		"truncated": saved[:len(saved)-10],
		"flipped":   append(append([]byte{}, saved[:12]...), append([]byte{saved[12] ^ 0xff}, saved[13:]...)...),
	} {
		err := leader.RestoreSnapshot(ctx(t), bytes.NewReader(data), nil)
		if !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: got %v, want ErrBadSnapshot", name, err)
		}
	}
	if e, _ := leader.Get("a"); string(e.Value) != "changed" {
		t.Fatalf("a refused restore changed state: a=%q", e.Value)
	}
	// The caller's check can refuse too.
	veto := errors.New("wrong keyring")
	if err := leader.RestoreSnapshot(ctx(t), bytes.NewReader(saved), func(SnapshotView) error { return veto }); !errors.Is(err, veto) {
		t.Fatalf("vetoed restore: got %v", err)
	}

	if err := leader.RestoreSnapshot(ctx(t), bytes.NewReader(saved), func(v SnapshotView) error {
		if val, ok := v.Get("a"); !ok || string(val) != "1" {
			return fmt.Errorf("view: a=%q", val)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	idx2, err := leader.Apply(ctx(t), (&Batch{}).Put("post", nil))
	if err != nil || idx2 <= idx {
		t.Fatalf("write after restore: %d %v", idx2, err)
	}
	for id, s := range c.stores {
		if err := s.Linearize(ctx(t)); err != nil {
			t.Fatal(err)
		}
		a, _ := s.Get("a")
		_, hasNew := s.Get("new")
		bc, _ := s.Get("b/c")
		if string(a.Value) != "1" || hasNew || string(bc.Value) != "2" {
			t.Fatalf("%s after restore: a=%q new=%v b/c=%q", id, a.Value, hasNew, bc.Value)
		}
	}
}

func TestRestartFromDiskAndSnapshot(t *testing.T) {
	dir := t.TempDir()
	c := &testCluster{t: t, fwd: &memForwarder{stores: map[string]*Store{}}, trans: map[string]*raft.InmemTransport{}, stores: map[string]*Store{}}
	s := c.start("n1", dir)
	if err := s.Bootstrap("n1"); err != nil {
		t.Fatal(err)
	}
	c.waitLeader()
	for i := 0; i < 50; i++ {
		if _, err := s.Apply(ctx(t), (&Batch{}).Put(fmt.Sprintf("k/%d", i), []byte(fmt.Sprint(i)))); err != nil {
			t.Fatalf("put k/%d: %v", i, err)
		}
	}
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	last, err := s.Apply(ctx(t), (&Batch{}).Put("k/after-snapshot", []byte("tail")))
	if err != nil {
		t.Fatalf("put k/after-snapshot: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close before restart: %v", err)
	}

	c2 := &testCluster{t: t, fwd: &memForwarder{stores: map[string]*Store{}}, trans: map[string]*raft.InmemTransport{}, stores: map[string]*Store{}}
	s2 := c2.start("n1", dir)
	if ok, err := s2.HasState(); err != nil || !ok {
		t.Fatalf("restarted node has no state (%v)", err)
	}
	c2.waitLeader()
	if err := s2.WaitApplied(ctx(t), last); err != nil {
		t.Fatal(err)
	}
	if got, _ := s2.List("k/", "", 0); len(got) != 51 {
		t.Fatalf("after restart: %d keys, want 51", len(got))
	}
}
