package v1api

import (
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"

	"github.com/certvault/certvault/vault/access"
)

// The /v1 front of staged rollouts (fleet/rollouts.go decides).

func (f *Front) rolloutRoutes(vault func(string, string, http.HandlerFunc, ...access.Action), add func(front.Endpoint, http.Handler)) {
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
			{"GET", prefix, read, f.handleRolloutStatus(kind)},
			{"PUT", prefix + "/plan", write, f.handleSetPlan(kind)},
			{"DELETE", prefix + "/plan", write, f.handleDeletePlan(kind)},
			{"POST", prefix + "/pause", write, f.handleRolloutCommand(kind, fleet.RolloutPause)},
			{"POST", prefix + "/resume", write, f.handleRolloutCommand(kind, fleet.RolloutResume)},
			{"POST", prefix + "/abort", write, f.handleRolloutCommand(kind, fleet.RolloutAbort)},
		} {
			add(front.Endpoint{Method: r.method, Pattern: r.path, Actions: []access.Action{r.action}}, f.Guard(res, r.h, r.action))
		}
	}
}

func (f *Front) handleSetPlan(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var p fleet.RolloutPlan
		if err := front.DecodeBody(r, &p); err != nil {
			f.Fail(w, r, err)
			return
		}
		res, err := f.SetRolloutPlan(r.Context(), front.CallerOf(r), fleet.SetRolloutPlanRequest{Kind: kind, Name: r.PathValue("name"), Plan: p})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		front.SetIndexHeader(w, res.Index)
		front.WriteJSON(w, http.StatusOK, res.Plan)
	}
}

func (f *Front) handleDeletePlan(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		idx, err := f.DeleteRolloutPlan(r.Context(), front.CallerOf(r), kind, r.PathValue("name"))
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		front.SetIndexHeader(w, idx)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *Front) handleRolloutCommand(kind, cmd string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res, err := f.ControlRollout(r.Context(), front.CallerOf(r), fleet.ControlRolloutRequest{Kind: kind, Name: r.PathValue("name"), Command: cmd})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		front.SetIndexHeader(w, res.Index)
		front.WriteJSON(w, http.StatusOK, res.Rollout)
	}
}

func (f *Front) handleRolloutStatus(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !f.Linearized(w, r) {
			return
		}
		st, err := f.GetRolloutStatus(r.Context(), front.CallerOf(r), kind, name)
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		front.WriteJSON(w, http.StatusOK, st)
	}
}
