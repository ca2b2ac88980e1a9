package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/testcluster"
)

// TestDiskFull fills the file system under a node's data directory (a
// small tmpfs) while a client writes, and checks what the issue asked
// for: writes are refused quickly with 507 (or 503) in the Key Vault
// error shape, naming the full disk; reads answer or fail quickly; the
// leader does not flap; nothing acknowledged is lost, and nothing the
// vault called "not applied" was applied; once the filler is removed the
// same process takes writes and secret reads again, and 'audit verify'
// passes with the gap in the trail recorded.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		nodes    int
		fullNode string
	}{
		{"single node", 1, "node1"},
		// The leader's disk fills: the others take over the writes.
		{"leader of three", 3, "node1"},
		// A follower's disk fills: it falls behind, then catches up.
		{"follower of three", 3, "node2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each has its own cluster and tmpfs
			testDiskFull(t, tc.nodes, tc.fullNode)
		})
	}
}

// dfTimeout bounds every request of the test: a disk-full answer must
// come in seconds, not minutes.
const dfTimeout = 10 * time.Second

func testDiskFull(t *testing.T, nodes int, fullID string) {
	mnt := dfTmpfs(t, 48)
	data := filepath.Join(mnt, "data")
	c := testcluster.Start(t, nodes, testcluster.Options{DataDirs: map[string]string{fullID: data}})
	var full *testcluster.Node
	for _, n := range c.Nodes {
		if n.ID == fullID {
			full = n
		}
	}
	pid := full.PID()
	run := &dfRun{c: c, values: map[string]string{}}

	for i := range 3 {
		if o := run.put(full, fmt.Sprintf("before-%d", i)); o.status != http.StatusOK {
			t.Fatalf("write before the disk fills: %s", o)
		}
	}
	leader0, term0 := dfLeader(t, c, full)
	anchors0 := dfAnchors(t, c, full)

	// A client writes on the full node, one request at a time, from now
	// until the disk has recovered.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			run.put(full, fmt.Sprintf("load-%d", i))
		}
	}()
	defer func() { stop(); wg.Wait() }()

	filler := filepath.Join(mnt, "filler")
	dfFill(t, filler)
	t.Logf("filled %s", mnt)

	// A write is refused, quickly, with a disk-full error.
	var refused dfOutcome
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		o := run.put(full, fmt.Sprintf("probe-%d", i))
		if o.err != nil {
			t.Fatalf("a write on the full node: %s", o)
		}
		if o.status == http.StatusInsufficientStorage || o.status == http.StatusServiceUnavailable {
			refused = o
			break
		}
		if o.status != http.StatusOK {
			t.Fatalf("a write while the disk fills: got %s, want 200, 507 or 503", o)
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes were still accepted 30s after the disk filled: last %s", o)
		}
	}
	dfDiskError(t, refused, data)
	t.Logf("refused: %s", refused)

	// For a while, every write is refused the same way, reads answer or
	// fail fast, no answer claims a read may have been applied, and the
	// leader stays where it is (before the fix it changed every 2 s).
	leader, term := dfLeader(t, c, full)
	if nodes == 1 && (leader != leader0 || term != term0) {
		t.Fatalf("single node: the disk filled under writes and the leader changed from %s (term %d) to %q (term %d)", leader0, term0, leader, term)
	}
	if nodes > 1 {
		// A leader that cannot write hands leadership to a node that can.
		waitFor(t, 30*time.Second, "leadership moves off the node whose disk is full", func() bool {
			leader, term = dfLeader(t, c, full)
			return leader != "" && leader != full.ID
		})
	}
	watch := time.Now().Add(6 * time.Second)
	for i := 0; time.Now().Before(watch); i++ {
		o := run.put(full, fmt.Sprintf("full-%d", i))
		switch {
		case o.err != nil:
			t.Fatalf("a write on the full node: %s", o)
		case o.status == http.StatusOK:
			t.Fatalf("a write on the full node was acknowledged while its audit trail cannot be written: %s", o)
		default:
			dfDiskError(t, o, data)
		}
		for _, path := range []string{"/secrets/before-0", "/secrets"} {
			r := run.get(full, path)
			if r.err != nil {
				t.Fatalf("a read on the full node: %s", r)
			}
			if r.status != http.StatusOK && r.status != http.StatusInsufficientStorage && r.status != http.StatusServiceUnavailable {
				t.Fatalf("a read on the full node: got %s, want 200, 507 or 503", r)
			}
			if dfMaybe(r.msg) {
				t.Fatalf("a read answered that it may have been applied: %s", r)
			}
		}
		if l, tm := dfLeader(t, c, full); l != leader || tm != term {
			t.Fatalf("while the disk is full the leader moved: from %s (term %d) to %s (term %d)", leader, term, l, tm)
		}
	}
	if code, reason := dfReady(t, c, full); code != http.StatusServiceUnavailable || !strings.Contains(reason, "disk full") {
		t.Fatalf("/readyz of the full node: %d %q, want 503 saying the disk is full", code, reason)
	}
	if nodes > 1 {
		// The other nodes keep taking writes and serving secrets.
		other := c.Nodes[0]
		if other == full {
			other = c.Nodes[1]
		}
		if o := run.put(other, "elsewhere"); o.status != http.StatusOK {
			t.Fatalf("a write on %s while %s's disk is full: %s", other.ID, full.ID, o)
		}
		if r := run.get(other, "/secrets/before-1"); r.status != http.StatusOK {
			t.Fatalf("a secret read on %s while %s's disk is full: %s", other.ID, full.ID, r)
		}
	}

	// Space returns: the same process takes writes and secret reads again.
	if err := os.Remove(filler); err != nil {
		t.Fatalf("remove the filler: %v", err)
	}
	freed := time.Now()
	deadline = freed.Add(30 * time.Second)
	var last, lastRead dfOutcome
	for i := 0; ; i++ {
		last = run.put(full, fmt.Sprintf("after-%d", i))
		lastRead = run.get(full, "/secrets/before-0")
		if last.status == http.StatusOK && lastRead.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after space was freed the node still refuses: write %s, secret read %s", last, lastRead)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("writes and secret reads answered again %v after the filler was removed", time.Since(freed).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "/readyz of "+full.ID+" answers 200 once space is freed", func() bool {
		code, _ := dfReady(t, c, full)
		return code == http.StatusOK
	})
	if got := full.PID(); got != pid || !full.Running() {
		t.Fatalf("%s was restarted or died (pid %d, now %d, running %v)", full.ID, pid, got, full.Running())
	}
	stop()
	wg.Wait()

	// Every acknowledged write is there with its value; every write the
	// vault said was not applied is absent.
	acked, notApplied := run.check(t, full)
	if acked == 0 || notApplied == 0 {
		t.Fatalf("the run proves little: %d acknowledged writes, %d refused as not applied", acked, notApplied)
	}
	t.Logf("%d writes acknowledged and read back, %d refused as not applied and absent", acked, notApplied)

	// The trail verifies, and says that records are missing and why.
	var v struct {
		OK    bool
		Nodes []struct {
			Node, Error string
			OK          bool
			Anchors     int
		}
	}
	// Verify once the full node anchored a new head since the disk
	// filled, so that the gap record is pinned in raft too.
	var out string
	deadline = time.Now().Add(30 * time.Second)
	for {
		var code int
		out, _, code = c.CLIAt(c.Nodes[0], "audit", "verify", "-o", "json")
		ok := code == 0 && json.Unmarshal([]byte(out), &v) == nil && len(v.Nodes) == nodes
		for _, nv := range v.Nodes {
			ok = ok && nv.OK && (nv.Node != full.ID || nv.Anchors > anchors0)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit verify after recovery: not every node ok with %s anchored within 30s (exit %d):\n%s", full.ID, code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, _, code := c.CLIAt(c.Nodes[0], "audit", "verify")
	if code != 0 || !strings.Contains(out, full.ID+": ok") || !strings.Contains(out, "gap") {
		t.Fatalf("audit verify after recovery: exit %d, want %s ok with its gap named:\n%s", code, full.ID, out)
	}
	list, _, code := c.CLIAt(c.Nodes[0], "audit", "list", "--outcome", "gap", "-o", "json")
	var gaps struct {
		Value []struct {
			Node   string
			Lost   uint64
			Detail string
		}
	}
	if code != 0 || json.Unmarshal([]byte(list), &gaps) != nil || len(gaps.Value) == 0 {
		t.Fatalf("audit list --outcome gap: exit %d, want the gap record of %s:\n%s", code, full.ID, list)
	}
	g := gaps.Value[len(gaps.Value)-1]
	if g.Node != full.ID || g.Lost == 0 || !strings.Contains(g.Detail, "full") && !strings.Contains(g.Detail, "no space left") {
		t.Fatalf("gap record: node %q, %d lost, detail %q; want %s, some lost, the cause", g.Node, g.Lost, g.Detail, full.ID)
	}
	t.Logf("gap record: %d requests without a record: %s", g.Lost, g.Detail)
}

// dfTmpfs mounts a tmpfs of mib MiB on a new directory and unmounts it
// when the test ends. It skips the test where it cannot mount.
func dfTmpfs(t *testing.T, mib int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the disk-full test mounts a tmpfs: run it as root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0700", mib)); err != nil {
		t.Skipf("the disk-full test needs a tmpfs: mount on %s: %v", dir, err)
	}
	// Registered after TempDir's cleanup, so it runs before it; nodes
	// started later are killed before it runs.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			if err2 := syscall.Unmount(dir, syscall.MNT_DETACH); err2 != nil {
				t.Errorf("unmount %s: %v (detach: %v)", dir, err, err2)
			}
		}
	})
	return dir
}

