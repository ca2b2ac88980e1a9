package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
	vaultfleet "github.com/certvault/certvault/vault/fleet"
)

// sseEvent is one event of a console event stream.
type sseEvent struct {
	id, event, data string
}

// eventStream is an open console event stream, read in the background
// until the test ends it (or the server does).
type eventStream struct {
	status int
	events chan sseEvent
	done   chan struct{}
	cancel context.CancelFunc
}

var dataEvents = regexp.MustCompile(`data-events="([^"]+)"`)

// openEvents opens the event stream a page names in its data-events, with
// cc's session; the stream ends when the test does.
func (cc *consoleClient) openEvents(page string) *eventStream {
	cc.t.Helper()
	m := dataEvents.FindStringSubmatch(page)
	if m == nil {
		cc.t.Fatalf("the page names no event stream:\n%s", page)
	}
	return cc.openStream(html.UnescapeString(m[1]))
}

// openStream opens the event stream at path with cc's session.
func (cc *consoleClient) openStream(path string) *eventStream {
	cc.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cc.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cc.base+path, nil)
	if err != nil {
		cc.t.Fatal(err)
	}
	hc := *cc.hc
	hc.Timeout = 0 // the stream is bounded by the context and the server's lifetime
	resp, err := hc.Do(req)
	if err != nil {
		cc.t.Fatalf("GET %s: %v", path, err)
	}
	es := &eventStream{status: resp.StatusCode, events: make(chan sseEvent, 256), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(es.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "id":
				ev.id = v
			case "event":
				ev.event = v
			case "data":
				ev.data = v
			}
			if sc.Text() == "" && ev.event != "" {
				select {
				case es.events <- ev:
				default: // the test stopped reading
				}
				ev = sseEvent{}
			}
		}
	}()
	return es
}

// waitEvent waits up to d for an event that satisfies ok, and returns it;
// it fails naming what and the last event seen.
func (es *eventStream) waitEvent(t *testing.T, d time.Duration, what string, ok func(sseEvent) bool) sseEvent {
	t.Helper()
	timeout := time.After(d)
	last := "none"
	for {
		select {
		case ev := <-es.events:
			if ok(ev) {
				return ev
			}
			last = fmt.Sprintf("%s %s", ev.event, ev.data)
		case <-es.done:
			t.Fatalf("the stream ended while waiting for %s; last event: %s", what, last)
		case <-timeout:
			t.Fatalf("waited %v for %s; last event: %s", d, what, last)
		}
	}
}

// rolloutCounts is an event of /ui/rollouts/events, as the page's script
// reads it.
type rolloutCounts struct {
	Rollouts []struct {
		ID, Status string
		Waves      []struct {
			N, Pending, Healthy, Failed int
			RolledBack                  int `json:"rolled_back"`
		}
		Commands []string
	}
}

// rolloutIs returns a test of rollouts events: the rollout with element
// id has status, and ok (when set) holds for it.
func rolloutIs(t *testing.T, id, status string, ok func(waves []int) bool) func(sseEvent) bool {
	return func(ev sseEvent) bool {
		var rc rolloutCounts
		if ev.event != "rollouts" {
			return false
		}
		if err := json.Unmarshal([]byte(ev.data), &rc); err != nil {
			t.Errorf("a rollouts event does not decode: %v: %s", err, ev.data)
			return false
		}
		for _, r := range rc.Rollouts {
			if r.ID != id || r.Status != status {
				continue
			}
			healthy := make([]int, len(r.Waves))
			for i, w := range r.Waves {
				healthy[i] = w.Healthy
			}
			return ok == nil || ok(healthy)
		}
		return false
	}
}

// rowByID returns the table row of element id in page ("" when none).
func rowByID(page, id string) string {
	i := strings.Index(page, `id="`+id+`"`)
	if i < 0 {
		return ""
	}
	j := strings.Index(page[i:], "</tr>")
	if j < 0 {
		return page[i:]
	}
	return page[i : i+j]
}

