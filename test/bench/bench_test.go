//go:build bench

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// config is what the environment tunes; see the package doc.
type config struct {
	Seconds       float64 `json:"seconds"`
	WarmupSeconds float64 `json:"warmup_seconds"`
	Clients       []int   `json:"clients"`
	Names         int     `json:"names"`
	ValueBytes    int     `json:"value_bytes"`
}

func (c config) measure() time.Duration { return time.Duration(c.Seconds * float64(time.Second)) }
func (c config) warmup() time.Duration  { return time.Duration(c.WarmupSeconds * float64(time.Second)) }

func loadConfig(t testing.TB) config {
	t.Helper()
	c := config{Seconds: 8, WarmupSeconds: 2, Clients: []int{1, 16, 256}, Names: 64, ValueBytes: len(benchValue)}
	envFloat := func(name string, dst *float64, min float64) {
		if v := os.Getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < min {
				t.Fatalf("%s=%q: want a number of seconds >= %g", name, v, min)
			}
			*dst = f
		}
	}
	envFloat("CERTVAULT_BENCH_SECONDS", &c.Seconds, 0.5)
	envFloat("CERTVAULT_BENCH_WARMUP", &c.WarmupSeconds, 0)
	if v := os.Getenv("CERTVAULT_BENCH_CLIENTS"); v != "" {
		c.Clients = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("CERTVAULT_BENCH_CLIENTS=%q: want comma-separated positive counts", v)
			}
			c.Clients = append(c.Clients, n)
		}
	}
	if v := os.Getenv("CERTVAULT_BENCH_NAMES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CERTVAULT_BENCH_NAMES=%q: want a positive count", v)
		}
		c.Names = n
	}
	return c
}

// result is one row of the table.
type result struct {
	Benchmark string `json:"benchmark"`
	// Kind says what writes and writes_per_sec count: kindWrite,
	// kindRaw, kindCreate, kindRead, kindHSMDirect, kindHSMSign,
	// kindToken, kindIdentityRead or kindConsolePage.
	Kind    string `json:"kind"`
	Nodes   int    `json:"nodes"`
	Clients int    `json:"clients"`
	// Names is how many distinct keys or secret names the clients wrote;
	// client i writes name i mod Names, so with more clients than names
	// several clients update one secret concurrently.
	Names int `json:"names"`
	// Target says where the writes went.
	Target string `json:"target"`
	// Generator says where the load came from: generatorProcess (the
	// load generator in a process of its own) or generatorInProcess;
	// absent on rows from before issue 20 and rows whose load is this
	// process by construction (store, raw-issue, hsm-direct, schedule).
	Generator string `json:"generator,omitempty"`
	// PctOfRaw is, for create and raw-create rows, writes_per_sec as a
	// percentage of the raw ceiling measured in the same run.
	PctOfRaw *float64 `json:"pct_of_raw_ceiling,omitempty"`
	// PctOfDirect is, for hsm-sign rows, writes_per_sec as a percentage
	// of the hsm-direct rate at the same client count in the same run.
	PctOfDirect *float64 `json:"pct_of_direct,omitempty"`
	// RatioToCVT is, for get-jwt rows, writes_per_sec divided by the
	// get-cvt rate at the same client count in the same run.
	RatioToCVT *float64 `json:"ratio_to_cvt,omitempty"`
	runStats
}

// Benchmark names, as the table shows them.
const (
	benchStore      = "store"
	benchAPI        = "api"
	benchAPILeader  = "api-leader"
	groupStore      = "store"
	groupAPI1       = "api-1node"
	groupAPI3       = "api-3nodes"
	targetStore     = "in-process raftstore, bbolt log, no TLS/HTTP/JSON/AES"
	targetAllNodes  = "clients spread over all nodes, followers first (followers forward to the leader)"
	targetLeader    = "all clients on the leader"
	targetSingleAPI = "the single node"
)