// dfFill fills the file system of path with one file. It takes all the
// free space in one fallocate, so that it does not race the node for the
// space the node frees when it finds the disk full (its ballast); where
// fallocate is not supported it writes until ENOSPC.
func dfFill(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatalf("create filler: %v", err)
	}
	defer f.Close()
	for range 100 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
			t.Fatalf("statfs: %v", err)
		}
		free := int64(st.Bavail) * st.Bsize
		if free == 0 {
			return
		}
		err := syscall.Fallocate(int(f.Fd()), 0, 0, free)
		if err == nil {
			return
		}
		if errors.Is(err, syscall.EOPNOTSUPP) {
			break
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("fallocate filler: %v", err)
		}
		// The node took some meanwhile: measure again.
	}
	buf := bytes.Repeat([]byte{0xa5}, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatalf("write filler: %v", err)
		}
	}
}

// dfDiskError checks that o is a Key Vault-shaped refusal that says the
// disk is full and names the data directory, and that it does not claim
// the write may have been applied.
func dfDiskError(t *testing.T, o dfOutcome, data string) {
	t.Helper()
	if o.status != http.StatusInsufficientStorage && o.status != http.StatusServiceUnavailable {
		t.Fatalf("a write on the full disk: got %s, want 507 or 503", o)
	}
	if !o.shaped {
		t.Fatalf("a write on the full disk: the answer is not {\"error\":{\"code\",\"message\"}}: %s", o)
	}
	if !strings.Contains(o.msg, "full") || !strings.Contains(o.msg, data) {
		t.Fatalf("a write on the full disk: the message does not say the disk under %s is full: %s", data, o)
	}
	if dfMaybe(o.msg) {
		t.Fatalf("a refused write claims it may have been applied: %s", o)
	}
}

