package vault

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
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
	s := n.settings()
	s.RetentionDays = s.retention()
	if s.NearExpiry == "" {
		s.NearExpiry = "30d"
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
	e, _ := n.store.Get(keySettings)
	s := n.settings()
	if req.PurgeProtection != nil {
		if s.PurgeProtection && !*req.PurgeProtection {
			n.fail(w, r, &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "purge protection cannot be turned off once on"})
			return
		}
		s.PurgeProtection = *req.PurgeProtection
	}
	if req.RetentionDays != nil {
		if *req.RetentionDays < 7 || *req.RetentionDays > 90 {
			n.fail(w, r, badParameter("retention_days %d: use 7 to 90", *req.RetentionDays))
			return
		}
		s.RetentionDays = *req.RetentionDays
	}
	if req.PublicURL != nil {
		u, err := url.Parse(*req.PublicURL)
		if *req.PublicURL != "" && (err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/")) {
			n.fail(w, r, badParameter("public_url %q: give an https URL with no path, such as https://vault.example.com:8443", *req.PublicURL))
			return
		}
		s.PublicURL = strings.TrimSuffix(*req.PublicURL, "/")
	}
	if req.NearExpiry != nil {
		if _, err := keyvault.ParseValidity(*req.NearExpiry); err != nil && *req.NearExpiry != "" {
			n.fail(w, r, badParameter("near_expiry: %v", err))
			return
		}
		s.NearExpiry = *req.NearExpiry
	}
	if err := n.apply(r.Context(), w.Header(), (&raftstore.Batch{}).PutIf(keySettings, mustJSON(s), e.Index)); err != nil {
		n.fail(w, r, err)
		return
	}
	s.RetentionDays = s.retention()
	if s.NearExpiry == "" {
		s.NearExpiry = "30d"
	}
	writeJSON(w, http.StatusOK, s)
}
