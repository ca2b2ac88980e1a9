package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"mime"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/report"
	"github.com/certvault/certvault/test/testcluster"
)

// auditPages is a console client whose every page is checked for secret
// values that must never be rendered.
type auditPages struct {
	*consoleClient
	secrets []string
}

// get fetches path, fails the test when a secret value is in the answer,
// and returns the status, body and headers.
func (p *auditPages) get(path string) (int, string, http.Header) {
	p.t.Helper()
	status, _, body, h := p.do(http.MethodGet, path, nil, "")
	for _, v := range p.secrets {
		if strings.Contains(body, v) {
			p.t.Errorf("GET %s renders a secret value", path)
		}
	}
	return status, body, h
}

// randomValue is a secret value no page could show by chance.
func randomValue(t *testing.T, prefix string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	v := prefix + "-" + hex.EncodeToString(b)
	testcluster.KnownSecret(v)
	return v
}

// rowOf returns the inventory row of name ("" when the page has none).
func rowOf(body, name string) string {
	m := regexp.MustCompile(`(?s)<tr data-name="` + regexp.QuoteMeta(name) + `">(.*?)</tr>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// nextLink returns the page's link with the given id, unescaped.
func nextLink(body, id string) string {
	m := regexp.MustCompile(`id="` + id + `" href="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// TestConsoleSecrets (issue 19): the secrets and keys inventories show
// what a scoped principal may see with the API's listing actions
// (secrets/readMetadata, keys/read), with content or key type, tags,
// expiry and state, search by name, tag and expiry, page through a long
// list, link a certificate's managed secret and key to its page, and
// never render a secret's value.
func TestConsoleSecrets(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	root := c.Client(n)
	ctx := context.Background()
	dir := t.TempDir()
	for _, name := range []string{"web-shop", "payroll"} {
		pol := filepath.Join(dir, name+".json")
		mustCLI(t, c, "cert", "policy", "new", "--subject", "CN="+name+".example.com", "--issuer", "Self", "--out", pol)
		mustCLI(t, c, "cert", "create", name, "--policy", pol, "--wait")
	}
	webValue, otherValue, bulkValue := randomValue(t, "web-db-value"), randomValue(t, "other-db-value"), randomValue(t, "bulk-value")
	exp := time.Now().Add(10 * 24 * time.Hour).Unix()
	if err := root.Do(ctx, http.MethodPut, "/secrets/web-db", map[string]any{"value": webValue, "contentType": "text/plain",
		"tags": map[string]string{"team": "web"}, "attributes": map[string]any{"exp": exp}}, nil); err != nil {
		t.Fatalf("set web-db: %v", err)
	}
	if err := root.Do(ctx, http.MethodPut, "/secrets/other-db", map[string]any{"value": otherValue}, nil); err != nil {
		t.Fatalf("set other-db: %v", err)
	}
	for i := range 55 {
		if err := root.Do(ctx, http.MethodPut, fmt.Sprintf("/secrets/bulk-%02d", i), map[string]any{"value": bulkValue}, nil); err != nil {
			t.Fatalf("set bulk-%02d: %v", i, err)
		}
	}
	mustCLI(t, c, "key", "create", "web-signer", "--kty", "EC", "--curve", "P-256", "--tag", "team=web")
	mustCLI(t, c, "key", "create", "web-rsa", "--kty", "RSA", "--key-size", "2048")
	mustCLI(t, c, "key", "create", "hr-signer", "--kty", "EC", "--curve", "P-384")
	web, _ := createToken(t, c, "--name", "web-team", "--ttl", "1h", "--role", "Certificates Officer", "--scope", "/certificates/web-*")
	mustCLI(t, c, "role", "assign", "Secrets User", "--to", "web-team", "--scope", "/secrets/web-*")
	mustCLI(t, c, "role", "assign", "Crypto User", "--to", "web-team", "--scope", "/keys/web-*")
	secrets := []string{webValue, otherValue, bulkValue}

	wc := &auditPages{consoleClient: newConsoleClient(t, c, n), secrets: secrets}
	wc.signIn(web)
	status, body, _ := wc.get("/ui/secrets")
	if status != http.StatusOK || !strings.Contains(body, `id="secrets-inventory"`) {
		t.Fatalf("web-team's secrets: %d, want 200 with the inventory:\n%s", status, body)
	}
	row := rowOf(body, "web-db")
	for _, want := range []string{"text/plain", "team=web", "enabled", time.Unix(exp, 0).UTC().Format("2006-01-02"), `class="badge soon"`} {
		if !strings.Contains(row, want) {
			t.Errorf("web-db's row lacks %q: %s", want, row)
		}
	}
	if row := rowOf(body, "web-shop"); !strings.Contains(row, `href="/ui/certificates/web-shop"`) {
		t.Errorf("the managed secret web-shop does not link to its certificate: %q", row)
	}
	for _, hidden := range []string{"other-db", "payroll", "bulk-00"} {
		if rowOf(body, hidden) != "" {
			t.Errorf("web-team's secrets show %s, which it may not see", hidden)
		}
	}
	for _, tc := range []struct{ query, want, not string }{
		{"q=DB", "web-db", "web-shop"},
		{"tag=team%3Dweb", "web-db", "web-shop"},
		{"expiring=30", "web-db", "web-shop"},
	} {
		status, body, _ := wc.get("/ui/secrets?" + tc.query)
		if status != http.StatusOK || rowOf(body, tc.want) == "" || rowOf(body, tc.not) != "" {
			t.Errorf("secrets?%s: %d, want %s and not %s", tc.query, status, tc.want, tc.not)
		}
	}
	if status, _, _ := wc.get("/ui/secrets?expiring=soon"); status != http.StatusBadRequest {
		t.Errorf("secrets?expiring=soon: %d, want 400", status)
	}

	status, body, _ = wc.get("/ui/keys")
	if status != http.StatusOK || !strings.Contains(body, `id="keys-inventory"`) {
		t.Fatalf("web-team's keys: %d, want 200 with the inventory:\n%s", status, body)
	}
	for name, want := range map[string]string{"web-signer": "EC P-256", "web-rsa": "RSA 2048", "web-shop": `href="/ui/certificates/web-shop"`} {
		if row := rowOf(body, name); !strings.Contains(row, want) {
			t.Errorf("key %s's row lacks %q: %q", name, want, row)
		}
	}
	if !strings.Contains(rowOf(body, "web-signer"), "team=web") {
		t.Errorf("web-signer's row lacks its tag")
	}
	for _, hidden := range []string{"hr-signer", "payroll"} {
		if rowOf(body, hidden) != "" {
			t.Errorf("web-team's keys show %s, which it may not see", hidden)
		}
	}
	if status, body, _ := wc.get("/ui/keys?tag=team%3Dweb"); status != http.StatusOK || rowOf(body, "web-signer") == "" || rowOf(body, "web-rsa") != "" {
		t.Errorf("keys?tag=team=web: %d, want web-signer only", status)
	}

	// Root sees every secret, 50 to a page.
	rc := &auditPages{consoleClient: newConsoleClient(t, c, n), secrets: secrets}
	rc.signIn(c.Token)
	status, body, _ = rc.get("/ui/secrets")
	next := nextLink(body, "next-page")
	if status != http.StatusOK || rowOf(body, "bulk-00") == "" || rowOf(body, "bulk-49") == "" || rowOf(body, "bulk-50") != "" || next == "" {
		t.Fatalf("root's first page of secrets: %d, want bulk-00 to bulk-49 and a next page (next %q)", status, next)
	}
	status, body, _ = rc.get(next)
	for _, want := range []string{"bulk-50", "bulk-54", "other-db", "payroll", "web-db", "web-shop"} {
		if rowOf(body, want) == "" {
			t.Errorf("root's second page of secrets (%d) lacks %s", status, want)
		}
	}
	if rowOf(body, "bulk-00") != "" || nextLink(body, "next-page") != "" {
		t.Errorf("root's second page of secrets repeats the first or has a third")
	}
	if row := rowOf(body, "payroll"); !strings.Contains(row, `href="/ui/certificates/payroll"`) {
		t.Errorf("root's row of the managed secret payroll does not link to its certificate: %q", row)
	}
	if status, body, _ := rc.get("/ui/keys"); status != http.StatusOK || rowOf(body, "hr-signer") == "" || !strings.Contains(rowOf(body, "hr-signer"), "EC P-384") {
		t.Errorf("root's keys: %d, want hr-signer, EC P-384", status)
	}
}

// auditCells returns the given cell class of every row of the audit
// table.
func auditCells(body, class string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?s)<td class="`+class+`">(.*?)</td>`).FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestConsoleAudit (issue 19): the audit page lists the records of every
// node's trail (a request a principal made on one node shows on the
// other), filters them by principal, object prefix, outcome and time,
// pages through them newest first, and is refused (403) to a principal
// without audit/read; the evidence report downloads for a period as
// HTML, JSON or CSV with its Content-Type and an attachment file name,
// the period bounding its history; no page renders a secret value.
func TestConsoleAudit(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 2, testcluster.Options{})
	n1, n2 := c.Nodes[0], c.Nodes[1]
	dir := t.TempDir()
	for _, name := range []string{"web-shop", "payroll"} {
		pol := filepath.Join(dir, name+".json")
		mustCLI(t, c, "cert", "policy", "new", "--subject", "CN="+name+".example.com", "--issuer", "Self", "--out", pol)
		mustCLI(t, c, "cert", "create", name, "--policy", pol, "--wait")
	}
	value := randomValue(t, "db-password")
	ctx := context.Background()
	if err := c.Client(n1).Do(ctx, http.MethodPut, "/secrets/db", map[string]any{"value": value}, nil); err != nil {
		t.Fatalf("set db: %v", err)
	}
	// A secret read, for the report's section (c).
	if err := c.Client(n1).Do(ctx, http.MethodGet, "/secrets/db", nil, nil); err != nil {
		t.Fatalf("get db: %v", err)
	}
	web, _ := createToken(t, c, "--name", "web-team", "--ttl", "1h", "--role", "Certificates Officer", "--scope", "/certificates/web-*")
	auditor, _ := createToken(t, c, "--name", "auditor", "--ttl", "1h", "--role", "Reader", "--scope", "/")
	secrets := []string{value}

	// web-team, on node 2, is refused payroll and the auditor's pages.
	wc := &auditPages{consoleClient: newConsoleClient(t, c, n2), secrets: secrets}
	wc.signIn(web)
	if status, _, _ := wc.get("/ui/certificates/payroll"); status != http.StatusForbidden {
		t.Errorf("payroll for web-team: %d, want 403", status)
	}
	for _, path := range []string{"/ui/audit", "/ui/report", "/ui/report/download?format=json"} {
		if status, body, _ := wc.get(path); status != http.StatusForbidden || !strings.Contains(body, "audit/read") {
			t.Errorf("%s for web-team (no audit/read): %d, want 403 naming audit/read", path, status)
		}
	}

	// The auditor, on node 1, sees web-team's denied read of payroll.
	ac := &auditPages{consoleClient: newConsoleClient(t, c, n1), secrets: secrets}
	ac.signIn(auditor)
	var body string
	waitUntil(t, 60*time.Second, "the audit page filtered by web-team to show its denied read of payroll", func() (bool, string) {
		var status int
		status, body, _ = ac.get("/ui/audit?principal=web-team")
		return status == http.StatusOK && strings.Contains(body, "/certificates/payroll"), fmt.Sprintf("%d:\n%s", status, body)
	})
	if !strings.Contains(body, `id="audit-table"`) || !strings.Contains(body, `id="audit-filter"`) {
		t.Errorf("the audit page lacks audit-table or audit-filter")
	}
	principals := auditCells(body, "principal")
	for _, p := range principals {
		if !strings.Contains(p, ">web-team</a>") {
			t.Errorf("the audit page filtered by web-team shows a record of %q", p)
		}
	}
	if len(principals) < 2 {
		t.Errorf("the audit page filtered by web-team shows %d records, want its sign-in and its pages", len(principals))
	}
	if !strings.Contains(body, n2.ID) {
		t.Errorf("web-team's records do not name node %s, which served them", n2.ID)
	}
	_, body, _ = ac.get("/ui/audit?principal=web-team&outcome=denied&object=%2Fcertificates%2F")
	outcomes := auditCells(body, "outcome")
	if len(outcomes) == 0 {
		t.Errorf("no denied record of web-team under /certificates/")
	}
	for _, o := range outcomes {
		if o != "denied" {
			t.Errorf("filter outcome=denied shows a record with outcome %q", o)
		}
	}
	for _, o := range auditCells(body, "object") {
		if !strings.Contains(o, ">/certificates/") {
			t.Errorf("filter object=/certificates/ shows object %q", o)
		}
	}

	// Newest first, a page at a time.
	_, body, _ = ac.get("/ui/audit?principal=web-team&limit=1")
	older := nextLink(body, "audit-older")
	first := regexp.MustCompile(`<time datetime="([^"]+)"`).FindStringSubmatch(body)
	if len(auditCells(body, "principal")) != 1 || older == "" || first == nil {
		t.Fatalf("limit=1: %d rows, older link %q, want one row and a link to older records", len(auditCells(body, "principal")), older)
	}
	_, body, _ = ac.get(older)
	second := regexp.MustCompile(`<time datetime="([^"]+)"`).FindStringSubmatch(body)
	if len(auditCells(body, "principal")) != 1 || second == nil {
		t.Fatalf("the older page of limit=1: want one row:\n%s", body)
	}
	t1, err1 := time.Parse(time.RFC3339Nano, first[1])
	t2, err2 := time.Parse(time.RFC3339Nano, second[1])
	if err1 != nil || err2 != nil || t2.After(t1) {
		t.Errorf("the older page's record (%s) is not older than the first page's (%s): %v %v", second[1], first[1], err1, err2)
	}

	// Time bounds.
	future := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04")
	if _, body, _ := ac.get("/ui/audit?since=" + future); len(auditCells(body, "principal")) != 0 || !strings.Contains(body, "No record matches") {
		t.Errorf("since=%s shows records", future)
	}
	if _, body, _ := ac.get("/ui/audit?until=2000-01-01"); len(auditCells(body, "principal")) != 0 {
		t.Errorf("until=2000-01-01 shows records")
	}
	if _, body, _ := ac.get("/ui/audit?since=1h&principal=web-team"); !strings.Contains(body, "/certificates/payroll") {
		t.Errorf("since=1h does not show web-team's recent records")
	}
	for _, bad := range []string{"since=yesterday", "outcome=maybe", "limit=0", "before=nonsense"} {
		if status, _, _ := ac.get("/ui/audit?" + bad); status != http.StatusBadRequest {
			t.Errorf("audit?%s: %d, want 400", bad, status)
		}
	}

	// The evidence report, for a period, as a download.
	status, body, _ := ac.get("/ui/report")
	if status != http.StatusOK || !strings.Contains(body, `id="report-form"`) || !strings.Contains(body, `id="report-from"`) {
		t.Fatalf("the report form: %d\n%s", status, body)
	}
	today := time.Now().UTC()
	from, to := today.AddDate(0, 0, -1).Format("2006-01-02"), today.Format("2006-01-02")
	for _, tc := range []struct{ format, contentType, ext, contains string }{
		{"html", "text/html; charset=utf-8", "html", "certvault evidence report"},
		{"json", "application/json", "json", `"certificates"`},
		{"csv", "text/csv; charset=utf-8", "csv", "section,certificate"},
	} {
		status, body, h := ac.get("/ui/report/download?from=" + from + "&to=" + to + "&format=" + tc.format)
		if status != http.StatusOK || h.Get("Content-Type") != tc.contentType || !strings.Contains(body, tc.contains) {
			t.Errorf("report as %s: %d, Content-Type %q, want 200, %q and %q in it", tc.format, status, h.Get("Content-Type"), tc.contentType, tc.contains)
		}
		disp, params, err := mime.ParseMediaType(h.Get("Content-Disposition"))
		if want := "certvault-evidence-" + from + "-to-" + to + "." + tc.ext; err != nil || disp != "attachment" || params["filename"] != want {
			t.Errorf("report as %s: Content-Disposition %q (%v), want attachment; filename=%q", tc.format, h.Get("Content-Disposition"), err, want)
		}
		if tc.format != "json" {
			continue
		}
		var rep report.Report
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatalf("the JSON report does not decode: %v", err)
		}
		if rep.Since == nil || rep.Until == nil || rep.Since.Format("2006-01-02") != from || !rep.Until.Equal(today.Truncate(24*time.Hour).Add(24*time.Hour)) {
			t.Errorf("the JSON report's period: since %v until %v, want %s to the end of %s", rep.Since, rep.Until, from, to)
		}
		if versions := reportVersions(rep, "payroll"); versions != 1 {
			t.Errorf("the report for today shows %d versions of payroll, want 1", versions)
		}
		if !reportRead(rep, "/secrets/db") {
			t.Errorf("the report for today lacks root's read of /secrets/db: %+v", rep.SecretReads)
		}
	}
	status, body, _ = ac.get("/ui/report/download?from=2000-01-01&to=2000-01-31&format=json")
	var old report.Report
	if err := json.Unmarshal([]byte(body), &old); status != http.StatusOK || err != nil {
		t.Fatalf("the report for January 2000: %d, %v", status, err)
	}
	if versions := reportVersions(old, "payroll"); versions != 0 || reportRead(old, "/secrets/db") {
		t.Errorf("the report for January 2000 shows %d versions of payroll or today's secret read, want none", versions)
	}
	// The API bounds the report the same way.
	var apiRep report.Report
	if err := clientFor(t, c, n2, auditor).Do(ctx, http.MethodGet, "/v1/report?since=2000-01-01T00:00:00Z&until=2000-02-01T00:00:00Z", nil, &apiRep); err != nil {
		t.Fatalf("GET /v1/report?since=…&until=… as the auditor: %v", err)
	}
	if apiRep.Until == nil || !apiRep.Until.Equal(time.Date(2000, 2, 1, 0, 0, 0, 0, time.UTC)) || reportVersions(apiRep, "payroll") != 0 {
		t.Errorf("GET /v1/report?until=2000-02-01: until %v, %d versions of payroll, want that until and none", apiRep.Until, reportVersions(apiRep, "payroll"))
	}
	for _, bad := range []string{"from=2026-02-01&to=2026-01-01", "from=yesterday", "format=pdf"} {
		if status, _, _ := ac.get("/ui/report/download?" + bad); status != http.StatusBadRequest {
			t.Errorf("report/download?%s: %d, want 400", bad, status)
		}
	}
}

// reportVersions counts the versions of a certificate in a report.
func reportVersions(rep report.Report, name string) int {
	for _, c := range rep.Certificates {
		if c.Name == name {
			return len(c.Versions)
		}
	}
	return 0
}

// reportRead reports whether the report lists a read of object.
func reportRead(rep report.Report, object string) bool {
	for _, r := range rep.SecretReads {
		if r.Object == object {
			return true
		}
	}
	return false
}
