package core

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/certs"
)

// Keys in the domain core: create, import, rotate (keyrotation.go),
// get, update, and the cryptographic operations. Listing is ListObjects
// and ListVersions (objects.go), the lifecycle is
// lifecycle.go's. A certificate's managed key is the certificate
// version's key: it can be read and used, not written.

var (
	rsaOps = []string{"sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey"}
	ECOps  = []string{"sign", "verify"}
)

func opsFor(pub crypto.PublicKey) []string {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return rsaOps
	}
	return ECOps
}

// KeyVersion is one version of a key as the core returns it: its public
// part, never the private one.
type KeyVersion struct {
	// Name is the key's name as the request gave it.
	Name    string
	Version string
	// Public is an *rsa.PublicKey or an *ecdsa.PublicKey.
	Public crypto.PublicKey
	// HSM says the private key lives in the HSM (key type RSA-HSM or
	// EC-HSM).
	HSM bool
	// KeyOps are the operations the version permits.
	KeyOps []string
	// Attributes carry the vault's current recovery settings.
	Attributes keyvault.Attributes
	Tags       map[string]string
	// Managed says the key is a certificate's.
	Managed bool
	// Index is the raft index of the write (0 for reads).
	Index uint64
}

// KeyVersion reads a version of a key (a certificate's for a managed
// key); the version must be given (resolveVersion).
func (c *Core) KeyVersion(name, version string) (KeyVersion, error) {
	m, _, ok, err := c.LoadMeta(KindKeys, name)
	if err != nil || !ok {
		return KeyVersion{}, OrObjectNotFound(err, KindKeys, name, version)
	}
	if m.ManagedBy == KindCertificates {
		v, _, ok, err := c.LoadVersion(KindCertificates, name, version)
		if err != nil || !ok {
			return KeyVersion{}, OrObjectNotFound(err, KindKeys, name, version)
		}
		leaf, err := x509.ParseCertificate(v.Chain[0])
		if err != nil {
			return KeyVersion{}, Internal(err)
		}
		return KeyVersion{Name: name, Version: version, Public: leaf.PublicKey, HSM: v.HSM, KeyOps: opsFor(leaf.PublicKey),
			Attributes: c.Live(v.Attributes), Tags: v.Tags, Managed: true}, nil
	}
	v, _, ok, err := c.LoadVersion(KindKeys, name, version)
	if err != nil || !ok {
		return KeyVersion{}, OrObjectNotFound(err, KindKeys, name, version)
	}
	return c.keyVersionOf(name, version, v)
}

// keyVersionOf is the core's answer for version v of a key of its own.
func (c *Core) keyVersionOf(name, version string, v VersionMeta) (KeyVersion, error) {
	pub, err := x509.ParsePKIXPublicKey(v.PublicKey)
	if err != nil {
		return KeyVersion{}, Internal(err)
	}
	return KeyVersion{Name: name, Version: version, Public: pub, HSM: v.HSM, KeyOps: v.KeyOps,
		Attributes: c.Live(v.Attributes), Tags: v.Tags}, nil
}

// GetKeyRequest reads a version of a key ("": the current one).
type GetKeyRequest struct {
	Name, Version string
}

// GetKey returns a version of a key, or errObjectNotFound.
func (c *Core) GetKey(ctx context.Context, p Caller, req GetKeyRequest) (KeyVersion, error) {
	_, version, err := c.ResolveVersion(KindKeys, req.Name, req.Version)
	if err != nil {
		return KeyVersion{}, err
	}
	return c.KeyVersion(req.Name, version)
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
			return nil, BadParameter("key_ops", "key_ops %q is not possible with this key type (allowed: %s)", op, strings.Join(allowed, ", "))
		}
	}
	return ops, nil
}

// CreateKeyRequest creates a new version of a key with a new key pair.
type CreateKeyRequest struct {
	Name string
	// KeyType is RSA, RSA-HSM, EC or EC-HSM (required); KeySize and Curve
	// as in a certificate policy's key properties (0, "": the defaults).
	KeyType string
	KeySize int
	Curve   string
	// KeyOps are the permitted operations (none: all the type can do).
	KeyOps     []string
	Attributes *keyvault.Attributes
	Tags       map[string]string
}

