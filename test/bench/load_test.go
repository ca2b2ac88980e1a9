//go:build bench

package bench

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/certvault/certvault/test/bench/loadgen"
)

// writeFunc performs one write for client number client and returns ""
// when the write was committed, else a short class for the error table
// ("409", "503", "transport", ...).
type writeFunc func(client int) string

// cpuFunc returns the CPU seconds (user + system) of the processes that
// serve the writes, one figure per process.
type cpuFunc func() ([]float64, error)

// load is one measured run: clients goroutines call write in a closed
// loop for warmup+measure; only writes that complete inside the measure
// window count.
type load struct {
	clients int
	warmup  time.Duration
	measure time.Duration
	write   writeFunc
	// serverCPU reads the CPU time of the serving processes at the start
	// and end of the measure window; nil when they are this process.
	serverCPU cpuFunc
	// counters reads the servers' counters at the start and end of the
	// measure window; nil for none.
	counters func() (map[string]float64, error)
	// done, if set, runs when the load has finished, to release its
	// connections.
	done func()
}

// runStats is what a load measured.
type runStats struct {
	Seconds       float64        `json:"seconds"`
	Writes        int            `json:"writes"`
	WritesPerSec  float64        `json:"writes_per_sec"`
	P50ms         float64        `json:"p50_ms"`
	P99ms         float64        `json:"p99_ms"`
	Maxms         float64        `json:"max_ms"`
	Errors        int            `json:"errors"`
	ErrorsByClass map[string]int `json:"errors_by_class,omitempty"`
	// ServerCPUSeconds is the CPU time of each serving process during the
	// measure window (certvaultd processes, in node order); ServerCPUPct
	// their sum as a percentage of one core (200% = both cores of a
	// 2-core machine).
	ServerCPUSeconds []float64 `json:"server_cpu_seconds,omitempty"`
	ServerCPUPct     float64   `json:"server_cpu_pct"`
	// BenchCPUSeconds is this test process's CPU time during the window:
	// the load generator (HTTP client, TLS), or for the in-process store
	// benchmark the store and its load together.
	BenchCPUSeconds float64 `json:"bench_cpu_seconds"`
	BenchCPUPct     float64 `json:"bench_cpu_pct"`
	// MachineCPUPct is how busy the whole machine was (all CPUs, from
	// /proc/stat; 100% per core) and OtherCPUPct what of it neither the
	// serving processes nor this one account for: other processes and
	// kernel threads. A high figure means the run shared the CPUs with
	// something else and its result is low for that reason.
	MachineCPUPct float64 `json:"machine_cpu_pct"`
	OtherCPUPct   float64 `json:"other_cpu_pct"`
	// ServerCounters are how much the servers' Prometheus counters grew
	// during the window, summed over the nodes.
	ServerCounters map[string]float64 `json:"server_counters,omitempty"`
}

// run drives the load and returns its statistics.
func (l load) run() (runStats, error) {
	if l.done != nil {
		defer l.done()
	}
	start := time.Now()
	from := start.Add(l.warmup)
	until := from.Add(l.measure)
	loop := loadgen.StartLoop(l.clients, from, until, l.write)

	// The callers run to the end even when reading CPU time fails, so
	// that none is left writing after run returns.
	time.Sleep(time.Until(from))
	s0, err0 := l.cpu()
	b0 := selfCPU()
	m0, errm0 := machineCPU()
	c0, errc0 := l.count()
	time.Sleep(time.Until(until))
	s1, err1 := l.cpu()
	b1 := selfCPU()
	m1, errm1 := machineCPU()
	c1, errc1 := l.count()
	all, errs := loop.Wait()
	if err := errors.Join(err0, err1, errm0, errm1, errc0, errc1); err != nil {
		return runStats{}, err
	}

	st := runStats{Seconds: l.measure.Seconds(), ErrorsByClass: errs}
	for _, n := range errs {
		st.Errors += n
	}
	st.Writes = len(all)
	st.WritesPerSec = float64(len(all)) / st.Seconds
	st.P50ms = ms(percentile(all, 0.50))
	st.P99ms = ms(percentile(all, 0.99))
	if len(all) > 0 {
		st.Maxms = ms(all[len(all)-1])
	}
	st.BenchCPUSeconds = b1 - b0
	st.BenchCPUPct = 100 * st.BenchCPUSeconds / st.Seconds
	if l.serverCPU != nil {
		var sum float64
		for i := range s1 {
			d := s1[i] - s0[i]
			st.ServerCPUSeconds = append(st.ServerCPUSeconds, d)
			sum += d
		}
		st.ServerCPUPct = 100 * sum / st.Seconds
	} else {
		st.ServerCPUPct = st.BenchCPUPct
	}
	st.MachineCPUPct = 100 * (m1 - m0) / st.Seconds
	st.OtherCPUPct = st.MachineCPUPct - st.BenchCPUPct
	if l.serverCPU != nil {
		st.OtherCPUPct -= st.ServerCPUPct
	}
	st.OtherCPUPct = max(0, st.OtherCPUPct)
	for k, v := range c1 {
		if st.ServerCounters == nil {
			st.ServerCounters = map[string]float64{}
		}
		st.ServerCounters[k] = v - c0[k]
	}
	return st, nil
}

func (l load) cpu() ([]float64, error) {
	if l.serverCPU == nil {
		return nil, nil
	}
	return l.serverCPU()
}

func (l load) count() (map[string]float64, error) {
	if l.counters == nil {
		return nil, nil
	}
	return l.counters()
}

// percentile, ms and selfCPU are the load generator's, so that rows from
// either generator compute alike.
var (
	percentile = loadgen.Percentile
	ms         = loadgen.Ms
	selfCPU    = loadgen.SelfCPU
)

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTicks = 100

// machineCPU returns the CPU seconds all CPUs of the machine spent busy
// (everything but idle and iowait) since boot, from /proc/stat.
func machineCPU() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read machine cpu time: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("read machine cpu time: unexpected first line %q", line)
	}
	// user nice system idle iowait irq softirq steal ...; guest time is
	// already counted in user.
	var busy uint64
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read machine cpu time: %w", err)
		}
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return float64(busy) / clockTicks, nil
}

// procCPU returns the user + system CPU seconds of process pid, all its
// threads, from /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu time of %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces;
	// the fields after it start with field 3 (state).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("read cpu time of %d: malformed stat %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	// utime and stime are fields 14 and 15, i.e. 11 and 12 after state.
	if len(f) < 13 {
		return 0, fmt.Errorf("read cpu time of %d: short stat %q", pid, s)
	}
	var ticks float64
	for _, v := range f[11:13] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read cpu time of %d: %w", pid, err)
		}
		ticks += float64(n)
	}
	return ticks / clockTicks, nil
}