// consoleAgent writes an agent's configuration binding one certificate
// with a reload command, and returns its path.
func consoleAgent(t *testing.T, c *testcluster.Cluster, state, dir, cert, reload string) string {
	t.Helper()
	cfg := filepath.Join(filepath.Dir(state), "agent.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`vault: %s
ca_file: %s
state_dir: %s
certificates:
  - name: %s
    dir: %s
    files: {cert: cert.pem, key: key.pem}
    reload: ["%s"]
    timeout: 3s
`, c.Nodes[0].URL(), c.CACert, state, cert, dir, reload)), 0o644); err != nil {
		t.Fatalf("write %s: %v", cfg, err)
	}
	return cfg
}

// TestConsoleFleetRollouts (issue 19): the console's fleet and rollouts
// pages over plain HTTP, against a real vault and real agents. The fleet
// page lists the agents with their group, identity expiry, the versions
// they hold (drift, and a rollout not there yet) and their failures with
// the agent's detail; it filters by group and needs agents/manage or
// audit/read (403 otherwise). The rollouts page shows a rollout's waves
// and counts, and pause and resume forms to those who may write the
// certificate; a form without the session's CSRF token, from another
// origin, or from a reader is refused. The rollouts event stream delivers
// the pause and resume and the counts as an agent reports, the fleet's
// stream the agent's report, and the audit trail holds one record per
// stream, not one per event.
func TestConsoleFleetRollouts(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	agentBin := testcluster.AgentBinary(t)
	dir := t.TempDir()
	pol := map[string]string{}
	for _, name := range []string{"www", "api"} {
		pol[name] = filepath.Join(dir, name+".json")
		mustCLI(t, c, "cert", "policy", "new", "--subject", "CN="+name+".example.com", "--issuer", "Self", "--out", pol[name])
		mustCLI(t, c, "cert", "create", name, "--policy", pol[name], "--wait")
	}
	v1 := currentSerial(t, c, "www")
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:fleet", "--scope", "/certificates/www")
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:edge", "--scope", "/certificates/api")
	fleetTok, fp, _ := agentJoinToken(t, c, "--group", "fleet", "--uses", "2")
	edgeTok, _, _ := agentJoinToken(t, c, "--group", "edge", "--uses", "1")

	// Two agents of group fleet install www; one of group edge cannot
	// reload api, so its install fails.
	var fleetAgents [2]*fleetAgent
	var cfgs [2]string
	var procs [2]*agentProc
	for i := range fleetAgents {
		base := filepath.Join(dir, fmt.Sprintf("vm-%d", i))
		fa := &fleetAgent{dir: filepath.Join(base, "tls")}
		state := filepath.Join(base, "state")
		fa.id = joinAgent(t, agentBin, n.URL(), fleetTok, fp, state, "--name", fmt.Sprintf("vm-%d", i))
		cfgs[i] = consoleAgent(t, c, state, fa.dir, "www", "true")
		procs[i] = startAgent(t, agentBin, cfgs[i])
		fleetAgents[i] = fa
	}
	edgeState := filepath.Join(dir, "edge-0", "state")
	edgeID := joinAgent(t, agentBin, n.URL(), edgeTok, fp, edgeState, "--name", "edge-0")
	startAgent(t, agentBin, consoleAgent(t, c, edgeState, filepath.Join(dir, "edge-0", "tls"), "api", "false"))
	for i, fa := range fleetAgents {
		waitFor(t, 60*time.Second, fmt.Sprintf("vm-%d installs www", i), func() bool { return fa.serial() == v1 })
	}

	ops, _ := createToken(t, c, "--name", "ops", "--ttl", "1h", "--role", "Administrator", "--scope", "/")
	auditor, _ := createToken(t, c, "--name", "auditor", "--ttl", "1h", "--role", "Reader", "--scope", "/")
	officer, _ := createToken(t, c, "--name", "www-team", "--ttl", "1h", "--role", "Certificates Officer", "--scope", "/certificates/www")
	opsUI := newConsoleClient(t, c, n)
	opsUI.signIn(ops)
	auditUI := newConsoleClient(t, c, n)
	auditCSRF := auditUI.signIn(auditor)
	wwwUI := newConsoleClient(t, c, n)
	wwwCSRF := wwwUI.signIn(officer)

	// The fleet page: every agent, what it holds, the edge agent's failure.
	var page string
	waitUntil(t, 60*time.Second, "the fleet page shows both agents on www and the edge agent's failure", func() (bool, string) {
		status, _, body, _ := opsUI.do(http.MethodGet, "/ui/fleet", nil, "")
		page = body
		edge := rowByID(body, "agent-"+edgeID)
		ok := status == http.StatusOK && strings.Contains(edge, "<strong>certificates/api</strong> <code>failed</code>")
		for _, fa := range fleetAgents {
			ok = ok && strings.Contains(rowByID(body, "agent-"+fa.id), `<span class="badge">current</span>`)
		}
		return ok, fmt.Sprintf("%d:\n%s", status, body)
	})
	for i, fa := range fleetAgents {
		row := rowByID(page, "agent-"+fa.id)
		for _, want := range []string{fmt.Sprintf(">vm-%d<", i), `href="/ui/fleet?group=fleet"`, `id="agent-` + fa.id + `-expires"><time`,
			`id="agent-` + fa.id + `-seen"><time`, `id="agent-` + fa.id + `-state">active`, `href="/ui/certificates/www">certificates/www</a>`} {
			if !strings.Contains(row, want) {
				t.Errorf("vm-%d's row lacks %s:\n%s", i, want, row)
			}
		}
	}
	if edge := rowByID(page, "agent-"+edgeID); !strings.Contains(edge, `reload &#34;false&#34;`) {
		t.Errorf("the edge agent's failure does not say what the agent reported (its reload):\n%s", edge)
	}
	if status, _, body, _ := opsUI.do(http.MethodGet, "/ui/fleet?group=edge", nil, ""); status != http.StatusOK ||
		!strings.Contains(body, `id="agent-`+edgeID+`"`) || strings.Contains(body, `id="agent-`+fleetAgents[0].id+`"`) {
		t.Errorf("the fleet of group edge: %d, want the edge agent only:\n%s", status, body)
	}
	if status, _, body, _ := wwwUI.do(http.MethodGet, "/ui/fleet", nil, ""); status != http.StatusForbidden || !strings.Contains(body, "agents/manage") {
		t.Errorf("the fleet page for a certificates officer: %d, want 403 naming agents/manage:\n%s", status, body)
	}
	if es := wwwUI.openStream("/ui/fleet/events"); es.status != http.StatusForbidden {
		t.Errorf("the fleet's event stream for a certificates officer: %d, want 403", es.status)
	}
	if status, _, _, _ := auditUI.do(http.MethodGet, "/ui/fleet", nil, ""); status != http.StatusOK {
		t.Errorf("the fleet page for an auditor (audit/read): %d, want 200", status)
	}

	// A plan, and a new version whose first wave's agent is down: the
	// rollout waits on it.
	mustCLI(t, c, "rollout", "set", "www", "--waves", "1,100%")
	waveOf, _ := vaultfleet.AssignWaves("certificates/www", []string{fleetAgents[0].id, fleetAgents[1].id}, []string{"1", "100%"})
	first, second := 0, 1
	if waveOf[fleetAgents[0].id] != 0 {
		first, second = 1, 0
	}
	procs[first].kill()
	mustCLI(t, c, "cert", "create", "www", "--policy", pol["www"], "--wait")
	v2 := currentSerial(t, c, "www")
	waitFor(t, 30*time.Second, "the rollout of www runs", func() bool {
		return strings.Contains(mustCLI(t, c, "rollout", "status", "www"), "running")
	})
	_, _, page, _ = opsUI.do(http.MethodGet, "/ui/fleet", nil, "")
	if row := rowByID(page, "agent-"+fleetAgents[first].id); !strings.Contains(row, `<span class="badge bad">drift</span>`) {
		t.Errorf("the first wave's agent, down, holds the old version: want drift in its row:\n%s", row)
	}
	if row := rowByID(page, "agent-"+fleetAgents[second].id); !strings.Contains(row, "rollout pending") {
		t.Errorf("the second wave's agent waits for the rollout: want 'rollout pending' in its row:\n%s", row)
	}

	const id = "rollout-certificates-www"
	status, _, page, _ := wwwUI.do(http.MethodGet, "/ui/rollouts", nil, "")
	for _, want := range []string{`id="` + id + `"`, `id="` + id + `-status" aria-live="polite">running<`, `id="` + id + `-wave-1-pending">1<`,
		`id="` + id + `-wave-2-pending">1<`, `id="` + id + `-wave-1-healthy">0<`, `id="` + id + `-pause">`, `id="` + id + `-resume" hidden>`, `id="rollouts-refresh"`} {
		if status != http.StatusOK || !strings.Contains(page, want) {
			t.Errorf("the rollouts page of the www officer (%d) lacks %s", status, want)
		}
	}
	if status, _, body, _ := auditUI.do(http.MethodGet, "/ui/rollouts", nil, ""); status != http.StatusOK || !strings.Contains(body, `id="`+id+`"`) ||
		strings.Contains(body, id+"-pause") || !strings.Contains(body, `id="nav-fleet"`) {
		t.Errorf("the rollouts page of an auditor: %d, want the rollout without its forms, and the fleet link:\n%s", status, body)
	}
	if strings.Contains(page, `id="nav-fleet"`) {
		t.Errorf("the www officer, who may not see the fleet, is shown its link")
	}
	rollouts := wwwUI.openEvents(page)
	if rollouts.status != http.StatusOK {
		t.Fatalf("the rollouts event stream: %d, want 200", rollouts.status)
	}

	// Pause: refused without the session's CSRF token, from another
	// origin, and for a reader (the action is authorized again); then
	// done with the form, seen on the stream.
	pause := "/ui/rollouts/certificates/www/pause"
	if status, _, _, _ := wwwUI.do(http.MethodPost, pause, url.Values{"csrf": {"forged"}}, ""); status != http.StatusForbidden {
		t.Errorf("pause without the session's CSRF token: %d, want 403", status)
	}
	if status, _, _, _ := wwwUI.do(http.MethodPost, pause, url.Values{"csrf": {wwwCSRF}}, "https://evil.example"); status != http.StatusForbidden {
		t.Errorf("pause from another origin: %d, want 403", status)
	}
	if status, _, _, _ := auditUI.do(http.MethodPost, pause, url.Values{"csrf": {auditCSRF}}, ""); status != http.StatusForbidden {
		t.Errorf("pause by a reader: %d, want 403", status)
	}
	if out := mustCLI(t, c, "rollout", "status", "www"); !strings.Contains(out, "running") {
		t.Fatalf("after the refused pauses the rollout is not running:\n%s", out)
	}
	if status, loc, body, _ := wwwUI.do(http.MethodPost, pause, url.Values{"csrf": {wwwCSRF}}, ""); status != http.StatusSeeOther || loc != "/ui/rollouts#"+id {
		t.Fatalf("pause with the form: %d %q, want 303 to the rollout:\n%s", status, loc, body)
	}
	if out := mustCLI(t, c, "rollout", "status", "www"); !strings.Contains(out, "paused") {
		t.Errorf("after the pause the rollout is not paused:\n%s", out)
	}
	rollouts.waitEvent(t, 30*time.Second, "the pause on the stream", rolloutIs(t, id, "paused", nil))
	if status, _, body, _ := wwwUI.do(http.MethodPost, pause, url.Values{"csrf": {wwwCSRF}}, ""); status != http.StatusConflict || !strings.Contains(body, "does not apply") {
		t.Errorf("pausing a paused rollout: %d, want 409 saying it does not apply:\n%s", status, body)
	}
	if status, _, _, _ := wwwUI.do(http.MethodPost, "/ui/rollouts/certificates/www/resume", url.Values{"csrf": {wwwCSRF}}, ""); status != http.StatusSeeOther {
		t.Fatalf("resume with the form: %d, want 303", status)
	}
	rollouts.waitEvent(t, 30*time.Second, "the resume on the stream", rolloutIs(t, id, "running", nil))

	// The first wave's agent comes back and reports the new version: the
	// stream counts it, and the rollout goes on to the end.
	fleetEvents := opsUI.openStream("/ui/fleet/events")
	if fleetEvents.status != http.StatusOK {
		t.Fatalf("the fleet's event stream: %d, want 200", fleetEvents.status)
	}
	startAgent(t, agentBin, cfgs[first])
	// (Events fold what happens within a second: the reports of both
	// waves may come as one.)
	rollouts.waitEvent(t, 60*time.Second, "both waves healthy and the rollout done on the stream",
		rolloutIs(t, id, "done", func(h []int) bool { return len(h) == 2 && h[0] == 1 && h[1] == 1 }))
	fleetEvents.waitEvent(t, 30*time.Second, "the agent's report on the fleet's stream", func(ev sseEvent) bool { return ev.event == "fleet" })
	for i, fa := range fleetAgents {
		waitFor(t, 30*time.Second, fmt.Sprintf("vm-%d installs the new version", i), func() bool { return fa.serial() == v2 })
	}

	// One audit record per stream, written when it ends.
	rollouts.cancel()
	<-rollouts.done
	waitUntil(t, 30*time.Second, "one audit record of the www officer's rollouts stream", func() (bool, string) {
		out := mustCLI(t, c, "audit", "list", "--principal", "www-team", "-o", "json")
		var res struct {
			Value []struct{ Operation string }
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("audit list -o json: %v: %s", err, out)
		}
		streams := 0
		for _, r := range res.Value {
			if r.Operation == "GET /ui/rollouts/events" {
				streams++
			}
		}
		return streams == 1, fmt.Sprintf("%d records of the stream", streams)
	})
}
