package v1api

import (
	"encoding/pem"
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/internal/serial"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/issuance"
)

// Front is certvault's own /v1 API beside the Key Vault dialect:
// agents and their bindings, rollouts, access (tokens and role
// assignments), events, the evidence report and certificate revocation.
type Front struct {
	*front.Env
}

// Routes registers the front's endpoints through the node's gate: vault
// for those that need a permission, public for those that take no
// token, add for the rest (their Endpoint says who may call them).
func (f *Front) Routes(vault func(string, string, http.HandlerFunc, ...access.Action), public func(string, string, http.HandlerFunc), add func(front.Endpoint, http.Handler)) {
	public("GET", "/v1/pki/{issuer}/crl", f.handleCRL)

	vault("POST", "/v1/events/subscriptions", f.handleSubscribe, access.EventsWrite)
	vault("GET", "/v1/events/subscriptions", f.handleListSubscriptions, access.EventsRead)
	vault("DELETE", "/v1/events/subscriptions/{id}", f.handleUnsubscribe, access.EventsWrite)
	vault("GET", "/v1/events/deliveries", f.handleDeliveries, access.EventsRead)

	vault("GET", "/v1/sys/settings", f.handleGetSettings, access.SettingsRead)
	vault("PATCH", "/v1/sys/settings", f.handleSetSettings, access.SettingsWrite)
	add(front.Endpoint{Method: "POST", Pattern: "/v1/certificates/{name}/revoke", Actions: []access.Action{access.CertificatesWrite}},
		f.Guard(front.ObjectResource(core.KindCertificates), f.handleRevoke, access.CertificatesWrite))
	vault("GET", "/v1/report", f.handleReport, access.AuditRead)

	f.accessRoutes(vault)
	f.servicePrincipalRoutes(vault)
	f.agentRoutes(vault, public, add)
	f.rolloutRoutes(vault, add)
	f.retentionRoutes(add)
}

// handleCRL serves the issuer's CRL, signed at request time, to anyone:
// relying parties fetch it without credentials.
func (f *Front) handleCRL(w http.ResponseWriter, r *http.Request) {
	crl, err := f.IssuerCRL(r.Context(), r.PathValue("issuer"))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	if r.URL.Query().Get("format") == "pem" {
		w.Header().Set("Content-Type", "application/x-pem-file")
		pem.Encode(w, &pem.Block{Type: "X509 CRL", Bytes: crl})
		return
	}
	w.Header().Set("Content-Type", "application/pkix-crl")
	w.Write(crl)
}

func (f *Front) handleGetSettings(w http.ResponseWriter, r *http.Request) {
	if !f.Linearized(w, r) {
		return
	}
	s, err := f.GetSettings(r.Context(), front.CallerOf(r))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, s)
}

func (f *Front) handleSetSettings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PurgeProtection *bool   `json:"purge_protection"`
		RetentionDays   *int    `json:"retention_days"`
		PublicURL       *string `json:"public_url"`
		NearExpiry      *string `json:"near_expiry"`
		// Version retention (issue 20).
		RetainVersions    *int `json:"retain_versions"`
		RetainExpiredDays *int `json:"retain_expired_days"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.UpdateSettings(r.Context(), front.CallerOf(r), core.UpdateSettingsRequest{
		PurgeProtection: req.PurgeProtection, RetentionDays: req.RetentionDays, PublicURL: req.PublicURL, NearExpiry: req.NearExpiry,
		RetainVersions: req.RetainVersions, RetainExpiredDays: req.RetainExpiredDays})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusOK, res.Settings)
}

// handleRevoke puts a certificate version's serial on its issuer's CRL.
func (f *Front) handleRevoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req struct {
		Version string `json:"version"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.RevokeCertificate(r.Context(), front.CallerOf(r), issuance.RevokeCertificateRequest{Name: name, Version: req.Version})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusOK, map[string]any{"revoked": true, "serial": serial.Format(res.Serial), "issuer": res.Issuer, "version": res.Version})
}
