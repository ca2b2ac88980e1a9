//go:build bench

package bench

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/test/testcluster"
	"github.com/certvault/certvault/vault/core"
)

// Issue 20 (scale): a node grown to 10,000, 100,000 and a million
// certificate versions (a new vault for each size) through
// raftstore.BulkLoad (the store's bulk path: the node is stopped, the
// versions are written into its state as one snapshot, and it starts
// again), with what each size costs: resident memory, the cold start to
// /readyz, the raft snapshot's size, the time a new node takes to install
// it, and secret GETs and certificate creates against an empty vault.
//
// The empty vault is a second single-node cluster, started anew with the
// same secrets for each size and run beside the full one. At the start (the
// "empty" row, where both are empty) and at each size, the GET rows and
// then the create rows are measured as scalePairs adjacent pairs, empty
// vault then full one, each by the load generator in a process of its own
// (test/bench/loadgen): on a shared machine rows measured minutes apart
// differ by more than the goals' 10 %, two rows measured seconds apart
// much less. The goals at 1,000,000 versions compare the full vault with
// the empty one measured beside it at the same step. The empty vault
// holds only what that size's create rows add (tens of thousands of
// certificates; the full vault gets as many).

const (
	groupScale = "scale"
	// kindScaleGet and kindScaleCreate are the scale group's rows,
	// benchmarks <kind>-<label> on the full vault and
	// <kind>-<label>-empty on the empty one beside it.
	kindScaleGet    = "scale-get"
	kindScaleCreate = "scale-create"
	// scalePairs is how many adjacent pairs (the empty vault, then the
	// full one) each kind of row runs at each size.
	scalePairs = 3
	// scaleVersionsPerCert is how many versions each bulk certificate
	// has: a certificate renewed every 47 days for over a year.
	scaleVersionsPerCert = 10
	// scaleTemplate is the certificate the bench creates through the API
	// and the bulk certificates copy (records, sizes, a real leaf).
	scaleTemplate = "scale-tmpl"
	// scaleGetClients and scaleCreateClients are the rows' client counts.
	scaleGetClients    = 16
	scaleCreateClients = 256
	// scaleReadyWait bounds a cold start and a snapshot install.
	scaleReadyWait = 10 * time.Minute
	// Goals (issue 20) at the largest size, scaleGoalVersions.
	scaleGoalVersions = 1_000_000
	scaleGoalRSSMB    = 1536
	scaleGoalStartS   = 10
	scaleGoalInstallS = 60
	scaleGoalWithin   = 0.10
)

// scaleSizes are the versions the vault holds at each step, from
// CERTVAULT_BENCH_SCALE (comma-separated) or 10k, 100k and 1M.
func scaleSizes(t *testing.T) []int {
	v := os.Getenv("CERTVAULT_BENCH_SCALE")
	if v == "" {
		return []int{10_000, 100_000, 1_000_000}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < scaleVersionsPerCert {
			t.Fatalf("CERTVAULT_BENCH_SCALE=%q: want comma-separated version counts of at least %d", v, scaleVersionsPerCert)
		}
		out = append(out, n)
	}
	return out
}

