package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// The timeline's geometry in SVG user units (pixels at 100 % zoom).
const (
	chartWidth   = 960.0
	plotLeft     = 200.0 // row labels live left of it
	plotRight    = 920.0 // room for the last tick label
	legendY      = 16.0
	plotTop      = 44.0 // under the legend and the "now" label
	rowHeight    = 22.0
	rowPadding   = 3.0
	axisHeight   = 34.0 // tick labels under the last row
	labelMaxRune = 28   // longer certificate names are cut, full name in a tooltip

	// maxTicks is how many date ticks the x-axis holds at most (one more
	// when the first tick falls exactly on the start), so that the labels
	// never overlap.
	maxTicks = 8
	// expiringWithin is how close to Generated an expiry gets the warning
	// colour.
	expiringWithin = 30 * 24 * time.Hour
)

// timeline is the expiry chart, every coordinate computed here so the
// template only prints numbers.
type timeline struct {
	Width, Height float64
	// PlotLeft, PlotRight, PlotTop and PlotBottom bound the area the bars
	// are drawn in.
	PlotLeft, PlotRight, PlotTop, PlotBottom float64
	RowHeight                                float64
	// NowX is where the vertical line at Generated is drawn.
	NowX   float64
	Rows   []timelineRow
	Bars   []timelineBar
	Ticks  []timelineTick
	Legend []legendItem
}

// timelineRow is one certificate's row.
type timelineRow struct {
	// Name is the full certificate name, Label what fits left of the plot.
	Name, Label string
	// Y is the top of the row, TextY the baseline of its label.
	Y, TextY float64
	// Shaded rows (every second one) get a background band.
	Shaded bool
}

// timelineBar is one version's validity, from not before to expires.
type timelineBar struct {
	X, Y, W, H float64
	// Class is "bar" plus the state: valid, expiring or expired, and
	// current for the certificate's current version.
	Class string
	// Title is the tooltip: name, version, validity and state in words.
	Title string
}

// timelineTick is one date on the x-axis.
type timelineTick struct {
	X     float64
	Label string
}

// legendItem explains one colour (or, with Line, the "now" line).
type legendItem struct {
	X, TextX float64
	Class    string
	Label    string
	Line     bool
}

// layoutTimeline lays out the expiry chart of certs (in row order) as seen
// at now. The x range covers every bar and now, with a little air; a
// version whose not before or expires is unset, or that expires before it
// starts, has no bar.
func layoutTimeline(certs []Certificate, now time.Time) timeline {
	tl := timeline{
		Width:      chartWidth,
		Height:     plotTop + float64(len(certs))*rowHeight + axisHeight,
		PlotLeft:   plotLeft,
		PlotRight:  plotRight,
		PlotTop:    plotTop,
		PlotBottom: plotTop + float64(len(certs))*rowHeight,
		RowHeight:  rowHeight,
		Legend:     legend(),
	}
	if len(certs) == 0 {
		return tl
	}

	start, end := now, now
	for _, c := range certs {
		for _, v := range c.Versions {
			if drawable(v) {
				start = minTime(start, v.NotBefore)
				end = maxTime(end, v.Expires)
			}
		}
	}
	start, end = widen(start, end)
	span := seconds(end) - seconds(start)
	x := func(t time.Time) float64 {
		return round1(plotLeft + (seconds(t)-seconds(start))/span*(plotRight-plotLeft))
	}
	tl.NowX = x(now)

	step := chooseTickStep(start, end)
	for t := step.first(start); !t.After(end); t = step.next(t) {
		tl.Ticks = append(tl.Ticks, timelineTick{X: x(t), Label: t.Format(step.layout())})
	}

	for i, c := range certs {
		top := plotTop + float64(i)*rowHeight
		tl.Rows = append(tl.Rows, timelineRow{
			Name:   c.Name,
			Label:  shorten(c.Name, labelMaxRune),
			Y:      top,
			TextY:  top + rowHeight/2 + 4,
			Shaded: i%2 == 1,
		})

		// Oldest first, alternating between two lanes so that a renewal
		// overlapping its predecessor stays visible.
		var vs []Version
		for _, v := range c.Versions {
			if drawable(v) {
				vs = append(vs, v)
			}
		}
		slices.SortStableFunc(vs, func(a, b Version) int { return a.NotBefore.Compare(b.NotBefore) })
		lanes := max(min(len(vs), 2), 1)
		laneHeight := (rowHeight - 2*rowPadding) / float64(lanes)
		for j, v := range vs {
			x0, x1 := x(v.NotBefore), x(v.Expires)
			tl.Bars = append(tl.Bars, timelineBar{
				X:     x0,
				Y:     round1(top + rowPadding + float64(j%lanes)*laneHeight),
				W:     max(round1(x1-x0), 1), // a short version stays visible
				H:     round1(laneHeight - 1),
				Class: "bar " + barState(v, now),
				Title: barTitle(c.Name, v, now),
			})
		}
	}
	return tl
}

