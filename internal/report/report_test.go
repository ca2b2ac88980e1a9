package report

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

const vaultURL = "https://vault.example.com:8200"

var generated = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func day(n int) time.Time { return generated.AddDate(0, 0, n) }

// purgedAt is when version retention purged v1 of www in sample.
var purgedAt = day(-5)

// sample has an expired (and purged), an expiring and a healthy version, a certificate
// without versions, deliveries, grants and reads, all in shuffled order.
func sample() *Report {
	since := day(-400)
	return &Report{
		Generated: generated,
		Since:     &since,
		Vault:     vaultURL,
		Certificates: []Certificate{
			{Name: "www", Issuer: "CN=CA", Subject: "CN=www.example.com", AutoRenew: true, Versions: []Version{
				{Version: "v1", Serial: "01", Created: day(-390), NotBefore: day(-390), Expires: day(-10), CreatedBy: "alice", How: "create", Enabled: true,
					Purged: &purgedAt, PurgeReason: "older than the last 1 versions; expired"},
				{Version: "v2", Serial: "02", Created: day(-30), NotBefore: day(-30), Expires: day(335), CreatedBy: "renewal", How: "renewal", Current: true, Enabled: true},
			}},
			{Name: "api", Issuer: "CN=CA", Subject: "CN=api.example.com", Versions: []Version{
				{Version: "a1", Serial: "0a", Created: day(-80), NotBefore: day(-80), Expires: day(10), CreatedBy: "bob", How: "import", Current: true, Enabled: true},
			}},
			{Name: "pending", Issuer: "CN=CA", Subject: "CN=pending.example.com"},
		},
		Deliveries: []Delivery{
			{Agent: "ag1", AgentName: "web-1", Group: "web", Certificate: "www", Version: "v2", Time: day(-29), Result: "installed"},
			{Agent: "ag2", AgentName: "api-1", Group: "api", Certificate: "api", Version: "a1", Time: day(-79), Result: "failed", Detail: "=HYPERLINK(\"x\")"},
			{Agent: "ag1", AgentName: "web-1", Group: "web", Certificate: "www", Version: "v1", Time: day(-389), Result: "installed"},
		},
		Access: []Access{
			{Object: "/secrets/db", Principal: "carol", Role: "secret-reader", Scope: "/secrets", ReadsSecret: true},
			{Object: "/certificates/www", Principal: "group:web", Role: "agent", Scope: "/certificates/www", ReadsSecret: true},
			{Object: "/certificates/www", Principal: "alice", Role: "admin", Scope: "/", ReadsSecret: true, Writes: true},
		},
		SecretReads: []SecretRead{
			{Object: "/secrets/db", Principal: "carol", Count: 3, First: day(-20), Last: day(-1)},
			{Object: "/certificates/www", Principal: "agent:ag1", Count: 2, First: day(-389), Last: day(-29)},
		},
	}
}

func render(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestHTMLEmptySections(t *testing.T) {
	out := render(t, &Report{Generated: generated, Vault: vaultURL})
	for _, want := range []string{
		"<title>certvault evidence report</title>",
		vaultURL,
		"2026-03-01T12:00:00Z",
		"everything (no since filter)",
		"0 certificates, 0 versions, 0 deliveries, 0 access grants, 0 secret reads",
		`<section id="rotation">`, "Rotation history", "Expiry timeline", "no certificates",
		`<section id="deliveries">`, "Where each certificate went", "No agent has reported an install yet.",
		`<section id="access">`, "Who has access", "Access grants by object", "Who read each secret",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("empty report: missing %q", want)
		}
	}
	if strings.Contains(out, "<svg") {
		t.Error("empty report draws a timeline")
	}
	// The two access tables each say so when empty.
	if n := strings.Count(out, `colspan="6">None.`) + strings.Count(out, `colspan="5">None.`); n != 2 {
		t.Errorf("empty access tables: %d none lines, want 2", n)
	}
}

// TestHTMLPeriod: the header names the period's bounds, either or both.
func TestHTMLPeriod(t *testing.T) {
	since, until := day(-30), day(-1)
	for _, tc := range []struct {
		name         string
		since, until *time.Time
		want         string
	}{
		{"both", &since, &until, "since 2026-01-30T12:00:00Z, until 2026-02-28T12:00:00Z (versions, deliveries and secret reads outside it are left out)"},
		{"since", &since, nil, "since 2026-01-30T12:00:00Z (versions"},
		{"until", nil, &until, "until 2026-02-28T12:00:00Z (versions"},
		{"none", nil, nil, "everything (no since filter)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out := render(t, &Report{Generated: generated, Vault: vaultURL, Since: tc.since, Until: tc.until}); !strings.Contains(out, tc.want) {
				t.Errorf("the header does not say %q", tc.want)
			}
		})
	}
}

