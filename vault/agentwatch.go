package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
)

// The agent protocol beyond identity: an agent long-polls for the target
// versions of the objects it binds (any node answers, from its local state
// and the raftstore watch), fetches a version through the data plane, and
// reports each outcome, which the vault keeps per binding and as delivery
// history for the evidence report.

const (
	// prefixAgentBindings holds each agent's latest outcome per object:
	// agent-bindings/AGENT/KIND/NAME.
	prefixAgentBindings = "agent-bindings/"
	// prefixDeliveries holds every reported install, by time.
	prefixDeliveries = "deliveries/"
	// maxWatchWait bounds a long poll.
	maxWatchWait = 5 * time.Minute
	// maxWatchObjects bounds the objects of one watch.
	maxWatchObjects = 256
)

// WatchObject is one object in a watch answer.
type WatchObject struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Version is the target version: the one the agent should hold ("" when
	// the object has none yet or was deleted).
	Version string `json:"version"`
	// Error says why the agent cannot have the object (no access, no such
	// object); the agent keeps what it installed.
	Error string `json:"error,omitempty"`
}

// WatchResponse answers GET /v1/agents/watch.
type WatchResponse struct {
	Objects []WatchObject `json:"objects"`
	// Index is the state the answer reflects; the agent passes it back.
	Index uint64 `json:"index"`
	// Changed says the answer differs from what the agent said it held
	// (false when the wait ran out).
	Changed bool `json:"changed"`
}

func (n *Node) agentProtocolRoutes(add func(Endpoint, http.Handler)) {
	add(Endpoint{Method: "GET", Pattern: "/v1/agents/watch", Agent: true}, n.agentOnly(n.handleAgentWatch))
	add(Endpoint{Method: "POST", Pattern: "/v1/agents/report", Agent: true}, n.agentOnly(n.handleAgentReport))
}

// watchedObject is a parsed ?o=KIND/NAME@VERSION.
type watchedObject struct{ kind, name, known string }

func parseWatchObjects(vals []string) ([]watchedObject, error) {
	if len(vals) == 0 || len(vals) > maxWatchObjects {
		return nil, badParameter("give 1 to %d objects as o=certificates/NAME@VERSION or o=secrets/NAME@VERSION", maxWatchObjects)
	}
	out := make([]watchedObject, 0, len(vals))
	for _, v := range vals {
		obj, known, _ := strings.Cut(v, "@")
		kind, name, ok := strings.Cut(obj, "/")
		if !ok || (kind != kindCertificates && kind != kindSecrets) {
			return nil, badParameter("object %q: write certificates/NAME or secrets/NAME", obj)
		}
		if err := validName(kind, name); err != nil {
			return nil, err
		}
		out = append(out, watchedObject{kind, name, known})
	}
	return out, nil
}

// targets reads the target version of each object the agent may read.
func (n *Node) targets(c caller, objs []watchedObject) []WatchObject {
	pol := n.policy()
	out := make([]WatchObject, len(objs))
	for i, o := range objs {
		w := WatchObject{Kind: o.kind, Name: o.name}
		res := access.Resource{Kind: o.kind, Name: o.name}
		action := access.CertificatesRead
		if o.kind == kindSecrets {
			action = access.SecretsMetadata
			res.Certificate = n.isCertificate(o.name)
		}
		switch m, _, found, err := n.loadMeta(o.kind, o.name); {
		case !pol.Allowed(c.Principal, action, res):
			w.Error = fmt.Sprintf("forbidden: %s may not %s on %s", c.Name, action, res)
		case err != nil:
			w.Error = "unreadable: " + err.Error()
		case !found || m.Deleted != nil:
			w.Error = "not found"
		default:
			w.Version = n.targetFor(c.AgentID, o.kind, o.name, m.Current)
		}
		out[i] = w
	}
	return out
}

// handleAgentWatch answers at once when a target differs from what the
// agent holds, else when one changes, else when the wait (default 30 s,
// jittered by the agent) runs out.
func (n *Node) handleAgentWatch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	objs, err := parseWatchObjects(q["o"])
	if err != nil {
		n.fail(w, r, err)
		return
	}
	wait := 30 * time.Second
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxWatchWait {
			n.fail(w, r, badParameter("wait %q: give a duration up to %v, such as 30s", v, maxWatchWait))
			return
		}
		wait = d
	}
	var after uint64
	if v := q.Get("index"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			n.fail(w, r, badParameter("index %q: give the index of the previous answer", v))
			return
		}
	}
	// A node behind the index the agent already saw waits to catch up.
	if after > n.store.AppliedIndex() {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		err := n.store.WaitApplied(ctx, after)
		cancel()
		if err != nil {
			n.fail(w, r, unavailable(err))
			return
		}
	}
	c := callerOf(r)
	keys := make([]string, 0, 2*len(objs)+1)
	for _, o := range objs {
		keys = append(keys, metaKey(o.kind, o.name), rolloutKey(o.kind, o.name))
	}
	keys = append(keys, keyAssignments)
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	for {
		idx := n.store.AppliedIndex()
		cur := n.targets(c, objs)
		changed := false
		for i, o := range objs {
			changed = changed || cur[i].Version != o.known
		}
		if changed || ctx.Err() != nil {
			// A poll that ends with nothing new is the agent's heartbeat:
			// thousands of agents would fill the audit trail with them.
			// Answers that carry a new target are recorded, and so are the
			// fetch and the report that follow.
			infoOf(r).skip = !changed
			writeJSON(w, http.StatusOK, WatchResponse{Objects: cur, Index: idx, Changed: changed})
			return
		}
		if _, err := n.store.Watch(ctx, keys, idx); err != nil && ctx.Err() == nil {
			n.fail(w, r, unavailable(err))
			return
		}
	}
}

