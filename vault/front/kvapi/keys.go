package kvapi

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"math/big"
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/vault/access"
)

// The Key Vault front of keys: it reads requests, calls core/keys.go and
// renders keys as JSON Web Keys.

// JwkFromPublic renders a public key as Key Vault's JSON Web Key.
func JwkFromPublic(kid string, pub crypto.PublicKey, ops []string) keyvault.JWK {
	j := keyvault.JWK{Kid: kid, KeyOps: ops}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		j.Kty = keyvault.KeyTypeRSA
		j.N = k.N.Bytes()
		j.E = big.NewInt(int64(k.E)).Bytes()
	case *ecdsa.PublicKey:
		j.Kty = keyvault.KeyTypeEC
		j.Crv = k.Curve.Params().Name
		size := (k.Curve.Params().BitSize + 7) / 8
		j.X = k.X.FillBytes(make([]byte, size))
		j.Y = k.Y.FillBytes(make([]byte, size))
	}
	return j
}

// keyCreateRequest is the body of POST /keys/{name}/create.
type keyCreateRequest struct {
	Kty        string               `json:"kty"`
	KeySize    int                  `json:"key_size,omitempty"`
	Curve      string               `json:"crv,omitempty"`
	KeyOps     []string             `json:"key_ops,omitempty"`
	Attributes *keyvault.Attributes `json:"attributes,omitempty"`
	Tags       map[string]string    `json:"tags,omitempty"`
}

// KeyImportRequest is the body of PUT /keys/{name}.
type KeyImportRequest struct {
	Key        *keyvault.JWK        `json:"key"`
	HSM        bool                 `json:"hsm,omitempty"`
	Attributes *keyvault.Attributes `json:"attributes,omitempty"`
	Tags       map[string]string    `json:"tags,omitempty"`
}

// keyOpRequest is the body of sign, verify, encrypt, decrypt, wrapkey and
// unwrapkey.
type keyOpRequest struct {
	Alg    string          `json:"alg"`
	Value  keyvault.B64URL `json:"value"`
	Digest keyvault.B64URL `json:"digest,omitempty"`
}

func (f *Front) keyRoutes(rt *front.Router) {
	rt.Handle("POST", "/keys/{name}/create", access.KeysWrite, f.handleCreateKey)
	rt.Handle("PUT", "/keys/{name}", access.KeysWrite, f.handleImportKey)
	rt.Handle("GET", "/keys", access.KeysRead, listHandler(f, core.KindKeys, false, keyItems))
	rt.Handle("GET", "/keys/{name}", access.KeysRead, f.handleGetKey)
	rt.Handle("GET", "/keys/{name}/{version}", access.KeysRead, f.handleGetKey)
	rt.Handle("PATCH", "/keys/{name}/{version}", access.KeysWrite, f.handleUpdateKey)
	rt.Handle("PATCH", "/keys/{name}", access.KeysWrite, f.handleUpdateKey)
	rt.Handle("GET", "/keys/{name}/versions", access.KeysRead, listHandler(f, core.KindKeys, true, keyItems))
	for _, op := range []string{"sign", "verify", "encrypt", "decrypt", "wrapkey", "unwrapkey"} {
		rt.Handle("POST", "/keys/{name}/{version}/"+op, access.KeysCrypto, f.handleKeyOp(op))
		rt.Handle("POST", "/keys/{name}/"+op, access.KeysCrypto, f.handleKeyOp(op))
	}
	rt.Handle("DELETE", "/keys/{name}", access.KeysDelete, f.handleDeleteObject(core.KindKeys))
	rt.Handle("GET", "/deletedkeys", access.KeysRead, f.handleListDeleted(core.KindKeys))
	rt.Handle("GET", "/deletedkeys/{name}", access.KeysRead, f.handleGetDeleted(core.KindKeys))
	rt.Handle("POST", "/deletedkeys/{name}/recover", access.KeysDelete, f.handleRecover(core.KindKeys))
	rt.Handle("DELETE", "/deletedkeys/{name}", access.KeysDelete, f.handlePurge(core.KindKeys))
	rt.Handle("POST", "/keys/{name}/backup", access.KeysBackup, f.handleBackup(core.KindKeys))
	rt.Handle("POST", "/keys/restore", access.KeysBackup, f.handleRestore(core.KindKeys))
	rt.Handle("POST", "/rng", access.RNG, f.handleRNG)
}

