package test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/report"
	"github.com/certvault/certvault/test/testcluster"
	"golang.org/x/net/html"
)

// TestAuditTrail: every request, allowed or denied, is in the trail of the
// node that answered it; a secret read is on disk before it is answered;
// 'audit verify' passes on a live cluster and names the first record after
// one is edited.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	n1, n2 := c.Nodes[0], c.Nodes[1]
	value := "audit-test-secret-value-0123456789"
	testcluster.KnownSecret(value)
	root := c.Client(n1)
	if code := status(t, root, http.MethodPut, "/secrets/db?api-version=7.6", map[string]any{"value": value}); code != 200 {
		t.Fatalf("set secret: %d", code)
	}
	auditor, _ := createToken(t, c, "--name", "auditor", "--role", "Reader", "--scope", "/")
	nosy, _ := createToken(t, c, "--name", "nosy")

	// A denied read on node1, an allowed one on node2.
	if got := status(t, clientFor(t, c, n1, nosy), "GET", "/secrets/db?api-version=7.6", nil); got != http.StatusForbidden {
		t.Fatalf("nosy read: %d", got)
	}
	resp, err := c.Client(n2).DoResponse(t.Context(), "GET", "/secrets/db?api-version=7.6", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The record of a secret read is in the trail when the answer arrives.
	reqID := resp.Header.Get("x-ms-request-id")
	trail2, err := os.ReadFile(filepath.Join(n2.Dir, "audit", "audit.jsonl"))
	if err != nil {
		t.Fatalf("read file: %v", err)
	}
	if reqID == "" || !bytes.Contains(trail2, []byte(`"request_id":"`+reqID+`"`)) {
		t.Fatalf("the secret read %q is not in node2's trail when it is answered", reqID)
	}

	out, _, code := cliAs(t, c, n2, auditor, "audit", "list", "--object", "/secrets/db", "-o", "json")
	if code != 0 {
		t.Fatalf("audit list: %s", out)
	}
	var recs struct {
		Value []struct{ Node, Principal, Outcome, Action, Operation, Object string }
	}
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, out)
	}
	var denied, readOn2 bool
	for _, r := range recs.Value {
		denied = denied || (r.Node == "node1" && r.Principal == "nosy" && r.Outcome == "denied" && r.Action == "secrets/getSecret")
		readOn2 = readOn2 || (r.Node == "node2" && r.Principal == "root" && r.Outcome == "allowed" && r.Operation == "GET /secrets/{name}")
	}
	if !denied || !readOn2 {
		t.Fatalf("audit list --object /secrets/db: denied on node1 %v, read on node2 %v:\n%s", denied, readOn2, out)
	}
	if out, _, _ := cliAs(t, c, n1, auditor, "audit", "list", "--principal", "nosy"); !strings.Contains(out, "denied") || strings.Contains(out, "root") {
		t.Fatalf("audit list --principal nosy:\n%s", out)
	}
	if _, errOut, code := cliAs(t, c, n1, nosy, "audit", "list"); code == 0 || !strings.Contains(errOut, "403") {
		t.Fatalf("audit list without a role: exit %d %s", code, errOut)
	}

	// Wait until node1 anchored its head in raft, then verify.
	waitUntil(t, 30*time.Second, "node1 anchored its trail", func() (bool, string) {
		out, errOut, code := cliAs(t, c, n1, auditor, "audit", "verify", "-o", "json")
		var v struct {
			Nodes []struct {
				Node    string
				Anchors int
			}
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			return false, fmt.Sprintf("audit verify: exit %d, %v: %s%s", code, err, out, errOut)
		}
		return len(v.Nodes) == 3 && v.Nodes[0].Node == "node1" && v.Nodes[0].Anchors > 0, out
	})
	out, _, code = cliAs(t, c, n1, auditor, "audit", "verify")
	for _, n := range c.Nodes {
		if code != 0 || !strings.Contains(out, n.ID+": ok") {
			t.Fatalf("verify on a live cluster: exit %d\n%s", code, out)
		}
	}

	// Edit one record of node1's trail in place: the nosy principal.
	path := filepath.Join(n1.Dir, "audit", "audit.jsonl")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte(`"principal":"nosy"`))
	if i < 0 {
		t.Fatal("no nosy record in node1's trail")
	}
	start := bytes.LastIndexByte(data[:i], '\n') + 1
	var rec struct{ Seq uint64 }
	if err := json.Unmarshal(data[start:start+bytes.IndexByte(data[start:], '\n')], &rec); err != nil {
		t.Fatalf("decode JSON: %v", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(`"principal":"mary"`), int64(i)); err != nil {
		t.Fatalf("edit node1's trail: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close node1's trail after the edit: %v", err)
	}
	out, _, code = cliAs(t, c, n1, auditor, "audit", "verify")
	want := "node1: TAMPERED: first bad record " + strconv.FormatUint(rec.Seq, 10)
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("verify after an edit: exit %d, want %q in:\n%s", code, want, out)
	}
	if !strings.Contains(out, "node2: ok") {
		t.Errorf("node2's trail should still verify:\n%s", out)
	}
}

