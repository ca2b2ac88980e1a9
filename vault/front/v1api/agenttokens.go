package v1api

import (
	"net/http"
	"time"

	"github.com/certvault/certvault/vault/front"
	"github.com/certvault/certvault/vault/identity"
)

// handleAgentToken gives an agent an access token for an application on
// its machine (the agent's managed-identity endpoint): of the agent's own
// identity, or of a service principal its group may act as.
func (f *Front) handleAgentToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Resource         string `json:"resource"`
		ServicePrincipal string `json:"service_principal"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	c := front.CallerOf(r)
	tok, err := f.AgentToken(r.Context(), c, identity.AgentTokenRequest{ServicePrincipal: req.ServicePrincipal, Resource: req.Resource,
		Hosts: f.VaultHosts, Issuer: front.Authority(r, f.TenantID()) + "/v2.0"})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	if req.ServicePrincipal != "" {
		front.InfoOf(r).Object = "/service-principals/" + req.ServicePrincipal
	}
	w.Header().Set("Cache-Control", "no-store")
	now := time.Now()
	front.WriteJSON(w, http.StatusOK, map[string]any{
		"access_token": tok.AccessToken,
		"token_type":   "Bearer",
		"expires_on":   tok.ExpiresOn.Unix(),
		"expires_in":   tok.ExpiresIn(now),
		"resource":     req.Resource,
		"principal":    tok.Principal,
	})
}
