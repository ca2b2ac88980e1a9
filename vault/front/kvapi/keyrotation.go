package kvapi

import (
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/vault/access"
)

// The Key Vault front of key rotation (core/keyrotation.go).

func (n *Front) keyRotationRoutes(rt *front.Router) {
	rt.Handle("POST", "/keys/{name}/rotate", access.KeysWrite, n.handleRotateKey)
	rt.Handle("GET", "/keys/{name}/rotationpolicy", access.KeysRead, n.handleGetRotationPolicy)
	rt.Handle("PUT", "/keys/{name}/rotationpolicy", access.KeysWrite, n.handleSetRotationPolicy)
}

// handleRotateKey makes a new version of a key with the same type, size
// or curve and operations as the current one.
func (n *Front) handleRotateKey(w http.ResponseWriter, r *http.Request) {
	k, err := n.RotateKey(r.Context(), front.CallerOf(r), core.RotateKeyRequest{Name: r.PathValue("name")})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writeKey(w, r, k)
}

// rotationPolicyID is the id of a key's rotation policy.
func rotationPolicyID(r *http.Request, name string) string {
	return objectID(r, core.KindKeys, name, "") + "/rotationpolicy"
}

func (n *Front) handleGetRotationPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !n.Linearized(w, r) {
		return
	}
	p, err := n.GetKeyRotationPolicy(r.Context(), front.CallerOf(r), core.KeyRotationPolicyRequest{Name: name})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	p.ID = rotationPolicyID(r, name)
	front.WriteJSON(w, http.StatusOK, p)
}

func (n *Front) handleSetRotationPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var p core.RotationPolicy
	if err := front.DecodeBody(r, &p); err != nil {
		n.Fail(w, r, err)
		return
	}
	res, err := n.SetKeyRotationPolicy(r.Context(), front.CallerOf(r), core.SetKeyRotationPolicyRequest{Name: name, Policy: p})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	res.Policy.ID = rotationPolicyID(r, name)
	front.WriteJSON(w, http.StatusOK, res.Policy)
}
