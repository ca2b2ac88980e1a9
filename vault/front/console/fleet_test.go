package console

import (
	"html/template"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/fleet"
)

// newPagesFront is a Front with the fleet pages parsed and routed, and
// no domain: enough to render them.
func newPagesFront(t *testing.T) *Front {
	t.Helper()
	f := &Front{pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	if err := f.fleetRoutes(); err != nil {
		t.Fatalf("fleetRoutes: %v", err)
	}
	return f
}

// inlineCode finds what the CSP would refuse: inline scripts, styles and
// event handlers.
var inlineCode = regexp.MustCompile(`(?i)<script>|<script[^>]*>[^<\s]|\sstyle=|\son[a-z]+=`)

func runningRollout() fleet.RolloutStatus {
	return fleet.RolloutStatus{
		Plan: &fleet.RolloutPlan{Waves: []string{"1", "100%"}, MaxFailures: "1"},
		Rollout: &fleet.Rollout{Object: "certificates/www", Version: "v2", Previous: "v1", Status: "running", Wave: 0,
			Agents: map[string]int{"a1": 0, "a2": 1}, WaveSizes: []int{1, 1}},
		Waves: []fleet.WaveStatus{
			{Wave: 1, Spec: "1", Agents: []string{"a1"}, Target: "v2", Healthy: 1},
			{Wave: 2, Spec: "100%", Agents: []string{"a2"}, Target: "v1", Pending: 1},
		},
	}
}

// TestViewRollout: the commands offered are those that apply to the
// rollout's status, and only to a caller who may give them.
func TestViewRollout(t *testing.T) {
	ref := fleet.RolloutRef{Kind: "certificates", Name: "www"}
	for _, tc := range []struct {
		status  string
		control bool
		want    []string
	}{
		{"running", true, []string{"pause", "abort"}},
		{"paused", true, []string{"resume", "abort"}},
		{"halted", true, []string{"resume", "abort"}},
		{"done", true, []string{}},
		{"aborted", true, []string{}},
		{"running", false, []string{}},
	} {
		st := runningRollout()
		st.Rollout.Status = tc.status
		v := viewRollout(ref, st, tc.control)
		if !slices.Equal(v.Commands, tc.want) {
			t.Errorf("%s, control %v: commands %v, want %v", tc.status, tc.control, v.Commands, tc.want)
		}
	}
	v := viewRollout(ref, runningRollout(), true)
	if v.ID != "rollout-certificates-www" || v.Wave != 1 || len(v.Waves) != 2 || v.Waves[1].ID != "rollout-certificates-www-wave-2" ||
		!v.Waves[0].Reached || v.Waves[1].Reached || v.Plan != "waves 1,100%, bake 0s, max failures 1" {
		t.Errorf("view %+v", v)
	}
}

// TestRolloutsTemplate: the page has the stable element ids the browser
// tests and the script use, forms with the CSRF token for the commands
// that apply (the others hidden), a live region, a refresh link, and
// nothing inline that the CSP would refuse.
func TestRolloutsTemplate(t *testing.T) {
	f := newPagesFront(t)
	rec := httptest.NewRecorder()
	data := rolloutsPage{page: page{Title: "Rollouts", Nav: "rollouts", Principal: "ops", CSRF: "tok123"},
		Rollouts: []rolloutView{viewRollout(fleet.RolloutRef{Kind: "certificates", Name: "www"}, runningRollout(), true)},
		Self:     "/ui/rollouts", Events: "/ui/rollouts/events?index=7"}
	f.render(rec, http.StatusOK, "rollouts", data)
	body := rec.Body.String()
	for _, want := range []string{
		`id="rollout-certificates-www"`, `id="rollout-certificates-www-status" aria-live="polite">running<`,
		`id="rollout-certificates-www-wave-1-healthy">1<`, `id="rollout-certificates-www-wave-2-pending">1<`,
		`id="rollout-certificates-www-wave-2-rolledback">0<`,
		`action="/ui/rollouts/certificates/www/pause" id="rollout-certificates-www-pause">`,
		`id="rollout-certificates-www-resume" hidden>`,
		`name="csrf" value="tok123"`, `data-events="/ui/rollouts/events?index=7"`,
		`id="rollouts-refresh" href="/ui/rollouts"`, `id="live-status" aria-live="polite"`,
		`<script src="/ui/static/live.js" defer></script>`, `aria-current="page">Rollouts<`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if m := inlineCode.FindString(body); m != "" {
		t.Errorf("the page has inline code the CSP refuses: %q", m)
	}

	// A reader sees no form.
	rec = httptest.NewRecorder()
	data.Rollouts = []rolloutView{viewRollout(fleet.RolloutRef{Kind: "certificates", Name: "www"}, runningRollout(), false)}
	f.render(rec, http.StatusOK, "rollouts", data)
	if strings.Contains(rec.Body.String(), "/ui/rollouts/certificates/www/") {
		t.Errorf("a caller without the write action gets the command forms")
	}
}

// TestFleetTemplate: an agent's row shows drift, an awaited rollout, a
// failure with its detail, and a revoked identity, under stable ids.
func TestFleetTemplate(t *testing.T) {
	f := newPagesFront(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	held := func(obj, result, version, prev, current, target, detail string) fleet.HeldObject {
		h := fleet.HeldObject{BindingState: fleet.BindingState{Agent: "a1", Time: now.Add(-time.Minute),
			AgentReport: fleet.AgentReport{Object: obj, Result: result, Version: version, Previous: prev, Detail: detail}},
			Current: current, Target: target, Held: version}
		if result == "failed" || result == "rolled-back" {
			h.Held, h.Failed = prev, true
		}
		h.Drift = h.Held != current
		h.Awaiting = h.Drift && h.Held == target
		return h
	}
	a := fleet.AgentOverview{AgentRecord: fleet.AgentRecord{ID: "a1", Name: "vm-1", Group: "web", NotAfter: now.Add(48 * time.Hour)},
		LastSeen: now.Add(-time.Minute), Drift: 2, Failures: 1,
		Objects: []fleet.HeldObject{
			held("certificates/www", "installed", "v1", "", "v2", "v1", ""),
			held("certificates/api", "failed", "v9", "v8", "v9", "v9", "reload: exit status 1"),
			held("secrets/db", "installed", "s1", "", "s1", "s1", ""),
		}}
	b := fleet.AgentOverview{AgentRecord: fleet.AgentRecord{ID: "b2", Group: "edge", Revoked: true, RevokedAt: now, NotAfter: now.Add(-time.Hour)}}
	rec := httptest.NewRecorder()
	f.render(rec, http.StatusOK, "fleet", fleetPage{page: page{Title: "Fleet", Nav: "fleet", Principal: "ops", CSRF: "x", CanFleet: true},
		Rows: []agentRow{viewAgent(a, now), viewAgent(b, now)}, Self: "/ui/fleet", Events: "/ui/fleet/events?index=3", Next: "/ui/fleet?after=b2"})
	body := rec.Body.String()
	for _, want := range []string{
		`id="agent-a1"`, `>vm-1<`, `href="/ui/fleet?group=web"`, `id="agent-a1-seen"><time datetime="2030-01-02T03:03:05Z">`,
		`<span class="badge soon">soon</span>`, `rollout pending`, `<span class="badge bad">drift</span> (current <code>v9</code>)`,
		`<strong>certificates/api</strong> <code>failed</code>`, `reload: exit status 1`,
		`id="agent-b2-state"><span class="badge bad">revoked</span>`, `<span class="badge bad">expired</span>`,
		`id="next-page" href="/ui/fleet?after=b2"`, `id="nav-fleet" aria-current="page">Fleet<`, `data-events="/ui/fleet/events?index=3"`, `id="fleet-refresh"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if m := inlineCode.FindString(body); m != "" {
		t.Errorf("the page has inline code the CSP refuses: %q", m)
	}
}
