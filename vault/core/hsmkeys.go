package core

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/vault/certs"
)

// Keys in the HSM, for the domain core: generating a key where its type
// says, and the stored form of private keys (PKCS#8, or a reference to
// the HSM key).

// hsmRefPrefix starts the stored form of a private key that lives in the
// HSM: the prefix and the key's CKA_ID in hex. Software keys are stored as
// PKCS#8 DER, which never starts with it.
const hsmRefPrefix = "pkcs11:id="

// hsmKey is a private key inside the HSM, with the CKA_ID it is found by
// on every node that reaches the token.
type hsmKey struct {
	crypto.Signer
	id []byte
}

// Decrypt implements crypto.Decrypter for RSA HSM keys.
func (k *hsmKey) Decrypt(r io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	d, ok := k.Signer.(crypto.Decrypter)
	if !ok {
		return nil, errors.New("this HSM key cannot decrypt")
	}
	return d.Decrypt(r, msg, opts)
}

// errNoHSM answers a request for an HSM key type on a vault without one.
var errNoHSM = BadParameter("kty", "RSA-HSM and EC-HSM keys need an HSM: start certvaultd with --pkcs11-module, --pkcs11-token-label and --pkcs11-pin-file, or use RSA or EC")

// GenerateKey makes a key for the key properties: in the HSM for RSA-HSM
// and EC-HSM (the private part never leaves it), in memory otherwise.
func (c *Core) GenerateKey(kp *keyvault.KeyProperties) (crypto.Signer, error) {
	if !keyvault.IsHSM(kp.KeyType) {
		return certs.GenerateKey(kp)
	}
	if c.HSM == nil {
		return nil, errNoHSM
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("HSM key id: %w", err)
	}
	var k crypto.Signer
	var err error
	if kp.KeyType == keyvault.KeyTypeRSAHSM {
		k, err = c.HSM.GenerateRSA(id, kp.KeySize)
	} else {
		curve, cerr := certs.Curve(kp.Curve)
		if cerr != nil {
			return nil, BadParameter("crv", "%v", cerr)
		}
		k, err = c.HSM.GenerateEC(id, curve)
	}
	if err != nil {
		return nil, err
	}
	return &hsmKey{Signer: k, id: id}, nil
}

// IsHSMKey reports whether key lives in the HSM.
func IsHSMKey(key crypto.Signer) bool {
	_, ok := key.(*hsmKey)
	return ok
}

// EncodePrivateKey returns what the vault stores, through the barrier,
// for a private key: PKCS#8 DER, or for an HSM key its reference.
func EncodePrivateKey(key crypto.Signer) ([]byte, error) {
	if hk, ok := key.(*hsmKey); ok {
		return []byte(hsmRefPrefix + hex.EncodeToString(hk.id)), nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return der, nil
}

// DecodePrivateKey is the inverse of encodePrivateKey: it parses PKCS#8,
// or finds an HSM key by its reference.
func (c *Core) DecodePrivateKey(b []byte) (crypto.Signer, error) {
	if ref, ok := bytes.CutPrefix(b, []byte(hsmRefPrefix)); ok {
		id, err := hex.DecodeString(string(ref))
		if err != nil {
			return nil, fmt.Errorf("stored HSM key reference: %w", err)
		}
		if c.HSM == nil {
			return nil, &Error{Kind: KindUnavailable, Code: "ServiceUnavailable",
				Message: "this key lives in the HSM, and this node is not configured with one (--pkcs11-module): every node must reach the same token"}
		}
		k, err := c.HSM.FindKey(id)
		if err != nil {
			return nil, fmt.Errorf("HSM key %x: %w", id, err)
		}
		return &hsmKey{Signer: k, id: id}, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse stored key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("stored key cannot sign")
	}
	return s, nil
}