// dfMaybe reports whether msg says a request may have been applied.
func dfMaybe(msg string) bool {
	return strings.Contains(msg, "may have been applied") || strings.Contains(msg, "may or may not")
}

// dfAnchors returns how many raft anchors of n's trail verify matched.
func dfAnchors(t *testing.T, c *testcluster.Cluster, n *testcluster.Node) int {
	t.Helper()
	out, errOut, code := c.CLIAt(c.Nodes[0], "audit", "verify", "-o", "json")
	var v struct {
		Nodes []struct {
			Node    string
			Anchors int
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("audit verify: exit %d: %s%s", code, out, errOut)
	}
	for _, nv := range v.Nodes {
		if nv.Node == n.ID {
			return nv.Anchors
		}
	}
	t.Fatalf("audit verify does not list %s:\n%s", n.ID, out)
	return 0
}

// dfReady returns what node n's /readyz answers: the status and the
// reason.
func dfReady(t *testing.T, c *testcluster.Cluster, n *testcluster.Node) (int, string) {
	t.Helper()
	resp, err := c.HTTPClient().Get(n.URL() + "/readyz")
	if err != nil {
		t.Fatalf("/readyz of %s: %v", n.ID, err)
	}
	defer resp.Body.Close()
	var r struct{ Reason string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("/readyz of %s: decode: %v", n.ID, err)
	}
	return resp.StatusCode, r.Reason
}

// dfLeader returns the leader and term node n reports.
func dfLeader(t *testing.T, c *testcluster.Cluster, n *testcluster.Node) (string, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), dfTimeout)
	defer cancel()
	var st testcluster.Status
	if err := c.Client(n).Do(ctx, http.MethodGet, "/v1/sys/cluster/status", nil, &st); err != nil {
		t.Fatalf("cluster status on %s: %v", n.ID, err)
	}
	return st.Leader, st.Term
}

