package v1api

import (
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"

	"github.com/certvault/certvault/vault/access"
)

// The /v1 front of staged rollouts (fleet/rollouts.go decides).

func (n *Front) rolloutRoutes(vault func(string, string, http.HandlerFunc, ...access.Action), add func(front.Endpoint, http.Handler)) {
	for _, kind := range []string{core.KindCertificates, core.KindSecrets} {
		read, write := access.CertificatesRead, access.CertificatesWrite
		if kind == core.KindSecrets {
			read, write = access.SecretsMetadata, access.SecretsWrite
		}
		res := front.ObjectResource(kind)
		prefix := "/v1/rollouts/" + kind + "/{name}"
		for _, r := range []struct {
			method, path string
			action       access.Action
			h            http.HandlerFunc
		}{
			{"GET", prefix, read, n.handleRolloutStatus(kind)},
			{"PUT", prefix + "/plan", write, n.handleSetPlan(kind)},
			{"DELETE", prefix + "/plan", write, n.handleDeletePlan(kind)},
			{"POST", prefix + "/pause", write, n.handleRolloutCommand(kind, fleet.RolloutPause)},
			{"POST", prefix + "/resume", write, n.handleRolloutCommand(kind, fleet.RolloutResume)},
			{"POST", prefix + "/abort", write, n.handleRolloutCommand(kind, fleet.RolloutAbort)},
		} {
			add(front.Endpoint{Method: r.method, Pattern: r.path, Actions: []access.Action{r.action}}, n.Guard(res, r.h, r.action))
		}
	}
}

func (n *Front) handleSetPlan(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var p fleet.RolloutPlan
		if err := front.DecodeBody(r, &p); err != nil {
			n.Fail(w, r, err)
			return
		}
		res, err := n.SetRolloutPlan(r.Context(), front.CallerOf(r), fleet.SetRolloutPlanRequest{Kind: kind, Name: r.PathValue("name"), Plan: p})
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		front.SetIndexHeader(w, res.Index)
		front.WriteJSON(w, http.StatusOK, res.Plan)
	}
}

func (n *Front) handleDeletePlan(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		idx, err := n.DeleteRolloutPlan(r.Context(), front.CallerOf(r), kind, r.PathValue("name"))
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		front.SetIndexHeader(w, idx)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (n *Front) handleRolloutCommand(kind, cmd string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res, err := n.ControlRollout(r.Context(), front.CallerOf(r), fleet.ControlRolloutRequest{Kind: kind, Name: r.PathValue("name"), Command: cmd})
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		front.SetIndexHeader(w, res.Index)
		front.WriteJSON(w, http.StatusOK, res.Rollout)
	}
}

func (n *Front) handleRolloutStatus(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !n.Linearized(w, r) {
			return
		}
		st, err := n.GetRolloutStatus(r.Context(), front.CallerOf(r), kind, name)
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		front.WriteJSON(w, http.StatusOK, st)
	}
}
