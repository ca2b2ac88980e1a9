package vault

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"math/big"
	"net/http"

	"github.com/certvault/certvault/vault/keyvault"
)

// jwkFromPublic renders a public key as Key Vault's JSON Web Key.
func jwkFromPublic(kid string, pub crypto.PublicKey, ops []string) keyvault.JWK {
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

var (
	rsaOps = []string{"sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey"}
	ecOps  = []string{"sign", "verify"}
)

func opsFor(pub crypto.PublicKey) []string {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return rsaOps
	}
	return ecOps
}

// keyBundle renders a key version. A certificate's managed key is the
// certificate version's public key.
func (n *Node) keyBundle(r *http.Request, name, version string) (keyvault.Key, error) {
	m, _, ok, err := n.loadMeta(kindKeys, name)
	if err != nil || !ok {
		return keyvault.Key{}, orNotFound(err, kindKeys, name, version)
	}
	if m.ManagedBy == kindCertificates {
		v, _, ok, err := n.loadVersion(kindCertificates, name, version)
		if err != nil || !ok {
			return keyvault.Key{}, orNotFound(err, kindKeys, name, version)
		}
		leaf, err := x509.ParseCertificate(v.Chain[0])
		if err != nil {
			return keyvault.Key{}, internalError(err)
		}
		kid := objectID(r, kindKeys, name, version)
		return keyvault.Key{Key: jwkFromPublic(kid, leaf.PublicKey, opsFor(leaf.PublicKey)), Attributes: v.Attributes, Tags: v.Tags, Managed: true}, nil
	}
	return keyvault.Key{}, objNotFound(kindKeys, name, version)
}

func (n *Node) keyRoutes(rt *router) {
	rt.handle("GET", "/keys/{name}", n.handleGetKey)
	rt.handle("GET", "/keys/{name}/{version}", n.handleGetKey)
}

func (n *Node) handleGetKey(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if !n.linearized(w, r) {
		return
	}
	_, version, err := n.resolveVersion(kindKeys, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	k, err := n.keyBundle(r, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, k)
}
