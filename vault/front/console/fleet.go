package console

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
	"github.com/certvault/certvault/vault/front"
)

// The fleet page (issue 19): the agents, a page at a time and by group,
// each with when it last reported, when its identity expires, whether it
// is revoked, the version it holds of each object beside the object's
// current one (drift), and its failed installs with what the agent said.
// It needs what the API's GET /v1/agents needs (agents/manage or
// audit/read at /). /ui/fleet/events tells the open page that the fleet
// changed.

const (
	fleetEventsPath = "/ui/fleet/events"
	// fleetRows bounds the agents on a page.
	fleetRows = 100
	// soonDays marks an agent identity that expires within this many
	// days.
	soonDays = 7
)

// fleetActions are the API's actions for listing agents: either will do.
var fleetActions = []access.Action{access.AgentsManage, access.AuditRead}

// fleetRoutes registers the fleet and rollouts pages, their event streams
// and the rollout commands.
func (f *Front) fleetRoutes() error {
	for _, name := range []string{"fleet", "rollouts"} {
		t, err := template.New(name).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("console template %s: %w", name, err)
		}
		f.pages[name] = t
	}
	// The audit record names the console's route, as the API's names
	// its own ("GET /ui/rollouts/events"), refusals included.
	route := func(pattern string, h http.HandlerFunc) {
		h = f.signedIn(h)
		f.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			front.InfoOf(r).Operation = pattern
			h(w, r)
		})
	}
	route("GET /ui/fleet", f.handleFleet)
	route("GET "+fleetEventsPath, f.handleFleetEvents)
	route("GET /ui/rollouts", f.handleRollouts)
	route("GET "+rolloutEventsPath, f.handleRolloutEvents)
	route("POST /ui/rollouts/{kind}/{name}/{command}", f.handleRolloutCommand)
	return nil
}

// heldRow is one binding of an agent on the fleet page.
type heldRow struct {
	Object, Kind, Name       string
	Held, Current, Target    string
	Result, Detail, Reported string
	IsCertificate            bool
	Drift, Awaiting, Failed  bool
}

// agentRow is one agent on the fleet page.
type agentRow struct {
	ID, Name, Group       string
	LastSeen, LastSeenISO string
	Expires, ExpiresISO   string
	ExpiresSoon, Expired  bool
	Revoked               bool
	RevokedAt             string
	Objects, Failures     []heldRow
	Drift                 int
}

// fleetPage is the fleet page's data.
type fleetPage struct {
	page
	Group string
	Rows  []agentRow
	// Events is the page's event stream; Self the page again; Next the
	// next page ("" on the last).
	Events, Self, Next string
}

// allowedAny decides whether c may do one of actions on res, as the API's
// gate does for a route with several actions, and records the decision
// (the action allowed, else the first) for the audit trail.
func (f *Front) allowedAny(r *http.Request, c core.Caller, res access.Resource, actions ...access.Action) bool {
	if a, ok := f.firstAllowed(c, res, actions...); ok {
		return f.allowed(r, c, res, a)
	}
	if f.allowed(r, c, res, actions[0]) { // denied unless it caught up
		return true
	}
	if a, ok := f.firstAllowed(c, res, actions...); ok { // caught up by allowed
		return f.allowed(r, c, res, a)
	}
	return false
}

// firstAllowed is the first of actions the policy grants c on res, from
// the local state, with no audit record.
func (f *Front) firstAllowed(c core.Caller, res access.Resource, actions ...access.Action) (access.Action, bool) {
	pol := f.Policy()
	for _, a := range actions {
		if pol.Allowed(c.Principal, a, res) {
			return a, true
		}
	}
	return "", false
}

// mayFleet reports whether c may see the fleet (from the local state,
// with no audit record: for links and for open streams).
func (f *Front) mayFleet(c core.Caller) bool {
	_, ok := f.firstAllowed(c, access.Resource{}, fleetActions...)
	return ok
}

// forbidFleet answers 403 to a caller who may not see the agents.
func (f *Front) forbidFleet(w http.ResponseWriter, r *http.Request, c core.Caller) {
	f.renderError(w, r, http.StatusForbidden, "Not allowed",
		fmt.Sprintf("%s may not see the fleet: it needs %s or %s at /; ask an administrator for a role assignment that grants it.", c.Name, access.AgentsManage, access.AuditRead))
}

// handleFleet shows a page of agents, of one group when ?group= says so.
func (f *Front) handleFleet(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	if !f.allowedAny(r, s.caller, access.Resource{}, fleetActions...) {
		f.forbidFleet(w, r, s.caller)
		return
	}
	q := r.URL.Query()
	group := strings.TrimSpace(q.Get("group"))
	index := f.ChangeIndex()
	pg, err := f.ListAgentPage(r.Context(), s.caller, fleet.AgentPageRequest{Group: group, After: q.Get("after"), Limit: fleetRows})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	data := fleetPage{page: f.pageFor(s, "Fleet", "fleet"), Group: group, Self: r.URL.RequestURI(), Next: nextPage("/ui/fleet", q, pg.Next)}
	now := time.Now()
	for _, a := range pg.Agents {
		data.Rows = append(data.Rows, viewAgent(a, now))
	}
	data.Events = fleetEventsPath + "?" + url.Values{"index": {strconv.FormatUint(index, 10)}}.Encode()
	f.render(w, http.StatusOK, "fleet", data)
}

// viewAgent is what the fleet page shows of an agent.
func viewAgent(a fleet.AgentOverview, now time.Time) agentRow {
	row := agentRow{ID: a.ID, Name: a.Name, Group: a.Group, Revoked: a.Revoked, Drift: a.Drift}
	if !a.LastSeen.IsZero() {
		row.LastSeen, row.LastSeenISO = stamp(a.LastSeen), a.LastSeen.UTC().Format(time.RFC3339)
	}
	if !a.NotAfter.IsZero() {
		row.Expires, row.ExpiresISO = a.NotAfter.UTC().Format("2006-01-02 15:04Z"), a.NotAfter.UTC().Format(time.RFC3339)
		row.Expired = !a.NotAfter.After(now)
		row.ExpiresSoon = !row.Expired && a.NotAfter.Sub(now) < soonDays*24*time.Hour
	}
	if a.Revoked {
		row.RevokedAt = stamp(a.RevokedAt)
	}
	for _, h := range a.Objects {
		kind, name, _ := strings.Cut(h.Object, "/")
		hr := heldRow{Object: h.Object, Kind: kind, Name: name, Held: h.Held, Current: h.Current, Target: h.Target,
			Result: h.Result, Detail: h.Detail, Reported: stamp(h.Time), IsCertificate: kind == core.KindCertificates,
			Drift: h.Drift, Awaiting: h.Awaiting, Failed: h.Failed}
		row.Objects = append(row.Objects, hr)
		if h.Failed {
			row.Failures = append(row.Failures, hr)
		}
	}
	return row
}

// fleetEvent is the data of an event of /ui/fleet/events: the page is
// out of date.
type fleetEvent struct {
	Changed bool `json:"changed"`
}

// handleFleetEvents tells the open fleet page when an agent enrolls,
// renews, is revoked or reports, for as long as the caller may see the
// fleet.
func (f *Front) handleFleetEvents(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	if !f.allowedAny(r, s.caller, access.Resource{}, fleetActions...) {
		f.forbidFleet(w, r, s.caller)
		return
	}
	f.stream(w, r, f.changeSource("fleet", fleet.AgentChanges, s,
		f.mayFleet,
		func(core.Caller) (any, error) { return fleetEvent{Changed: true}, nil }))
}
