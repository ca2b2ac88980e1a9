package chaos

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/certvault/certvault/test/history"
	"github.com/certvault/certvault/test/testcluster"
)

// Config is one chaos run. The zero value (with a Seed) is a run of
// DefaultDuration with every nemesis.
type Config struct {
	// Seed picks the schedule; the same seed replays the same schedule.
	Seed uint64
	// Duration is how long nemeses are applied (setup and the final
	// checks come on top). Default DefaultDuration.
	Duration time.Duration
	// Nemeses limits the schedule to these (default AllNemeses).
	Nemeses []string
	// OutDir receives the history around a violation and porcupine's
	// visualisation on failure (default a directory under the test's
	// temporary directory, kept by printing its path... tests pass a
	// stable one).
	OutDir string
}

// Defaults of a run.
const (
	// DefaultDuration is the long run's length (CHAOS_SECONDS overrides).
	DefaultDuration = 300 * time.Second
	// RequestDeadline is the node's documented --request-deadline; a
	// request may take it plus DeadlineMargin before the deadline check
	// counts it as too long (requests to a node that was paused or killed
	// while they ran are not held to it: nothing answers there).
	RequestDeadline = 5 * time.Second
	DeadlineMargin  = 10 * time.Second
	// opTimeout is when a client gives up on a request: far past the
	// deadline, so that a request that breaks it is seen and measured.
	opTimeout = 40 * time.Second
	// recoverWait bounds the wait for the cluster to have a leader and
	// every node back after a heal; past it the run fails ("needed a
	// manual step").
	recoverWait = 90 * time.Second
	// convergeWait bounds the wait for every node to reach the same
	// applied index and state digest after the final heal, and for a
	// final read or listing to succeed.
	convergeWait = 90 * time.Second
	// agentWait bounds the wait for every agent to install the current
	// version after the final heal: an agent that failed often backs off
	// up to a minute, jittered to 90 s (agent/runner).
	agentWait = 150 * time.Second
	// finalWait bounds the whole phase after the final heal: convergence,
	// the final reads and listings, the agents and audit verify. Each of
	// those has its own wait too; this one keeps their sum from growing
	// into the hour a stalling cluster could otherwise make of them.
	finalWait = 6 * time.Minute
	// tmpfsMiB is the size of each node's data directory.
	tmpfsMiB = 192
)

// disruption is a time a node could not answer at all (paused or
// killed): requests to it are not held to the deadline.
type disruption struct {
	Node     string
	From, To time.Time
}

// window is one nemesis as it ran.
type window struct {
	Step    Step
	Target  string // the nodes it hit, e.g. "node2" or "node1->node3"
	Start   time.Time
	Healed  time.Time
	End     time.Time // recovered and quiet period over: the next starts
	Skipped string
	// NewLeader is how long after Start a leader of a higher term was
	// seen (0, false: none).
	NewLeader   time.Duration
	NewLeaderOK bool
	Recovered   bool
	RecoverTook time.Duration
}

// harness is one running chaos test.
type harness struct {
	t      *testing.T
	cfg    Config
	nw     *Network
	c      *testcluster.Cluster
	api    *API
	mon    *monitor
	nodes  []string
	mounts map[string]string // node -> tmpfs mount point
	outDir string

	mu          sync.Mutex
	disruptions []disruption
	windows     []window
	failures    []string // recovery failures
	auditOK     bool
}

// nodeByID returns the testcluster node with id.
func (h *harness) nodeByID(id string) *testcluster.Node {
	for _, n := range h.c.Nodes {
		if n.ID == id {
			return n
		}
	}
	h.t.Fatalf("no node %s", id)
	return nil
}

