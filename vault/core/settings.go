package core

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
)

// The core of the vault-wide settings: purge protection, retention of
// deleted objects and of old versions, the public URL and the
// near-expiry threshold, in one record (keySettings).

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
	// RetainVersions is version retention's N (retention.go): the leader
	// purges versions older than an object's last N once nothing needs
	// them. 0, the default, keeps every version, as Key Vault does.
	RetainVersions int `json:"retain_versions"`
	// RetainExpiredDays is the grace, in days after a version's expiry,
	// before retention may purge it; nil means DefaultRetainExpiredDays.
	RetainExpiredDays *int `json:"retain_expired_days,omitempty"`
}

// retainExpiredDays returns the grace after expiry, in days.
func (s vaultSettings) retainExpiredDays() int {
	if s.RetainExpiredDays == nil {
		return DefaultRetainExpiredDays
	}
	return *s.RetainExpiredDays
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

// PublicURL is the address under which relying parties reach the vault.
func (c *Core) PublicURL() string {
	if u := c.settings().PublicURL; u != "" {
		return u
	}
	return c.APIAddr
}

func (c *Core) settings() vaultSettings {
	var s vaultSettings
	if e, ok := c.Store.Get(keySettings); ok {
		json.Unmarshal(e.Value, &s)
	}
	return s
}

// shown is the settings as callers see them: the defaults filled in.
func (s vaultSettings) shown() vaultSettings {
	s.RetentionDays = s.retention()
	if s.NearExpiry == "" {
		s.NearExpiry = "30d"
	}
	d := s.retainExpiredDays()
	s.RetainExpiredDays = &d
	return s
}

// GetSettings returns the vault-wide settings, defaults filled in, from
// the local state (the front makes it current first).
func (c *Core) GetSettings(ctx context.Context, p Caller) (vaultSettings, error) {
	return c.settings().shown(), nil
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
	// RetainVersions: 0 (keep every version) or 1 to MaxRetainVersions.
	RetainVersions *int
	// RetainExpiredDays: 0 to MaxRetainExpiredDays.
	RetainExpiredDays *int
}

// UpdateSettingsResult is the settings after the change (defaults filled
// in) and the raft index that stored them.
type UpdateSettingsResult struct {
	Settings vaultSettings
	Index    uint64
}

// UpdateSettings applies req to the vault-wide settings. Purge protection,
// once on, cannot be turned off.
func (c *Core) UpdateSettings(ctx context.Context, p Caller, req UpdateSettingsRequest) (UpdateSettingsResult, error) {
	e, _ := c.Store.Get(keySettings)
	s := c.settings()
	if req.PurgeProtection != nil {
		if s.PurgeProtection && !*req.PurgeProtection {
			return UpdateSettingsResult{}, Forbidden("purge protection cannot be turned off once on")
		}
		s.PurgeProtection = *req.PurgeProtection
	}
	if req.RetentionDays != nil {
		if *req.RetentionDays < 7 || *req.RetentionDays > 90 {
			return UpdateSettingsResult{}, BadParameter("retention_days", "retention_days %d: use 7 to 90", *req.RetentionDays)
		}
		s.RetentionDays = *req.RetentionDays
	}
	if req.PublicURL != nil {
		u, err := url.Parse(*req.PublicURL)
		if *req.PublicURL != "" && (err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/")) {
			return UpdateSettingsResult{}, BadParameter("public_url", "public_url %q: give an https URL with no path, such as https://vault.example.com:8443", *req.PublicURL)
		}
		s.PublicURL = strings.TrimSuffix(*req.PublicURL, "/")
	}
	if req.NearExpiry != nil {
		if _, err := keyvault.ParseValidity(*req.NearExpiry); err != nil && *req.NearExpiry != "" {
			return UpdateSettingsResult{}, BadParameter("near_expiry", "near_expiry: %v", err)
		}
		s.NearExpiry = *req.NearExpiry
	}
	if err := CheckRetention(req.RetainVersions, req.RetainExpiredDays); err != nil {
		return UpdateSettingsResult{}, err
	}
	if req.RetainVersions != nil {
		s.RetainVersions = *req.RetainVersions
	}
	if req.RetainExpiredDays != nil {
		d := *req.RetainExpiredDays
		s.RetainExpiredDays = &d
	}
	idx, err := c.Commit(ctx, (&raftstore.Batch{}).PutIf(keySettings, MustJSON(s), e.Index))
	if err != nil {
		return UpdateSettingsResult{}, err
	}
	return UpdateSettingsResult{Settings: s.shown(), Index: idx}, nil
}

const keyContacts = "sys/contacts"

// ContactsResult is the vault's contacts (ID left empty: the front's) and
// the raft index of a write.
type ContactsResult struct {
	Contacts keyvault.Contacts
	Index    uint64
}

// GetContacts returns the vault's contacts.
func (c *Core) GetContacts(ctx context.Context, p Caller) (ContactsResult, error) {
	e, ok := c.Store.Get(keyContacts)
	if !ok {
		return ContactsResult{}, NotFound("ContactsNotFound", "Contacts not found")
	}
	var cs keyvault.Contacts
	if err := json.Unmarshal(e.Value, &cs); err != nil {
		return ContactsResult{}, err
	}
	return ContactsResult{Contacts: cs}, nil
}

// SetContacts replaces the vault's contacts; each needs an email address.
func (c *Core) SetContacts(ctx context.Context, p Caller, cs keyvault.Contacts) (ContactsResult, error) {
	if len(cs.Contacts) == 0 {
		return ContactsResult{}, BadParameter("contacts", "contacts must list at least one contact; use DELETE to remove them all")
	}
	for i, ct := range cs.Contacts {
		if ct.Email == "" || !strings.Contains(ct.Email, "@") {
			return ContactsResult{}, BadParameter(fmt.Sprintf("contacts[%d].email", i), "contacts[%d].email %q is not an email address", i, ct.Email)
		}
	}
	cs.ID = ""
	idx, err := c.Commit(ctx, (&raftstore.Batch{}).Put(keyContacts, MustJSON(cs)))
	if err != nil {
		return ContactsResult{}, err
	}
	return ContactsResult{Contacts: cs, Index: idx}, nil
}

// DeleteContacts removes the vault's contacts and returns them.
func (c *Core) DeleteContacts(ctx context.Context, p Caller) (ContactsResult, error) {
	e, ok := c.Store.Get(keyContacts)
	if !ok {
		return ContactsResult{}, NotFound("ContactsNotFound", "Contacts not found")
	}
	var cs keyvault.Contacts
	json.Unmarshal(e.Value, &cs)
	idx, err := c.Commit(ctx, (&raftstore.Batch{}).Delete(keyContacts))
	if err != nil {
		return ContactsResult{}, err
	}
	return ContactsResult{Contacts: cs, Index: idx}, nil
}