func TestHTMLContent(t *testing.T) {
	r := sample()
	out := render(t, r)
	for _, want := range []string{
		"since 2025-01-25T12:00:00Z",
		"3 certificates, 3 versions, 3 deliveries, 3 access grants, 5 secret reads",
		`<th scope="rowgroup" rowspan="2">/certificates/www</th>`,
		`<td class="bad">failed</td>`,
		// v1 was purged by version retention: its history stays.
		`<span title="older than the last 1 versions; expired">2026-02-24T12:00:00Z</span>`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	// Certificates by name, versions newest first, deliveries per
	// certificate newest first.
	inOrder(t, out, "Certificate <code>api</code>", "Certificate <code>pending</code>", "Certificate <code>www</code>")
	inOrder(t, out, `<td class="mono">v2</td><td class="mono">02</td>`, `<td class="mono">v1</td><td class="mono">01</td>`)
	inOrder(t, out, `<td class="mono">a1</td><td>2025-12-12`, `<td class="mono">v2</td><td>2026-01-31`, `<td class="mono">v1</td><td>2025-02-05`)
	inOrder(t, out, "None: no version in the period covered.", "Certificate <code>www</code>")

	// Rendering neither changes the input nor depends on its order.
	if r.Certificates[0].Name != "www" || r.Certificates[0].Versions[0].Version != "v1" || r.Deliveries[0].Version != "v2" {
		t.Error("WriteHTML reordered its input")
	}
	slices.Reverse(r.Certificates)
	slices.Reverse(r.Certificates[2].Versions)
	slices.Reverse(r.Deliveries)
	slices.Reverse(r.Access)
	slices.Reverse(r.SecretReads)
	if render(t, r) != out {
		t.Error("output depends on input order")
	}
}

// inOrder fails unless every s occurs in out, each after the one before.
func inOrder(t *testing.T, out string, ss ...string) {
	t.Helper()
	at := 0
	for _, s := range ss {
		i := strings.Index(out[at:], s)
		if i < 0 {
			t.Errorf("%q missing or out of order", s)
			return
		}
		at += i + len(s)
	}
}

func TestHTMLEscapes(t *testing.T) {
	r := sample()
	r.Certificates[0].Name = "<script>alert(1)</script>"
	r.Certificates[0].Versions[0].CreatedBy = `"><img src=x onerror=alert(1)>`
	r.Access[0].Principal = "<script>"
	r.Vault = "https://vault.example.com/<script>"
	out := render(t, r)
	if strings.Contains(strings.ToLower(out), "<script") || strings.Contains(out, "<img") {
		t.Fatal("user text appears unescaped")
	}
	if !strings.Contains(out, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Error("escaped certificate name missing")
	}
}

func TestHTMLSelfContained(t *testing.T) {
	out := render(t, sample())
	rest := strings.Replace(out, `xmlns="http://www.w3.org/2000/svg"`, "", 1)
	rest = strings.Replace(rest, "<code>"+vaultURL+"</code>", "", 1)
	if m := regexp.MustCompile(`(?i)https?://`).FindAllStringIndex(rest, -1); len(m) > 0 {
		t.Errorf("external reference: %q", rest[m[0][0]:min(len(rest), m[0][0]+60)])
	}
	for _, bad := range []string{"<script", "<link", "<img", " src=", "url(", "@import"} {
		if strings.Contains(out, bad) {
			t.Errorf("output contains %q", bad)
		}
	}
}

func TestHTMLTimeline(t *testing.T) {
	out := render(t, sample())
	svg := out[strings.Index(out, "<svg"):strings.Index(out, "</svg>")]
	if n := strings.Count(svg, `class="bar `); n != 3 {
		t.Errorf("%d bars, want one per version (3)", n)
	}
	for class, want := range map[string]int{
		`class="bar expired"`:          1, // www v1
		`class="bar valid current"`:    1, // www v2
		`class="bar expiring current"`: 1, // api a1
		`id="now-line"`:                1,
		`class="label"`:                3, // one row per certificate
	} {
		if n := strings.Count(svg, class); n != want {
			t.Errorf("%s: %d, want %d", class, n, want)
		}
	}
	if !strings.Contains(svg, "<title>www version v1: 2025-02-04T12:00:00Z to 2026-02-19T12:00:00Z (expired)</title>") {
		t.Error("bar tooltip missing")
	}
}

func TestHTMLParses(t *testing.T) {
	doc, err := html.Parse(strings.NewReader(render(t, sample())))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	bars, scripts := 0, 0
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		switch n.Data {
		case "script":
			scripts++
		case "rect":
			if n.Namespace == "svg" && strings.HasPrefix(attr(n, "class"), "bar ") {
				bars++
			}
		}
		if id := attr(n, "id"); id != "" {
			ids[id] = true
		}
	}
	for _, id := range []string{"rotation", "timeline", "deliveries", "access", "now-line"} {
		if !ids[id] {
			t.Errorf("no element with id %q", id)
		}
	}
	if bars != 3 || scripts != 0 {
		t.Errorf("parsed %d SVG bars and %d scripts, want 3 and 0", bars, scripts)
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func TestLayoutTimeline(t *testing.T) {
	t.Run("empty", func(t *testing.T) {
		tl := layoutTimeline(nil, generated)
		if len(tl.Rows)+len(tl.Bars)+len(tl.Ticks) != 0 {
			t.Errorf("no certificates: %d rows, %d bars, %d ticks", len(tl.Rows), len(tl.Bars), len(tl.Ticks))
		}
	})
	t.Run("one version", func(t *testing.T) {
		tl := layoutTimeline([]Certificate{{Name: "one", Versions: []Version{
			{Version: "1", NotBefore: day(-1), Expires: day(1), Current: true},
		}}}, generated)
		checkLayout(t, tl, 1, 1)
		if b := tl.Bars[0]; b.H != rowHeight-2*rowPadding-1 || b.Class != "bar expiring current" {
			t.Errorf("single bar %+v", b)
		}
	})
	t.Run("hundreds", func(t *testing.T) {
		var certs []Certificate
		for i := range 30 {
			c := Certificate{Name: fmt.Sprintf("certificate-with-a-rather-long-name-%02d", i)}
			for j := range 10 {
				nb := day(-3*365 + i + 90*j)
				c.Versions = append(c.Versions, Version{Version: fmt.Sprint(j), NotBefore: nb, Expires: nb.AddDate(0, 0, 100), Current: j == 9})
			}
			certs = append(certs, c)
		}
		certs = append(certs, Certificate{Name: "undated", Versions: []Version{{Version: "x"}}})
		tl := layoutTimeline(certs, generated)
		checkLayout(t, tl, 31, 300)
		if l := tl.Rows[0].Label; len([]rune(l)) != labelMaxRune || !strings.HasSuffix(l, "…") {
			t.Errorf("long name shortened to %q", l)
		}
	})
}

// checkLayout checks the counts and that everything lies inside the chart.
func checkLayout(t *testing.T, tl timeline, rows, bars int) {
	t.Helper()
	if len(tl.Rows) != rows || len(tl.Bars) != bars {
		t.Fatalf("%d rows and %d bars, want %d and %d", len(tl.Rows), len(tl.Bars), rows, bars)
	}
	if tl.PlotBottom != plotTop+float64(rows)*rowHeight || tl.Height != tl.PlotBottom+axisHeight {
		t.Errorf("plot bottom %v, height %v", tl.PlotBottom, tl.Height)
	}
	inPlot := func(x float64) bool { return x >= tl.PlotLeft && x <= tl.PlotRight }
	if !inPlot(tl.NowX) {
		t.Errorf("now line at %v", tl.NowX)
	}
	if len(tl.Ticks) < 2 || len(tl.Ticks) > maxTicks+1 {
		t.Errorf("%d ticks", len(tl.Ticks))
	}
	for i, tk := range tl.Ticks {
		if !inPlot(tk.X) || i > 0 && tk.X <= tl.Ticks[i-1].X {
			t.Errorf("tick %d at %v", i, tk.X)
		}
	}
	for _, b := range tl.Bars {
		if !inPlot(b.X) || !inPlot(b.X+b.W) || b.W < 1 || b.Y < tl.PlotTop || b.Y+b.H > tl.PlotBottom {
			t.Errorf("bar outside the plot: %+v", b)
		}
	}
}

func TestChooseTickStep(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		to     time.Time
		want   tickStep
		layout string
	}{
		{from.Add(12 * time.Hour), tickStep{days: 1}, "2006-01-02"},
		{from.AddDate(0, 0, 8), tickStep{days: 1}, "2006-01-02"},
		{from.AddDate(0, 0, 15), tickStep{days: 2}, "2006-01-02"},
		{from.AddDate(0, 0, 30), tickStep{days: 7}, "2006-01-02"},
		{from.AddDate(0, 0, 90), tickStep{days: 14}, "2006-01-02"},
		{from.AddDate(0, 0, 200), tickStep{months: 1}, "2006-01"},
		{from.AddDate(1, 0, 0), tickStep{months: 2}, "2006-01"},
		{from.AddDate(1, 6, 0), tickStep{months: 3}, "2006-01"},
		{from.AddDate(3, 0, 0), tickStep{months: 6}, "2006-01"},
		{from.AddDate(6, 0, 0), tickStep{months: 12}, "2006"},
		{from.AddDate(15, 0, 0), tickStep{months: 24}, "2006"},
		{from.AddDate(30, 0, 0), tickStep{months: 60}, "2006"},
		{from.AddDate(60, 0, 0), tickStep{months: 120}, "2006"},
		{from.AddDate(150, 0, 0), tickStep{months: 240}, "2006"},
		{from.AddDate(300, 0, 0), tickStep{months: 600}, "2006"},
		{time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), tickStep{months: 12000}, "2006"},
	} {
		got := chooseTickStep(from, tc.to)
		if got != tc.want || got.layout() != tc.layout {
			t.Errorf("%s to %s: got %+v (%s), want %+v (%s)", from, tc.to, got, got.layout(), tc.want, tc.layout)
		}
	}
}

