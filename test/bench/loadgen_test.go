//go:build bench

package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certvault/certvault/test/bench/loadgen"
	"github.com/certvault/certvault/test/testcluster"
)

// The load generator in a process of its own (test/bench/loadgen, run
// as test/bench/loadgen/cmd/loadgen): the
// issuance groups' judged rows, since clients are separate programs and
// an in-process generator shares its process's scheduler and heap with
// nothing the vault sees.

// Generators: how a row's load was made.
const (
	// generatorProcess rows were measured by test/bench/loadgen, a
	// separate process with one connection per client.
	generatorProcess = "loadgen process"
	// generatorInProcess rows were measured by goroutines of the bench
	// process (every row without a generator says so too).
	generatorInProcess = "in-process"
)

var (
	loadgenOnce sync.Once
	loadgenPath string
	loadgenErr  error
)

// loadgenBinary builds test/bench/loadgen/cmd/loadgen once per process.
func loadgenBinary() (string, error) {
	loadgenOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			loadgenErr = err
			return
		}
		dir, err := os.MkdirTemp("", "certvault-loadgen-")
		if err != nil {
			loadgenErr = fmt.Errorf("build loadgen: %w", err)
			return
		}
		path := filepath.Join(dir, "loadgen")
		cmd := exec.Command("go", "build", "-o", path, "./test/bench/loadgen/cmd/loadgen")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			loadgenErr = fmt.Errorf("go build loadgen: %w\n%s", err, out)
			return
		}
		loadgenPath = path
	})
	return loadgenPath, loadgenErr
}

// runningNodes returns the cluster's nodes that run: a node that joined
// and left again, as the scale group's install does, is stopped.
func runningNodes(c *testcluster.Cluster) []*testcluster.Node {
	var out []*testcluster.Node
	for _, n := range c.Nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// runLoadgen runs the generator with clients clients against targets
// (client i uses targets[i % len]) doing op with its extra flags, and
// reads the nodes' CPU time, their counters and the machine's CPU time
// when it says its measured window opens and closes. BenchCPUSeconds is
// the generator's CPU time in the window plus this process's (which only
// waits).
func (a *apiBench) runLoadgen(clients int, targets []*testcluster.Node, op string, extra []string, warmup, measure time.Duration) (runStats, error) {
	bin, err := loadgenBinary()
	if err != nil {
		return runStats{}, err
	}
	urls := make([]string, len(targets))
	for i, n := range targets {
		urls[i] = n.URL()
	}
	args := append([]string{"-op", op, "-clients", strconv.Itoa(clients), "-targets", strings.Join(urls, ","),
		"-cacert", a.cluster.CACert, "-warmup", warmup.String(), "-duration", measure.String()}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "CERTVAULT_TOKEN="+a.cluster.Token)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return runStats{}, fmt.Errorf("loadgen: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return runStats{}, fmt.Errorf("start loadgen: %w", err)
	}
	nodes := runningNodes(a.cluster)
	hc := a.httpClient(1)
	defer hc.CloseIdleConnections()
	type marks struct {
		server  []float64
		self    float64
		machine float64
		counts  map[string]float64
	}
	sample := func() (marks, error) {
		m := marks{server: make([]float64, len(nodes)), self: selfCPU(), counts: map[string]float64{}}
		var err error
		for i, n := range nodes {
			if m.server[i], err = procCPU(n.PID()); err != nil {
				return m, err
			}
		}
		if m.machine, err = machineCPU(); err != nil {
			return m, err
		}
		for _, n := range nodes {
			if err := a.scrape(hc, n, m.counts); err != nil {
				return m, err
			}
		}
		return m, nil
	}
	var m0, m1 marks
	var res *loadgen.Result
	var errs []error
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		var ev loadgen.Result
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			errs = append(errs, fmt.Errorf("loadgen said %q: %w", sc.Text(), err))
			continue
		}
		switch ev.Event {
		case "measuring":
			if m0, err = sample(); err != nil {
				errs = append(errs, err)
			}
		case "measured":
			if m1, err = sample(); err != nil {
				errs = append(errs, err)
			}
		case "result":
			res = &ev
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read loadgen: %w", err))
	}
	if err := cmd.Wait(); err != nil {
		errs = append(errs, fmt.Errorf("loadgen: %w: %s", err, strings.TrimSpace(stderr.String())))
	}
	if err := errors.Join(errs...); err != nil {
		return runStats{}, err
	}
	if res == nil || m0.server == nil || m1.server == nil {
		return runStats{}, fmt.Errorf("loadgen ended without its marks and result: %s", strings.TrimSpace(stderr.String()))
	}
	st := runStats{Seconds: res.Seconds, Writes: res.Completed, WritesPerSec: res.PerSec, P50ms: res.P50ms, P99ms: res.P99ms, Maxms: res.Maxms,
		Errors: res.Errors, ErrorsByClass: res.ErrorsByClass}
	if st.ErrorsByClass == nil {
		st.ErrorsByClass = map[string]int{}
	}
	var sum float64
	for i := range m1.server {
		d := m1.server[i] - m0.server[i]
		st.ServerCPUSeconds = append(st.ServerCPUSeconds, d)
		sum += d
	}
	st.ServerCPUPct = 100 * sum / st.Seconds
	st.BenchCPUSeconds = res.CPUSeconds + (m1.self - m0.self)
	st.BenchCPUPct = 100 * st.BenchCPUSeconds / st.Seconds
	st.MachineCPUPct = 100 * (m1.machine - m0.machine) / st.Seconds
	st.OtherCPUPct = max(0, st.MachineCPUPct-st.ServerCPUPct-st.BenchCPUPct)
	for k, v := range m1.counts {
		if st.ServerCounters == nil {
			st.ServerCounters = map[string]float64{}
		}
		st.ServerCounters[k] = v - m0.counts[k]
	}
	return st, nil
}
