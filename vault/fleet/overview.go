package fleet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"
)

// The fleet as an operator looks at it (the console's fleet and rollouts
// pages): agents a page at a time, each with what it holds of every
// object, whether that is the object's current version (drift), and the
// bindings whose last install failed; and the objects that have a
// rollout plan, a page at a time. Access is the caller's to check (the
// API's actions: agents/manage or audit/read for agents, the object's
// read action for a rollout).

// Page sizes of the overviews.
const (
	// DefaultOverviewPage is a page's size when the request names none.
	DefaultOverviewPage = 100
	// MaxOverviewPage bounds a page's size.
	MaxOverviewPage = 500
	// overviewScan is how many records one store read takes while a
	// page is filled.
	overviewScan = 256
)

// HeldObject is one binding of an agent as the fleet page shows it.
type HeldObject struct {
	BindingState
	// Held is the version the agent serves: the reported one after a
	// good install, else the one it kept (Previous; "" when none).
	Held string
	// Current is the object's current version ("" when it has none or
	// is gone); Target is the version the agent is told to hold now
	// (the rollout's, when the object has a plan).
	Current, Target string
	// Drift: the agent holds a version other than the current one.
	// Awaiting says that it is what its rollout wave is told to hold.
	Drift, Awaiting bool
	// Failed: the last result is failed or rolled-back (Detail says why).
	Failed bool
}

// AgentOverview is an agent with its bindings seen against the objects'
// current versions.
type AgentOverview struct {
	AgentRecord
	// LastSeen is the time of its latest report on any binding (zero
	// when it never reported).
	LastSeen time.Time
	// Objects are its bindings, by object.
	Objects []HeldObject
	// Drift and Failures count the bindings with drift and with a
	// failed last result.
	Drift, Failures int
}

// AgentPageRequest asks for a page of agents, by ID.
type AgentPageRequest struct {
	// Group, when set, keeps the agents of this group.
	Group string
	// After is the last ID of the page before ("" for the first page).
	After string
	// Limit is the page's size: 0 is DefaultOverviewPage, at most
	// MaxOverviewPage.
	Limit int
}

// AgentPage is a page of agents.
type AgentPage struct {
	Agents []AgentOverview
	// Next is the After of the next page, "" on the last one.
	Next string
}

// ListAgentPage returns a page of agents (by ID, from the local state)
// with their bindings against the objects' current versions.
func (f *Fleet) ListAgentPage(ctx context.Context, p core.Caller, req AgentPageRequest) (AgentPage, error) {
	ids, next, err := f.scanPage(ctx, PrefixAgents, req.After, pageLimit(req.Limit), func(id string) bool {
		rec, _, ok := f.Agent(id)
		return ok && (req.Group == "" || rec.Group == req.Group)
	})
	if err != nil {
		return AgentPage{}, err
	}
	page := AgentPage{Agents: []AgentOverview{}, Next: next}
	for _, id := range ids {
		if rec, _, ok := f.Agent(id); ok {
			page.Agents = append(page.Agents, f.overview(rec))
		}
	}
	return page, nil
}

// overview puts an agent's bindings beside the objects' versions.
func (f *Fleet) overview(rec AgentRecord) AgentOverview {
	ov := AgentOverview{AgentRecord: rec.view()}
	for _, st := range f.agentBindings(rec.ID) {
		h := HeldObject{BindingState: st, Held: st.Previous}
		switch st.Result {
		case "installed", "unchanged", "repaired":
			h.Held = st.Version
		case "failed", "rolled-back":
			h.Failed = true
			ov.Failures++
		}
		if kind, name, ok := strings.Cut(st.Object, "/"); ok {
			if m, _, found, err := f.LoadMeta(kind, name); err == nil && found && m.Deleted == nil {
				h.Current = m.Current
				h.Target = f.targetFor(rec.ID, kind, name, m.Current)
			}
		}
		if h.Current != "" && h.Held != h.Current {
			h.Drift, h.Awaiting = true, h.Held == h.Target
			ov.Drift++
		}
		if st.Time.After(ov.LastSeen) {
			ov.LastSeen = st.Time
		}
		ov.Objects = append(ov.Objects, h)
	}
	return ov
}

