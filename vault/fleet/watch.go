package fleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
)

// The core of the agent protocol beyond identity: an agent watches for
// the target versions of the objects it binds (any node answers, from its
// local state, waiting on the raftstore watch) and reports each outcome,
// which the vault keeps per binding and as delivery history for the
// evidence report.

const (
	// prefixAgentBindings holds each agent's latest outcome per object:
	// agent-bindings/AGENT/KIND/NAME.
	prefixAgentBindings = "agent-bindings/"
	// prefixDeliveries holds every reported install, by time.
	prefixDeliveries = "deliveries/"
	// MaxWatchWait bounds a long poll.
	MaxWatchWait = 5 * time.Minute
	// MaxWatchObjects bounds the objects of one watch.
	MaxWatchObjects = 256
	// DefaultWatchWait is a watch's wait when the agent names none.
	DefaultWatchWait = 30 * time.Second
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

// WatchedObject is an object an agent watches and the version it holds
// ("" for none).
type WatchedObject struct {
	// Kind is certificates or secrets.
	Kind  string
	Name  string
	Known string
}

// targets reads the target version of each object the agent may read.
func (f *Fleet) targets(c core.Caller, objs []WatchedObject) []WatchObject {
	pol := f.Policy()
	out := make([]WatchObject, len(objs))
	for i, o := range objs {
		w := WatchObject{Kind: o.Kind, Name: o.Name}
		res := access.Resource{Kind: o.Kind, Name: o.Name}
		action := access.CertificatesRead
		if o.Kind == core.KindSecrets {
			action = access.SecretsMetadata
			res.Certificate = f.IsCertificate(o.Name)
		}
		switch m, _, found, err := f.LoadMeta(o.Kind, o.Name); {
		case !pol.Allowed(c.Principal, action, res):
			w.Error = fmt.Sprintf("forbidden: %s may not %s on %s", c.Name, action, res)
		case err != nil:
			w.Error = "unreadable: " + err.Error()
		case !found || m.Deleted != nil:
			w.Error = "not found"
		default:
			w.Version = f.targetFor(c.AgentID, o.Kind, o.Name, m.Current)
		}
		out[i] = w
	}
	return out
}

// WatchAgentRequest is an agent's long poll.
type WatchAgentRequest struct {
	// Objects are checked by the front: 1 to maxWatchObjects valid
	// certificate or secret names.
	Objects []WatchedObject
	// After is the index of the agent's previous answer: a node behind it
	// catches up first.
	After uint64
	// Wait bounds the poll (up to maxWatchWait; the front's default is
	// defaultWatchWait).
	Wait time.Duration
}

// WatchAgent answers at once when a target differs from what the agent
// (p) holds, else when one changes (the objects' meta and rollout records
// and the role assignments are watched), else when req.Wait runs out, with
// Changed false.
func (f *Fleet) WatchAgent(ctx context.Context, p core.Caller, req WatchAgentRequest) (WatchResponse, error) {
	objs := req.Objects
	// A node behind the index the agent already saw waits to catch up.
	if req.After > f.Store.AppliedIndex() {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := f.Store.WaitApplied(wctx, req.After)
		cancel()
		if err != nil {
			return WatchResponse{}, core.Unavailable(err)
		}
	}
	keys := make([]string, 0, 2*len(objs)+1)
	for _, o := range objs {
		keys = append(keys, core.MetaKey(o.Kind, o.Name), RolloutKey(o.Kind, o.Name))
	}
	keys = append(keys, core.KeyAssignments)
	wctx, cancel := context.WithTimeout(ctx, req.Wait)
	defer cancel()
	for {
		idx := f.Store.AppliedIndex()
		cur := f.targets(p, objs)
		changed := false
		for i, o := range objs {
			changed = changed || cur[i].Version != o.Known
		}
		if changed || wctx.Err() != nil {
			return WatchResponse{Objects: cur, Index: idx, Changed: changed}, nil
		}
		if _, err := f.Store.Watch(wctx, keys, idx); err != nil && wctx.Err() == nil {
			return WatchResponse{}, core.Unavailable(err)
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

// AgentReportTarget is what a checked report is about.
type AgentReportTarget struct {
	// Object is KIND/NAME with the name in canonical form.
	Object string
	// The agent must be allowed Action on Resource: it reports only on
	// what it may read, so that the evidence report's "where each
	// certificate went" does not take an agent's word for another
	// group's objects.
	Action   access.Action
	Resource access.Resource
}

// CheckAgentReport checks a report (the object, the result, the sizes),
// cuts a long detail, and says what it is about.
func (f *Fleet) CheckAgentReport(rep *AgentReport) (AgentReportTarget, error) {
	kind, name, ok := strings.Cut(rep.Object, "/")
	if !ok || (kind != core.KindCertificates && kind != core.KindSecrets) || core.ValidName(kind, name) != nil {
		return AgentReportTarget{}, core.BadParameter("object", "object %q: write certificates/NAME or secrets/NAME", rep.Object)
	}
	if !slices.Contains(reportResults, rep.Result) {
		return AgentReportTarget{}, core.BadParameter("result", "result %q: use one of %s", rep.Result, strings.Join(reportResults, ", "))
	}
	if len(rep.Version) > 64 || len(rep.Previous) > 64 || len(rep.Serial) > 128 || len(rep.Binding) > 4096 || len(rep.Drift) > 64 {
		return AgentReportTarget{}, core.BadParameter("", "the report is larger than a report can be: check version, binding and drift")
	}
	if len(rep.Detail) > 2048 {
		rep.Detail = rep.Detail[:2048]
	}
	action, res := access.CertificatesRead, access.Resource{Kind: kind, Name: name}
	if kind == core.KindSecrets {
		action, res.Certificate = access.SecretsMetadata, f.IsCertificate(name)
	}
	// Stored under the canonical name, so that every spelling of the
	// name finds the agents that hold it.
	return AgentReportTarget{Object: kind + "/" + objname.Canonical(name), Action: action, Resource: res}, nil
}

// RecordAgentReport stores the report of agent p as its binding's latest
// state and, unless nothing changed, in the delivery history; the front
// has checked that p may read the object. It returns the raft index of
// the write.
func (f *Fleet) RecordAgentReport(ctx context.Context, p core.Caller, rep AgentReport) (uint64, error) {
	t, err := f.CheckAgentReport(&rep)
	if err != nil {
		return 0, err
	}
	rep.Object = t.Object
	now := time.Now().UTC()
	st := BindingState{Agent: p.AgentID, Time: now, AgentReport: rep}
	b := &raftstore.Batch{}
	b.Put(prefixAgentBindings+p.AgentID+"/"+rep.Object, core.MustJSON(st))
	if rep.Result != "unchanged" {
		b.Put(fmt.Sprintf("%s%019d-%s-%04x", prefixDeliveries, now.UnixNano(), p.AgentID, rand.IntN(1<<16)), core.MustJSON(st))
	}
	return f.Commit(ctx, b)
}

// agentBindings returns an agent's latest outcome per object.
func (f *Fleet) agentBindings(id string) []BindingState {
	return core.ListJSON[BindingState](f.Core, prefixAgentBindings+id+"/", "")
}

// deliveries returns the reported installs at or after since.
func (f *Fleet) deliveries(since time.Time) []BindingState {
	after := ""
	if !since.IsZero() {
		after = fmt.Sprintf("%s%019d", prefixDeliveries, since.UnixNano()-1)
	}
	return core.ListJSON[BindingState](f.Core, prefixDeliveries, after)
}