// TestBench runs every benchmark group, prints the table and writes the
// JSON results. Subtests select groups: -run TestBench/store.
func TestBench(t *testing.T) {
	cfg := loadConfig(t)
	start := time.Now().UTC()
	t.Logf("config: %+v", cfg)
	var results []result
	ran := map[string]bool{}
	add := func(t *testing.T, r result) {
		t.Logf("%-10s nodes=%d clients=%-3d names=%-3d %8.0f %s/s  p50 %6.2f ms  p99 %7.2f ms  errors %d %v  vault CPU %3.0f%%  bench CPU %3.0f%%  other CPU %3.0f%%  %s",
			r.Benchmark, r.Nodes, r.Clients, r.Names, r.WritesPerSec, r.Kind, r.P50ms, r.P99ms, r.Errors, r.ErrorsByClass, r.ServerCPUPct, r.BenchCPUPct, r.OtherCPUPct, r.Generator)
		if r.Writes == 0 {
			t.Errorf("%s nodes=%d clients=%d: no %s succeeded (errors %v)", r.Benchmark, r.Nodes, r.Clients, r.Kind, r.ErrorsByClass)
		}
		results = append(results, r)
	}

	// Disk first, while nothing else runs: the fsync rate bounds every
	// figure below that is not group-committed.
	disk, err := probeFsync(t.TempDir(), time.Second)
	if err != nil {
		t.Fatalf("probe fsync rate: %v", err)
	}
	t.Logf("disk: %.0f fdatasyncs/s of a 4 KiB overwrite", disk)

	t.Run(groupStore, func(t *testing.T) {
		ran[groupStore] = true
		s := openStore(t)
		for _, n := range cfg.Clients {
			st, err := storeLoad(s, n, cfg.Names, cfg.warmup(), cfg.measure()).run()
			if err != nil {
				t.Fatal(err)
			}
			add(t, result{Benchmark: benchStore, Kind: kindWrite, Nodes: 1, Clients: n, Names: cfg.Names, Target: targetStore, runStats: st})
		}
	})

	t.Run(groupAPI1, func(t *testing.T) {
		ran[groupAPI1] = true
		a := newAPIBench(t, 1)
		for _, n := range cfg.Clients {
			st, err := a.load(n, cfg.Names, a.cluster.Nodes, cfg.warmup(), cfg.measure()).run()
			if err != nil {
				t.Fatal(err)
			}
			add(t, result{Benchmark: benchAPI, Kind: kindWrite, Nodes: 1, Clients: n, Names: cfg.Names, Target: targetSingleAPI, runStats: st})
			if n <= cfg.Names {
				continue
			}
			// The same load with one secret per client: what the clients
			// sharing secrets above cost in compare-and-set retries.
			st, err = a.load(n, n, a.cluster.Nodes, cfg.warmup(), cfg.measure()).run()
			if err != nil {
				t.Fatal(err)
			}
			add(t, result{Benchmark: benchAPI, Kind: kindWrite, Nodes: 1, Clients: n, Names: n, Target: targetSingleAPI, runStats: st})
		}
		if err := a.checkRead(a.cluster.Nodes[0]); err != nil {
			t.Error(err)
		}
	})

	t.Run(groupAPI3, func(t *testing.T) {
		ran[groupAPI3] = true
		a := newAPIBench(t, 3)
		// Followers first, so that a single client writes through a
		// follower and its row shows what forwarding costs.
		leader := a.cluster.Leader()
		var spread []*testcluster.Node
		for _, n := range a.cluster.Nodes {
			if n != leader {
				spread = append(spread, n)
			}
		}
		spread = append(spread, leader)
		t.Logf("leader: %s", leader.ID)
		for _, n := range cfg.Clients {
			st, err := a.load(n, cfg.Names, spread, cfg.warmup(), cfg.measure()).run()
			if err != nil {
				t.Fatal(err)
			}
			add(t, result{Benchmark: benchAPI, Kind: kindWrite, Nodes: 3, Clients: n, Names: cfg.Names, Target: targetAllNodes, runStats: st})
			st, err = a.load(n, cfg.Names, []*testcluster.Node{leader}, cfg.warmup(), cfg.measure()).run()
			if err != nil {
				t.Fatal(err)
			}
			add(t, result{Benchmark: benchAPILeader, Kind: kindWrite, Nodes: 3, Clients: n, Names: cfg.Names, Target: targetLeader, runStats: st})
		}
		for _, n := range a.cluster.Nodes {
			if err := a.checkRead(n); err != nil {
				t.Error(err)
			}
		}
	})

	// Issue #3. The raw ceiling runs alone, with no cluster started, on
	// the cores the creates below then share with their load generator.
	runRaw := func(t *testing.T) {
		for _, n := range rawClients() {
			l, err := rawIssueLoad(n, cfg.warmup(), cfg.measure())
			if err != nil {
				t.Fatal(err)
			}
			st, err := l.run()
			if err != nil {
				t.Fatal(err)
			}
			add(t, result{Benchmark: benchRaw, Kind: kindRaw, Clients: n, Target: targetRaw, runStats: st})
		}
	}
	t.Run(groupRaw, func(t *testing.T) {
		ran[groupRaw] = true
		runRaw(t)
	})

	// The issuance goals compare creates with the raw ceiling of the same
	// run: a run of the issuance groups without raw-issue measures it
	// first, before its cluster starts.
	t.Run(groupIssue1, func(t *testing.T) {
		ran[groupIssue1] = true
		if rawCeiling(results) == 0 {
			runRaw(t)
		}
		runIssuance(t, cfg, 1, add)
	})

	t.Run(groupIssue3, func(t *testing.T) {
		ran[groupIssue3] = true
		if rawCeiling(results) == 0 {
			runRaw(t)
		}
		runIssuance(t, cfg, 3, add)
	})

	// Issue "HSM-backed keys": signatures in a SoftHSM2 token, straight
	// through crypto11 and then through the keys API of one node. It runs
	// only once the token exists: a build without cgo or a machine without
	// SoftHSM2 skips it, and then the run is not complete.
	t.Run(groupHSM, func(t *testing.T) {
		tok := hsmToken(t)
		ran[groupHSM] = true
		runHSM(t, cfg, tok, add)
	})

	// Issue 18 (Azure identity): the token endpoint, and secret GETs with
	// its access token against a cvt token, on one node.
	t.Run(groupIdentity, func(t *testing.T) {
		ran[groupIdentity] = true
		runIdentity(t, cfg, add)
	})

	// Issue 19 (web console): its pages on one node holding 100,000
	// certificates.
	var console *consoleResult
	t.Run(groupConsole, func(t *testing.T) {
		ran[groupConsole] = true
		console = runConsole(t, cfg, add)
	})

	// Issue "renewal engine": planning and ticking with 100,000
	// certificates, in process.
	var sched *scheduleResult
	t.Run(groupSchedule, func(t *testing.T) {
		ran[groupSchedule] = true
		sched = runSchedule(t)
	})

	// Issue 20 (scale): one node grown to a million certificate
	// versions through the store's bulk path.
	var scale *scaleResult
	t.Run(groupScale, func(t *testing.T) {
		ran[groupScale] = true
		scale = runScale(t, cfg, add)
	})

	var agentRes *agentResult
	t.Run(groupAgent, func(t *testing.T) {
		ran[groupAgent] = true
		agentRes = runAgentBench(t)
	})

	var fleet []fleetResult
	t.Run(groupFleet, func(t *testing.T) {
		ran[groupFleet] = true
		sizes := []int{1000, 5000, 10000}
		if v := os.Getenv("CERTVAULT_BENCH_AGENTS"); v != "" {
			sizes = nil
			for _, f := range strings.Split(v, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil || n < 1 {
					t.Fatalf("CERTVAULT_BENCH_AGENTS=%q: want comma-separated counts", v)
				}
				sizes = append(sizes, n)
			}
		}
		for _, n := range sizes {
			t.Run(fmt.Sprintf("%d", n), func(t *testing.T) {
				r := runFleet(t, 1, n)
				t.Logf("fleet 1 node %d agents: p50 %.1f ms p99 %.1f ms max %.1f ms, %.1f%% in 1 s, %.1f KB/agent", n, r.P50ms, r.P99ms, r.MaxMS, 100*r.Within1s, r.PerAgentKB)
				fleet = append(fleet, r)
			})
		}
		t.Run("3nodes", func(t *testing.T) {
			n := sizes[len(sizes)-1]
			r := runFleet(t, 3, n)
			t.Logf("fleet 3 nodes %d agents: p50 %.1f ms p99 %.1f ms max %.1f ms, %.1f%% in 1 s, %.1f KB/agent", n, r.P50ms, r.P99ms, r.MaxMS, 100*r.Within1s, r.PerAgentKB)
			fleet = append(fleet, r)
		})
	})

	rep := newReport(start, cfg, disk, results)
	rep.Console = console
	rep.Schedule = sched
	rep.Agent = agentRes
	rep.Fleet = fleet
	rep.Scale = scale
	fmt.Print(rep.table())
	fmt.Print(scheduleTable(sched))
	fmt.Print(agentTable(agentRes))
	fmt.Print(fleetTable(fleet))
	fmt.Print(scaleTable(scale))
	complete := ran[groupStore] && ran[groupAPI1] && ran[groupAPI3] && ran[groupRaw] && ran[groupIssue1] && ran[groupIssue3] && ran[groupHSM] && ran[groupIdentity] && ran[groupConsole] && ran[groupSchedule] && ran[groupAgent] && ran[groupFleet] && ran[groupScale]
	paths, err := rep.write(complete)
	if err != nil {
		t.Fatalf("write results: %v", err)
	}
	// Charts beside the JSON, under its stamp; latest-*.svg for a complete run.
	if root, err := moduleRoot(); err != nil {
		t.Errorf("write charts: %v", err)
	} else if ts, err := time.Parse(time.RFC3339, rep.Timestamp); err != nil {
		t.Errorf("write charts: %v", err)
	} else {
		svgs, err := writeCharts(filepath.Join(root, "bench-results"), ts.UTC().Format("20060102T150405Z"), rep)
		if err != nil {
			t.Errorf("write charts: %v", err)
		}
		paths = append(paths, svgs...)
	}
	for _, p := range paths {
		t.Logf("wrote %s", p)
	}
}