// scaleStep is what the group measured at one size.
type scaleStep struct {
	Versions     int `json:"versions"`
	Certificates int `json:"certificates"`
	// LoadSeconds is the bulk load (the node stopped); StartSeconds the
	// cold start from the process's start to /readyz answering 200.
	LoadSeconds  float64 `json:"bulk_load_seconds"`
	StartSeconds float64 `json:"cold_start_seconds"`
	// SettleSeconds is how long after /readyz the node, sent one
	// /metrics scrape, used less than settleCPU of a CPU over a second.
	SettleSeconds float64 `json:"settle_seconds"`
	// RSSMB is the node's resident memory once ready and after the rows;
	// PerVersionKB divides the latter by the versions.
	RSSReadyMB   float64 `json:"rss_ready_mb"`
	RSSMB        float64 `json:"rss_after_rows_mb"`
	PerVersionKB float64 `json:"rss_per_version_kb"`
	SnapshotMB   float64 `json:"snapshot_mb"`
	ValuesMB     float64 `json:"value_log_mb"`
	// InstallSeconds is how long a new node took from its start to
	// applying the leader's index (a snapshot install); 0 when not run.
	InstallSeconds float64 `json:"snapshot_install_seconds,omitempty"`
	// The full vault's rows, the best of its scalePairs runs (the lowest
	// p99, the highest rate), and the empty vault's, measured beside
	// them in the same pairs and taken the same way: one run disturbed
	// by the shared machine moves a mean of two by half its disturbance,
	// a best of three not at all.
	GetP99ms           float64 `json:"get_p99_ms"`
	GetsPerSec         float64 `json:"gets_per_sec"`
	CreatesPerSec      float64 `json:"creates_per_sec"`
	CreateP99ms        float64 `json:"create_p99_ms"`
	EmptyGetP99ms      float64 `json:"empty_get_p99_ms"`
	EmptyGetsPerSec    float64 `json:"empty_gets_per_sec"`
	EmptyCreatesPerSec float64 `json:"empty_creates_per_sec"`
	EmptyCreateP99ms   float64 `json:"empty_create_p99_ms"`
	// GetP99Ratio is the empty vault's GET p99 over the full one's,
	// CreatesRatio the full vault's creates/s over the empty one's (the
	// goals want both at least 1 - scaleGoalWithin); 0 when a row had
	// nothing to divide by.
	GetP99Ratio  float64 `json:"get_p99_ratio_empty_over_full"`
	CreatesRatio float64 `json:"creates_ratio_full_over_empty"`
}

// scaleResult is the scale group's figures: the rows before the bulk
// loads (both vaults empty) and each size's.
type scaleResult struct {
	Empty scaleStep   `json:"empty"`
	Steps []scaleStep `json:"steps"`
	Goals []scaleGoal `json:"goals"`
}

// scaleGoal is one of issue 20's goals, judged at scaleGoalVersions.
type scaleGoal struct {
	Description string  `json:"description"`
	Target      float64 `json:"target"`
	Measured    float64 `json:"measured"`
	Met         bool    `json:"met"`
}

