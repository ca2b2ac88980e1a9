package v1api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
)

// The /v1 front of the agent protocol beyond identity (fleet/watch.go
// decides): the long poll for target versions and the outcome reports.

func (f *Front) agentProtocolRoutes(add func(front.Endpoint, http.Handler)) {
	add(front.Endpoint{Method: "GET", Pattern: "/v1/agents/watch", Agent: true}, f.AgentOnly(f.handleAgentWatch))
	add(front.Endpoint{Method: "POST", Pattern: "/v1/agents/report", Agent: true}, f.AgentOnly(f.handleAgentReport))
}

// parseWatchObjects reads the ?o=KIND/NAME@VERSION of a watch.
func parseWatchObjects(vals []string) ([]fleet.WatchedObject, error) {
	if len(vals) == 0 || len(vals) > fleet.MaxWatchObjects {
		return nil, front.BadParameter("give 1 to %d objects as o=certificates/NAME@VERSION or o=secrets/NAME@VERSION", fleet.MaxWatchObjects)
	}
	out := make([]fleet.WatchedObject, 0, len(vals))
	for _, v := range vals {
		obj, known, _ := strings.Cut(v, "@")
		kind, name, ok := strings.Cut(obj, "/")
		if !ok || (kind != core.KindCertificates && kind != core.KindSecrets) {
			return nil, front.BadParameter("object %q: write certificates/NAME or secrets/NAME", obj)
		}
		if err := core.ValidName(kind, name); err != nil {
			return nil, err
		}
		out = append(out, fleet.WatchedObject{Kind: kind, Name: name, Known: known})
	}
	return out, nil
}

// handleAgentWatch is the agent's long poll (WatchAgent): ?o= the
// objects, ?wait= the wait (default 30 s, jittered by the agent), ?index=
// the previous answer's index.
func (f *Front) handleAgentWatch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	objs, err := parseWatchObjects(q["o"])
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	wait := fleet.DefaultWatchWait
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > fleet.MaxWatchWait {
			f.Fail(w, r, front.BadParameter("wait %q: give a duration up to %v, such as 30s", v, fleet.MaxWatchWait))
			return
		}
		wait = d
	}
	var after uint64
	if v := q.Get("index"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			f.Fail(w, r, front.BadParameter("index %q: give the index of the previous answer", v))
			return
		}
	}
	res, err := f.WatchAgent(r.Context(), front.CallerOf(r), fleet.WatchAgentRequest{Objects: objs, After: after, Wait: wait})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	// A poll that ends with nothing new is the agent's heartbeat:
	// thousands of agents would fill the audit trail with them. Answers
	// that carry a new target are recorded, and so are the fetch and the
	// report that follow.
	front.InfoOf(r).Skip = !res.Changed
	front.WriteJSON(w, http.StatusOK, res)
}

func (f *Front) handleAgentReport(w http.ResponseWriter, r *http.Request) {
	var rep fleet.AgentReport
	if err := front.DecodeBody(r, &rep); err != nil {
		f.Fail(w, r, err)
		return
	}
	t, err := f.CheckAgentReport(&rep)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	c := front.CallerOf(r)
	if !f.Authorize(w, r, c, t.Resource, t.Action) {
		return
	}
	front.InfoOf(r).Object = "/" + t.Object
	front.InfoOf(r).Version = rep.Version
	idx, err := f.RecordAgentReport(r.Context(), c, rep)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, idx)
	w.WriteHeader(http.StatusNoContent)
}
