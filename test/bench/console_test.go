//go:build bench

package bench

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
)

// Issue 19 (web console): the console's pages on one node holding
// 100,000 certificates, against the goal that the inventory
// answers within 200 ms.

// kindConsolePage rows count console pages answered 200 whose content
// holds what the page must show (its rows, its certificate, its timeline).
const kindConsolePage = "console-page"

// Benchmark and group names of the console group, as the table shows
// them, and what it fills the vault with.
const (
	benchUIFirst    = "ui-first"
	benchUILater    = "ui-later"
	benchUIName     = "ui-name"
	benchUITag      = "ui-tag"
	benchUIRare     = "ui-rare"
	benchUIExpiring = "ui-expiring"
	benchUICert     = "ui-cert"
	benchUITimeline = "ui-timeline"
	groupConsole    = "console"
	// consoleCerts is how many certificates the group fills the vault
	// with unless CERTVAULT_BENCH_CONSOLE_CERTS says otherwise, and the
	// count the goal is judged at.
	consoleCerts = 100_000
	// consoleFillClients create the certificates concurrently, each over
	// its own keep-alive connection.
	consoleFillClients = 256
	// consoleFillAttempts bounds the tries of one create that fails with
	// a status or error a client would retry (503, 429, transport).
	consoleFillAttempts = 5
	// consoleTeams is how many values the tag team takes (a, b, …):
	// certificate i has team number i mod consoleTeams.
	consoleTeams = 10
	// consoleRare certificates, spread evenly over the names, have
	// consoleRareWord in their subject; the others have "bench".
	consoleRare     = 20
	consoleRareWord = "quokka"
	// consoleFollows is how many times the later page follows the
	// inventory's "Next page" link from the first page.
	consoleFollows = 4
	// consoleExpiringDays is the expiring-within search; every
	// certificate the group makes (1 to 12 months) matches it.
	consoleExpiringDays = 400
	// consoleGoalMS is issue 19's goal: the inventory's p99 latency at
	// consoleCerts certificates, one client.
	consoleGoalMS = 200
	// consolePageRows mirrors vault/front/console's pageRows: the rows
	// on a page, the first that many matches after the page's start.
	consolePageRows = 50
	// consoleTimelineDays mirrors the console's timelineDays: a lane has
	// at most one mark per day (91 days, counted from today's midnight,
	// reach 90 days from now).
	consoleTimelineDays = 90
	// A row measures consoleMeasure after consoleWarmup (less when
	// CERTVAULT_BENCH_SECONDS or _WARMUP say less); a page slower than
	// consoleMeasure/consoleSamples is measured longer, for
	// consoleSamples times the first request's time, up to
	// consoleMaxMeasure.
	consoleMeasure    = 3 * time.Second
	consoleWarmup     = 500 * time.Millisecond
	consoleSamples    = 20
	consoleMaxMeasure = 20 * time.Second
)

// consoleClients are the group's client counts: one user, then a few
// browsing at once.
var consoleClients = []int{1, 4}

// isConsoleKind reports whether rows of kind belong to the console group.
func isConsoleKind(kind string) bool { return kind == kindConsolePage }

// consoleResult is what the console group measured besides its rows.
type consoleResult struct {
	Certificates int `json:"certificates"`
	// FillSeconds is how long FillClients took to create the
	// certificates through the API; FillPerSec the rate.
	FillClients int     `json:"fill_clients"`
	FillSeconds float64 `json:"fill_seconds"`
	FillPerSec  float64 `json:"fill_creates_per_sec"`
	// FilledRSSKB is the node's resident memory after the fill.
	FilledRSSKB int64 `json:"filled_rss_kb"`
	// ColdPageMS is the first inventory page after the sign-in, which
	// waits for the console's catalog of every certificate to load.
	ColdPageMS float64 `json:"cold_page_ms"`
	// Walks are the searches that match little, followed from their
	// first page to their last.
	Walks []consoleWalk `json:"search_walks"`
	Goals []consoleGoal `json:"goals"`
	// MetricsScrapeMS and MetricsBytes are one GET /metrics on the same
	// node after the rows (not part of the console; it lists every
	// certificate, and the rows do not scrape it).
	MetricsScrapeMS float64 `json:"metrics_scrape_ms"`
	MetricsBytes    int     `json:"metrics_bytes"`
}