// runScale runs the scale group.
func runScale(t *testing.T, cfg config, add func(*testing.T, result)) *scaleResult {
	// Each size is measured on a vault of its own, grown from nothing by
	// one bulk load: the create rows add tens of thousands of
	// certificates to the vault they measure, which a vault grown from
	// one size to the next would carry into the next size's figures.
	// The empty vault beside it is a new one for each size too.
	var a, e *apiBench
	stop := func(b *apiBench) {
		if b != nil {
			for _, n := range b.cluster.Nodes {
				n.Stop()
			}
		}
	}
	rows := func(step *scaleStep, label string) {
		stop(e)
		e = newPlainAPIBench(t)
		if err := e.preloadSecrets(cfg.Names); err != nil {
			t.Fatal(err)
		}
		scaleRows(t, cfg, add, a, e, step, label)
		t.Logf("%s: GET p99 %.2f ms beside %.2f ms on the empty vault (%.2f), %.0f creates/s beside %.0f (%.2f)",
			label, step.GetP99ms, step.EmptyGetP99ms, step.GetP99Ratio, step.CreatesPerSec, step.EmptyCreatesPerSec, step.CreatesRatio)
	}
	// fresh starts the vault a size is grown in, with the secrets the
	// GET rows read and the template certificate the bulk load copies.
	fresh := func() *testcluster.Node {
		stop(a)
		a = newAPIBench(t, 1)
		n := a.cluster.Nodes[0]
		if err := a.preloadSecrets(cfg.Names); err != nil {
			t.Fatal(err)
		}
		hc := a.httpClient(1)
		defer hc.CloseIdleConnections()
		if class := a.createCertificate(hc, n.URL()+"/certificates/", scaleTemplate,
			keyvault.CreateCertificateRequest{Policy: issuancePolicy("CN=" + scaleTemplate)}); class != "" {
			t.Fatalf("create the template certificate: %s", class)
		}
		return n
	}
	res := &scaleResult{}
	n := fresh()
	rows(&res.Empty, "empty")
	res.Empty.RSSMB = float64(procKB(n.PID(), "VmRSS")) / 1024
	t.Logf("empty vault: %.0f GETs/s (p99 %.1f ms), %.0f creates/s, %.0f MB resident",
		res.Empty.GetsPerSec, res.Empty.GetP99ms, res.Empty.CreatesPerSec, res.Empty.RSSMB)

	for _, size := range scaleSizes(t) {
		step := scaleStep{Versions: size, Certificates: size / scaleVersionsPerCert}
		n := fresh()
		n.Stop()
		t0 := time.Now()
		if err := bulkCertificates(filepath.Join(n.Dir, "raft"), n.ID, 0, size/scaleVersionsPerCert); err != nil {
			t.Fatalf("bulk load to %d versions: %v", size, err)
		}
		step.LoadSeconds = time.Since(t0).Seconds()
		t0 = time.Now()
		n.Restart()
		if err := waitReady(a.cluster, n, scaleReadyWait); err != nil {
			t.Fatalf("%d versions: %v", size, err)
		}
		step.StartSeconds = time.Since(t0).Seconds()
		step.RSSReadyMB = float64(procKB(n.PID(), "VmRSS")) / 1024
		// What a node does once after a start (the first /metrics scrape
		// loads the certificates' catalog, the names check walks the
		// keys) is timed apart from the rows, which measure it settled.
		settled, err := settle(a, n)
		if err != nil {
			t.Fatalf("%d versions: %v", size, err)
		}
		step.SettleSeconds = settled.Seconds()
		step.SnapshotMB = float64(dirBytes(filepath.Join(n.Dir, "raft", "snapshots"))) / (1 << 20)
		step.ValuesMB = float64(dirBytes(filepath.Join(n.Dir, "raft", "values"))) / (1 << 20)
		t.Logf("%d versions: bulk load %.1f s, cold start %.1f s, %.0f MB resident, settled %.1f s later, snapshots %.0f MB, value log %.0f MB",
			size, step.LoadSeconds, step.StartSeconds, step.RSSReadyMB, step.SettleSeconds, step.SnapshotMB, step.ValuesMB)
		rows(&step, strconv.Itoa(size))
		step.RSSMB = float64(procKB(n.PID(), "VmRSS")) / 1024
		step.PerVersionKB = step.RSSMB * 1024 / float64(size)
		// A new node's catch-up, after the rows.
		took, err := installOnNewNode(a.cluster, n)
		if err != nil {
			t.Fatalf("%d versions: snapshot install: %v", size, err)
		}
		step.InstallSeconds = took.Seconds()
		t.Logf("%d versions: a new node installed the snapshot and caught up in %.1f s", size, step.InstallSeconds)
		res.Steps = append(res.Steps, step)
	}
	stop(a)
	stop(e)
	res.Goals = scaleGoals(res)
	return res
}

