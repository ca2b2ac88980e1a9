package v1api

import (
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/vault/access"
)

// The /v1 front of principals: tokens, roles and role assignments
// (core/principals.go decides).

// accessRoutes registers tokens, roles and assignments.
func (n *Front) accessRoutes(vault func(string, string, http.HandlerFunc, ...access.Action)) {
	vault("POST", "/v1/tokens", n.handleCreateToken, access.AccessManage)
	vault("GET", "/v1/tokens", n.handleListTokens, access.AccessManage, access.AuditRead)
	vault("DELETE", "/v1/tokens/{id}", n.handleRevokeToken, access.AccessManage)
	vault("GET", "/v1/auth/self", n.handleSelf)
	vault("GET", "/v1/roles", n.handleListRoles)
	vault("GET", "/v1/roles/assignments", n.handleListAssignments, access.AccessManage, access.AuditRead)
	vault("POST", "/v1/roles/assignments", n.handleAssign, access.AccessManage)
	vault("DELETE", "/v1/roles/assignments/{id}", n.handleUnassign, access.AccessManage)
}

func (n *Front) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name  string `json:"name"`
		TTL   string `json:"ttl"`
		Role  string `json:"role"`
		Scope string `json:"scope"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.CreateToken(r.Context(), front.CallerOf(r), core.CreateTokenRequest{Name: req.Name, TTL: req.TTL, Role: req.Role, Scope: req.Scope})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.InfoOf(r).Object = "/tokens/" + res.Token.ID
	front.WriteJSON(w, http.StatusCreated, res.Token)
}

func (n *Front) handleListTokens(w http.ResponseWriter, r *http.Request) {
	if !n.Linearized(w, r) {
		return
	}
	out, err := n.ListTokens(r.Context(), front.CallerOf(r), core.ListTokensRequest{Name: r.URL.Query().Get("name")})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (n *Front) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	idx, err := n.RevokeToken(r.Context(), front.CallerOf(r), r.PathValue("id"))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, idx)
	w.WriteHeader(http.StatusNoContent)
}

func (n *Front) handleListRoles(w http.ResponseWriter, r *http.Request) {
	roles, err := n.ListRoles(r.Context(), front.CallerOf(r))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": roles})
}

func (n *Front) handleListAssignments(w http.ResponseWriter, r *http.Request) {
	if !n.Linearized(w, r) {
		return
	}
	q := r.URL.Query()
	out, err := n.ListAssignments(r.Context(), front.CallerOf(r), core.ListAssignmentsRequest{Assignee: q.Get("assignee"), Role: q.Get("role")})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (n *Front) handleAssign(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Role     string `json:"role"`
		Assignee string `json:"assignee"`
		Scope    string `json:"scope"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.Assign(r.Context(), front.CallerOf(r), core.AssignRequest{Role: req.Role, Assignee: req.Assignee, Scope: req.Scope})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.InfoOf(r).Object = "/roles/assignments/" + res.Assignment.ID
	front.WriteJSON(w, http.StatusCreated, res.Assignment)
}

func (n *Front) handleUnassign(w http.ResponseWriter, r *http.Request) {
	idx, err := n.Unassign(r.Context(), front.CallerOf(r), r.PathValue("id"))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, idx)
	w.WriteHeader(http.StatusNoContent)
}

func (n *Front) handleSelf(w http.ResponseWriter, r *http.Request) {
	s, err := n.Self(r.Context(), front.CallerOf(r))
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, s)
}
