package v1api

import (
	"net/http"
	"time"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/fleet"
)

// handleReport answers the evidence report (EvidenceReport): ?since= an
// RFC 3339 time or an age.
func (f *Front) handleReport(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var since time.Time
	if v := q.Get("since"); v != "" {
		t, err := front.ParseSince(v, time.Now())
		if err != nil {
			f.Fail(w, r, front.BadParameter("since %q: give an RFC 3339 time (2026-11-27T10:00:00Z) or an age (90m, 24h, 7d)", v))
			return
		}
		since = t
	}
	if !f.Linearized(w, r) {
		return
	}
	rep, err := f.EvidenceReport(r.Context(), front.CallerOf(r), fleet.EvidenceReportRequest{Since: since})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	rep.Vault = front.BaseURL(r)
	front.WriteJSON(w, http.StatusOK, rep)
}