// scaleRows measures step's rows at label: the GET rows, then the create
// rows, each as scalePairs adjacent pairs of runs of the outside load
// generator, on the empty vault e and then on the full vault a; it adds
// every run as a row and sets step's best figures and their ratios.
func scaleRows(t *testing.T, cfg config, add func(*testing.T, result), a, e *apiBench, step *scaleStep, label string) {
	warmup, measure := min(cfg.warmup(), time.Second), min(cfg.measure(), 3*time.Second)
	kinds := []struct {
		kind, op       string
		clients, names int
		extra          func(pair int, tag string) []string
		// p99 and rate are the step's figures, the empty vault's first.
		p99, rate [2]*float64
	}{
		{kindScaleGet, "get", scaleGetClients, cfg.Names,
			func(int, string) []string { return []string{"-prefix", "read", "-names", strconv.Itoa(cfg.Names)} },
			[2]*float64{&step.EmptyGetP99ms, &step.GetP99ms}, [2]*float64{&step.EmptyGetsPerSec, &step.GetsPerSec}},
		// Names never repeat: scale-<label>-<pair>-<e|f>-<client>-<seq>.
		{kindScaleCreate, "create", scaleCreateClients, 0,
			func(pair int, tag string) []string {
				return []string{"-prefix", fmt.Sprintf("scale-%s-%d-%s", label, pair, tag)}
			},
			[2]*float64{&step.EmptyCreateP99ms, &step.CreateP99ms}, [2]*float64{&step.EmptyCreatesPerSec, &step.CreatesPerSec}},
	}
	vaults := [2]struct {
		b           *apiBench
		suffix, tag string
	}{{e, "-empty", "e"}, {a, "", "f"}}
	for _, k := range kinds {
		for pair := range scalePairs {
			for i, v := range vaults {
				st, err := v.b.runLoadgen(k.clients, runningNodes(v.b.cluster), k.op, k.extra(pair, v.tag), warmup, measure)
				if err != nil {
					t.Fatal(err)
				}
				// A run that failed more than one request in a thousand
				// measured something else than the vault's speed.
				if st.Errors*1000 > st.Writes {
					t.Fatalf("%s-%s%s: %d errors beside %d completed (%v)", k.kind, label, v.suffix, st.Errors, st.Writes, st.ErrorsByClass)
				}
				add(t, result{Benchmark: k.kind + "-" + label + v.suffix, Kind: k.kind, Nodes: 1, Clients: k.clients, Names: k.names,
					Target: targetSingleAPI, Generator: generatorProcess, runStats: st})
				if pair == 0 || st.P99ms < *k.p99[i] {
					*k.p99[i] = st.P99ms
				}
				*k.rate[i] = max(*k.rate[i], st.WritesPerSec)
			}
		}
	}
	step.GetP99Ratio = scaleRatio(step.EmptyGetP99ms, step.GetP99ms)
	step.CreatesRatio = scaleRatio(step.CreatesPerSec, step.EmptyCreatesPerSec)
}

// scaleRatio is a / b, or 0 when b is 0 (JSON has no infinities).
func scaleRatio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// bulkCertificates stops at nothing: it writes certificates from..to-1
// (scale-NNNNNNN) into the stopped node's raft state in dir, each with
// scaleVersionsPerCert versions copied from the template certificate's
// records (its metadata, policy, version record with the real chain, and
// wrapped private key), under new random version ids.
func bulkCertificates(dir, nodeID string, from, to int) error {
	return raftstore.BulkLoad(dir, nodeID, func(st raftstore.BulkState) error {
		tmpl := map[string][]byte{}
		for _, kind := range []string{core.KindCertificates, core.KindSecrets, core.KindKeys} {
			if v, ok := st.Get(core.MetaKey(kind, scaleTemplate)); ok {
				tmpl["meta/"+kind] = v
			}
		}
		policy, ok := st.Get(core.PolicyKey(scaleTemplate))
		if !ok || tmpl["meta/"+core.KindCertificates] == nil {
			return fmt.Errorf("the template certificate %s is not in the state", scaleTemplate)
		}
		var m core.ObjectMeta
		if err := json.Unmarshal(tmpl["meta/"+core.KindCertificates], &m); err != nil {
			return fmt.Errorf("decode the template's meta record: %w", err)
		}
		ver, ok := st.Get(core.VerKey(core.KindCertificates, scaleTemplate, m.Current))
		if !ok {
			return fmt.Errorf("the template's version %s has no record", m.Current)
		}
		val, ok := st.Get(core.ValKey(core.KindCertificates, scaleTemplate, m.Current))
		if !ok {
			return fmt.Errorf("the template's version %s has no wrapped key", m.Current)
		}
		id := make([]byte, 16)
		for i := from; i < to; i++ {
			name := fmt.Sprintf("scale-%07d", i)
			var current string
			for range scaleVersionsPerCert {
				if _, err := rand.Read(id); err != nil {
					return err
				}
				current = hex.EncodeToString(id)
				st.Put(core.VerKey(core.KindCertificates, name, current), ver)
				st.Put(core.ValKey(core.KindCertificates, name, current), val)
			}
			for kind, raw := range tmpl {
				var km core.ObjectMeta
				if err := json.Unmarshal(raw, &km); err != nil {
					return fmt.Errorf("decode the template's %s record: %w", kind, err)
				}
				// No plans: a bulk certificate is never renewed by the
				// scheduler during the bench.
				km.Name, km.Current, km.Plan, km.MailPlan, km.EventPlans = name, current, "", "", nil
				st.Put(kind+"/"+name, core.MustJSON(km))
			}
			st.Put(core.PolicyKey(name), policy)
		}
		return nil
	})
}

