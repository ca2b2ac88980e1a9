package vault

import (
	"net/http"

	"github.com/certvault/certvault/vault/core"
)

// The /v1 front of the vault-wide settings (core_settings.go decides).

func (n *Node) handleGetSettings(w http.ResponseWriter, r *http.Request) {
	if !n.linearized(w, r) {
		return
	}
	s, err := n.GetSettings(r.Context(), callerOf(r))
	if err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (n *Node) handleSetSettings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PurgeProtection *bool   `json:"purge_protection"`
		RetentionDays   *int    `json:"retention_days"`
		PublicURL       *string `json:"public_url"`
		NearExpiry      *string `json:"near_expiry"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	res, err := n.UpdateSettings(r.Context(), callerOf(r), core.UpdateSettingsRequest{
		PurgeProtection: req.PurgeProtection, RetentionDays: req.RetentionDays, PublicURL: req.PublicURL, NearExpiry: req.NearExpiry})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	setIndexHeader(w, res.Index)
	writeJSON(w, http.StatusOK, res.Settings)
}