// consoleWalk is one search followed page by page to its end, one
// request after the other.
type consoleWalk struct {
	Benchmark string `json:"benchmark"`
	Path      string `json:"path"`
	Pages     int    `json:"pages"`
	Rows      int    `json:"rows"`
	// FirstRowPage is the page (1 = the first) that showed the first
	// match, 0 when none did.
	FirstRowPage int     `json:"first_row_page"`
	Seconds      float64 `json:"seconds"`
}

// consoleGoal is issue 19's goal for one inventory page.
type consoleGoal struct {
	Description  string  `json:"description"`
	Benchmark    string  `json:"benchmark"`
	Clients      int     `json:"clients"`
	Certificates int     `json:"certificates"`
	TargetP99ms  float64 `json:"target_p99_ms"`
	// MeasuredP99ms is the row's p99; Met is absent when the row was not
	// run or the vault did not hold the goal's consoleCerts certificates.
	MeasuredP99ms *float64 `json:"measured_p99_ms,omitempty"`
	Met           *bool    `json:"met,omitempty"`
}

// consoleTimes returns the warm-up and measured time of each row of the
// console group under cfg, before a slow page stretches it.
func consoleTimes(cfg config) (warmup, measure time.Duration) {
	return min(cfg.warmup(), consoleWarmup), min(cfg.measure(), consoleMeasure)
}

