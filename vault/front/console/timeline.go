package console

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/catalog"
	"github.com/certvault/certvault/vault/core"
)

// The expiry timeline: the certificates the caller may read that expire
// in the next timelineDays, one lane per issuer (or per tag), drawn as
// SVG on the server (no script, nothing the CSP must allow), with the same
// data as a table for screen readers and keyboards. A lane has one mark
// per day on which certificates expire, sized by their count, so the page
// stays small with a hundred thousand certificates; the marks and the
// table name the first few and link to the inventory's search for the
// rest.

const (
	timelineDays  = 90
	timelineWidth = 960
	timelineLeft  = 160 // the lanes' labels
	timelineLaneH = 28
	timelineTop   = 28
	// timelineLanes is the most lanes drawn: the busiest, the others
	// folded into one.
	timelineLanes = 40
	// timelineNames is how many certificates a mark names.
	timelineNames = 5
)

// timelineMark is the certificates of one lane expiring on one day.
type timelineMark struct {
	X, Y, R      int
	Color, Title string
	Date         string
	Count        int
	// Names are the first timelineNames certificates, by name; More
	// links to the inventory's search when there are others.
	Names     []string
	More      string
	MoreCount int
}

type timelineLane struct {
	Name   string
	LabelY int
	Marks  []timelineMark
	count  int
}

type timelineTick struct {
	X     int
	Label string
}

type timelinePage struct {
	page
	Days, Width, Height, AxisY, Total int
	By                                string
	Lanes                             []timelineLane
	Ticks                             []timelineTick
}

// othersLane names the lane the lanes past timelineLanes fold into.
const othersLane = "(others)"

// handleTimeline draws the expiry timeline, by issuer (?by=tag: by tag).
func (f *Front) handleTimeline(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	by := "issuer"
	if r.URL.Query().Get("by") == "tag" {
		by = "tag"
	}
	now := time.Now().UTC()
	end := now.Add(timelineDays * 24 * time.Hour)
	// The days are counted from today's midnight (UTC), so a mark is a
	// calendar day.
	today := now.Truncate(24 * time.Hour)
	data := timelinePage{page: f.pageFor(s, "Expiry timeline", "timeline"),
		Days: timelineDays, Width: timelineWidth, By: by}
	type day struct {
		lane string
		n    int
	}
	marks := map[day][]string{}
	lanes := map[string]int{}
	_, _, err := scan(f, s.caller, core.KindCertificates, access.CertificatesRead,
		inventoryFilter{within: timelineDays * 24 * time.Hour}, "",
		func(o *catalog.Object) (struct{}, bool, error) {
			e := o.Attributes.Expires
			if e == nil {
				return struct{}{}, false, nil
			}
			exp := time.Unix(*e, 0).UTC()
			if exp.Before(now) || exp.After(end) {
				return struct{}{}, false, nil
			}
			names, err := o.Names()
			if err != nil {
				return struct{}{}, false, err
			}
			keys := []string{names.Issuer}
			if by == "tag" {
				keys = factsOf(o, now).Tags
				if len(keys) == 0 {
					keys = []string{"(no tag)"}
				}
			}
			n := int(exp.Sub(today).Hours() / 24)
			for _, k := range keys {
				if k == "" {
					k = "(none)"
				}
				marks[day{k, n}] = append(marks[day{k, n}], o.Name)
				lanes[k]++
			}
			data.Total++
			// ok false: the timeline keeps no rows, so the walk never
			// stops at a full page.
			return struct{}{}, false, nil
		})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	names := make([]string, 0, len(lanes))
	for k := range lanes {
		names = append(names, k)
	}
	// The busiest lanes are drawn; the rest fold into othersLane.
	sort.Slice(names, func(a, b int) bool {
		if lanes[names[a]] != lanes[names[b]] {
			return lanes[names[a]] > lanes[names[b]]
		}
		return names[a] < names[b]
	})
	fold := map[string]string{}
	if len(names) > timelineLanes {
		for _, k := range names[timelineLanes-1:] {
			fold[k] = othersLane
		}
		names = append(names[:timelineLanes-1], othersLane)
	}
	sort.Strings(names)
	byLane := map[string]map[int][]string{}
	for d, certs := range marks {
		lane := d.lane
		if to, ok := fold[lane]; ok {
			lane = to
		}
		if byLane[lane] == nil {
			byLane[lane] = map[int][]string{}
		}
		byLane[lane][d.n] = append(byLane[lane][d.n], certs...)
	}
	span := float64(timelineWidth - timelineLeft - 20)
	x := func(t time.Time) int {
		return timelineLeft + int(span*t.Sub(now).Hours()/(timelineDays*24))
	}
	for d := 0; d <= timelineDays; d += 15 {
		t := now.Add(time.Duration(d) * 24 * time.Hour)
		data.Ticks = append(data.Ticks, timelineTick{X: x(t), Label: t.Format("Jan 2")})
	}
	for i, name := range names {
		y := timelineTop + i*timelineLaneH + timelineLaneH/2
		lane := timelineLane{Name: name, LabelY: y + 4}
		days := make([]int, 0, len(byLane[name]))
		for n := range byLane[name] {
			days = append(days, n)
		}
		sort.Ints(days)
		for _, n := range days {
			certs := byLane[name][n]
			sort.Strings(certs)
			date := today.Add(time.Duration(n) * 24 * time.Hour)
			m := timelineMark{X: max(x(date.Add(12*time.Hour)), timelineLeft), Y: y, R: markRadius(len(certs)),
				Color: "#1f6fb2", Date: date.Format("2006-01-02"), Count: len(certs), Names: certs[:min(len(certs), timelineNames)]}
			if date.Sub(today) < 14*24*time.Hour {
				m.Color = "#c62828"
			}
			m.Title = fmt.Sprintf("%d expire %s: %s", m.Count, m.Date, strings.Join(m.Names, ", "))
			if m.Count > len(m.Names) {
				m.Title += fmt.Sprintf(" and %d more", m.Count-len(m.Names))
				m.More, m.MoreCount = moreLink(by, name, n+1), m.Count-len(m.Names)
			}
			lane.Marks = append(lane.Marks, m)
		}
		data.Lanes = append(data.Lanes, lane)
	}
	data.AxisY = timelineTop + len(names)*timelineLaneH
	data.Height = data.AxisY + 10
	f.render(w, http.StatusOK, "timeline", data)
}

// markRadius grows a mark with the log of its count: 4 for one
// certificate, 12 at most.
func markRadius(n int) int {
	r := 4
	for ; n > 1 && r < 12; n /= 4 {
		r += 2
	}
	return r
}

// moreLink is the inventory's search for the certificates of lane that
// expire within days (the closest the search comes to one day's).
func moreLink(by, lane string, days int) string {
	v := url.Values{}
	v.Set("expiring", strconv.Itoa(days))
	switch {
	case lane == othersLane || lane == "(none)" || lane == "(no tag)":
	case by == "tag":
		v.Set("tag", lane)
	default:
		v.Set("issuer", lane)
	}
	return "/ui/certificates?" + v.Encode()
}