// Run starts a three-node cluster in namespaces, runs the workload under
// the schedule of cfg.Seed for cfg.Duration, heals, and checks. It fails
// t on any violation and returns the results.
func Run(t *testing.T, cfg Config) *Result {
	t.Helper()
	requireRoot(t)
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultDuration
	}
	if len(cfg.Nemeses) == 0 {
		cfg.Nemeses = AllNemeses
	}
	h := &harness{t: t, cfg: cfg, mounts: map[string]string{}, outDir: cfg.OutDir}
	if h.outDir == "" {
		h.outDir = t.TempDir()
	}
	began := time.Now()

	// The schedule, printed before anything runs. Steps last at least
	// three seconds, so this is more than the run needs.
	steps := Schedule(cfg.Seed, int(cfg.Duration/(3*time.Second))+2, cfg.Nemeses)
	rerun := fmt.Sprintf("CHAOS_SEED=%d CHAOS_SECONDS=%d", cfg.Seed, int(cfg.Duration.Seconds()))
	if !slices.Equal(cfg.Nemeses, AllNemeses) {
		rerun += " CHAOS_NEMESES=" + strings.Join(cfg.Nemeses, ",")
	}
	t.Logf("chaos seed %d, %s of nemeses; rerun with sudo make chaos %s; the schedule (steps run until the time is up):\n%s",
		cfg.Seed, cfg.Duration, rerun, describeSteps(steps))

	h.nw = NewNetwork(t, 3)
	if h.nw.NetemNote != "" {
		t.Logf("note: %s", h.nw.NetemNote)
	}
	dataDirs := map[string]string{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("node%d", i)
		h.nodes = append(h.nodes, id)
		mnt := filepath.Join(os.TempDir(), fmt.Sprintf("%s-%s-%d", h.nw.Dir(), id, time.Now().UnixNano()))
		if err := os.MkdirAll(mnt, 0o700); err != nil {
			t.Fatalf("create mount point: %v", err)
		}
		if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0700", tmpfsMiB)); err != nil {
			t.Skipf("the chaos harness needs tmpfs mounts for the disk-full nemesis: %v", err)
		}
		t.Cleanup(func() {
			if err := syscall.Unmount(mnt, 0); err != nil {
				if err2 := syscall.Unmount(mnt, syscall.MNT_DETACH); err2 != nil {
					t.Errorf("unmount %s: %v (detach: %v)", mnt, err, err2)
				}
			}
			os.Remove(mnt)
		})
		h.mounts[id] = mnt
		dataDirs[id] = filepath.Join(mnt, "data")
	}
	h.c = testcluster.Start(t, 3, testcluster.Options{
		DataDirs: dataDirs,
		Command:  h.nw.Command,
		Addrs:    h.nw.Addrs,
		// Small snapshot settings, so that snapshots and log compaction
		// happen under the nemeses too.
		ExtraArgs: []string{"--snapshot-threshold", "512", "--trailing-logs", "256", "--snapshot-interval", "5s"},
	})
	addrs := map[string]string{}
	for _, n := range h.c.Nodes {
		addrs[n.ID] = n.API
	}
	api, err := NewAPI(h.c.CACert, h.c.Token, addrs)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	h.api = api
	t.Logf("cluster up in %s on %s0/24", time.Since(began).Round(time.Millisecond), strings.TrimSuffix(h.nw.Addr(1), "1"))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	h.mon = newMonitor(api, h.nodes)
	monDone := make(chan struct{})
	go func() { h.mon.run(ctx); close(monDone) }()
	defer func() { cancel(); <-monDone }()

	// The load.
	loads := &workloads{h: h}
	loads.setup(ctx)
	secrets := newSecretLoad(api, h.nodes, 3, opTimeout)
	stop := make(chan struct{})
	waitSecrets := secrets.run(ctx, cfg.Seed, 6, 1_000_000, stop)
	loads.stop = stop
	loads.start(ctx)
	stopped := false
	stopLoad := func() {
		if !stopped {
			stopped = true
			close(stop)
			waitSecrets()
			loads.wait()
		}
	}
	defer stopLoad()

	// The nemeses, until the time is up.
	h.waitLeader(ctx, "before the first nemesis")
	end := time.Now().Add(cfg.Duration)
	for i := 0; time.Now().Before(end) && i < len(steps); i++ {
		h.apply(ctx, steps[i])
		if t.Failed() {
			break
		}
	}
	stopLoad()

	// Final heal and convergence.
	if err := h.nw.Heal(); err != nil {
		t.Errorf("final heal: %v", err)
	}
	res := &Result{Seed: cfg.Seed, Duration: cfg.Duration, Nemeses: cfg.Nemeses, GoVersion: runtime.Version(), NetemNote: h.nw.NetemNote}
	// After the heal every request should be quick: one that is not is
	// logged at once, so that a slow final phase says where it waits.
	api.OnSlow(RequestDeadline+DeadlineMargin, func(r Request) { t.Logf("slow request after the final heal: %s", r) })
	fctx, fcancel := context.WithTimeout(ctx, finalWait)
	defer fcancel()
	phase := time.Now()
	var phases []string
	lap := func(what string) {
		phases = append(phases, fmt.Sprintf("%s %s", what, time.Since(phase).Round(100*time.Millisecond)))
		phase = time.Now()
	}
	res.Convergence = h.converge(fctx)
	lap("convergence")
	var stuck []string
	budget := finalWait.String()
	if !res.Convergence.OK {
		budget = "the minute left after convergence failed"
		// The rest cannot pass; give it a minute rather than the whole
		// budget, and remember which nodes lag.
		stuck = res.Convergence.Lagging
		var cancel context.CancelFunc
		fctx, cancel = context.WithTimeout(fctx, time.Minute)
		defer cancel()
	}
	for _, key := range secrets.keys {
		for _, n := range h.nodes {
			h.finalRead(fctx, secrets, n, key)
		}
	}
	lap("final reads")
	loads.check(fctx, res)
	lap("certificates and agents")
	res.Audit = h.auditVerify(fctx)
	res.AuditOK = h.auditOK
	lap("audit verify")
	if fctx.Err() != nil {
		t.Errorf("the checks after the final heal did not finish within %s (%s)", budget, strings.Join(phases, ", "))
	}
	t.Logf("after the final heal: %s", strings.Join(phases, ", "))

	// Checks.
	ops := secrets.rec.Ops()
	res.Secrets = history.Summarize(ops).String()
	res.Linearizability = checkLinearizable(ops, filepath.Join(h.outDir, fmt.Sprintf("seed-%d", cfg.Seed)), 5*time.Minute)
	h.checkRequests(res)
	// A node that reported a data race (binaries built with -race) or a
	// panic fails the run even when the clients saw nothing.
	for _, n := range h.c.Nodes {
		log := n.Log()
		for _, bad := range []string{"WARNING: DATA RACE", "panic:", "fatal error:"} {
			if i := strings.Index(log, bad); i >= 0 {
				res.NodeLogProblems = append(res.NodeLogProblems, fmt.Sprintf("%s: %q in its log: %s", n.ID, bad, tail(log[i:], 1500)))
			}
		}
	}
	h.mu.Lock()
	windows := append([]window(nil), h.windows...)
	res.RecoveryFailures = append(res.RecoveryFailures, h.failures...)
	h.mu.Unlock()
	res.Table = tabulate(windows, api.Requests())
	res.Took = time.Since(began)
	res.verdicts()
	t.Logf("chaos seed %d: %d nemeses in %s\n%s", cfg.Seed, len(windows), time.Since(began).Round(time.Second), res.Text())
	fails := res.Failures()
	for _, f := range fails {
		t.Errorf("%s", f)
	}
	if len(fails) > 0 {
		// A node that did not catch up: its goroutines, and those of the
		// leader that should have caught it up, say where they wait
		// (SIGQUIT makes the Go runtime print them and exit).
		if len(stuck) > 0 {
			for _, n := range h.c.Nodes {
				h.dumpStacks(n)
			}
		}
		h.saveLogs(filepath.Join(h.outDir, fmt.Sprintf("seed-%d", cfg.Seed)))
	}
	return res
}

