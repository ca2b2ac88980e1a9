//go:build bench

package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// goal is issue #2's target: committed writes/s on one node with 256
// clients.
type goal struct {
	Description  string  `json:"description"`
	Benchmark    string  `json:"benchmark"`
	Nodes        int     `json:"nodes"`
	Clients      int     `json:"clients"`
	WritesPerSec float64 `json:"writes_per_sec"`
	// Measured is the figure of the row with the configured number of
	// secret names (64: four clients per secret at 256 clients); Met says
	// whether it reached the goal. Both are absent when that row was not
	// run. MeasuredOneNamePerClient is the row where no two clients share a
	// secret, when it was run.
	Measured                 *float64 `json:"measured_writes_per_sec,omitempty"`
	Met                      *bool    `json:"met,omitempty"`
	MeasuredOneNamePerClient *float64 `json:"measured_one_name_per_client_writes_per_sec,omitempty"`
}

// anchor is a published figure of another system to compare against.
type anchor struct {
	System       string  `json:"system"`
	WritesPerSec float64 `json:"writes_per_sec"`
	Clients      int     `json:"clients"`
	Note         string  `json:"note"`
}

var anchors = []anchor{
	{System: "OpenBao", WritesPerSec: 1704, Clients: 64, Note: "published figure: committed kv-v2 writes/s at 64 clients"},
	{System: "etcd 2.2", WritesPerSec: 4442, Clients: 256, Note: "published figure: writes/s with 256 clients on 2 vCPUs"},
}

// machine describes where the figures were taken.
type machine struct {
	NumCPU    int    `json:"num_cpu"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
	CPUModel  string `json:"cpu_model,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	// DiskFsyncsPerSec is how many 4 KiB overwrite + fdatasync rounds the
	// disk under the temporary directory (where the nodes keep their raft
	// logs) completes per second, one at a time.
	DiskFsyncsPerSec float64 `json:"disk_fsyncs_per_sec"`
}

type report struct {
	Timestamp string   `json:"timestamp"`
	Machine   machine  `json:"machine"`
	Config    config   `json:"config"`
	Goal      goal     `json:"goal"`
	Anchors   []anchor `json:"anchors"`
	// IssuanceGoals and IssuanceAnchors are issue #3's: certificate
	// creates and secret reads.
	IssuanceGoals   []check  `json:"issuance_goals"`
	IssuanceAnchors []figure `json:"issuance_anchors"`
	// HSMGoals and HSMAnchors are issue "HSM-backed keys"'s: signatures
	// with a key in the token, through the keys API against crypto11.
	HSMGoals   []check  `json:"hsm_goals"`
	HSMAnchors []figure `json:"hsm_anchors"`
	Results    []result `json:"results"`
	// Console is the console group's fill, walks and goals (its pages
	// are rows of Results).
	Console *consoleResult `json:"console,omitempty"`
	// Schedule is issue "renewal engine"'s scheduler figures.
	Schedule *scheduleResult `json:"schedule,omitempty"`
	// Agent is the certvault-agent group's figures.
	Agent *agentResult `json:"agent,omitempty"`
	// Fleet is the fleet group's runs (1,000 / 5,000 / 10,000 agents).
	Fleet []fleetResult `json:"fleet,omitempty"`
	// Scale is the scale group's figures (issue 20).
	Scale *scaleResult `json:"scale,omitempty"`
	// Complete is false when subtests or failures left groups out.
	Complete bool `json:"complete"`
}