// CreateKey generates a key pair (in the HSM for the -HSM types) and
// stores it as the key's new current version.
func (c *Core) CreateKey(ctx context.Context, p Caller, req CreateKeyRequest) (KeyVersion, error) {
	if err := ValidName(KindKeys, req.Name); err != nil {
		return KeyVersion{}, err
	}
	kp := &keyvault.KeyProperties{KeyType: req.KeyType, KeySize: req.KeySize, Curve: req.Curve}
	// Validate through the policy rules, which know sizes and curves.
	pol := &keyvault.Policy{KeyProperties: kp, X509Properties: &keyvault.X509Properties{Subject: "CN=key"}}
	if kp.KeyType == "" {
		return KeyVersion{}, BadParameter("kty", "kty is required: RSA, RSA-HSM, EC or EC-HSM")
	}
	if err := pol.Normalize(); err != nil {
		if errors.Is(err, keyvault.ErrInvalidPolicy) {
			// About kty, key_size or crv: the message names it.
			return KeyVersion{}, BadParameter("", "%s", strings.TrimPrefix(err.Error(), keyvault.ErrInvalidPolicy.Error()+": "))
		}
		return KeyVersion{}, err
	}
	key, err := c.GenerateKey(kp)
	if err != nil {
		return KeyVersion{}, err
	}
	return c.storeKeyVersion(ctx, req.Name, key, req.KeyOps, req.Attributes, req.Tags)
}

// ImportKeyRequest imports a key pair as a new version of a key.
type ImportKeyRequest struct {
	Name string
	// Key is a JSON Web Key with its private members (required); its
	// key_ops are the permitted operations.
	Key *keyvault.JWK
	// HSM asks for the key to be imported into the HSM (refused: this
	// vault cannot import into one).
	HSM        bool
	Attributes *keyvault.Attributes
	Tags       map[string]string
}

// ImportKey stores a caller's key pair as the key's new current version.
func (c *Core) ImportKey(ctx context.Context, p Caller, req ImportKeyRequest) (KeyVersion, error) {
	if err := ValidName(KindKeys, req.Name); err != nil {
		return KeyVersion{}, err
	}
	if req.Key == nil {
		return KeyVersion{}, BadParameter("key", "key is required: a JSON Web Key with its private members")
	}
	if req.HSM {
		return KeyVersion{}, BadParameter("hsm", "hsm import needs a PKCS#11 seal and module, which this vault is not configured with")
	}
	key, err := KeyFromJWK(req.Key)
	if err != nil {
		return KeyVersion{}, err
	}
	return c.storeKeyVersion(ctx, req.Name, key, req.Key.KeyOps, req.Attributes, req.Tags)
}

// storeKeyVersion records key as a new current version of a key. A
// deleted key is a conflict; a certificate's managed key is refused.
func (c *Core) storeKeyVersion(ctx context.Context, name string, key crypto.Signer, ops []string, attrs *keyvault.Attributes, tags map[string]string) (KeyVersion, error) {
	ops, err := validKeyOps(ops, key.Public())
	if err != nil {
		return KeyVersion{}, err
	}
	m, prev, found, err := c.MetaForNewVersion(KindKeys, name)
	if err != nil {
		return KeyVersion{}, err
	}
	if found && m.ManagedBy != "" {
		return KeyVersion{}, errManaged(KindKeys, name)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return KeyVersion{}, err
	}
	privDER, err := EncodePrivateKey(key)
	if err != nil {
		return KeyVersion{}, err
	}
	version, err := NewVersionID()
	if err != nil {
		return KeyVersion{}, err
	}
	now := time.Now().Unix()
	v := VersionMeta{Tags: tags, PublicKey: pubDER, KeyOps: ops, Sealed: true, HSM: IsHSMKey(key), Attributes: c.NewVersionAttributes(attrs, now)}
	if !found {
		m = ObjectMeta{Created: now}
	}
	m.Current, m.Summary, m.Tags = version, v.Attributes, v.Tags
	b := &raftstore.Batch{}
	PutMeta(b, KindKeys, name, m, prev)
	if err := c.PutVersionRecord(b, KindKeys, name, version, v, privDER); err != nil {
		return KeyVersion{}, err
	}
	idx, err := c.Commit(ctx, b)
	if err != nil {
		return KeyVersion{}, err
	}
	k, err := c.keyVersionOf(name, version, v)
	k.Index = idx
	return k, err
}