func TestTickFirst(t *testing.T) {
	at := time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC) // a Wednesday
	for _, tc := range []struct {
		step tickStep
		want time.Time
	}{
		{tickStep{days: 1}, time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)},
		{tickStep{days: 7}, time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)}, // Monday
		{tickStep{months: 1}, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		{tickStep{months: 6}, time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)},
		{tickStep{months: 12}, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{tickStep{months: 120}, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if got := tc.step.first(at); !got.Equal(tc.want) {
			t.Errorf("%+v: first tick %s, want %s", tc.step, got, tc.want)
		}
	}
	if got := (tickStep{days: 1}).first(day(0).Truncate(24 * time.Hour)); !got.Equal(day(0).Truncate(24 * time.Hour)) {
		t.Errorf("a start on a tick is not the first tick: %s", got)
	}
}

// readCSV writes r as CSV and reads it back with a strict reader.
func readCSV(t *testing.T, r *Report) [][]string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteCSV(&b, r); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return records
}

// pad is a row as WriteCSV writes it: as wide as the rotation header.
func pad(row ...string) []string {
	return slices.Concat(row, make([]string, len(rotationHeader)-len(row)))
}

func TestCSV(t *testing.T) {
	records := readCSV(t, sample())
	headers := map[string][]string{
		"rotation":    rotationHeader,
		"delivery":    deliveryHeader,
		"access":      accessHeader,
		"secret_read": secretReadHeader,
	}
	var header, order []string
	rows := map[string]int{}
	for _, rec := range records {
		if rec[0] == "section" {
			header = rec
			continue
		}
		want := headers[rec[0]]
		if !slices.Equal(header, pad(want...)) || slices.ContainsFunc(rec[len(want):], func(s string) bool { return s != "" }) {
			t.Errorf("row %q under header %q", rec, header)
		}
		if len(order) == 0 || order[len(order)-1] != rec[0] {
			order = append(order, rec[0])
		}
		rows[rec[0]]++
	}
	// 3 versions plus one row for the certificate without versions.
	want := map[string]int{"rotation": 4, "delivery": 3, "access": 3, "secret_read": 2}
	if !maps.Equal(rows, want) || len(records) != 4+12 {
		t.Errorf("rows per section %v, want %v and 4 headers; %d records", rows, want, len(records))
	}
	if !slices.Equal(order, []string{"rotation", "delivery", "access", "secret_read"}) {
		t.Errorf("sections in order %q", order)
	}
	for _, want := range [][]string{
		{"rotation", "api", "CN=CA", "CN=api.example.com", "false", "a1", "0a", "", "2025-12-11T12:00:00Z", "2025-12-11T12:00:00Z", "2026-03-11T12:00:00Z", "bob", "import", "true", "true", ""},
		{"rotation", "www", "CN=CA", "CN=www.example.com", "true", "v1", "01", "", "2025-02-04T12:00:00Z", "2025-02-04T12:00:00Z", "2026-02-19T12:00:00Z", "alice", "create", "false", "true", "2026-02-24T12:00:00Z"},
		pad("rotation", "pending", "CN=CA", "CN=pending.example.com", "false"),
		pad("delivery", "ag2", "api-1", "api", "api", "a1", "2025-12-12T12:00:00Z", "failed", `'=HYPERLINK("x")`),
		pad("access", "/certificates/www", "alice", "admin", "/", "true", "true"),
		pad("secret_read", "/secrets/db", "carol", "3", "2026-02-09T12:00:00Z", "2026-02-28T12:00:00Z"),
	} {
		if !slices.ContainsFunc(records, func(r []string) bool { return slices.Equal(r, want) }) {
			t.Errorf("no record %q", want)
		}
	}
}

func TestCSVEmpty(t *testing.T) {
	records := readCSV(t, &Report{Generated: generated})
	want := [][]string{pad(rotationHeader...), pad(deliveryHeader...), pad(accessHeader...), pad(secretReadHeader...)}
	if !slices.EqualFunc(records, want, slices.Equal) {
		t.Errorf("empty report: %q", records)
	}
}

func TestNilReport(t *testing.T) {
	if WriteHTML(&bytes.Buffer{}, nil) == nil || WriteCSV(&bytes.Buffer{}, nil) == nil {
		t.Error("a nil report is not an error")
	}
}