// waitReady polls n's /readyz until it answers 200, for at most limit.
func waitReady(c *testcluster.Cluster, n *testcluster.Node, limit time.Duration) error {
	hc := c.HTTPClient()
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(limit)
	for {
		resp, err := hc.Get(n.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !n.Running() {
			return fmt.Errorf("%s exited; log:\n%s", n.ID, n.Log())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s", n.ID, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// installOnNewNode joins a new node to leader's cluster and returns how
// long it took from its start until it applied the leader's index (which
// it reaches by installing a snapshot: the bulk load left no log); the
// node is stopped and removed again.
func installOnNewNode(c *testcluster.Cluster, leader *testcluster.Node) (time.Duration, error) {
	out, stderr, code := c.CLI("cluster", "join-token", "--uses", "1")
	if code != 0 {
		return 0, fmt.Errorf("join token: %s", stderr)
	}
	want, err := c.Status(leader)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	n := c.AddNode(testcluster.Options{}, leader.URL(), strings.TrimSpace(out))
	deadline := t0.Add(scaleReadyWait)
	for {
		st, err := c.Status(n)
		if err == nil && st.AppliedIndex >= want.AppliedIndex {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s did not reach index %d within %s (%+v, %v)", n.ID, want.AppliedIndex, scaleReadyWait, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(t0)
	n.Stop()
	if _, stderr, code := c.CLI("cluster", "remove", n.ID); code != 0 {
		return took, fmt.Errorf("remove %s: %s", n.ID, stderr)
	}
	return took, nil
}

// settleCPU is the share of one CPU under which a node counts as settled;
// settleWait bounds the wait.
const (
	settleCPU  = 0.25
	settleWait = 2 * time.Minute
)

// settle scrapes n's /metrics once and waits until n uses less than
// settleCPU of a CPU over a second; it returns how long that took.
func settle(a *apiBench, n *testcluster.Node) (time.Duration, error) {
	t0 := time.Now()
	hc := a.httpClient(1)
	defer hc.CloseIdleConnections()
	if err := a.scrape(hc, n, map[string]float64{}); err != nil {
		return 0, err
	}
	for {
		c0, err := procCPU(n.PID())
		if err != nil {
			return 0, err
		}
		w0 := time.Now()
		time.Sleep(time.Second)
		c1, err := procCPU(n.PID())
		if err != nil {
			return 0, err
		}
		if (c1-c0)/time.Since(w0).Seconds() < settleCPU {
			return time.Since(t0), nil
		}
		if time.Since(t0) > settleWait {
			return 0, fmt.Errorf("%s still busy %s after it was ready", n.ID, settleWait)
		}
	}
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// scaleGoals judges issue 20's goals at scaleGoalVersions.
func scaleGoals(res *scaleResult) []scaleGoal {
	var out []scaleGoal
	for _, s := range res.Steps {
		if s.Versions != scaleGoalVersions {
			continue
		}
		// The ratios of the same step's pairs, not of the first rows.
		getRatio, createRatio := s.GetP99Ratio, s.CreatesRatio
		out = append(out,
			scaleGoal{Description: "issue 20: resident memory at 1,000,000 certificate versions, MB", Target: scaleGoalRSSMB, Measured: s.RSSMB, Met: s.RSSMB <= scaleGoalRSSMB},
			scaleGoal{Description: "issue 20: cold start to /readyz at 1,000,000 versions, s", Target: scaleGoalStartS, Measured: s.StartSeconds, Met: s.StartSeconds <= scaleGoalStartS},
			scaleGoal{Description: "issue 20: snapshot installed on a new node at 1,000,000 versions, s", Target: scaleGoalInstallS, Measured: s.InstallSeconds, Met: s.InstallSeconds > 0 && s.InstallSeconds <= scaleGoalInstallS},
			scaleGoal{Description: "issue 20: secret GET p99 within 10 % of the empty vault's beside it (empty / full)", Target: 1 - scaleGoalWithin, Measured: getRatio, Met: getRatio >= 1-scaleGoalWithin},
			scaleGoal{Description: "issue 20: creates/s within 10 % of the empty vault's beside it (full / empty)", Target: 1 - scaleGoalWithin, Measured: createRatio, Met: createRatio >= 1-scaleGoalWithin},
		)
	}
	return out
}

// scaleTable prints the scale group's figures.
func scaleTable(r *scaleResult) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nscale: one node grown by raftstore.BulkLoad (" + strconv.Itoa(scaleVersionsPerCert) + " versions a certificate, copies of a real one)\n")
	b.WriteString("rows: best of " + strconv.Itoa(scalePairs) + " runs each, in adjacent pairs with an empty vault beside it (its line below each size);\n" +
		"p99 e/f is the empty vault's GET p99 over the full one's, cr/s f/e the full vault's creates/s over the empty one's\n")
	fmt.Fprintf(&b, "%-10s %8s %8s %8s %9s %9s %9s %9s %9s %10s %10s %10s %8s %8s\n", "versions", "load s", "start s", "settle s", "RSS MB", "KB/ver", "snap MB", "vlog MB", "install s", "GET p99", "GET/s", "creates/s", "p99 e/f", "cr/s f/e")
	line := func(label string, s scaleStep) {
		fmt.Fprintf(&b, "%-10s %8.1f %8.1f %8.1f %9.0f %9.2f %9.0f %9.0f %9.1f %8.2fms %10.0f %10.0f %8.2f %8.2f\n", label, s.LoadSeconds, s.StartSeconds, s.SettleSeconds, s.RSSMB, s.PerVersionKB,
			s.SnapshotMB, s.ValuesMB, s.InstallSeconds, s.GetP99ms, s.GetsPerSec, s.CreatesPerSec, s.GetP99Ratio, s.CreatesRatio)
		fmt.Fprintf(&b, "%-10s %8s %8s %8s %9s %9s %9s %9s %9s %8.2fms %10.0f %10.0f\n", "  beside:", "", "", "", "", "", "", "", "empty",
			s.EmptyGetP99ms, s.EmptyGetsPerSec, s.EmptyCreatesPerSec)
	}
	line("empty", r.Empty)
	for _, s := range r.Steps {
		line(fmtFigure(float64(s.Versions)), s)
	}
	for _, g := range r.Goals {
		met := "NOT met"
		if g.Met {
			met = "met"
		}
		fmt.Fprintf(&b, "goal: %s: target %.2f, measured %.2f: %s\n", g.Description, g.Target, g.Measured, met)
	}
	fmt.Fprintf(&b, "GOMAXPROCS %d; the bench and the node share the machine.\n", runtime.GOMAXPROCS(0))
	return b.String()
}
