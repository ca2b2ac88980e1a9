package v1api

import (
	"net/http"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/front"
	"github.com/certvault/certvault/vault/identity"
)

// The /v1 front of service principals (core/serviceprincipals.go
// decides): applications that authenticate with a client id and a
// secret or a certificate, as Azure applications do.

// servicePrincipalRoutes registers the service principal endpoints.
func (f *Front) servicePrincipalRoutes(vault func(string, string, http.HandlerFunc, ...access.Action)) {
	vault("POST", "/v1/service-principals", f.handleCreateServicePrincipal, access.AccessManage)
	vault("GET", "/v1/service-principals", f.handleListServicePrincipals, access.AccessManage, access.AuditRead)
	vault("GET", "/v1/service-principals/{name}", f.handleGetServicePrincipal, access.AccessManage, access.AuditRead)
	vault("DELETE", "/v1/service-principals/{name}", f.handleDeleteServicePrincipal, access.AccessManage)
	vault("PATCH", "/v1/service-principals/{name}", f.handleUpdateServicePrincipal, access.AccessManage)
	vault("POST", "/v1/service-principals/{name}/secret", f.handleRotateServicePrincipalSecret, access.AccessManage)
}

func (f *Front) handleCreateServicePrincipal(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name  string `json:"name"`
		Role  string `json:"role"`
		Scope string `json:"scope"`
		// Certificate is PEM: the certificate(s) whose key signs the
		// client assertions; without it the principal gets a secret.
		Certificate string `json:"certificate"`
		// AgentGroups may get tokens of the principal for the
		// applications on their machines.
		AgentGroups []string `json:"agent_groups"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.CreateServicePrincipal(r.Context(), front.CallerOf(r), identity.CreateServicePrincipalRequest{Name: req.Name, Role: req.Role, Scope: req.Scope, CertPEM: []byte(req.Certificate), AgentGroups: req.AgentGroups})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.InfoOf(r).Object = "/service-principals/" + res.Name
	front.WriteJSON(w, http.StatusCreated, res)
}

func (f *Front) handleListServicePrincipals(w http.ResponseWriter, r *http.Request) {
	if !f.Linearized(w, r) {
		return
	}
	out, err := f.ListServicePrincipals(r.Context(), front.CallerOf(r))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (f *Front) handleGetServicePrincipal(w http.ResponseWriter, r *http.Request) {
	if !f.Linearized(w, r) {
		return
	}
	sp, err := f.GetServicePrincipal(r.Context(), front.CallerOf(r), r.PathValue("name"))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, sp)
}

func (f *Front) handleDeleteServicePrincipal(w http.ResponseWriter, r *http.Request) {
	idx, err := f.DeleteServicePrincipal(r.Context(), front.CallerOf(r), r.PathValue("name"))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, idx)
	w.WriteHeader(http.StatusNoContent)
}

// handleUpdateServicePrincipal changes what may be changed of a service
// principal: the agent groups that may get its tokens.
func (f *Front) handleUpdateServicePrincipal(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AgentGroups *[]string `json:"agent_groups"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	if req.AgentGroups == nil {
		f.Fail(w, r, core.BadParameter("agent_groups", "nothing to change: give agent_groups (a list, [] for none)"))
		return
	}
	sp, idx, err := f.SetServicePrincipalAgentGroups(r.Context(), front.CallerOf(r), r.PathValue("name"), *req.AgentGroups)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, idx)
	front.InfoOf(r).Object = "/service-principals/" + sp.Name
	front.WriteJSON(w, http.StatusOK, sp)
}

func (f *Front) handleRotateServicePrincipalSecret(w http.ResponseWriter, r *http.Request) {
	res, err := f.RotateServicePrincipalSecret(r.Context(), front.CallerOf(r), r.PathValue("name"))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.InfoOf(r).Object = "/service-principals/" + res.Name
	front.WriteJSON(w, http.StatusOK, res)
}
