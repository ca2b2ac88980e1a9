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

// routes registers the front's endpoints through the node's gate: vault
// for those that need a permission, public for those that take no
// token, add for the rest (their Endpoint says who may call them).
func (n *Front) Routes(vault func(string, string, http.HandlerFunc, ...access.Action), public func(string, string, http.HandlerFunc), add func(front.Endpoint, http.Handler)) {
	public("GET", "/v1/pki/{issuer}/crl", n.handleCRL)

	vault("POST", "/v1/events/subscriptions", n.handleSubscribe, access.EventsWrite)
	vault("GET", "/v1/events/subscriptions", n.handleListSubscriptions, access.EventsRead)
	vault("DELETE", "/v1/events/subscriptions/{id}", n.handleUnsubscribe, access.EventsWrite)
	vault("GET", "/v1/events/deliveries", n.handleDeliveries, access.EventsRead)

	vault("GET", "/v1/sys/settings", n.handleGetSettings, access.SettingsRead)
	vault("PATCH", "/v1/sys/settings", n.handleSetSettings, access.SettingsWrite)
	add(front.Endpoint{Method: "POST", Pattern: "/v1/certificates/{name}/revoke", Actions: []access.Action{access.CertificatesWrite}},
		n.Guard(front.ObjectResource(core.KindCertificates), n.handleRevoke, access.CertificatesWrite))
	vault("GET", "/v1/report", n.handleReport, access.AuditRead)

	n.accessRoutes(vault)
	n.agentRoutes(vault, public, add)
	n.rolloutRoutes(vault, add)
}

// handleCRL serves the issuer's CRL, signed at request time, to anyone:
// relying parties fetch it without credentials.
func (n *Front) handleCRL(w http.ResponseWriter, r *http.Request) {
	crl, err := n.IssuerCRL(r.Context(), r.PathValue("issuer"))
	if err != nil {
		n.Fail(w, r, err)
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

func (n *Front) handleGetSettings(w http.ResponseWriter, r *http.Request) {
	if !n.Linearized(w, r) {
		return
	}
	s, err := n.GetSettings(r.Context(), front.CallerOf(r))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, s)
}

func (n *Front) handleSetSettings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		PurgeProtection *bool   `json:"purge_protection"`
		RetentionDays   *int    `json:"retention_days"`
		PublicURL       *string `json:"public_url"`
		NearExpiry      *string `json:"near_expiry"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.UpdateSettings(r.Context(), front.CallerOf(r), core.UpdateSettingsRequest{
		PurgeProtection: req.PurgeProtection, RetentionDays: req.RetentionDays, PublicURL: req.PublicURL, NearExpiry: req.NearExpiry})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusOK, res.Settings)
}

// handleRevoke puts a certificate version's serial on its issuer's CRL.
func (n *Front) handleRevoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req struct {
		Version string `json:"version"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.RevokeCertificate(r.Context(), front.CallerOf(r), issuance.RevokeCertificateRequest{Name: name, Version: req.Version})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.WriteJSON(w, http.StatusOK, map[string]any{"revoked": true, "serial": serial.Format(res.Serial), "issuer": res.Issuer, "version": res.Version})
}
