package console

import (
	"testing"
	"time"

	"github.com/certvault/certvault/vault/audit"
)

var testNow = time.Date(2026, 11, 27, 10, 30, 0, 0, time.UTC)

func TestParseWhen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "2026-11-27T10:00:00Z", want: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)},
		{in: "2026-11-27T10:00:00+02:00", want: time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)},
		{in: "2026-11-27T10:00", want: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)},
		{in: " 2026-11-27 ", want: time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)},
		{in: "24h", want: testNow.Add(-24 * time.Hour)},
		{in: "7d", want: testNow.AddDate(0, 0, -7)},
		{in: "yesterday", bad: true},
		{in: "2026-13-01", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseWhen(tc.in, testNow)
			if tc.bad {
				if err == nil {
					t.Errorf("got %v, want an error", got)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("got %v, %v, want %v", got, err, tc.want)
			}
		})
	}
}

func TestReportPeriod(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		since, until   time.Time
		file           string
		bad            bool
	}{
		{name: "both days included", from: "2026-01-01", to: "2026-01-31",
			since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), until: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
			file: "certvault-evidence-2026-01-01-to-2026-01-31.html"},
		{name: "one day", from: "2026-01-01", to: "2026-01-01",
			since: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), until: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
			file: "certvault-evidence-2026-01-01-to-2026-01-01.html"},
		{name: "to defaults to today", from: "", to: "",
			until: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC), file: "certvault-evidence-beginning-to-2026-11-27.html"},
		{name: "reversed", from: "2026-02-01", to: "2026-01-01", bad: true},
		{name: "not a date", from: "01/02/2026", to: "", bad: true},
		{name: "to not a date", from: "", to: "2026-02-30", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseReportPeriod(tc.from, tc.to, testNow)
			if tc.bad {
				if err == nil {
					t.Errorf("got %+v, want an error", p)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			req := p.request()
			if !req.Since.Equal(tc.since) || !req.Until.Equal(tc.until) {
				t.Errorf("got since %v until %v, want %v and %v", req.Since, req.Until, tc.since, tc.until)
			}
			if got := p.fileName("html"); got != tc.file {
				t.Errorf("file name %q, want %q", got, tc.file)
			}
		})
	}
}

// TestAuditCursorOrder: a cursor comes after the records that precede
// its own in the trails' merge order (time, node, sequence).
func TestAuditCursorOrder(t *testing.T) {
	at := time.Date(2026, 11, 27, 10, 0, 0, 5, time.UTC)
	cur := auditCursor{time: at, node: "node2", seq: 10}
	for _, tc := range []struct {
		name   string
		rec    audit.Record
		before bool
	}{
		{"earlier instant", audit.Record{Time: at.Add(-time.Nanosecond), Node: "node9", Seq: 99}, true},
		{"later instant", audit.Record{Time: at.Add(time.Nanosecond), Node: "node1", Seq: 1}, false},
		{"same instant, node before", audit.Record{Time: at, Node: "node1", Seq: 99}, true},
		{"same instant, node after", audit.Record{Time: at, Node: "node3", Seq: 1}, false},
		{"same record", audit.Record{Time: at, Node: "node2", Seq: 10}, false},
		{"same node, earlier record", audit.Record{Time: at, Node: "node2", Seq: 9}, true},
	} {
		if got := cur.before(tc.rec); got != tc.before {
			t.Errorf("%s: before = %v, want %v", tc.name, got, tc.before)
		}
	}
}

// FuzzAuditCursor: parsing never panics, and a parsed cursor survives
// its own String.
func FuzzAuditCursor(f *testing.F) {
	f.Add("2026-11-27T10:00:00.000000005Z,10,node2")
	f.Add("2026-11-27T10:00:00Z,0,node,with,commas")
	f.Add(",,")
	f.Fuzz(func(t *testing.T, s string) {
		c, ok := parseCursor(s)
		if !ok {
			return
		}
		again, ok := parseCursor(c.String())
		if !ok || !again.time.Equal(c.time) || again.node != c.node || again.seq != c.seq {
			t.Errorf("%q parsed as %+v, which reads back as %+v (%v)", s, c, again, ok)
		}
	})
}