// keyBundle renders a key version in Key Vault's shape.
func keyBundle(r *http.Request, k core.KeyVersion) keyvault.Key {
	j := JwkFromPublic(objectID(r, core.KindKeys, k.Name, k.Version), k.Public, k.KeyOps)
	if k.HSM {
		j.Kty += "-HSM"
	}
	return keyvault.Key{Key: j, Attributes: k.Attributes, Tags: k.Tags, Managed: k.Managed}
}

// writeKey answers a key version, with its write's index when it wrote.
func writeKey(w http.ResponseWriter, r *http.Request, k core.KeyVersion) {
	front.SetIndexHeader(w, k.Index)
	front.WriteJSON(w, http.StatusOK, keyBundle(r, k))
}

func (f *Front) handleGetKey(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if !f.Linearized(w, r) {
		return
	}
	k, err := f.GetKey(r.Context(), front.CallerOf(r), core.GetKeyRequest{Name: name, Version: version})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeKey(w, r, k)
}

func (f *Front) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	// The name is checked before the body is read.
	if err := core.ValidName(core.KindKeys, name); err != nil {
		f.Fail(w, r, err)
		return
	}
	var req keyCreateRequest
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	k, err := f.CreateKey(r.Context(), front.CallerOf(r), core.CreateKeyRequest{Name: name, KeyType: req.Kty, KeySize: req.KeySize, Curve: req.Curve,
		KeyOps: req.KeyOps, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeKey(w, r, k)
}

func (f *Front) handleImportKey(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	// The name is checked before the body is read.
	if err := core.ValidName(core.KindKeys, name); err != nil {
		f.Fail(w, r, err)
		return
	}
	var req KeyImportRequest
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	k, err := f.ImportKey(r.Context(), front.CallerOf(r), core.ImportKeyRequest{Name: name, Key: req.Key, HSM: req.HSM, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeKey(w, r, k)
}

// PrivateFromJWK is keyFromJWK with the Key Vault front's errors.
func PrivateFromJWK(j *keyvault.JWK) (crypto.Signer, error) {
	k, err := core.KeyFromJWK(j)
	return k, apiError(err)
}

func (f *Front) handleUpdateKey(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	var req struct {
		KeyOps     []string             `json:"key_ops,omitempty"`
		Attributes *keyvault.Attributes `json:"attributes,omitempty"`
		Tags       map[string]string    `json:"tags,omitempty"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	k, err := f.UpdateKey(r.Context(), front.CallerOf(r), core.UpdateKeyRequest{Name: name, Version: version, KeyOps: req.KeyOps, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	writeKey(w, r, k)
}

// keyItem is an entry of the list of keys or of a key's versions.
type keyItem struct {
	Kid        string              `json:"kid"`
	Attributes keyvault.Attributes `json:"attributes"`
	Tags       map[string]string   `json:"tags,omitempty"`
	Managed    bool                `json:"managed,omitempty"`
}

// keyItems renders list items of keys or of a key's versions.
func keyItems(r *http.Request, items []core.ObjectItem) []keyItem {
	var out []keyItem
	for _, it := range items {
		out = append(out, keyItem{Kid: objectID(r, core.KindKeys, it.Name, it.Version), Attributes: it.Attributes, Tags: it.Tags, Managed: it.Managed})
	}
	return out
}

func (f *Front) handleKeyOp(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, version := r.PathValue("name"), r.PathValue("version")
		var req keyOpRequest
		if err := front.DecodeBody(r, &req); err != nil {
			f.Fail(w, r, err)
			return
		}
		if !f.Linearized(w, r) {
			return
		}
		res, err := f.KeyOperation(r.Context(), front.CallerOf(r), core.KeyOperationRequest{Name: name, Version: version, Op: op,
			Alg: req.Alg, Value: req.Value, Digest: req.Digest})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		if op == "verify" {
			front.WriteJSON(w, http.StatusOK, map[string]bool{"value": res.Valid})
			return
		}
		front.WriteJSON(w, http.StatusOK, map[string]any{"kid": objectID(r, core.KindKeys, name, res.Version), "value": keyvault.B64URL(res.Value)})
	}
}

func (f *Front) handleRNG(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Count int `json:"count"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	b, err := f.RandomBytes(r.Context(), front.CallerOf(r), req.Count)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]keyvault.B64URL{"value": b})
}