// dfOutcome is one answer.
type dfOutcome struct {
	op, name string
	status   int
	code     string
	msg      string
	shaped   bool
	err      error
	took     time.Duration
}

func (o dfOutcome) String() string {
	if o.err != nil {
		return fmt.Sprintf("%s %s: no answer after %v: %v", o.op, o.name, o.took.Round(time.Millisecond), o.err)
	}
	return fmt.Sprintf("%s %s: %d %s %q (%v)", o.op, o.name, o.status, o.code, o.msg, o.took.Round(time.Millisecond))
}

// dfRun records what the vault answered to each write.
type dfRun struct {
	c      *testcluster.Cluster
	mu     sync.Mutex
	values map[string]string
	writes []dfOutcome
}

func (r *dfRun) do(n *testcluster.Node, method, path string, body any) dfOutcome {
	ctx, cancel := context.WithTimeout(context.Background(), dfTimeout)
	defer cancel()
	var in io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return dfOutcome{op: method, name: path, err: err}
		}
		in = bytes.NewReader(data)
	}
	start := time.Now()
	o := dfOutcome{op: method, name: path}
	resp, err := r.c.Client(n).Raw(ctx, method, path, in, http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		o.err, o.took = err, time.Since(start)
		return o
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	o.took = time.Since(start)
	if err != nil {
		o.err = err
		return o
	}
	o.status = resp.StatusCode
	if o.status >= 400 {
		if e, ok := client.ParseError(o.status, data).(*client.Error); ok {
			o.code, o.msg, o.shaped = e.Code, e.Message, e.Code != "" && e.Message != ""
		}
	}
	return o
}

// put sets secret name on node n to a value of its own and records the
// answer.
func (r *dfRun) put(n *testcluster.Node, name string) dfOutcome {
	value := "disk-full-value-" + name
	o := r.do(n, http.MethodPut, "/secrets/"+name, map[string]string{"value": value})
	o.name = name
	r.mu.Lock()
	r.values[name] = value
	r.writes = append(r.writes, o)
	r.mu.Unlock()
	return o
}

func (r *dfRun) get(n *testcluster.Node, path string) dfOutcome {
	return r.do(n, http.MethodGet, path, nil)
}

// check reads back every write: an acknowledged one must hold its value,
// one refused as not applied must not exist. It returns how many of each.
func (r *dfRun) check(t *testing.T, n *testcluster.Node) (acked, notApplied int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	cl := r.c.Client(n)
	for _, o := range r.writes {
		var s struct{ Value string }
		ctx, cancel := context.WithTimeout(t.Context(), dfTimeout)
		err := cl.Do(ctx, http.MethodGet, "/secrets/"+o.name, nil, &s)
		cancel()
		var ce *client.Error
		switch {
		case o.status == http.StatusOK:
			acked++
			if err != nil || s.Value != r.values[o.name] {
				t.Errorf("acknowledged write %s is lost: read back %q, %v", o.name, s.Value, err)
			}
		case strings.Contains(o.msg, "nothing was done"):
			notApplied++
			if !errors.As(err, &ce) || ce.Status != http.StatusNotFound {
				t.Errorf("write %s was answered %q, yet reading it gives %v", o.name, o.msg, err)
			}
		}
	}
	return acked, notApplied
}