// finalRead reads key from node, after the final heal, retrying a failed
// read for a while; the read is part of the history.
func (h *harness) finalRead(ctx context.Context, s *secretLoad, node, key string) {
	began := time.Now()
	deadline := began.Add(convergeWait)
	for {
		op := s.read(ctx, -1, node, key)
		if op.Outcome == history.OK {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			h.t.Errorf("final read of %s from %s: still failing after %s: %s", key, node, time.Since(began).Round(time.Second), op.Err)
			return
		}
		time.Sleep(200 * time.Millisecond) // between retries of a read that failed
	}
}

// waitLeader waits for a leader that every running node agrees on.
func (h *harness) waitLeader(ctx context.Context, when string) string {
	h.t.Helper()
	leader, err := h.agreedLeader(ctx, recoverWait)
	if err != nil {
		h.t.Fatalf("%s: %v", when, err)
	}
	return leader
}

// agreedLeader polls until every running node reports the same leader,
// which reports itself, or wait runs out.
func (h *harness) agreedLeader(ctx context.Context, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	seen := ""
	for {
		leader, ok := "", true
		var views []string
		for _, n := range h.c.Nodes {
			if !n.Running() {
				continue
			}
			st, err := h.mon.status(ctx, n.ID, false)
			if err != nil {
				ok = false
				views = append(views, fmt.Sprintf("%s: %v", n.ID, err))
				continue
			}
			views = append(views, fmt.Sprintf("%s sees leader %q (term %d, applied %d)", n.ID, st.Leader, st.Term, st.AppliedIndex))
			if st.Leader == "" || (leader != "" && st.Leader != leader) {
				ok = false
			}
			leader = st.Leader
		}
		if ok && leader != "" {
			return leader, nil
		}
		seen = strings.Join(views, "; ")
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("no leader every node agrees on within %s: %s", wait, seen)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// disrupted records that node could not answer between from and to.
func (h *harness) disrupted(node string, from, to time.Time) {
	h.mu.Lock()
	h.disruptions = append(h.disruptions, disruption{Node: node, From: from, To: to})
	h.mu.Unlock()
}

// apply runs one step: break, hold, heal, wait for recovery, quiet.
func (h *harness) apply(ctx context.Context, s Step) {
	t := h.t
	w := window{Step: s, Start: time.Now()}
	leader := h.mon.current().Leader
	if leader == "" {
		leader = h.waitLeader(ctx, "before "+s.Nemesis)
	}
	others := func(not ...string) []string {
		var out []string
		for _, n := range h.nodes {
			skip := false
			for _, x := range not {
				skip = skip || n == x
			}
			if !skip {
				out = append(out, n)
			}
		}
		return out
	}
	pick := h.nodes[s.Pick%len(h.nodes)]
	hold := func() {
		select {
		case <-time.After(s.Hold):
		case <-ctx.Done():
		}
	}
	cutBoth := func(a string) {
		for _, b := range others(a) {
			for _, pair := range [][2]string{{a, b}, {b, a}} {
				if err := h.nw.Cut(pair[0], pair[1]); err != nil {
					t.Errorf("%s: %v", s.Nemesis, err)
				}
			}
		}
	}
	switch s.Nemesis {
	case NemIsolateLeader:
		w.Target = leader
		cutBoth(leader)
		hold()
	case NemSplit:
		w.Target = pick + " | " + strings.Join(others(pick), ",")
		cutBoth(pick)
		hold()
	case NemOneWay:
		from := pick
		if s.Pick2%2 == 0 {
			from = leader
		}
		rest := others(from)
		to := rest[s.Pick2/2%len(rest)]
		w.Target = from + " -/-> " + to
		if err := h.nw.Cut(from, to); err != nil {
			t.Errorf("%s: %v", s.Nemesis, err)
		}
		hold()
	case NemPauseLeader:
		w.Target = leader
		n := h.nodeByID(leader)
		from := time.Now()
		n.Pause()
		hold()
		n.Resume()
		h.disrupted(leader, from, time.Now())
	case NemKillOne:
		w.Target = pick
		n := h.nodeByID(pick)
		from := time.Now()
		n.Kill()
		hold()
		n.Restart()
		h.disrupted(pick, from, time.Now())
	case NemKillTwo:
		second := others(pick)[s.Pick2%2]
		w.Target = pick + "," + second
		from := time.Now()
		for _, id := range []string{pick, second} {
			h.nodeByID(id).Kill()
		}
		hold()
		for _, id := range []string{pick, second} {
			h.nodeByID(id).Restart()
			h.disrupted(id, from, time.Now())
		}
	case NemDiskFull:
		w.Target = pick
		filler := filepath.Join(h.mounts[pick], "filler")
		if err := fillDisk(filler); err != nil {
			t.Errorf("%s: %v", s.Nemesis, err)
		}
		hold()
		if err := os.Remove(filler); err != nil {
			t.Errorf("%s: free the disk: %v", s.Nemesis, err)
		}
	case NemSlowLink:
		w.Target = pick
		if h.nw.NetemNote != "" {
			w.Skipped = "netem not available"
			break
		}
		if err := h.nw.Slow(pick, 150*time.Millisecond, 10); err != nil {
			t.Errorf("%s: %v", s.Nemesis, err)
		}
		hold()
	default:
		t.Fatalf("unknown nemesis %q", s.Nemesis)
	}
	if err := h.nw.Heal(); err != nil {
		t.Errorf("heal after %s: %v", s.Nemesis, err)
	}
	w.Healed = time.Now()

	// Recovery: every node back, one leader they agree on; nothing but
	// the heal itself may be needed.
	_, err := h.agreedLeader(ctx, recoverWait)
	w.RecoverTook = time.Since(w.Healed)
	w.Recovered = err == nil
	if err != nil {
		h.mu.Lock()
		h.failures = append(h.failures, fmt.Sprintf("after %s on %s: %v", s.Nemesis, w.Target, err))
		h.mu.Unlock()
	}
	select {
	case <-time.After(s.Quiet):
	case <-ctx.Done():
	}
	w.End = time.Now()
	w.NewLeader, w.NewLeaderOK = h.mon.newLeaderAfter(w.Start, w.End)
	h.mu.Lock()
	h.windows = append(h.windows, w)
	h.mu.Unlock()
	held := "held " + s.Hold.Round(100*time.Millisecond).String()
	if w.Skipped != "" {
		held = "skipped (" + w.Skipped + ")"
	}
	nl := "no new leader"
	if w.NewLeaderOK {
		nl = fmt.Sprintf("new leader after %s", w.NewLeader.Round(10*time.Millisecond))
	}
	h.t.Logf("%-14s %-22s %s, %s, recovered %v %s after the heal; leaders: %s", s.Nemesis, w.Target, held,
		nl, w.Recovered, w.RecoverTook.Round(time.Millisecond), h.mon.describe(w.Start, w.End))
}

// convergence is the state of the nodes after the final heal.
type convergence struct {
	OK     bool
	Index  uint64
	Digest string
	Detail string
	Took   time.Duration
	// Lagging are the nodes that, when it failed, were not at the
	// highest applied index seen (or did not answer).
	Lagging []string `json:",omitempty"`
}

// converge waits until every node reports the same applied index and the
// same digest of its state at that index.
func (h *harness) converge(ctx context.Context) convergence {
	began := time.Now()
	deadline := began.Add(convergeWait)
	var last []string
	for {
		var idx uint64
		digest := ""
		same := true
		last = last[:0]
		// All at once: the nodes keep writing a little (audit anchors,
		// renewals), so reads far apart in time seldom meet one index.
		sts := make([]nodeStatus, len(h.nodes))
		errs := make([]error, len(h.nodes))
		var wg sync.WaitGroup
		for i, n := range h.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sts[i], errs[i] = h.mon.status(ctx, n, true)
			}()
		}
		wg.Wait()
		for i, n := range h.nodes {
			st, err := sts[i], errs[i]
			if err != nil {
				same = false
				last = append(last, fmt.Sprintf("%s: %v", n, err))
				continue
			}
			last = append(last, fmt.Sprintf("%s: applied %d, digest %.12s at %d", n, st.AppliedIndex, st.StateDigest, st.DigestIndex))
			if st.StateDigest == "" {
				same = false
				continue
			}
			if digest == "" {
				idx, digest = st.DigestIndex, st.StateDigest
			} else if st.DigestIndex != idx || st.StateDigest != digest {
				same = false
			}
		}
		if same {
			return convergence{OK: true, Index: idx, Digest: digest, Took: time.Since(began), Detail: strings.Join(last, "; ")}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			var top uint64
			for i := range h.nodes {
				if errs[i] == nil {
					top = max(top, sts[i].AppliedIndex)
				}
			}
			var lagging []string
			for i, n := range h.nodes {
				if errs[i] != nil || sts[i].AppliedIndex < top {
					lagging = append(lagging, n)
				}
			}
			return convergence{Detail: strings.Join(last, "; "), Took: time.Since(began), Lagging: lagging}
		}
		time.Sleep(250 * time.Millisecond) // poll interval
	}
}

