package vault

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/certvault/certvault/vault/access"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/certs"
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

// keyCreateRequest is the body of POST /keys/{name}/create.
type keyCreateRequest struct {
	Kty        string               `json:"kty"`
	KeySize    int                  `json:"key_size,omitempty"`
	Curve      string               `json:"crv,omitempty"`
	KeyOps     []string             `json:"key_ops,omitempty"`
	Attributes *keyvault.Attributes `json:"attributes,omitempty"`
	Tags       map[string]string    `json:"tags,omitempty"`
}

// keyImportRequest is the body of PUT /keys/{name}.
type keyImportRequest struct {
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

func (n *Node) keyRoutes(rt *router) {
	rt.handle("POST", "/keys/{name}/create", access.KeysWrite, n.handleCreateKey)
	rt.handle("PUT", "/keys/{name}", access.KeysWrite, n.handleImportKey)
	rt.handle("GET", "/keys", access.KeysRead, n.handleListKeys)
	rt.handle("GET", "/keys/{name}", access.KeysRead, n.handleGetKey)
	rt.handle("GET", "/keys/{name}/{version}", access.KeysRead, n.handleGetKey)
	rt.handle("PATCH", "/keys/{name}/{version}", access.KeysWrite, n.handleUpdateKey)
	rt.handle("PATCH", "/keys/{name}", access.KeysWrite, n.handleUpdateKey)
	rt.handle("GET", "/keys/{name}/versions", access.KeysRead, n.handleKeyVersions)
	for _, op := range []string{"sign", "verify", "encrypt", "decrypt", "wrapkey", "unwrapkey"} {
		rt.handle("POST", "/keys/{name}/{version}/"+op, access.KeysCrypto, n.handleKeyOp(op))
		rt.handle("POST", "/keys/{name}/"+op, access.KeysCrypto, n.handleKeyOp(op))
	}
	rt.handle("DELETE", "/keys/{name}", access.KeysDelete, n.handleDeleteObject(kindKeys))
	rt.handle("GET", "/deletedkeys", access.KeysRead, n.handleListDeleted(kindKeys))
	rt.handle("GET", "/deletedkeys/{name}", access.KeysRead, n.handleGetDeleted(kindKeys))
	rt.handle("POST", "/deletedkeys/{name}/recover", access.KeysDelete, n.handleRecover(kindKeys))
	rt.handle("DELETE", "/deletedkeys/{name}", access.KeysDelete, n.handlePurge(kindKeys))
	rt.handle("POST", "/keys/{name}/backup", access.KeysBackup, n.handleBackup(kindKeys))
	rt.handle("POST", "/keys/restore", access.KeysBackup, n.handleRestore(kindKeys))
	rt.handle("POST", "/rng", access.RNG, n.handleRNG)
}

// keyBundle renders a key version. A certificate's managed key is the
// certificate version's public key.
func (n *Node) keyBundle(r *http.Request, name, version string) (keyvault.Key, error) {
	m, _, ok, err := n.loadMeta(kindKeys, name)
	if err != nil || !ok {
		return keyvault.Key{}, orNotFound(err, kindKeys, name, version)
	}
	kid := objectID(r, kindKeys, name, version)
	if m.ManagedBy == kindCertificates {
		v, _, ok, err := n.loadVersion(kindCertificates, name, version)
		if err != nil || !ok {
			return keyvault.Key{}, orNotFound(err, kindKeys, name, version)
		}
		leaf, err := x509.ParseCertificate(v.Chain[0])
		if err != nil {
			return keyvault.Key{}, internalError(err)
		}
		j := jwkFromPublic(kid, leaf.PublicKey, opsFor(leaf.PublicKey))
		if v.HSM {
			j.Kty += "-HSM"
		}
		return keyvault.Key{Key: j, Attributes: n.live(v.Attributes), Tags: v.Tags, Managed: true}, nil
	}
	v, _, ok, err := n.loadVersion(kindKeys, name, version)
	if err != nil || !ok {
		return keyvault.Key{}, orNotFound(err, kindKeys, name, version)
	}
	pub, err := x509.ParsePKIXPublicKey(v.PublicKey)
	if err != nil {
		return keyvault.Key{}, internalError(err)
	}
	j := jwkFromPublic(kid, pub, v.KeyOps)
	if v.HSM {
		j.Kty += "-HSM"
	}
	return keyvault.Key{Key: j, Attributes: n.live(v.Attributes), Tags: v.Tags}, nil
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

// validKeyOps checks requested key operations against what the key type
// can do.
func validKeyOps(ops []string, pub crypto.PublicKey) ([]string, error) {
	allowed := opsFor(pub)
	if len(ops) == 0 {
		return allowed, nil
	}
	for _, op := range ops {
		if !slices.Contains(allowed, op) {
			return nil, badParameter("key_ops %q is not possible with this key type (allowed: %s)", op, strings.Join(allowed, ", "))
		}
	}
	return ops, nil
}

func (n *Node) handleCreateKey(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := validName(kindKeys, name); err != nil {
		n.fail(w, r, err)
		return
	}
	var req keyCreateRequest
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	kp := &keyvault.KeyProperties{KeyType: req.Kty, KeySize: req.KeySize, Curve: req.Curve}
	// Validate through the policy rules, which know sizes and curves.
	p := &keyvault.Policy{KeyProperties: kp, X509Properties: &keyvault.X509Properties{Subject: "CN=key"}}
	if kp.KeyType == "" {
		n.fail(w, r, badParameter("kty is required: RSA, RSA-HSM, EC or EC-HSM"))
		return
	}
	if err := p.Normalize(); err != nil {
		n.fail(w, r, policyError(err))
		return
	}
	key, err := n.generateKey(kp)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	n.storeNewKey(w, r, name, key, req.KeyOps, req.Attributes, req.Tags)
}

// storeNewKey records a new current version of a key.
func (n *Node) storeNewKey(w http.ResponseWriter, r *http.Request, name string, key crypto.Signer, ops []string, attrs *keyvault.Attributes, tags map[string]string) {
	ops, err := validKeyOps(ops, key.Public())
	if err != nil {
		n.fail(w, r, err)
		return
	}
	m, prev, found, err := n.loadMeta(kindKeys, name)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if found && m.Deleted != nil {
		n.fail(w, r, conflictDeleted(kindKeys, name))
		return
	}
	if found && m.ManagedBy != "" {
		n.fail(w, r, forbiddenManaged(kindKeys, name))
		return
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		n.fail(w, r, err)
		return
	}
	privDER, err := encodePrivateKey(key)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	version, err := newVersionID()
	if err != nil {
		n.fail(w, r, err)
		return
	}
	now := time.Now().Unix()
	v := versionMeta{Tags: tags, PublicKey: pubDER, KeyOps: ops, Sealed: true, HSM: isHSMKey(key)}
	applyAttributes(&v.Attributes, attrs)
	v.Attributes.Created, v.Attributes.Updated = now, now
	n.decorate(&v.Attributes)
	if !found {
		m = objectMeta{Created: now}
	}
	m.Current, m.Summary, m.Tags = version, v.Attributes, v.Tags
	b := &raftstore.Batch{}
	putMeta(b, kindKeys, name, m, prev)
	b.Put(verKey(kindKeys, name, version), mustJSON(v))
	if err := putSealed(b, n.barrier.Load(), valKey(kindKeys, name, version), privDER); err != nil {
		n.fail(w, r, err)
		return
	}
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
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

func (n *Node) handleImportKey(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := validName(kindKeys, name); err != nil {
		n.fail(w, r, err)
		return
	}
	var req keyImportRequest
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if req.Key == nil {
		n.fail(w, r, badParameter("key is required: a JSON Web Key with its private members"))
		return
	}
	if req.HSM {
		n.fail(w, r, badParameter("hsm import needs a PKCS#11 seal and module, which this vault is not configured with"))
		return
	}
	key, err := privateFromJWK(req.Key)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	n.storeNewKey(w, r, name, key, req.Key.KeyOps, req.Attributes, req.Tags)
}

// privateFromJWK builds a private key from a JWK with private members.
func privateFromJWK(j *keyvault.JWK) (crypto.Signer, error) {
	switch strings.TrimSuffix(j.Kty, "-HSM") {
	case keyvault.KeyTypeRSA:
		if len(j.N) == 0 || len(j.E) == 0 || len(j.D) == 0 || len(j.P) == 0 || len(j.Q) == 0 {
			return nil, badParameter("an RSA JWK needs n, e, d, p and q")
		}
		e := new(big.Int).SetBytes(j.E)
		if e.BitLen() > 31 {
			return nil, badParameter("the RSA JWK's e is too large (it is 65537, AQAB, in every usual key)")
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(e.Int64())},
			D:         new(big.Int).SetBytes(j.D),
			Primes:    []*big.Int{new(big.Int).SetBytes(j.P), new(big.Int).SetBytes(j.Q)},
		}
		if err := k.Validate(); err != nil {
			return nil, badParameter("the RSA JWK is not a consistent key: %v", err)
		}
		if b := k.N.BitLen(); b != 2048 && b != 3072 && b != 4096 {
			return nil, badParameter("RSA keys must be 2048, 3072 or 4096 bits, not %d", b)
		}
		k.Precompute()
		return k, nil
	case keyvault.KeyTypeEC:
		c, err := certs.Curve(j.Crv)
		if err != nil {
			return nil, badParameter("crv: %v", err)
		}
		if len(j.D) == 0 {
			return nil, badParameter("an EC JWK needs d, the private scalar")
		}
		k, err := ecdsa.ParseRawPrivateKey(c, leftPad(j.D, (c.Params().BitSize+7)/8))
		if err != nil {
			return nil, badParameter("the EC JWK is not a valid key: %v", err)
		}
		if (len(j.X) > 0 || len(j.Y) > 0) && (new(big.Int).SetBytes(j.X).Cmp(k.X) != 0 || new(big.Int).SetBytes(j.Y).Cmp(k.Y) != 0) {
			return nil, badParameter("the EC JWK's x and y do not match d")
		}
		return k, nil
	}
	return nil, badParameter("kty %q: use RSA or EC", j.Kty)
}

func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}

func (n *Node) handleUpdateKey(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	var req struct {
		KeyOps     []string             `json:"key_ops,omitempty"`
		Attributes *keyvault.Attributes `json:"attributes,omitempty"`
		Tags       map[string]string    `json:"tags,omitempty"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	m, version, err := n.resolveVersion(kindKeys, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if m.ManagedBy != "" {
		n.fail(w, r, forbiddenManaged(kindKeys, name))
		return
	}
	v, e, ok, err := n.loadVersion(kindKeys, name, version)
	if err != nil || !ok {
		n.fail(w, r, orNotFound(err, kindKeys, name, version))
		return
	}
	if req.KeyOps != nil {
		pub, _ := x509.ParsePKIXPublicKey(v.PublicKey)
		if v.KeyOps, err = validKeyOps(req.KeyOps, pub); err != nil {
			n.fail(w, r, err)
			return
		}
	}
	applyAttributes(&v.Attributes, req.Attributes)
	if req.Tags != nil {
		v.Tags = req.Tags
	}
	v.Attributes.Updated = nowUnix()
	b := (&raftstore.Batch{}).PutIf(e.Key, mustJSON(v), e.Index)
	if version == m.Current {
		mm, me, _, _ := n.loadMeta(kindKeys, name)
		mm.Summary, mm.Tags = v.Attributes, v.Tags
		putMeta(b, kindKeys, name, mm, me)
	}
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
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

func (n *Node) handleListKeys(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if !n.linearized(w, r) {
		return
	}
	prefix := "meta/" + kindKeys + "/"
	if after != "" {
		after = prefix + after
	}
	entries, last := n.listPage(prefix, after, limit, func(e raftstore.Entry) bool {
		var m objectMeta
		return json.Unmarshal(e.Value, &m) == nil && m.Deleted == nil && m.Current != ""
	})
	type keyItem struct {
		Kid        string              `json:"kid"`
		Attributes keyvault.Attributes `json:"attributes"`
		Tags       map[string]string   `json:"tags,omitempty"`
		Managed    bool                `json:"managed,omitempty"`
	}
	var out []keyItem
	for _, e := range entries {
		var m objectMeta
		json.Unmarshal(e.Value, &m)
		out = append(out, keyItem{Kid: objectID(r, kindKeys, m.displayName(strings.TrimPrefix(e.Key, prefix)), ""), Attributes: n.live(m.Summary), Tags: m.Tags, Managed: m.ManagedBy != ""})
	}
	writePage(w, r, out, strings.TrimPrefix(last, prefix), limit)
}

func (n *Node) handleKeyVersions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, after, err := pageParams(r)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if !n.linearized(w, r) {
		return
	}
	m, _, err := n.resolveVersion(kindKeys, name, "")
	if err != nil {
		n.fail(w, r, err)
		return
	}
	kind := kindKeys
	if m.ManagedBy != "" {
		kind = m.ManagedBy
	}
	prefix := verPrefix(kind, name)
	if after != "" {
		after = prefix + after
	}
	entries, last := n.listPage(prefix, after, limit, func(raftstore.Entry) bool { return true })
	type keyItem struct {
		Kid        string              `json:"kid"`
		Attributes keyvault.Attributes `json:"attributes"`
		Tags       map[string]string   `json:"tags,omitempty"`
		Managed    bool                `json:"managed,omitempty"`
	}
	var out []keyItem
	for _, e := range entries {
		var v versionMeta
		json.Unmarshal(e.Value, &v)
		out = append(out, keyItem{Kid: objectID(r, kindKeys, name, strings.TrimPrefix(e.Key, prefix)), Attributes: n.live(v.Attributes), Tags: v.Tags, Managed: m.ManagedBy != ""})
	}
	writePage(w, r, out, strings.TrimPrefix(last, prefix), limit)
}

// loadPrivateKey returns a key version's private key (a certificate's for
// managed keys) and the operations it permits.
//
// Outside the version's nbf..exp window only operations that use old data
// (verify, decrypt, unwrapKey) are allowed, as Key Vault specifies: new
// signatures, ciphertexts and wrapped keys are refused.
func (n *Node) loadPrivateKey(name, version, op string) (crypto.Signer, []string, string, error) {
	m, version, err := n.resolveVersion(kindKeys, name, version)
	if err != nil {
		return nil, nil, "", err
	}
	kind := kindKeys
	if m.ManagedBy != "" {
		kind = m.ManagedBy
	}
	v, _, ok, err := n.loadVersion(kind, name, version)
	if err != nil || !ok {
		return nil, nil, "", orNotFound(err, kindKeys, name, version)
	}
	if !v.Attributes.IsEnabled() {
		return nil, nil, "", &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "the key is disabled"}
	}
	now := time.Now().Unix()
	producesNew := op == "sign" || op == "encrypt" || op == "wrapkey"
	if producesNew && kind == kindKeys {
		if v.Attributes.Expires != nil && now > *v.Attributes.Expires {
			return nil, nil, "", &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "the key has expired: it may still verify, decrypt and unwrap, but not " + op}
		}
		if v.Attributes.NotBefore != nil && now < *v.Attributes.NotBefore {
			return nil, nil, "", &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "the key is not valid yet (nbf is in the future)"}
		}
	}
	e, ok := n.store.Get(valKey(kind, name, version))
	if !ok {
		return nil, nil, "", &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "this key version holds no private key in the vault"}
	}
	k, err := n.openPrivateKey(e)
	if err != nil {
		return nil, nil, "", err
	}
	ops := v.KeyOps
	if kind == kindCertificates {
		ops = opsFor(k.Public())
	}
	return k, ops, version, nil
}

// signAlgs maps JWS algorithms to hash and padding.
var signAlgs = map[string]struct {
	hash crypto.Hash
	pss  bool
	kty  string
}{
	"RS256": {crypto.SHA256, false, "RSA"}, "RS384": {crypto.SHA384, false, "RSA"}, "RS512": {crypto.SHA512, false, "RSA"},
	"PS256": {crypto.SHA256, true, "RSA"}, "PS384": {crypto.SHA384, true, "RSA"}, "PS512": {crypto.SHA512, true, "RSA"},
	"ES256": {crypto.SHA256, false, "EC"}, "ES384": {crypto.SHA384, false, "EC"}, "ES512": {crypto.SHA512, false, "EC"},
}

func oaepHash(alg string) (crypto.Hash, bool, error) {
	switch alg {
	case "RSA-OAEP":
		return crypto.SHA1, false, nil
	case "RSA-OAEP-256":
		return crypto.SHA256, false, nil
	case "RSA1_5":
		return 0, true, nil
	}
	return 0, false, badParameter("alg %q: use RSA-OAEP, RSA-OAEP-256 or RSA1_5", alg)
}

func (n *Node) handleKeyOp(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, version := r.PathValue("name"), r.PathValue("version")
		var req keyOpRequest
		if err := decodeBody(r, &req); err != nil {
			n.fail(w, r, err)
			return
		}
		if !n.linearized(w, r) {
			return
		}
		key, ops, version, err := n.loadPrivateKey(name, version, op)
		if err != nil {
			n.fail(w, r, err)
			return
		}
		opName := map[string]string{"wrapkey": "wrapKey", "unwrapkey": "unwrapKey"}[op]
		if opName == "" {
			opName = op
		}
		if !slices.Contains(ops, opName) {
			n.fail(w, r, &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: fmt.Sprintf("operation %s is not permitted on this key (key_ops: %s)", opName, strings.Join(ops, ", "))})
			return
		}
		kid := objectID(r, kindKeys, name, version)
		result, err := keyOperation(op, key, req)
		if err != nil {
			n.fail(w, r, err)
			return
		}
		if op == "verify" {
			writeJSON(w, http.StatusOK, map[string]bool{"value": result != nil})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"kid": kid, "value": keyvault.B64URL(result)})
	}
}

// keyOperation runs a cryptographic operation. verify returns a non-nil
// slice when the signature is valid. It works through crypto.Signer and
// crypto.Decrypter only, so software keys and HSM keys (whose private
// part never leaves the token) take the same path.
func keyOperation(op string, key crypto.Signer, req keyOpRequest) ([]byte, error) {
	switch op {
	case "sign", "verify":
		a, ok := signAlgs[req.Alg]
		if !ok {
			return nil, badParameter("alg %q: use RS256/384/512, PS256/384/512 or ES256/384/512", req.Alg)
		}
		digest := req.Value
		if op == "verify" {
			digest = req.Digest
		}
		if len(digest) != a.hash.Size() {
			return nil, badParameter("the digest must be %d bytes for %s, not %d", a.hash.Size(), req.Alg, len(digest))
		}
		switch pub := key.Public().(type) {
		case *rsa.PublicKey:
			if a.kty != "RSA" {
				return nil, badParameter("alg %s needs an EC key", req.Alg)
			}
			var opts crypto.SignerOpts = a.hash
			if a.pss {
				opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: a.hash}
			}
			if op == "sign" {
				sig, err := key.Sign(rand.Reader, digest, opts)
				if err != nil {
					return nil, fmt.Errorf("sign: %w", err)
				}
				return sig, nil
			}
			var err error
			if a.pss {
				err = rsa.VerifyPSS(pub, a.hash, digest, req.Value, nil)
			} else {
				err = rsa.VerifyPKCS1v15(pub, a.hash, digest, req.Value)
			}
			return okSlice(err == nil), nil
		case *ecdsa.PublicKey:
			if a.kty != "EC" {
				return nil, badParameter("alg %s needs an RSA key", req.Alg)
			}
			size := (pub.Curve.Params().BitSize + 7) / 8
			if op == "sign" {
				der, err := key.Sign(rand.Reader, digest, a.hash)
				if err != nil {
					return nil, fmt.Errorf("sign: %w", err)
				}
				var sig struct{ R, S *big.Int }
				if _, err := asn1.Unmarshal(der, &sig); err != nil {
					return nil, fmt.Errorf("sign: parse the ECDSA signature: %w", err)
				}
				// JWS form: r and s, each the curve's size, big-endian.
				return append(sig.R.FillBytes(make([]byte, size)), sig.S.FillBytes(make([]byte, size))...), nil
			}
			if len(req.Value) != 2*size {
				return okSlice(false), nil
			}
			rr, ss := new(big.Int).SetBytes(req.Value[:size]), new(big.Int).SetBytes(req.Value[size:])
			return okSlice(ecdsa.Verify(pub, digest, rr, ss)), nil
		}
	case "encrypt", "wrapkey", "decrypt", "unwrapkey":
		pub, ok := key.Public().(*rsa.PublicKey)
		if !ok {
			return nil, badParameter("%s needs an RSA key", op)
		}
		h, pkcs1, err := oaepHash(req.Alg)
		if err != nil {
			return nil, err
		}
		if op == "encrypt" || op == "wrapkey" {
			if pkcs1 {
				return rsa.EncryptPKCS1v15(rand.Reader, pub, req.Value)
			}
			out, err := rsa.EncryptOAEP(h.New(), rand.Reader, pub, req.Value, nil)
			if err != nil {
				return nil, badParameter("cannot %s: %v", op, err)
			}
			return out, nil
		}
		dec, ok := key.(crypto.Decrypter)
		if !ok {
			return nil, badParameter("this key cannot %s", op)
		}
		var opts crypto.DecrypterOpts = &rsa.OAEPOptions{Hash: h}
		if pkcs1 {
			opts = &rsa.PKCS1v15DecryptOptions{}
		}
		out, err := dec.Decrypt(rand.Reader, req.Value, opts)
		if err != nil {
			if isHSMKey(key) {
				// The HSM says why: a wrong ciphertext, or a mechanism it
				// does not offer (SoftHSM2 does OAEP with SHA-1 only).
				return nil, badParameter("cannot %s with %s in the HSM: %v", op, req.Alg, err)
			}
			return nil, badParameter("cannot %s: the ciphertext does not decrypt with this key and algorithm", op)
		}
		return out, nil
	}
	return nil, errors.New("unknown key operation")
}

func okSlice(ok bool) []byte {
	if ok {
		return []byte{1}
	}
	return nil
}

func (n *Node) handleRNG(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Count int `json:"count"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if req.Count < 1 || req.Count > 128 {
		n.fail(w, r, badParameter("count %d: use 1 to 128", req.Count))
		return
	}
	b := make([]byte, req.Count)
	rand.Read(b)
	writeJSON(w, http.StatusOK, map[string]keyvault.B64URL{"value": b})
}