func newReport(start time.Time, cfg config, disk float64, results []result) *report {
	r := &report{
		Timestamp: start.Format(time.RFC3339),
		Machine: machine{
			NumCPU: runtime.NumCPU(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(),
			CPUModel: cpuModel(), Kernel: kernel(), DiskFsyncsPerSec: disk,
		},
		Config: cfg,
		Goal: goal{
			Description: "issue #2: at least 5,000 committed writes/s on one node with 256 clients on a 2-core machine",
			Benchmark:   benchAPI, Nodes: 1, Clients: 256, WritesPerSec: 5000,
		},
		Anchors: anchors,
		Results: results,
	}
	annotateIssuance(results)
	r.IssuanceGoals, r.IssuanceAnchors = issuanceChecks(results), issuanceAnchors
	annotateHSM(results)
	r.HSMGoals, r.HSMAnchors = hsmChecks(results), hsmAnchors
	annotateIdentity(results)
	for _, res := range results {
		if res.Benchmark != r.Goal.Benchmark || res.Nodes != r.Goal.Nodes || res.Clients != r.Goal.Clients {
			continue
		}
		m := res.WritesPerSec
		switch res.Names {
		case cfg.Names:
			met := m >= r.Goal.WritesPerSec
			r.Goal.Measured, r.Goal.Met = &m, &met
		case res.Clients:
			r.Goal.MeasuredOneNamePerClient = &m
		}
	}
	return r
}

// table renders the write results as one aligned table followed by the
// goal and the anchors, then issue #3's and the HSM group's results
// likewise, then the identity group's, then the console group's.
func (r *report) table() string {
	var b strings.Builder
	const row = "%-10s %5s %7s %5s %9s %8s %8s %8s %7s %8s %10s %10s %10s\n"
	fmt.Fprintf(&b, "\ncommitted writes, %.0f s per run after %.0f s warm-up, %d-byte values; %d CPUs, %s, disk %.0f fdatasyncs/s\n",
		r.Config.Seconds, r.Config.WarmupSeconds, r.Config.ValueBytes, r.Machine.NumCPU, r.Machine.GoVersion, r.Machine.DiskFsyncsPerSec)
	fmt.Fprintf(&b, row, "benchmark", "nodes", "clients", "names", "writes/s", "p50 ms", "p99 ms", "max ms", "errors", "retries", "vault CPU%", "bench CPU%", "other CPU%")
	for _, res := range r.Results {
		if res.Kind != kindWrite {
			continue
		}
		bench := "-"
		if res.Benchmark != benchStore {
			bench = fmt.Sprintf("%.0f", res.BenchCPUPct)
		}
		retries := "-"
		if v, ok := res.ServerCounters[counterConflicts]; ok {
			retries = fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(&b, row, res.Benchmark, fmt.Sprint(res.Nodes), fmt.Sprint(res.Clients), fmt.Sprint(res.Names),
			fmt.Sprintf("%.0f", res.WritesPerSec), fmt.Sprintf("%.2f", res.P50ms), fmt.Sprintf("%.2f", res.P99ms),
			fmt.Sprintf("%.1f", res.Maxms), fmt.Sprint(res.Errors), retries, fmt.Sprintf("%.0f", res.ServerCPUPct), bench, fmt.Sprintf("%.0f", res.OtherCPUPct))
	}
	b.WriteString("\nstore: in-process raftstore (raft + bbolt group commit, no TLS/HTTP/JSON/AES); its CPU% is the whole test process.\n")
	b.WriteString("api: PUT /secrets/{name} over HTTPS, one keep-alive HTTP/1.1 connection per client; on 3 nodes client i uses node i mod 3,\n")
	b.WriteString("     followers first (1 client = all through a follower, which forwards writes to the leader).\n")
	b.WriteString("api-leader: the same, all clients on the leader.\n")
	b.WriteString("CPU% is of one core (200% = all of a 2-core machine): vault = certvaultd processes, bench = this load generator,\n")
	b.WriteString("other = the rest of the machine (kernel threads, other processes); a high figure means the run was disturbed.\n")
	b.WriteString("names: client i writes name i mod names; fewer names than clients means concurrent sets of one secret.\n")
	b.WriteString("retries: writes the leader refused on a lost compare-and-set and the vault retried (one more raft round each).\n")
	for _, res := range r.Results {
		if res.Errors > 0 {
			fmt.Fprintf(&b, "errors of %s nodes=%d clients=%d names=%d: %v\n", res.Benchmark, res.Nodes, res.Clients, res.Names, res.ErrorsByClass)
		}
	}
	g := r.Goal
	fmt.Fprintf(&b, "\ngoal: >= %.0f writes/s, %s, %d node, %d clients: ", g.WritesPerSec, g.Benchmark, g.Nodes, g.Clients)
	if g.Measured == nil {
		b.WriteString("not run\n")
	} else {
		verdict := "NOT met"
		if *g.Met {
			verdict = "met"
		}
		fmt.Fprintf(&b, "measured %.0f with %d names (%s)", *g.Measured, r.Config.Names, verdict)
		if g.MeasuredOneNamePerClient != nil {
			fmt.Fprintf(&b, ", %.0f with one name per client", *g.MeasuredOneNamePerClient)
		}
		b.WriteString("\n")
	}
	for _, a := range r.Anchors {
		fmt.Fprintf(&b, "anchor: %s %.0f writes/s at %d clients (%s)\n", a.System, a.WritesPerSec, a.Clients, a.Note)
	}
	r.issuanceTable(&b)
	r.hsmTable(&b)
	r.identityTable(&b)
	r.consoleTable(&b)
	return b.String()
}

// rowsOfKind returns the results whose kind keep accepts, in order.
func rowsOfKind(results []result, keep func(kind string) bool) []result {
	var rows []result
	for _, res := range results {
		if keep(res.Kind) {
			rows = append(rows, res)
		}
	}
	return rows
}

// write stores the report as bench-results/writes-<UTC time>.json at the
// module root and, for a complete run, as writes-latest.json too.
func (r *report) write(complete bool) ([]string, error) {
	r.Complete = complete
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "bench-results")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode results: %w", err)
	}
	data = append(data, '\n')
	ts, err := time.Parse(time.RFC3339, r.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("results timestamp %q: %w", r.Timestamp, err)
	}
	names := []string{"writes-" + ts.UTC().Format("20060102T150405Z") + ".json"}
	if complete {
		names = append(names, "writes-latest.json")
	}
	var paths []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := writeFileAtomic(p, data); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path, so a reader never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// moduleRoot walks up from the test's working directory (the package
// directory under go test) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// probeFsync measures how many 4 KiB overwrite + fdatasync rounds a file
// in dir completes per second, one after another, for about d.
func probeFsync(dir string, d time.Duration) (float64, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.WriteAt(buf, 0); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		buf[0] = byte(n)
		if _, err := f.WriteAt(buf, 0); err != nil {
			return 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, fmt.Errorf("fdatasync: %w", err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