// checkRequests holds every recorded request to the deadline, the error
// shape and "500 is for bugs".
func (h *harness) checkRequests(res *Result) {
	h.mu.Lock()
	dis := append([]disruption(nil), h.disruptions...)
	h.mu.Unlock()
	limit := RequestDeadline + DeadlineMargin
	for _, r := range h.api.Requests() {
		if r.Took() > res.LongestRequest {
			res.LongestRequest = r.Took()
		}
		excused := false
		for _, d := range dis {
			if d.Node == r.Node && r.Start.Before(d.To) && r.End.After(d.From) {
				excused = true
			}
		}
		held := !excused && !strings.HasPrefix(r.What, "watch")
		if held && r.Took() > res.LongestHeld {
			res.LongestHeld, res.LongestHeldReq = r.Took(), r.String()
		}
		if held && r.Took() > limit {
			res.TooLong = append(res.TooLong, r.String())
		}
		if r.Shape != "" {
			res.BadShape = append(res.BadShape, r.String()+": "+r.Shape)
		}
		if r.Status == 500 {
			res.Internal = append(res.Internal, r.String())
		}
	}
	sort.Strings(res.TooLong)
}

// dumpStacks has node print its goroutines and exit (SIGQUIT), so that
// the saved log shows where a node that does not catch up is waiting.
func (h *harness) dumpStacks(n *testcluster.Node) {
	if !n.Running() {
		return
	}
	if err := syscall.Kill(n.PID(), syscall.SIGQUIT); err != nil {
		h.t.Logf("dump the goroutines of %s: %v", n.ID, err)
		return
	}
	deadline := time.Now().Add(20 * time.Second)
	for n.Running() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // until the runtime has printed and exited
	}
	h.t.Logf("%s: its goroutines are at the end of its log", n.ID)
}

// saveLogs writes every node's whole log into dir, for a failed run.
func (h *harness) saveLogs(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Logf("save the node logs: %v", err)
		return
	}
	for _, n := range h.c.Nodes {
		p := filepath.Join(dir, n.ID+".log")
		if err := os.WriteFile(p, []byte(n.Log()), 0o644); err != nil {
			h.t.Logf("save the node logs: %v", err)
			continue
		}
		h.t.Logf("log of %s: %s", n.ID, p)
	}
}
