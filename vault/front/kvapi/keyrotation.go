package kvapi

import (
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/vault/access"
)

// The Key Vault front of key rotation (core/keyrotation.go).

func (f *Front) keyRotationRoutes(rt *front.Router) {
	rt.Handle("POST", "/keys/{name}/rotate", access.KeysWrite, f.handleRotateKey)
	rt.Handle("GET", "/keys/{name}/rotationpolicy", access.KeysRead, f.handleGetRotationPolicy)
	rt.Handle("PUT", "/keys/{name}/rotationpolicy", access.KeysWrite, f.handleSetRotationPolicy)
}

// handleRotateKey makes a new version of a key with the same type, size
// or curve and operations as the current one.
func (f *Front) handleRotateKey(w http.ResponseWriter, r *http.Request) {
	k, err := f.RotateKey(r.Context(), front.CallerOf(r), core.RotateKeyRequest{Name: r.PathValue("name")})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeKey(w, r, k)
}

// rotationPolicyID is the id of a key's rotation policy.
func rotationPolicyID(r *http.Request, name string) string {
	return objectID(r, core.KindKeys, name, "") + "/rotationpolicy"
}

func (f *Front) handleGetRotationPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !f.Linearized(w, r) {
		return
	}
	p, err := f.GetKeyRotationPolicy(r.Context(), front.CallerOf(r), core.KeyRotationPolicyRequest{Name: name})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	p.ID = rotationPolicyID(r, name)
	front.WriteJSON(w, http.StatusOK, p)
}

func (f *Front) handleSetRotationPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var p core.RotationPolicy
	if err := front.DecodeBody(r, &p); err != nil {
		f.Fail(w, r, err)
		return
	}
	res, err := f.SetKeyRotationPolicy(r.Context(), front.CallerOf(r), core.SetKeyRotationPolicyRequest{Name: name, Policy: p})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, res.Index)
	res.Policy.ID = rotationPolicyID(r, name)
	front.WriteJSON(w, http.StatusOK, res.Policy)
}
