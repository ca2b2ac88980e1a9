package vault

import (
	"context"
	"net/url"
	"strings"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
)

// The core of the vault-wide settings (GET and PATCH /v1/sys/settings):
// purge protection, retention, the public URL and the near-expiry
// threshold, in one record (keySettings).

// shown is the settings as callers see them: the defaults filled in.
func (s vaultSettings) shown() vaultSettings {
	s.RetentionDays = s.retention()
	if s.NearExpiry == "" {
		s.NearExpiry = "30d"
	}
	return s
}

// GetSettings returns the vault-wide settings, defaults filled in, from
// the local state (the front makes it current first).
func (n *Node) GetSettings(ctx context.Context, p caller) (vaultSettings, error) {
	return n.settings().shown(), nil
}

// UpdateSettingsRequest changes vault-wide settings; a nil member keeps
// its setting.
type UpdateSettingsRequest struct {
	PurgeProtection *bool
	// RetentionDays: 7 to 90.
	RetentionDays *int
	// PublicURL: an https URL with no path, or "" for the issuing node's
	// address.
	PublicURL *string
	// NearExpiry: a duration such as 30d, or "" for the default.
	NearExpiry *string
}

// UpdateSettingsResult is the settings after the change (defaults filled
// in) and the raft index that stored them.
type UpdateSettingsResult struct {
	Settings vaultSettings
	Index    uint64
}

// UpdateSettings applies req to the vault-wide settings. Purge protection,
// once on, cannot be turned off.
func (n *Node) UpdateSettings(ctx context.Context, p caller, req UpdateSettingsRequest) (UpdateSettingsResult, error) {
	e, _ := n.store.Get(keySettings)
	s := n.settings()
	if req.PurgeProtection != nil {
		if s.PurgeProtection && !*req.PurgeProtection {
			return UpdateSettingsResult{}, errForbidden("purge protection cannot be turned off once on")
		}
		s.PurgeProtection = *req.PurgeProtection
	}
	if req.RetentionDays != nil {
		if *req.RetentionDays < 7 || *req.RetentionDays > 90 {
			return UpdateSettingsResult{}, errBadParameter("retention_days", "retention_days %d: use 7 to 90", *req.RetentionDays)
		}
		s.RetentionDays = *req.RetentionDays
	}
	if req.PublicURL != nil {
		u, err := url.Parse(*req.PublicURL)
		if *req.PublicURL != "" && (err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/")) {
			return UpdateSettingsResult{}, errBadParameter("public_url", "public_url %q: give an https URL with no path, such as https://vault.example.com:8443", *req.PublicURL)
		}
		s.PublicURL = strings.TrimSuffix(*req.PublicURL, "/")
	}
	if req.NearExpiry != nil {
		if _, err := keyvault.ParseValidity(*req.NearExpiry); err != nil && *req.NearExpiry != "" {
			return UpdateSettingsResult{}, errBadParameter("near_expiry", "near_expiry: %v", err)
		}
		s.NearExpiry = *req.NearExpiry
	}
	idx, err := n.commit(ctx, (&raftstore.Batch{}).PutIf(keySettings, mustJSON(s), e.Index))
	if err != nil {
		return UpdateSettingsResult{}, err
	}
	return UpdateSettingsResult{Settings: s.shown(), Index: idx}, nil
}