// RolloutRef names an object that has a rollout plan.
type RolloutRef struct {
	// Kind is certificates or secrets; Name the canonical name.
	Kind, Name string
}

// RolloutPageRequest asks for a page of the objects with a rollout plan.
type RolloutPageRequest struct {
	// After is the last KIND/NAME of the page before ("" for the first).
	After string
	// Limit is the page's size: 0 is DefaultOverviewPage, at most
	// MaxOverviewPage.
	Limit int
	// Keep, when set, keeps only the objects it returns true for (the
	// caller's access); the others do not count towards the page.
	Keep func(RolloutRef) bool
}

// RolloutPage is a page of objects with a rollout plan, by kind and name.
type RolloutPage struct {
	Items []RolloutRef
	// Next is the After of the next page, "" on the last one.
	Next string
}

// ListRollouts returns a page of the objects that have a rollout plan
// (GetRolloutStatus gives each one's progress).
func (f *Fleet) ListRollouts(ctx context.Context, p core.Caller, req RolloutPageRequest) (RolloutPage, error) {
	keys, next, err := f.scanPage(ctx, core.PrefixRolloutPlans, req.After, pageLimit(req.Limit), func(key string) bool {
		kind, name, ok := strings.Cut(key, "/")
		return ok && (req.Keep == nil || req.Keep(RolloutRef{Kind: kind, Name: name}))
	})
	if err != nil {
		return RolloutPage{}, err
	}
	page := RolloutPage{Items: []RolloutRef{}, Next: next}
	for _, key := range keys {
		kind, name, _ := strings.Cut(key, "/")
		page.Items = append(page.Items, RolloutRef{Kind: kind, Name: name})
	}
	return page, nil
}

// scanPage reads the keys under prefix (without it) that sort after
// after, in order, keeping those match accepts, until limit are kept; next
// is the last key kept when another that match accepts follows ("" when
// none does). The store is read overviewScan keys at a time, and the
// scan stops when ctx ends.
func (f *Fleet) scanPage(ctx context.Context, prefix, after string, limit int, match func(key string) bool) (keys []string, next string, err error) {
	from := ""
	if after != "" {
		from = prefix + after
	}
	for {
		es, _ := f.Store.List(prefix, from, overviewScan)
		for _, e := range es {
			from = e.Key
			key := strings.TrimPrefix(e.Key, prefix)
			if !match(key) {
				continue
			}
			if len(keys) == limit {
				return keys, keys[limit-1], nil
			}
			keys = append(keys, key)
		}
		if len(es) < overviewScan {
			return keys, "", nil
		}
		if err := ctx.Err(); err != nil {
			return nil, "", fmt.Errorf("list %s: %w", prefix, err)
		}
	}
}

func pageLimit(n int) int {
	if n <= 0 {
		return DefaultOverviewPage
	}
	return min(n, MaxOverviewPage)
}

// RolloutCommands are the commands (RolloutPause, RolloutResume,
// RolloutAbort) that apply to a rollout in its present status, in that
// order; ControlRollout refuses the others as a conflict.
func RolloutCommands(r *Rollout) []string {
	var out []string
	for _, cmd := range []string{RolloutPause, RolloutResume, RolloutAbort} {
		if r.Applies(cmd) {
			out = append(out, cmd)
		}
	}
	return out
}

// Applies reports whether cmd applies to the rollout in its present
// status: pause a running one, resume a paused or halted one, abort one
// that is not over and has a version to go back to.
func (r *Rollout) Applies(cmd string) bool {
	switch cmd {
	case RolloutPause:
		return r.Status == "running"
	case RolloutResume:
		return r.Status == "paused" || r.Status == "halted"
	case RolloutAbort:
		return !slices.Contains([]string{"done", "aborted"}, r.Status) && r.Previous != ""
	}
	return false
}