// TestEvidenceReport: the report's three sections from a live vault, in
// JSON, CSV and one self-contained HTML file.
func TestEvidenceReport(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	officer, _ := createToken(t, c, "--name", "app-team", "--role", "Certificates Officer", "--scope", "/certificates")
	co := clientFor(t, c, n, officer)
	policy := map[string]any{"policy": map[string]any{"issuer": map[string]any{"name": "Self"}, "x509_props": map[string]any{"subject": "CN=www.example.com", "validity_months": 1}}}
	for range 2 { // two versions
		if code := status(t, co, http.MethodPost, "/certificates/www/create?api-version=7.6", policy); code != http.StatusAccepted {
			t.Fatalf("create www: %d", code)
		}
	}
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:nginx", "--scope", "/certificates/www")
	reader, _ := createToken(t, c, "--name", "web-1", "--role", "Certificate User", "--scope", "/certificates/www")
	if code := status(t, clientFor(t, c, n, reader), "GET", "/secrets/www?api-version=7.6", nil); code != 200 {
		t.Fatalf("read www's secret: %d", code)
	}

	out := mustCLI(t, c, "report", "--format", "json")
	var rep report.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Certificates) != 1 || len(rep.Certificates[0].Versions) != 2 || rep.Certificates[0].Versions[0].CreatedBy != "app-team" || rep.Certificates[0].Versions[0].How != "create" {
		t.Fatalf("rotation history: %+v", rep.Certificates)
	}
	if rep.Deliveries == nil {
		t.Error("deliveries: want an empty list, not null")
	}
	var nginx, officerAccess bool
	for _, a := range rep.Access {
		nginx = nginx || (a.Object == "/certificates/www" && a.Principal == "group:nginx" && a.ReadsSecret && !a.Writes)
		officerAccess = officerAccess || (a.Object == "/certificates/www" && a.Principal == "app-team" && !a.ReadsSecret && a.Writes)
	}
	if !nginx || !officerAccess {
		t.Errorf("access: group:nginx reads the key %v, app-team writes without the key %v: %+v", nginx, officerAccess, rep.Access)
	}
	if len(rep.SecretReads) != 1 || rep.SecretReads[0].Principal != "web-1" || rep.SecretReads[0].Count != 1 || rep.SecretReads[0].Object != "/secrets/www" {
		t.Errorf("secret reads: %+v", rep.SecretReads)
	}

	file := filepath.Join(t.TempDir(), "evidence.html")
	mustCLI(t, c, "report", "--format", "html", "--out", file)
	page, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	var walk func(*html.Node)
	walk = func(x *html.Node) {
		for _, a := range x.Attr {
			if a.Key == "id" {
				ids[a.Val] = true
			}
		}
		for ch := x.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch)
		}
	}
	walk(doc)
	for _, id := range []string{"rotation", "timeline", "deliveries", "access"} {
		if !ids[id] {
			t.Errorf("HTML report has no #%s", id)
		}
	}
	if !bytes.Contains(page, []byte("<svg")) || bytes.Contains(page, []byte("<script")) || bytes.Contains(page, []byte(`src="http`)) {
		t.Error("HTML report: want an inline SVG chart and no scripts or external resources")
	}

	out = mustCLI(t, c, "report", "--format", "csv")
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v", err)
	}
	sections := map[string]int{}
	for _, r := range rows {
		sections[r[0]]++
	}
	if sections["rotation"] != 2 || sections["access"] < 2 || sections["secret_read"] != 1 || sections["section"] != 4 {
		t.Errorf("CSV sections: %v", sections)
	}
}

// TestAuditCutWhileDown: a trail cut short while its node was down is
// found at start-up and recorded in raft as an incident, which 'audit
// verify' keeps reporting after the anchors that showed it are gone.
func TestAuditCutWhileDown(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	waitUntil(t, 30*time.Second, "an anchor", func() (bool, string) {
		out, errOut, code := c.CLI("audit", "verify", "-o", "json")
		var v struct{ Nodes []struct{ Anchors int } }
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			return false, fmt.Sprintf("audit verify: exit %d, %v: %s%s", code, err, out, errOut)
		}
		return len(v.Nodes) == 1 && v.Nodes[0].Anchors > 0, out
	})
	n.Stop()
	path := filepath.Join(n.Dir, "audit", "audit.jsonl")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if err := os.WriteFile(path, bytes.Join(lines[:2], nil), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Restart()
	c.WaitReady(n)
	var out string
	waitFor(t, 30*time.Second, "the start-up incident", func() bool {
		out, _, _ = c.CLI("audit", "verify")
		return strings.Contains(out, "INCIDENT at start-up")
	})
	// The node writes on after a restart, so the cut shows either as
	// records missing at the end or as records that differ from their
	// anchors, depending on how far it wrote before the check.
	if !strings.Contains(out, "removed from the end") && !strings.Contains(out, "differs from its anchor") {
		t.Fatalf("verify after a cut: %s", out)
	}
	if !strings.Contains(n.Log(), "fails verification") {
		t.Error("the node did not log the failed check")
	}
}
