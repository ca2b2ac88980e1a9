package v1api

import (
	"net/http"
	"time"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/fleet"
)

// handleReport answers the evidence report (EvidenceReport): ?since= and
// ?until= bound its history, each an RFC 3339 time or an age.
func (f *Front) handleReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var req fleet.EvidenceReportRequest
	for _, b := range []struct {
		name string
		t    *time.Time
	}{{"since", &req.Since}, {"until", &req.Until}} {
		if v := q.Get(b.name); v != "" {
			t, err := front.ParseSince(v, time.Now())
			if err != nil {
				f.Fail(w, r, front.BadParameter("%s %q: give an RFC 3339 time (2026-11-27T10:00:00Z) or an age (90m, 24h, 7d)", b.name, v))
				return
			}
			*b.t = t
		}
	}
	if !f.Linearized(w, r) {
		return
	}
	rep, err := f.EvidenceReport(r.Context(), front.CallerOf(r), req)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	rep.Vault = front.BaseURL(r)
	front.WriteJSON(w, http.StatusOK, rep)
}
