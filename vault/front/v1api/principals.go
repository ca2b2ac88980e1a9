package v1api

import (
	"net/http"

	"github.com/certvault/certvault/vault/front"
	"github.com/certvault/certvault/vault/identity"

	"github.com/certvault/certvault/vault/access"
)

// The /v1 front of principals: tokens, roles and role assignments
// (core/principals.go decides).

// accessRoutes registers tokens, roles and assignments.
func (f *Front) accessRoutes(vault func(string, string, http.HandlerFunc, ...access.Action)) {
	vault("POST", "/v1/tokens", f.handleCreateToken, access.AccessManage)
	vault("GET", "/v1/tokens", f.handleListTokens, access.AccessManage, access.AuditRead)
	vault("DELETE", "/v1/tokens/{id}", f.handleRevokeToken, access.AccessManage)
	vault("GET", "/v1/auth/self", f.handleSelf)
	vault("GET", "/v1/roles", f.handleListRoles)
	vault("GET", "/v1/roles/assignments", f.handleListAssignments, access.AccessManage, access.AuditRead)
	vault("POST", "/v1/roles/assignments", f.handleAssign, access.AccessManage)
	vault("DELETE", "/v1/roles/assignments/{id}", f.handleUnassign, access.AccessManage)
}

func (f *Front) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name  string `json:"name"`
		TTL   string `json:"ttl"`
		Role  string `json:"role"`
		Scope string `json:"scope"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.CreateToken(r.Context(), front.CallerOf(r), identity.CreateTokenRequest{Name: req.Name, TTL: req.TTL, Role: req.Role, Scope: req.Scope})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.InfoOf(r).Object = "/tokens/" + res.Token.ID
	front.WriteJSON(w, http.StatusCreated, res.Token)
}

func (f *Front) handleListTokens(w http.ResponseWriter, r *http.Request) {
	if !f.Linearized(w, r) {
		return
	}
	out, err := f.ListTokens(r.Context(), front.CallerOf(r), identity.ListTokensRequest{Name: r.URL.Query().Get("name")})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (f *Front) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	idx, err := f.RevokeToken(r.Context(), front.CallerOf(r), r.PathValue("id"))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, idx)
	w.WriteHeader(http.StatusNoContent)
}

func (f *Front) handleListRoles(w http.ResponseWriter, r *http.Request) {
	roles, err := f.ListRoles(r.Context(), front.CallerOf(r))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": roles})
}

func (f *Front) handleListAssignments(w http.ResponseWriter, r *http.Request) {
	if !f.Linearized(w, r) {
		return
	}
	q := r.URL.Query()
	out, err := f.ListAssignments(r.Context(), front.CallerOf(r), identity.ListAssignmentsRequest{Assignee: q.Get("assignee"), Role: q.Get("role")})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (f *Front) handleAssign(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Role     string `json:"role"`
		Assignee string `json:"assignee"`
		Scope    string `json:"scope"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.Assign(r.Context(), front.CallerOf(r), identity.AssignRequest{Role: req.Role, Assignee: req.Assignee, Scope: req.Scope})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	front.InfoOf(r).Object = "/roles/assignments/" + res.Assignment.ID
	front.WriteJSON(w, http.StatusCreated, res.Assignment)
}

func (f *Front) handleUnassign(w http.ResponseWriter, r *http.Request) {
	idx, err := f.Unassign(r.Context(), front.CallerOf(r), r.PathValue("id"))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, idx)
	w.WriteHeader(http.StatusNoContent)
}

func (f *Front) handleSelf(w http.ResponseWriter, r *http.Request) {
	s, err := f.Self(r.Context(), front.CallerOf(r))
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, s)
}
