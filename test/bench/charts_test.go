//go:build bench

package bench

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
)

// charts are the SVG charts writeCharts draws, by the name their files
// carry. Each returns a nil plot when the report lacks its data.
var charts = []struct {
	name string
	draw func(*report) (*plot.Plot, error)
}{
	{"propagation", propagationChart},
	{"throughput", throughputChart},
	{"latency", latencyChart},
}

// chartWidth and chartHeight are every chart's size.
const (
	chartWidth  = 8 * vg.Inch
	chartHeight = 5 * vg.Inch
)

// cdfPoints caps the points of one propagation curve, so that a run of
// 10,000 agents does not make a megabyte of SVG; 1,000 points are steps
// of 0.1 % of the agents.
const cdfPoints = 1000

// writeCharts draws the report's charts as SVG files <stamp>-<chart>.svg
// in dir and, when the run was complete, copies each to
// latest-<chart>.svg there too. It skips a chart whose data the report
// lacks and returns the paths it wrote.
func writeCharts(dir, stamp string, r *report) ([]string, error) {
	var paths []string
	for _, c := range charts {
		p, err := c.draw(r)
		if err != nil {
			return paths, fmt.Errorf("draw %s chart: %w", c.name, err)
		}
		if p == nil {
			continue
		}
		w, err := p.WriterTo(chartWidth, chartHeight, "svg")
		if err != nil {
			return paths, fmt.Errorf("render %s chart: %w", c.name, err)
		}
		var svg bytes.Buffer
		if _, err := w.WriteTo(&svg); err != nil {
			return paths, fmt.Errorf("render %s chart: %w", c.name, err)
		}
		names := []string{stamp + "-" + c.name + ".svg"}
		if r.Complete {
			names = append(names, "latest-"+c.name+".svg")
		}
		for _, n := range names {
			path := filepath.Join(dir, n)
			if err := writeFileAtomic(path, svg.Bytes()); err != nil {
				return paths, err
			}
			paths = append(paths, path)
		}
	}
	return paths, nil
}

// propagationChart plots, for each fleet run, the share of its agents
// whose long poll had answered with the new version against the time
// since the create request (the cumulative distribution of
// PropagationMS, time on a log scale), with the fleet goals as vertical
// lines: 99 % of the agents within 1 s, all of them within 3 s. Agents
// never reached are left out of the curve, which then stays below 100 %.
func propagationChart(r *report) (*plot.Plot, error) {
	p := newChart("Propagation of a new version to long-polling agents",
		"time from the create request to the agent's answer (ms, log scale)", "agents reached (%)")
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, logTicks
	p.Legend.Top, p.Legend.Left = true, true
	lo, hi, runs := 1000.0, 3000.0, 0
	for i, f := range r.Fleet {
		if len(f.PropagationMS) == 0 {
			continue
		}
		var ms []float64
		for _, v := range f.PropagationMS {
			if v < fleetNotReachedMS {
				ms = append(ms, v)
			}
		}
		slices.Sort(ms)
		agents := max(f.Agents, len(ms))
		xys := plotter.XYs{{X: 1000, Y: 0}} // none reached: the legend says so
		if len(ms) > 0 {
			xys = cdf(ms, agents)
			lo, hi = min(lo, ms[0]), max(hi, ms[len(ms)-1])
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("plot propagation of %d agents: %w", f.Agents, err)
		}
		l.StepStyle = plotter.PostStep
		l.Color, l.Width = plotutil.Color(i), vg.Points(1.5)
		p.Add(l)
		reached := func(limit float64) float64 {
			n, _ := slices.BinarySearch(ms, math.Nextafter(limit, math.Inf(1)))
			return 100 * float64(n) / float64(agents)
		}
		p.Legend.Add(fmt.Sprintf("%s agents, %s: %.1f %% in 1 s, %.1f %% in 3 s",
			thousands(float64(f.Agents)), plural(f.Nodes, "node"), reached(1000), reached(3000)), l)
		runs++
	}
	if runs == 0 {
		return nil, nil
	}
	for i, g := range []struct {
		ms    float64
		label string
	}{{1000, "goal: 99 % within 1 s"}, {3000, "goal: 100 % within 3 s"}} {
		l, err := plotter.NewLine(plotter.XYs{{X: g.ms, Y: 0}, {X: g.ms, Y: 100}})
		if err != nil {
			return nil, fmt.Errorf("plot goal line: %w", err)
		}
		l.Color, l.Dashes = color.Gray{Y: 0x30}, plotutil.Dashes(i+1)
		p.Add(l)
		p.Legend.Add(g.label, l)
	}
	p.X.Min, p.X.Max = max(lo, 0.1)/2, hi*2
	// The band above 100 % holds the legend, clear of the curves.
	p.Y.Min, p.Y.Max = 0, 100+7*float64(runs+2)
	var ticks plot.ConstantTicks
	for v := 0; v <= 100; v += 10 {
		ticks = append(ticks, plot.Tick{Value: float64(v), Label: strconv.Itoa(v)})
	}
	p.Y.Tick.Marker = ticks
	return p, nil
}