// KeyFromJWK builds a private key from a JWK with private members.
func KeyFromJWK(j *keyvault.JWK) (crypto.Signer, error) {
	switch strings.TrimSuffix(j.Kty, "-HSM") {
	case keyvault.KeyTypeRSA:
		if len(j.N) == 0 || len(j.E) == 0 || len(j.D) == 0 || len(j.P) == 0 || len(j.Q) == 0 {
			return nil, BadParameter("key", "an RSA JWK needs n, e, d, p and q")
		}
		e := new(big.Int).SetBytes(j.E)
		if e.BitLen() > 31 {
			return nil, BadParameter("key.e", "the RSA JWK's e is too large (it is 65537, AQAB, in every usual key)")
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).SetBytes(j.N), E: int(e.Int64())},
			D:         new(big.Int).SetBytes(j.D),
			Primes:    []*big.Int{new(big.Int).SetBytes(j.P), new(big.Int).SetBytes(j.Q)},
		}
		if err := k.Validate(); err != nil {
			return nil, BadParameter("key", "the RSA JWK is not a consistent key: %v", err)
		}
		if b := k.N.BitLen(); b != 2048 && b != 3072 && b != 4096 {
			return nil, BadParameter("key.n", "RSA keys must be 2048, 3072 or 4096 bits, not %d", b)
		}
		k.Precompute()
		return k, nil
	case keyvault.KeyTypeEC:
		c, err := certs.Curve(j.Crv)
		if err != nil {
			return nil, BadParameter("key.crv", "crv: %v", err)
		}
		if len(j.D) == 0 {
			return nil, BadParameter("key.d", "an EC JWK needs d, the private scalar")
		}
		k, err := ecdsa.ParseRawPrivateKey(c, leftPad(j.D, (c.Params().BitSize+7)/8))
		if err != nil {
			return nil, BadParameter("key", "the EC JWK is not a valid key: %v", err)
		}
		if (len(j.X) > 0 || len(j.Y) > 0) && (new(big.Int).SetBytes(j.X).Cmp(k.X) != 0 || new(big.Int).SetBytes(j.Y).Cmp(k.Y) != 0) {
			return nil, BadParameter("key", "the EC JWK's x and y do not match d")
		}
		return k, nil
	}
	return nil, BadParameter("key.kty", "kty %q: use RSA or EC", j.Kty)
}

func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}

// UpdateKeyRequest changes a version's permitted operations, attributes
// or tags (nil: unchanged).
type UpdateKeyRequest struct {
	Name, Version string
	KeyOps        []string
	Attributes    *keyvault.Attributes
	Tags          map[string]string
}

// UpdateKey updates a version of a key ("": the current one). A managed
// key is refused.
func (c *Core) UpdateKey(ctx context.Context, p Caller, req UpdateKeyRequest) (KeyVersion, error) {
	name := req.Name
	m, version, err := c.ResolveVersion(KindKeys, name, req.Version)
	if err != nil {
		return KeyVersion{}, err
	}
	if m.ManagedBy != "" {
		return KeyVersion{}, errManaged(KindKeys, name)
	}
	v, e, ok, err := c.LoadVersion(KindKeys, name, version)
	if err != nil || !ok {
		return KeyVersion{}, OrObjectNotFound(err, KindKeys, name, version)
	}
	if req.KeyOps != nil {
		pub, _ := x509.ParsePKIXPublicKey(v.PublicKey)
		if v.KeyOps, err = validKeyOps(req.KeyOps, pub); err != nil {
			return KeyVersion{}, err
		}
	}
	v.ApplyUpdate(req.Attributes, req.Tags)
	b := &raftstore.Batch{}
	c.PutVersionUpdate(b, KindKeys, name, version, m.Current, v, e, KindKeys)
	idx, err := c.Commit(ctx, b)
	if err != nil {
		return KeyVersion{}, err
	}
	k, err := c.keyVersionOf(name, version, v)
	k.Index = idx
	return k, err
}