// AgentReport is what an agent reports after handling a new version (or
// a drift) of one binding.
type AgentReport struct {
	// Object is certificates/NAME or secrets/NAME.
	Object  string `json:"object"`
	Binding string `json:"binding,omitempty"`
	Version string `json:"version"`
	// Result: installed, unchanged, failed, rolled-back, repaired.
	Result string `json:"result"`
	Detail string `json:"detail,omitempty"`
	Serial string `json:"serial,omitempty"`
	// Previous is the version the agent held before.
	Previous string `json:"previous,omitempty"`
	Hook     *struct {
		ExitCode   int    `json:"exit_code"`
		DurationMS int64  `json:"duration_ms"`
		Error      string `json:"error,omitempty"`
	} `json:"hook,omitempty"`
	Check *struct {
		OK     bool   `json:"ok"`
		Detail string `json:"detail,omitempty"`
	} `json:"check,omitempty"`
	// Timings in milliseconds: fetch, swap (writing and switching the
	// files), hook, check.
	Timings map[string]int64 `json:"timings,omitempty"`
	// Drift lists files found changed or missing and put back.
	Drift []string `json:"drift,omitempty"`
}

// BindingState is the vault's record of one agent binding.
type BindingState struct {
	Agent string    `json:"agent"`
	Time  time.Time `json:"time"`
	AgentReport
}

var reportResults = []string{"installed", "unchanged", "failed", "rolled-back", "repaired"}

func (n *Node) handleAgentReport(w http.ResponseWriter, r *http.Request) {
	var rep AgentReport
	if err := decodeBody(r, &rep); err != nil {
		n.fail(w, r, err)
		return
	}
	kind, name, ok := strings.Cut(rep.Object, "/")
	if !ok || (kind != kindCertificates && kind != kindSecrets) || validName(kind, name) != nil {
		n.fail(w, r, badParameter("object %q: write certificates/NAME or secrets/NAME", rep.Object))
		return
	}
	if !slices.Contains(reportResults, rep.Result) {
		n.fail(w, r, badParameter("result %q: use one of %s", rep.Result, strings.Join(reportResults, ", ")))
		return
	}
	if len(rep.Version) > 64 || len(rep.Previous) > 64 || len(rep.Serial) > 128 || len(rep.Binding) > 4096 || len(rep.Drift) > 64 {
		n.fail(w, r, badParameter("the report is larger than a report can be: check version, binding and drift"))
		return
	}
	if len(rep.Detail) > 2048 {
		rep.Detail = rep.Detail[:2048]
	}
	c := callerOf(r)
	// An agent reports only on what it may read: the evidence report's
	// "where each certificate went" must not take an agent's word for
	// another group's objects.
	action, res := access.CertificatesRead, access.Resource{Kind: kind, Name: name}
	if kind == kindSecrets {
		action, res.Certificate = access.SecretsMetadata, n.isCertificate(name)
	}
	if !n.authorize(w, r, c, res, action) {
		return
	}
	// Stored under the canonical name, so that every spelling of the
	// name finds the agents that hold it.
	rep.Object = kind + "/" + objname.Canonical(name)
	now := time.Now().UTC()
	st := BindingState{Agent: c.AgentID, Time: now, AgentReport: rep}
	infoOf(r).object = "/" + rep.Object
	infoOf(r).version = rep.Version
	b := &raftstore.Batch{}
	b.Put(prefixAgentBindings+c.AgentID+"/"+rep.Object, mustJSON(st))
	if rep.Result != "unchanged" {
		b.Put(fmt.Sprintf("%s%019d-%s-%04x", prefixDeliveries, now.UnixNano(), c.AgentID, rand.IntN(1<<16)), mustJSON(st))
	}
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// agentBindings returns an agent's latest outcome per object.
func (n *Node) agentBindings(id string) []BindingState {
	es, _ := n.store.List(prefixAgentBindings+id+"/", "", 0)
	out := make([]BindingState, 0, len(es))
	for _, e := range es {
		var st BindingState
		if json.Unmarshal(e.Value, &st) == nil {
			out = append(out, st)
		}
	}
	return out
}

// deliveries returns the reported installs at or after since.
func (n *Node) deliveries(since time.Time) []BindingState {
	after := ""
	if !since.IsZero() {
		after = fmt.Sprintf("%s%019d", prefixDeliveries, since.UnixNano()-1)
	}
	es, _ := n.store.List(prefixDeliveries, after, 0)
	out := make([]BindingState, 0, len(es))
	for _, e := range es {
		var st BindingState
		if json.Unmarshal(e.Value, &st) == nil {
			out = append(out, st)
		}
	}
	return out
}