// cdf turns sorted samples into the points of their cumulative
// distribution in percent of agents, keeping at most cdfPoints of them
// (the first and the last always); times under 0.1 ms are drawn at 0.1
// ms, the log scale's floor.
func cdf(sorted []float64, agents int) plotter.XYs {
	n := len(sorted)
	step := max(1, (n+cdfPoints-1)/cdfPoints)
	var xys plotter.XYs
	for i := 0; i < n; i += step {
		if i+step >= n {
			i = n - 1
		}
		xys = append(xys, plotter.XY{X: max(sorted[i], 0.1), Y: 100 * float64(i+1) / float64(agents)})
	}
	return xys
}

// throughputChart draws, as grouped bars, the API's rates on one and on
// three nodes at each benchmark's highest client count: secret writes,
// certificate creates, secret GETs and, when the hsm group ran, HSM
// signatures. Each one-node goal is a dashed line across its group, its
// value under the group's name.
func throughputChart(r *report) (*plot.Plot, error) {
	var hsm string
	if len(r.HSMGoals) > 0 {
		hsm = fmt.Sprintf("%.0f %% of direct", r.HSMGoals[0].Target)
	}
	ops := []struct {
		bench, label string
		goal         float64
		goalNote     string
	}{
		{benchAPI, "secret writes", r.Goal.WritesPerSec, ""},
		{benchCreate, "certificate creates", issuanceGoal(r, benchCreate), ""},
		{benchGet, "secret GETs", issuanceGoal(r, benchGet), ""},
		{benchHSMSign, "HSM signs (ES256)", hsmGoal(r), hsm},
	}
	var names []string
	var one, three, goals plotter.Values
	for _, op := range ops {
		r1, ok1 := topRow(r, op.bench, 1)
		r3, ok3 := topRow(r, op.bench, 3)
		if !ok1 && !ok3 {
			continue
		}
		name := fmt.Sprintf("%s\n%d clients", op.label, max(r1.Clients, r3.Clients))
		if op.goal > 0 {
			name += "\ngoal " + cmp.Or(op.goalNote, thousands(op.goal))
		}
		names = append(names, name)
		one, three, goals = append(one, r1.WritesPerSec), append(three, r3.WritesPerSec), append(goals, op.goal)
	}
	if len(names) == 0 {
		return nil, nil
	}
	p := newChart("certvault API throughput at the highest client count", "", "operations/s")
	p.Legend.Top, p.Legend.Left = true, true
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	p.Y.Min, p.Y.Max = 0, 1.3*max(slices.Max(one), slices.Max(three), slices.Max(goals))
	p.Y.Tick.Marker = countTicks
	const barWidth = 36
	for i, s := range []struct {
		label  string
		values plotter.Values
	}{{"1 node", one}, {"3 nodes", three}} {
		b, err := plotter.NewBarChart(s.values, vg.Points(barWidth))
		if err != nil {
			return nil, fmt.Errorf("plot %s bars: %w", s.label, err)
		}
		b.Color, b.LineStyle.Width = plotutil.Color(i), 0
		b.Offset = vg.Points(barWidth * (float64(i) - 0.5))
		p.Add(b)
		p.Legend.Add(s.label, b)
		labels, err := barLabels(s.values, b.Offset, p.Y.Max)
		if err != nil {
			return nil, fmt.Errorf("label %s bars: %w", s.label, err)
		}
		p.Add(labels)
	}
	noted := false
	for i, g := range goals {
		if g == 0 {
			continue
		}
		l, err := plotter.NewLine(plotter.XYs{{X: float64(i) - 0.35, Y: g}, {X: float64(i) + 0.35, Y: g}})
		if err != nil {
			return nil, fmt.Errorf("plot goal line: %w", err)
		}
		l.Color, l.Width, l.Dashes = color.RGBA{R: 0xc0, A: 0xff}, vg.Points(2), plotutil.Dashes(1)
		p.Add(l)
		if !noted {
			p.Legend.Add("goal on 1 node", l)
			noted = true
		}
	}
	return p, nil
}

