package vault

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
)

// keySettings holds vault-wide settings.
const keySettings = "sys/settings"

// vaultSettings are vault-wide data-plane settings.
type vaultSettings struct {
	// PurgeProtection, once on, cannot be turned off: deleted objects are
	// then purged only when their retention ends.
	PurgeProtection bool `json:"purge_protection"`
	// RetentionDays is how long deleted objects stay recoverable, 7 to 90
	// (0 means 90).
	RetentionDays int `json:"retention_days,omitempty"`
	// PublicURL is the vault's address as relying parties reach it (a
	// load balancer or DNS name in front of the nodes). Certificates from
	// internal issuers carry their CRL address under it, so it must
	// outlive any one node. Empty means the API address of the node that
	// issues.
	PublicURL string `json:"public_url,omitempty"`
	// NearExpiry is how long before expiry the CertificateNearExpiry and
	// SecretNearExpiry events fire, as a duration ("30d", "12h", "90m");
	// empty means 30 days.
	NearExpiry string `json:"near_expiry,omitempty"`
}

// nearExpiry returns the near-expiry threshold.
func (s vaultSettings) nearExpiry() time.Duration {
	if d, err := keyvault.ParseValidity(s.NearExpiry); err == nil {
		return d
	}
	return 30 * 24 * time.Hour
}

func (s vaultSettings) retention() int {
	if s.RetentionDays == 0 {
		return 90
	}
	return s.RetentionDays
}

// recoveryLevel is Key Vault's name for the settings.
func (s vaultSettings) recoveryLevel() string {
	lvl := "Recoverable"
	if s.retention() < 90 {
		lvl = "CustomizedRecoverable"
	}
	if !s.PurgeProtection {
		lvl += "+Purgeable"
	}
	return lvl
}

// publicURL is the address under which relying parties reach the vault.
func (n *Node) publicURL() string {
	if u := n.settings().PublicURL; u != "" {
		return u
	}
	return n.opts.APIAddr
}

func (n *Node) settings() vaultSettings {
	var s vaultSettings
	if e, ok := n.store.Get(keySettings); ok {
		json.Unmarshal(e.Value, &s)
	}
	return s
}

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
	res, err := n.UpdateSettings(r.Context(), callerOf(r), UpdateSettingsRequest{
		PurgeProtection: req.PurgeProtection, RetentionDays: req.RetentionDays, PublicURL: req.PublicURL, NearExpiry: req.NearExpiry})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	setIndexV1(w, res.Index)
	writeJSON(w, http.StatusOK, res.Settings)
}

// setIndexV1 sets X-Certvault-Index, the raft index a /v1 write stored,
// on the answer.
func setIndexV1(w http.ResponseWriter, idx uint64) {
	w.Header().Set("X-Certvault-Index", strconv.FormatUint(idx, 10))
}