// consoleCertCount reads CERTVAULT_BENCH_CONSOLE_CERTS.
func consoleCertCount(t *testing.T) int {
	v := os.Getenv("CERTVAULT_BENCH_CONSOLE_CERTS")
	if v == "" {
		return consoleCerts
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100 || n > 999_999 {
		t.Fatalf("CERTVAULT_BENCH_CONSOLE_CERTS=%q: want a count from 100 to 999999", v)
	}
	return n
}

// consoleBench is one node filled with certificates bench-000001 …
// bench-<certs> and a console session of the root token.
type consoleBench struct {
	*apiBench
	certs int
	base  string
	// jar holds the session cookie; every client shares it, as tabs of
	// one browser do.
	jar http.CookieJar
}

// The certificates: certificate i (1-based) is named consoleName(i); its
// subject is CN=<name>.bench.example, or CN=<name>.quokka.example for the
// rare ones; it is tagged team=<letter i mod consoleTeams> and valid for 1
// + i mod 12 months, so that expiries spread over the year and the
// timeline has something to draw.

func consoleName(i int) string { return fmt.Sprintf("bench-%06d", i) }

func consoleTeam(i int) string { return string(rune('a' + i%consoleTeams)) }

func consoleMonths(i int) int { return 1 + i%12 }

func (cb *consoleBench) rare(i int) bool {
	step := cb.certs / consoleRare
	return i%step == step/2
}

func (cb *consoleBench) subject(i int) string {
	word := "bench"
	if cb.rare(i) {
		word = consoleRareWord
	}
	return "CN=" + consoleName(i) + "." + word + ".example"
}

// nameQuery is the name search: a prefix of names that matches the 100
// certificates (of 100,000: bench-099900 … bench-099999) near the end
// of the name order.
func (cb *consoleBench) nameQuery() string {
	n := consoleName(cb.certs * 999 / 1000)
	return n[:len(n)-2]
}

// fill creates the certificates through the API with consoleFillClients
// clients and returns how long it took.
func (cb *consoleBench) fill() (time.Duration, error) {
	hc := cb.httpClient(consoleFillClients)
	defer hc.CloseIdleConnections()
	base := cb.base + "/certificates/"
	var next atomic.Int64
	errs := make([]error, consoleFillClients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range consoleFillClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > cb.certs {
					return
				}
				p := issuancePolicy(cb.subject(i))
				p.X509Properties.ValidityInMonths = consoleMonths(i)
				body := keyvault.CreateCertificateRequest{Policy: p, Tags: map[string]string{"team": consoleTeam(i)}}
				class := ""
				for try := 1; try <= consoleFillAttempts; try++ {
					if class = cb.createCertificate(hc, base, consoleName(i), body); class == "" {
						break
					}
					if class != "503" && class != "429" && class != "transport" && class != "timeout" {
						break
					}
					time.Sleep(time.Duration(try) * 100 * time.Millisecond)
				}
				if class != "" {
					errs[c] = fmt.Errorf("create %s: %s", consoleName(i), class)
					next.Store(int64(cb.certs)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// client returns an HTTP client for clients callers carrying the
// session's cookie and not following redirects, so that a request
// without a valid session answers 303 (to the sign-in page) and counts
// as an error.
func (cb *consoleBench) client(clients int) *http.Client {
	hc := cb.httpClient(clients)
	hc.Jar = cb.jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return hc
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in with the root token as a browser does: the sign-in
// page gives a cv_login cookie and the same value in the form, the form
// is posted from the console's origin, and the answer sets cv_session.
func (cb *consoleBench) signIn() error {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	cb.jar = jar
	hc := cb.client(1)
	defer hc.CloseIdleConnections()
	var b bytes.Buffer
	req, err := http.NewRequest(http.MethodGet, cb.base+"/ui/login", nil)
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	if class := roundTrip(hc, req, &b); class != "" {
		return fmt.Errorf("sign in: GET /ui/login: %s", class)
	}
	m := csrfField.FindSubmatch(b.Bytes())
	if m == nil {
		return fmt.Errorf("sign in: no csrf field in the sign-in page: %.300s", b.String())
	}
	form := url.Values{"token": {cb.cluster.Token}, "csrf": {html.UnescapeString(string(m[1]))}}
	req, err = http.NewRequest(http.MethodPost, cb.base+"/ui/login", strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", cb.base)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/certificates" {
		return fmt.Errorf("sign in: status %d to %q, want 303 to /ui/certificates", resp.StatusCode, resp.Header.Get("Location"))
	}
	u, err := url.Parse(cb.base + "/ui/")
	if err != nil {
		return fmt.Errorf("sign in: %w", err)
	}
	for _, c := range jar.Cookies(u) {
		if c.Name == "cv_session" && c.Value != "" {
			return nil
		}
	}
	return errors.New("sign in: no cv_session cookie")
}

// get reads path with hc into b and returns "" when it is answered 200
// and check accepts the body, else an error class.
func (cb *consoleBench) get(hc *http.Client, path string, b *bytes.Buffer, check func([]byte) string) string {
	req, err := http.NewRequest(http.MethodGet, cb.base+path, nil)
	if err != nil {
		return "request"
	}
	if class := roundTrip(hc, req, b); class != "" {
		return class
	}
	return check(b.Bytes())
}

// pageLoad returns a load of clients callers, each reading path over its
// own keep-alive HTTPS connection with the session; a page counts only
// when check accepts it.
func (cb *consoleBench) pageLoad(clients int, path string, check func([]byte) string, warmup, measure time.Duration) load {
	hc := cb.client(clients)
	bufs := make([]bytes.Buffer, clients) // caller i touches only bufs[i]
	get := func(i int) string { return cb.get(hc, path, &bufs[i], check) }
	l := cb.newLoad(hc, clients, get, warmup, measure)
	// No counters: a scrape of /metrics lists every certificate (its
	// expiry and renewal gauges), which at 100,000 costs the node more
	// than most pages and would fall in the measured window.
	l.counters = nil
	return l
}

// scrapeMetrics reads /metrics once and returns how long it took and
// how many bytes it had.
func (cb *consoleBench) scrapeMetrics() (time.Duration, int, error) {
	hc := cb.httpClient(1)
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, cb.base+"/metrics", nil)
	if err != nil {
		return 0, 0, fmt.Errorf("scrape /metrics: %w", err)
	}
	var b bytes.Buffer
	t0 := time.Now()
	if class := roundTrip(hc, req, &b); class != "" {
		return 0, 0, fmt.Errorf("scrape /metrics: %s", class)
	}
	took := time.Since(t0)
	// Every certificate counts in the total (the per-certificate series
	// stop at --metrics-certificates).
	if want := fmt.Sprintf("\ncertvault_certificates %d\n", cb.certs); !bytes.Contains(b.Bytes(), []byte(want)) {
		return 0, 0, fmt.Errorf("scrape /metrics: no %q in %d bytes", strings.TrimSpace(want), b.Len())
	}
	return took, b.Len(), nil
}

var (
	inventoryRow   = regexp.MustCompile(`<th scope="row"><a href="/ui/certificates/([^"]+)">`)
	inventoryCount = regexp.MustCompile(`id="result-count">(\d+) shown`)
	inventoryNext  = regexp.MustCompile(`<a id="next-page" href="([^"]+)">`)
	timelineTotal  = regexp.MustCompile(`by issuer: (\d+) certificates</title>`)
)

// afterIndex is the index of the certificate named by path's after
// parameter, 0 when it has none.
func afterIndex(path string) (int, error) {
	u, err := url.Parse(path)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	after := u.Query().Get("after")
	if after == "" {
		return 0, nil
	}
	var i int
	if _, err := fmt.Sscanf(after, "bench-%d", &i); err != nil {
		return 0, fmt.Errorf("%s: after=%q is not a certificate of the group", path, after)
	}
	return i, nil
}

// inventoryCheck returns the check of an inventory page that starts
// after certificate after, of a search matching the certificates match
// accepts: its rows are the first consolePageRows matching certificates
// after that one, in name order, and the count it shows agrees.
func (cb *consoleBench) inventoryCheck(after int, match func(int) bool) func([]byte) string {
	want := 0
	for i := after + 1; i <= cb.certs && want < consolePageRows; i++ {
		if match(i) {
			want++
		}
	}
	return func(body []byte) string {
		rows := inventoryRow.FindAllSubmatch(body, -1)
		if len(rows) != want {
			return "rows"
		}
		if m := inventoryCount.FindSubmatch(body); m == nil || string(m[1]) != strconv.Itoa(len(rows)) {
			return "count"
		}
		prev := after
		for _, r := range rows {
			var i int
			if _, err := fmt.Sscanf(string(r[1]), "bench-%d", &i); err != nil || i <= prev || !match(i) {
				return "row"
			}
			prev = i
		}
		return ""
	}
}

// walk follows an inventory search's "Next page" links from path to its
// end, one request after the other, checking every page.
func (cb *consoleBench) walk(bench, path string, match func(int) bool) (consoleWalk, error) {
	hc := cb.client(1)
	defer hc.CloseIdleConnections()
	w := consoleWalk{Benchmark: bench, Path: path}
	var b bytes.Buffer
	start := time.Now()
	for p := path; p != ""; {
		after, err := afterIndex(p)
		if err != nil {
			return w, err
		}
		if class := cb.get(hc, p, &b, cb.inventoryCheck(after, match)); class != "" {
			return w, fmt.Errorf("%s page %d (%s): %s, answer %.300s", bench, w.Pages+1, p, class, b.String())
		}
		w.Pages++
		n := len(inventoryRow.FindAllIndex(b.Bytes(), -1))
		if n > 0 && w.FirstRowPage == 0 {
			w.FirstRowPage = w.Pages
		}
		w.Rows += n
		p = ""
		if m := inventoryNext.FindSubmatch(b.Bytes()); m != nil {
			p = html.UnescapeString(string(m[1]))
		}
	}
	w.Seconds = time.Since(start).Seconds()
	return w, nil
}

// laterPage follows the first page's "Next page" link consoleFollows
// times and returns the path it reaches.
func (cb *consoleBench) laterPage() (string, error) {
	hc := cb.client(1)
	defer hc.CloseIdleConnections()
	var b bytes.Buffer
	all := func(int) bool { return true }
	p := "/ui/certificates"
	for range consoleFollows {
		after, err := afterIndex(p)
		if err != nil {
			return "", err
		}
		if class := cb.get(hc, p, &b, cb.inventoryCheck(after, all)); class != "" {
			return "", fmt.Errorf("%s: %s, answer %.300s", p, class, b.String())
		}
		m := inventoryNext.FindSubmatch(b.Bytes())
		if m == nil {
			return "", fmt.Errorf("%s: no next page", p)
		}
		p = html.UnescapeString(string(m[1]))
	}
	return p, nil
}

// certCheck checks certificate i's page: its subject and one current
// version.
func (cb *consoleBench) certCheck(i int) func([]byte) string {
	subject := []byte(`<dd id="subject">` + cb.subject(i) + `</dd>`)
	current := []byte(`<span class="badge">current</span>`)
	return func(body []byte) string {
		if !bytes.Contains(body, subject) {
			return "subject"
		}
		if bytes.Count(body, current) != 1 {
			return "versions"
		}
		return ""
	}
}

// timelineCheck checks the timeline's total: every certificate of 1 or
// 2 months is in its 90 days, those of 3 months may be (at most 92
// days); and its marks: one per lane and day at most, at least one.
func (cb *consoleBench) timelineCheck() func([]byte) string {
	lo, hi := 0, 0
	for i := 1; i <= cb.certs; i++ {
		switch m := consoleMonths(i); {
		case m <= 2:
			lo++
			hi++
		case m == 3:
			hi++
		}
	}
	return func(body []byte) string {
		m := timelineTotal.FindSubmatch(body)
		if m == nil {
			return "timeline"
		}
		n, err := strconv.Atoi(string(m[1]))
		if err != nil || n < lo || n > hi {
			return "total"
		}
		lanes := bytes.Count(body, []byte(`<text x="4" `))
		if marks := bytes.Count(body, []byte("<circle ")); marks < min(n, 1) || marks > lanes*(consoleTimelineDays+1) {
			return "marks"
		}
		return ""
	}
}

// consoleView is a page the group measures and the check its answers
// must pass.
type consoleView struct {
	bench, path string
	check       func([]byte) string
	// inventory views are judged against the goal.
	inventory bool
}

// views returns the pages the group measures; later is the path of the
// later inventory page.
func (cb *consoleBench) views(later string) ([]consoleView, error) {
	laterAfter, err := afterIndex(later)
	if err != nil {
		return nil, err
	}
	all := func(int) bool { return true }
	q := cb.nameQuery()
	byName := func(i int) bool { return strings.Contains(consoleName(i), q) }
	team := func(i int) bool { return consoleTeam(i) == "c" }
	mid := cb.certs / 2
	return []consoleView{
		{benchUIFirst, "/ui/certificates", cb.inventoryCheck(0, all), true},
		{benchUILater, later, cb.inventoryCheck(laterAfter, all), true},
		{benchUIName, "/ui/certificates?q=" + url.QueryEscape(q), cb.inventoryCheck(0, byName), true},
		{benchUITag, "/ui/certificates?tag=" + url.QueryEscape("team=c"), cb.inventoryCheck(0, team), true},
		{benchUIRare, "/ui/certificates?q=" + consoleRareWord, cb.inventoryCheck(0, cb.rare), true},
		{benchUIExpiring, "/ui/certificates?expiring=" + strconv.Itoa(consoleExpiringDays), cb.inventoryCheck(0, all), true},
		{benchUICert, "/ui/certificates/" + consoleName(mid), cb.certCheck(mid), false},
		{benchUITimeline, "/ui/timeline", cb.timelineCheck(), false},
	}, nil
}

// runConsole runs the console group: one node filled with the
// certificates, a session of the root token, then each page at each of
// consoleClients, then the searches that match little walked to their
// end. It returns the fill's figures, the walks and the goals.
func runConsole(t *testing.T, cfg config, add func(*testing.T, result)) *consoleResult {
	cb := &consoleBench{apiBench: newAPIBench(t, 1), certs: consoleCertCount(t)}
	cb.base = cb.cluster.Nodes[0].URL()
	took, err := cb.fill()
	if err != nil {
		t.Fatalf("fill the vault: %v", err)
	}
	res := &consoleResult{Certificates: cb.certs, FillClients: consoleFillClients, FillSeconds: took.Seconds(),
		FillPerSec: float64(cb.certs) / took.Seconds()}
	res.FilledRSSKB = procKB(cb.cluster.Nodes[0].PID(), "VmRSS")
	t.Logf("console: filled %d certificates in %.1f s (%.0f creates/s, %d clients); the node's resident memory is %d MB",
		cb.certs, res.FillSeconds, res.FillPerSec, consoleFillClients, res.FilledRSSKB>>10)
	if err := cb.signIn(); err != nil {
		t.Fatal(err)
	}
	// The first inventory page waits for the console's catalog of the
	// certificates, which the sign-in page began to load: the figure is
	// the wait of someone who signs in at once after a restart.
	hc := cb.client(1)
	var first bytes.Buffer
	t0 := time.Now()
	if class := cb.get(hc, "/ui/certificates", &first, cb.inventoryCheck(0, func(int) bool { return true })); class != "" {
		t.Fatalf("the first inventory page: %s, answer %.500s", class, first.String())
	}
	res.ColdPageMS = ms(time.Since(t0))
	hc.CloseIdleConnections()
	t.Logf("console: the first inventory page after the sign-in (the catalog's load) took %.0f ms", res.ColdPageMS)
	later, err := cb.laterPage()
	if err != nil {
		t.Fatalf("the later inventory page: %v", err)
	}
	views, err := cb.views(later)
	if err != nil {
		t.Fatal(err)
	}
	warmup, base := consoleTimes(cfg)
	var rows []result
	for _, v := range views {
		// One request first: a broken page stops the group here, and a
		// slow one is measured for longer.
		hc := cb.client(1)
		var b bytes.Buffer
		t0 := time.Now()
		class := cb.get(hc, v.path, &b, v.check)
		first := time.Since(t0)
		hc.CloseIdleConnections()
		if class != "" {
			t.Fatalf("%s: GET %s: %s, answer %.500s", v.bench, v.path, class, b.String())
		}
		measure := min(max(base, consoleSamples*first), max(base, consoleMaxMeasure))
		t.Logf("%s: GET %s: first answer in %.1f ms, %d bytes; %.1f s per row", v.bench, v.path, ms(first), b.Len(), measure.Seconds())
		for _, n := range consoleClients {
			st, err := cb.pageLoad(n, v.path, v.check, warmup, measure).run()
			if err != nil {
				t.Fatal(err)
			}
			r := result{Benchmark: v.bench, Kind: kindConsolePage, Nodes: 1, Clients: n, Target: "the single node: GET " + v.path, runStats: st}
			add(t, r)
			rows = append(rows, r)
		}
	}
	// The searches that match little, to their last page.
	for _, v := range views {
		if v.bench != benchUIName && v.bench != benchUIRare {
			continue
		}
		match := cb.rare
		if v.bench == benchUIName {
			q := cb.nameQuery()
			match = func(i int) bool { return strings.Contains(consoleName(i), q) }
		}
		w, err := cb.walk(v.bench, v.path, match)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for i := 1; i <= cb.certs; i++ {
			if match(i) {
				want++
			}
		}
		if w.Rows != want {
			t.Errorf("%s walked to its end: %d rows, want %d", v.bench, w.Rows, want)
		}
		t.Logf("%s walked: %d pages, %d rows, first on page %d, %.2f s", v.bench, w.Pages, w.Rows, w.FirstRowPage, w.Seconds)
		res.Walks = append(res.Walks, w)
	}
	took, size, err := cb.scrapeMetrics()
	if err != nil {
		t.Fatal(err)
	}
	res.MetricsScrapeMS, res.MetricsBytes = ms(took), size
	t.Logf("GET /metrics: %.0f ms, %d bytes", res.MetricsScrapeMS, size)
	res.Goals = consoleGoals(views, rows, cb.certs)
	return res
}

// consoleGoals judges each inventory page's one-client p99 against the
// goal, when the vault held consoleCerts certificates.
func consoleGoals(views []consoleView, rows []result, certs int) []consoleGoal {
	var goals []consoleGoal
	for _, v := range views {
		if !v.inventory {
			continue
		}
		g := consoleGoal{Description: fmt.Sprintf("issue 19: the inventory answers within %d ms (p99, one client) with %s certificates", consoleGoalMS, fmtFigure(consoleCerts)),
			Benchmark: v.bench, Clients: 1, Certificates: certs, TargetP99ms: consoleGoalMS}
		for _, r := range rows {
			if r.Benchmark == v.bench && r.Clients == 1 {
				p := r.P99ms
				g.MeasuredP99ms = &p
				if certs == consoleCerts {
					met := p <= consoleGoalMS
					g.Met = &met
				}
			}
		}
		goals = append(goals, g)
	}
	return goals
}

// consoleTable renders the console group's rows, the walks and the goal.
func (r *report) consoleTable(b *strings.Builder) {
	rows := rowsOfKind(r.Results, isConsoleKind)
	if len(rows) == 0 || r.Console == nil {
		return
	}
	c := r.Console
	warmup, measure := consoleTimes(r.Config)
	const row = "%-11s %7s %6s %8s %8s %8s %8s %7s %10s %10s %10s %10s\n"
	fmt.Fprintf(b, "\nconsole: pages of the web console on one node holding %s certificates, %.1f s per row (slow pages longer, s) after %.1f s warm-up\n",
		fmtFigure(float64(c.Certificates)), measure.Seconds(), warmup.Seconds())
	fmt.Fprintf(b, row, "benchmark", "clients", "s", "pages/s", "p50 ms", "p99 ms", "max ms", "errors", "vault CPU%", "bench CPU%", "other CPU%", "CPU µs/op")
	for _, res := range rows {
		fmt.Fprintf(b, row, res.Benchmark, fmt.Sprint(res.Clients), fmt.Sprintf("%.1f", res.Seconds), fmt.Sprintf("%.1f", res.WritesPerSec),
			fmt.Sprintf("%.1f", res.P50ms), fmt.Sprintf("%.1f", res.P99ms), fmt.Sprintf("%.1f", res.Maxms), fmt.Sprint(res.Errors),
			fmt.Sprintf("%.0f", res.ServerCPUPct), fmt.Sprintf("%.0f", res.BenchCPUPct), fmt.Sprintf("%.0f", res.OtherCPUPct), cpuPerOp(res))
	}
	b.WriteString("\n")
	seen := map[string]bool{}
	for _, res := range rows {
		if !seen[res.Benchmark] {
			seen[res.Benchmark] = true
			fmt.Fprintf(b, "%s: %s\n", res.Benchmark, strings.TrimPrefix(res.Target, "the single node: "))
		}
	}
	fmt.Fprintf(b, "Filled by %d clients through POST /certificates/{name}/create (EC P-256, issuer Self, 1 to 12 months, tag team=a..j,\n", c.FillClients)
	fmt.Fprintf(b, "     %d with %q in the subject): %s certificates in %.1f s, %s creates/s. Signed in with the root token; all\n",
		consoleRare, consoleRareWord, fmtFigure(float64(c.Certificates)), c.FillSeconds, fmtFigure(c.FillPerSec))
	b.WriteString("     clients share the session, one keep-alive HTTP/1.1 connection each. A page counts only when answered 200 with\n")
	b.WriteString("     the rows (names, order, count), the certificate or the timeline total it must show.\n")
	b.WriteString("CPU µs/op: CPU time of the certvaultd process per page. The rows do not scrape /metrics (the other groups do):\n")
	fmt.Fprintf(b, "     one GET /metrics afterwards took %.0f ms for %s bytes.\n\n", c.MetricsScrapeMS, fmtFigure(float64(c.MetricsBytes)))
	fmt.Fprintf(b, "The first inventory page, at once after the sign-in (it waits for the console's catalog of every certificate,\n")
	fmt.Fprintf(b, "     which the sign-in page began to load), took %.0f ms.\n", c.ColdPageMS)
	for _, w := range c.Walks {
		fmt.Fprintf(b, "%s to its end, one page after the other: %d pages, %d rows, the first on page %d, %.2f s\n", w.Benchmark, w.Pages, w.Rows, w.FirstRowPage, w.Seconds)
	}
	for _, g := range c.Goals {
		fmt.Fprintf(b, "goal: p99 <= %.0f ms, %s, 1 node, %d client, %s certificates: ", g.TargetP99ms, g.Benchmark, g.Clients, fmtFigure(float64(g.Certificates)))
		switch {
		case g.MeasuredP99ms == nil:
			b.WriteString("not run\n")
		case g.Met == nil:
			fmt.Fprintf(b, "measured %.1f ms: not judged (the goal is at %s certificates)\n", *g.MeasuredP99ms, fmtFigure(consoleCerts))
		case *g.Met:
			fmt.Fprintf(b, "measured %.1f ms: met\n", *g.MeasuredP99ms)
		default:
			fmt.Fprintf(b, "measured %.1f ms: NOT met\n", *g.MeasuredP99ms)
		}
	}
}