// legend lays out the colour key above the plot.
func legend() []legendItem {
	items := []legendItem{
		{Class: "valid current", Label: "current version"},
		{Class: "valid", Label: "older version"},
		{Class: "expiring", Label: "expires within 30 days"},
		{Class: "expired", Label: "expired"},
		{Class: "now", Label: "report generated (now)", Line: true},
	}
	x := plotLeft
	for i := range items {
		items[i].X = x
		items[i].TextX = x + 18
		x += 18 + 7*float64(len(items[i].Label)) + 24
	}
	return items
}

// drawable says whether v has a validity period a bar can show.
func drawable(v Version) bool {
	return !v.NotBefore.IsZero() && !v.Expires.IsZero() && !v.Expires.Before(v.NotBefore)
}

// barState is the CSS class list for v's bar beside "bar".
func barState(v Version, now time.Time) string {
	if v.Current {
		return expiry(v, now) + " current"
	}
	return expiry(v, now)
}

// expiry is expired, expiring (within 30 days of now) or valid.
func expiry(v Version, now time.Time) string {
	switch {
	case !v.Expires.After(now):
		return "expired"
	case v.Expires.Sub(now) <= expiringWithin:
		return "expiring"
	}
	return "valid"
}

// barTitle is the tooltip of v's bar.
func barTitle(name string, v Version, now time.Time) string {
	var notes []string
	if v.Current {
		notes = append(notes, "current")
	}
	if !v.Enabled {
		notes = append(notes, "disabled")
	}
	switch expiry(v, now) {
	case "expired":
		notes = append(notes, "expired")
	case "expiring":
		notes = append(notes, "expires within 30 days")
	}
	s := fmt.Sprintf("%s version %s: %s to %s", name, v.Version, formatTime(v.NotBefore), formatTime(v.Expires))
	if len(notes) > 0 {
		s += " (" + strings.Join(notes, ", ") + ")"
	}
	return s
}

// widen makes [start, end] at least a week long (centred on the original
// range) and adds 2 % of air on each side, so bars never touch the edges.
// It works in float seconds: a time.Duration cannot hold the span of a
// certificate valid until 9999.
func widen(start, end time.Time) (time.Time, time.Time) {
	const minSpan = 7 * 86400.0
	from, to := seconds(start), seconds(end)
	if to-from < minSpan {
		from -= (minSpan - (to - from)) / 2
		to = from + minSpan
	}
	pad := (to - from) * 0.02
	return unix(from - pad), unix(to + pad)
}

// tickStep is the distance between two date ticks on the x-axis: a number
// of days or a number of months, never both.
type tickStep struct {
	days, months int
}

// tickSteps are the steps chooseTickStep picks from before it falls back
// to decades and longer.
var tickSteps = []tickStep{
	{days: 1}, {days: 2}, {days: 7}, {days: 14},
	{months: 1}, {months: 2}, {months: 3}, {months: 6},
	{months: 12}, {months: 24}, {months: 60},
}

// chooseTickStep picks the finest step that puts at most maxTicks ticks
// between from and to: days for a span of days, weeks for weeks, months
// for a year or two, years beyond, then 10, 20, 50, 100, ... years.
func chooseTickStep(from, to time.Time) tickStep {
	spanDays := (seconds(to) - seconds(from)) / 86400
	fits := func(s tickStep) bool { return spanDays/s.approxDays() <= maxTicks }
	for _, s := range tickSteps {
		if fits(s) {
			return s
		}
	}
	for years := 10; ; years *= 10 {
		for _, m := range []int{1, 2, 5} {
			if s := (tickStep{months: 12 * years * m}); fits(s) {
				return s
			}
		}
	}
}

// approxDays is the step's length in days, a month counting 30.44.
func (s tickStep) approxDays() float64 {
	return float64(s.days) + 30.44*float64(s.months)
}

// layout is the time layout of the tick labels: as precise as the step.
func (s tickStep) layout() string {
	switch {
	case s.months > 0 && s.months%12 == 0:
		return "2006"
	case s.months > 0:
		return "2006-01"
	default:
		return "2006-01-02"
	}
}

// first is the first tick at or after t: a UTC midnight for day steps (a
// Monday for weekly ones), the first of a month whose number is a
// multiple of the step for month steps (so 6-month ticks fall on January
// and July, yearly ones on 1 January, decades on years ending in 0).
func (s tickStep) first(t time.Time) time.Time {
	t = t.UTC()
	var tick time.Time
	if s.months == 0 {
		tick = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		if s.days%7 == 0 {
			tick = tick.AddDate(0, 0, -(int(tick.Weekday())+6)%7)
		}
	} else {
		m := t.Year()*12 + int(t.Month()) - 1
		m -= ((m % s.months) + s.months) % s.months
		tick = time.Date(0, time.Month(m+1), 1, 0, 0, 0, 0, time.UTC)
	}
	for tick.Before(t) {
		tick = s.next(tick)
	}
	return tick
}

// next is the tick after t.
func (s tickStep) next(t time.Time) time.Time {
	return t.AddDate(0, s.months, s.days)
}

// seconds is t as Unix seconds in a float, the unit of all the
// timeline's arithmetic.
func seconds(t time.Time) float64 {
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}

// unix is the UTC time at Unix seconds s, to the second.
func unix(s float64) time.Time {
	return time.Unix(int64(math.Round(s)), 0).UTC()
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// shorten cuts s to n runes, marking the cut with an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