// barLabels writes each non-zero value at the top of its bar, offset like
// the bars: inside it, or above it when the bar is too short to hold
// the text.
func barLabels(values plotter.Values, offset vg.Length, yMax float64) (*plotter.Labels, error) {
	var xys plotter.XYLabels
	var inside []bool
	for i, v := range values {
		if v > 0 {
			in := v > 0.08*yMax
			y := v + 0.01*yMax
			if in {
				y = v - 0.01*yMax
			}
			xys.XYs = append(xys.XYs, plotter.XY{X: float64(i), Y: y})
			xys.Labels = append(xys.Labels, thousands(v))
			inside = append(inside, in)
		}
	}
	l, err := plotter.NewLabels(xys)
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign, l.TextStyle[i].YAlign = text.XCenter, text.YBottom
		if inside[i] {
			l.TextStyle[i].YAlign = text.YTop
		}
	}
	l.Offset = vg.Point{X: offset}
	return l, nil
}

// topRow is the row of bench on nodes at its highest client count; for
// writes, the one with the configured number of secret names.
func topRow(r *report, bench string, nodes int) (result, bool) {
	var top result
	for _, res := range r.Results {
		if res.Benchmark != bench || res.Nodes != nodes || (res.Kind == kindWrite && res.Names != r.Config.Names) {
			continue
		}
		if res.Clients > top.Clients {
			top = res
		}
	}
	return top, top.Clients > 0
}

// issuanceGoal is issue #3's rate goal for bench (its goal that is not a
// percentage), or 0.
func issuanceGoal(r *report, bench string) float64 {
	for _, g := range r.IssuanceGoals {
		if g.Benchmark == bench && !strings.HasPrefix(g.Unit, "%") {
			return g.Target
		}
	}
	return 0
}

// hsmGoal turns the HSM goal, a percentage of the direct crypto11 rate,
// into signatures/s at the client count the chart shows, or 0.
func hsmGoal(r *report) float64 {
	sign, ok := topRow(r, benchHSMSign, 1)
	if !ok || len(r.HSMGoals) == 0 {
		return 0
	}
	for _, res := range r.Results {
		if res.Benchmark == benchHSMDirect && res.Clients == sign.Clients {
			return r.HSMGoals[0].Target / 100 * res.WritesPerSec
		}
	}
	return 0
}

// latencyChart plots the p50 and p99 latency of secret writes through
// one node against the number of clients, both on log scales.
func latencyChart(r *report) (*plot.Plot, error) {
	var rows []result
	for _, res := range r.Results {
		if res.Benchmark == benchAPI && res.Nodes == 1 && res.Names == r.Config.Names && res.P50ms > 0 {
			rows = append(rows, res)
		}
	}
	if len(rows) == 0 {
		return nil, nil
	}
	slices.SortFunc(rows, func(a, b result) int { return cmp.Compare(a.Clients, b.Clients) })
	p := newChart(fmt.Sprintf("Secret write latency, one node, %d secret names", r.Config.Names),
		"concurrent clients (log scale)", "latency (ms, log scale)")
	p.X.Scale, p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogScale{}, logTicks
	p.Legend.Top, p.Legend.Left = true, true
	var ticks []plot.Tick
	for _, res := range rows {
		ticks = append(ticks, plot.Tick{Value: float64(res.Clients), Label: strconv.Itoa(res.Clients)})
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = float64(rows[0].Clients)/2, float64(rows[len(rows)-1].Clients)*2
	p.Y.Min, p.Y.Max = math.Inf(1), 0
	for i, s := range []struct {
		label string
		ms    func(result) float64
	}{{"p50", func(r result) float64 { return r.P50ms }}, {"p99", func(r result) float64 { return r.P99ms }}} {
		var xys plotter.XYs
		for _, res := range rows {
			xys = append(xys, plotter.XY{X: float64(res.Clients), Y: s.ms(res)})
			p.Y.Min, p.Y.Max = min(p.Y.Min, s.ms(res)/2), max(p.Y.Max, s.ms(res)*2)
		}
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("plot %s latency: %w", s.label, err)
		}
		l.Color, l.Width, pts.Color, pts.Shape = plotutil.Color(i), vg.Points(1.5), plotutil.Color(i), plotutil.Shape(i)
		p.Add(l, pts)
		p.Legend.Add(s.label, l, pts)
	}
	return p, nil
}