// loadPrivateKey returns a key version's private key (a certificate's for
// managed keys), the operations it permits and the version.
//
// Outside the version's nbf..exp window only operations that use old data
// (verify, decrypt, unwrapKey) are allowed, as Key Vault specifies: new
// signatures, ciphertexts and wrapped keys are refused.
func (c *Core) loadPrivateKey(name, version, op string) (crypto.Signer, []string, string, error) {
	m, version, err := c.ResolveVersion(KindKeys, name, version)
	if err != nil {
		return nil, nil, "", err
	}
	kind := KindKeys
	if m.ManagedBy != "" {
		kind = m.ManagedBy
	}
	v, _, ok, err := c.LoadVersion(kind, name, version)
	if err != nil || !ok {
		return nil, nil, "", OrObjectNotFound(err, KindKeys, name, version)
	}
	if !v.Attributes.IsEnabled() {
		return nil, nil, "", Forbidden("the key is disabled")
	}
	now := time.Now().Unix()
	producesNew := op == "sign" || op == "encrypt" || op == "wrapkey"
	if producesNew && kind == KindKeys {
		if v.Attributes.Expires != nil && now > *v.Attributes.Expires {
			return nil, nil, "", Forbidden("the key has expired: it may still verify, decrypt and unwrap, but not %s", op)
		}
		if v.Attributes.NotBefore != nil && now < *v.Attributes.NotBefore {
			return nil, nil, "", Forbidden("the key is not valid yet (nbf is in the future)")
		}
	}
	e, ok := c.Store.Get(ValKey(kind, name, version))
	if !ok {
		return nil, nil, "", Forbidden("this key version holds no private key in the vault")
	}
	k, err := c.OpenPrivateKey(e)
	if err != nil {
		return nil, nil, "", err
	}
	ops := v.KeyOps
	if kind == KindCertificates {
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
	return 0, false, BadParameter("alg", "alg %q: use RSA-OAEP, RSA-OAEP-256 or RSA1_5", alg)
}

// KeyOperationRequest runs a cryptographic operation with a version of a
// key ("": the current one).
type KeyOperationRequest struct {
	Name, Version string
	// Op is sign, verify, encrypt, decrypt, wrapkey or unwrapkey.
	Op string
	// Alg is the JWS algorithm (sign, verify) or the RSA encryption
	// algorithm.
	Alg string
	// Value is the digest to sign, the signature to verify, or the data
	// to encrypt, decrypt, wrap or unwrap.
	Value []byte
	// Digest is the digest a signature is verified against.
	Digest []byte
}

// KeyOperationResult is an operation's outcome.
type KeyOperationResult struct {
	// Version is the key version used.
	Version string
	// Value is the signature, ciphertext or plaintext (not for verify).
	Value []byte
	// Valid is verify's answer.
	Valid bool
}

// KeyOperation runs a cryptographic operation with a key's private part
// where it lives (memory or HSM), within what the version permits.
func (c *Core) KeyOperation(ctx context.Context, p Caller, req KeyOperationRequest) (KeyOperationResult, error) {
	key, ops, version, err := c.loadPrivateKey(req.Name, req.Version, req.Op)
	if err != nil {
		return KeyOperationResult{}, err
	}
	opName := map[string]string{"wrapkey": "wrapKey", "unwrapkey": "unwrapKey"}[req.Op]
	if opName == "" {
		opName = req.Op
	}
	if !slices.Contains(ops, opName) {
		return KeyOperationResult{}, Forbidden("operation %s is not permitted on this key (key_ops: %s)", opName, strings.Join(ops, ", "))
	}
	result, err := keyOperation(req.Op, key, req.Alg, req.Value, req.Digest)
	if err != nil {
		return KeyOperationResult{}, err
	}
	return KeyOperationResult{Version: version, Value: result, Valid: result != nil}, nil
}

// keyOperation runs a cryptographic operation. verify returns a non-nil
// slice when the signature is valid. It works through crypto.Signer and
// crypto.Decrypter only, so software keys and HSM keys (whose private
// part never leaves the token) take the same path.
func keyOperation(op string, key crypto.Signer, alg string, value, reqDigest []byte) ([]byte, error) {
	switch op {
	case "sign", "verify":
		a, ok := signAlgs[alg]
		if !ok {
			return nil, BadParameter("alg", "alg %q: use RS256/384/512, PS256/384/512 or ES256/384/512", alg)
		}
		digest := value
		if op == "verify" {
			digest = reqDigest
		}
		if len(digest) != a.hash.Size() {
			return nil, BadParameter("digest", "the digest must be %d bytes for %s, not %d", a.hash.Size(), alg, len(digest))
		}
		switch pub := key.Public().(type) {
		case *rsa.PublicKey:
			if a.kty != "RSA" {
				return nil, BadParameter("alg", "alg %s needs an EC key", alg)
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
				err = rsa.VerifyPSS(pub, a.hash, digest, value, nil)
			} else {
				err = rsa.VerifyPKCS1v15(pub, a.hash, digest, value)
			}
			return okSlice(err == nil), nil
		case *ecdsa.PublicKey:
			if a.kty != "EC" {
				return nil, BadParameter("alg", "alg %s needs an RSA key", alg)
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
			if len(value) != 2*size {
				return okSlice(false), nil
			}
			rr, ss := new(big.Int).SetBytes(value[:size]), new(big.Int).SetBytes(value[size:])
			return okSlice(ecdsa.Verify(pub, digest, rr, ss)), nil
		}
	case "encrypt", "wrapkey", "decrypt", "unwrapkey":
		pub, ok := key.Public().(*rsa.PublicKey)
		if !ok {
			return nil, BadParameter("", "%s needs an RSA key", op)
		}
		h, pkcs1, err := oaepHash(alg)
		if err != nil {
			return nil, err
		}
		if op == "encrypt" || op == "wrapkey" {
			if pkcs1 {
				return rsa.EncryptPKCS1v15(rand.Reader, pub, value)
			}
			out, err := rsa.EncryptOAEP(h.New(), rand.Reader, pub, value, nil)
			if err != nil {
				return nil, BadParameter("value", "cannot %s: %v", op, err)
			}
			return out, nil
		}
		dec, ok := key.(crypto.Decrypter)
		if !ok {
			return nil, BadParameter("", "this key cannot %s", op)
		}
		var opts crypto.DecrypterOpts = &rsa.OAEPOptions{Hash: h}
		if pkcs1 {
			opts = &rsa.PKCS1v15DecryptOptions{}
		}
		out, err := dec.Decrypt(rand.Reader, value, opts)
		if err != nil {
			if IsHSMKey(key) {
				// The HSM says why: a wrong ciphertext, or a mechanism it
				// does not offer (SoftHSM2 does OAEP with SHA-1 only).
				return nil, BadParameter("value", "cannot %s with %s in the HSM: %v", op, alg, err)
			}
			return nil, BadParameter("value", "cannot %s: the ciphertext does not decrypt with this key and algorithm", op)
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

// RandomBytes returns count (1 to 128) random bytes from the vault's
// generator.
func (c *Core) RandomBytes(ctx context.Context, p Caller, count int) ([]byte, error) {
	if count < 1 || count > 128 {
		return nil, BadParameter("count", "count %d: use 1 to 128", count)
	}
	b := make([]byte, count)
	if _, err := rand.Read(b); err != nil {
		return nil, Internal(err)
	}
	return b, nil
}
