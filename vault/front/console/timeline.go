package console

import (
	"net/http"
	"sort"
	"time"
)

// The expiry timeline: the certificates the caller may read that expire
// in the next timelineDays, one lane per issuer (or per tag), drawn as
// SVG on the server (no script, nothing the CSP must allow), with the same
// data as a table for screen readers and keyboards.

const (
	timelineDays     = 90
	timelineWidth    = 960
	timelineLeft     = 160 // the lanes' labels
	timelineLaneH    = 28
	timelineTop      = 28
	timelineMaxCerts = 10000
)

type timelineMark struct {
	X, Y         int
	Color, Title string
	Name, Date   string
}

type timelineLane struct {
	Name   string
	LabelY int
	Marks  []timelineMark
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

// handleTimeline draws the expiry timeline, by issuer (?by=tag: by tag).
func (f *Front) handleTimeline(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	by := "issuer"
	if r.URL.Query().Get("by") == "tag" {
		by = "tag"
	}
	now := time.Now().UTC()
	end := now.Add(timelineDays * 24 * time.Hour)
	flt := inventoryFilter{within: timelineDays * 24 * time.Hour}
	var rows []certRow
	for after := ""; ; {
		more, next, err := f.inventory(r, s.caller, flt, after)
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		rows = append(rows, more...)
		if next == "" || len(rows) >= timelineMaxCerts {
			break
		}
		after = next
	}
	data := timelinePage{page: f.pageFor(s, "Expiry timeline", "timeline"),
		Days: timelineDays, Width: timelineWidth, By: by}
	lanes := map[string][]certRow{}
	for _, row := range rows {
		if !row.Expires || row.expiresAt.Before(now) || row.expiresAt.After(end) {
			continue
		}
		keys := []string{row.Issuer}
		if by == "tag" {
			keys = row.Tags
			if len(keys) == 0 {
				keys = []string{"(no tag)"}
			}
		}
		for _, k := range keys {
			if k == "" {
				k = "(none)"
			}
			lanes[k] = append(lanes[k], row)
		}
		data.Total++
	}
	names := make([]string, 0, len(lanes))
	for k := range lanes {
		names = append(names, k)
	}
	sort.Strings(names)
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
		sort.Slice(lanes[name], func(a, b int) bool { return lanes[name][a].expiresAt.Before(lanes[name][b].expiresAt) })
		for _, row := range lanes[name] {
			color := "#1f6fb2"
			if row.expiresAt.Sub(now) < 14*24*time.Hour {
				color = "#c62828"
			}
			date := row.expiresAt.Format("2006-01-02")
			lane.Marks = append(lane.Marks, timelineMark{X: x(row.expiresAt), Y: y, Color: color,
				Title: row.Name + " expires " + date, Name: row.Name, Date: date})
		}
		data.Lanes = append(data.Lanes, lane)
	}
	data.AxisY = timelineTop + len(names)*timelineLaneH
	data.Height = data.AxisY + 10
	f.render(w, http.StatusOK, "timeline", data)
}