// newChart is a plot with a title, axis labels and a grid.
func newChart(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Title.TextStyle.Font.Size = vg.Points(14)
	p.Add(plotter.NewGrid())
	return p
}

// logTicks marks each integer multiple of a power of ten on a log axis
// and labels the 1, 2 and 5 of each decade.
var logTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for e := int(math.Floor(math.Log10(lo))); e <= int(math.Ceil(math.Log10(hi))); e++ {
		for m := 1; m < 10; m++ {
			v := float64(m) * math.Pow10(e)
			if v < lo || v > hi {
				continue
			}
			t := plot.Tick{Value: v}
			if m == 1 || m == 2 || m == 5 {
				t.Label = strconv.FormatFloat(v, 'f', -1, 64)
			}
			ticks = append(ticks, t)
		}
	}
	return ticks
})

// countTicks labels a linear axis in round steps (1, 2 or 5 times a
// power of ten), with thousands separators.
var countTicks = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
	step := math.Pow10(int(math.Floor(math.Log10(hi - lo))))
	for _, div := range []float64{2, 2.5} {
		if (hi-lo)/step < 4 {
			step /= div
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: thousands(v)})
	}
	return ticks
})

// thousands rounds v and separates its thousands with commas.
func thousands(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// plural is "1 node" or "3 nodes".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// TestChartsFromLatest draws the charts of bench-results/writes-latest.json
// with synthetic fleet runs added and checks that each file is an SVG; a
// report without data draws none.
func TestChartsFromLatest(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "bench-results", "writes-latest.json"))
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no bench-results/writes-latest.json: run make bench first")
	}
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("decode writes-latest.json: %v", err)
	}
	// 3 of the 3-node run's 400 agents were never reached.
	r.Fleet = append(r.Fleet, syntheticFleet(1, 300, 300), syntheticFleet(3, 400, 397))
	ts, err := time.Parse(time.RFC3339, r.Timestamp)
	if err != nil {
		t.Fatalf("parse timestamp: %v", err)
	}
	stamp := ts.UTC().Format("20060102T150405Z")

	dir := t.TempDir()
	paths, err := writeCharts(dir, stamp, &r)
	if err != nil {
		t.Fatalf("writeCharts: %v", err)
	}
	var got, want []string
	for _, p := range paths {
		got = append(got, filepath.Base(p))
	}
	for _, c := range charts {
		want = append(want, stamp+"-"+c.name+".svg")
		if r.Complete {
			want = append(want, "latest-"+c.name+".svg")
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("wrote %v, want %v", got, want)
	}
	for _, p := range paths {
		svg, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(svg) == 0 || !bytes.Contains(svg, []byte("<svg")) {
			t.Errorf("%s: %d bytes, no <svg", p, len(svg))
		}
		t.Logf("%s: %d bytes", filepath.Base(p), len(svg))
	}

	t.Run("no data", func(t *testing.T) {
		paths, err := writeCharts(t.TempDir(), stamp, &report{Complete: true})
		if err != nil || len(paths) != 0 {
			t.Errorf("writeCharts of an empty report = %v, %v; want no paths, no error", paths, err)
		}
	})
}

// syntheticFleet is a fleet run of agents on nodes of which reached got
// the new version, after log-normal times around 120 ms with a few
// stragglers beyond a second; the others are recorded as runFleet does.
func syntheticFleet(nodes, agents, reached int) fleetResult {
	rng := rand.New(rand.NewPCG(uint64(nodes), uint64(agents)))
	ms := make([]float64, agents)
	for i := range ms {
		ms[i] = 15 + math.Exp(math.Log(120)+0.6*rng.NormFloat64())
		if i%100 == 99 {
			ms[i] += 1000 + 800*rng.Float64()
		}
		if i >= reached {
			ms[i] = fleetNotReachedMS
		}
	}
	slices.Sort(ms)
	return fleetResult{Nodes: nodes, Agents: agents, PropagationMS: ms,
		P50ms: ms[len(ms)/2], P99ms: ms[len(ms)*99/100], MaxMS: ms[len(ms)-1]}
}
