//go:build cgo

package hsm

import (
	"crypto"
	"crypto/cipher"
	"crypto/elliptic"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// Built reports whether this build can use PKCS#11.
const Built = true

// HSM is an open session pool on one token. Reopen replaces the pool
// after the token was lost; every method uses the current one.
type HSM struct {
	cfg Config
	mu  sync.RWMutex
	c   *crypto11.Context
	// closed is set once c is closed (closing twice panics in crypto11);
	// a closed c answers every call with an error until Reopen succeeds.
	closed bool
	// keys caches key pairs by CKA_ID: finding one in the token costs
	// twenty times the signature (SoftHSM2 opens and locks every object
	// file on each search). IDs are never reused, so an entry stays right
	// until the key is deleted or the sessions are reopened.
	keys map[string]crypto.Signer
}

// ctx returns the current crypto11 context.
func (h *HSM) ctx() *crypto11.Context {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.c
}

// Reopen closes the sessions and logs in again: after a network HSM came
// back, or a token was reinserted, the old sessions are dead.
func (h *HSM) Reopen() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.c.Close()
		h.closed = true
	}
	c, err := configure(h.cfg)
	if err != nil {
		return err
	}
	h.c, h.closed = c, false
	h.keys = nil
	return nil
}

// Open logs in to the token. A wrong PIN, a missing token or a module
// that does not load is an error that says which.
func Open(c Config) (*HSM, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	ctx, err := configure(c)
	if err != nil {
		return nil, err
	}
	return &HSM{cfg: c, c: ctx}, nil
}

// configure reads the PIN and logs in.
func configure(c Config) (*crypto11.Context, error) {
	pin, err := readPIN(c.PINFile)
	if err != nil {
		return nil, err
	}
	cfg := &crypto11.Config{Path: c.Module, TokenLabel: c.TokenLabel, Pin: pin, SlotNumber: c.Slot, MaxSessions: 64}
	ctx, err := crypto11.Configure(cfg)
	if err != nil {
		return nil, openError(c, err)
	}
	return ctx, nil
}

// openError explains the usual ways logging in fails.
func openError(c Config, err error) error {
	msg := err.Error()
	var pe pkcs11.Error
	switch {
	case errors.As(err, &pe) && (pe == pkcs11.CKR_PIN_INCORRECT || pe == pkcs11.CKR_PIN_LEN_RANGE):
		return fmt.Errorf("the HSM refused the PIN in %s: check the PIN file", c.PINFile)
	case errors.As(err, &pe) && pe == pkcs11.CKR_PIN_LOCKED:
		return fmt.Errorf("the token's user PIN is locked: unlock it with the security officer PIN")
	case strings.Contains(msg, "could not find PKCS#11 token"):
		return fmt.Errorf("no PKCS#11 token labelled %q in %s: check --pkcs11-token-label (softhsm2-util --show-slots lists them)", c.TokenLabel, c.Module)
	case strings.Contains(msg, "CKR_PIN_INCORRECT"):
		return fmt.Errorf("the HSM refused the PIN in %s: check the PIN file", c.PINFile)
	}
	return fmt.Errorf("open the PKCS#11 token: %w", err)
}

// Close ends the sessions.
func (h *HSM) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	return h.c.Close()
}

// Ping checks that the token still answers and still holds the secret
// key with CKA_ID id (the vault's seal or health key): a token that went
// away, or was swapped, fails it.
func (h *HSM) Ping(id []byte) error {
	ks, err := h.ctx().FindKeys(id, nil)
	if err != nil {
		return fmt.Errorf("the HSM does not answer: %w", err)
	}
	if len(ks) == 0 {
		return fmt.Errorf("the HSM token no longer holds the vault's key %q: was it removed or replaced?", id)
	}
	return nil
}

// GenerateEC makes an EC key pair in the token with the given CKA_ID.
func (h *HSM) GenerateEC(id []byte, curve elliptic.Curve) (crypto.Signer, error) {
	k, err := h.ctx().GenerateECDSAKeyPairWithLabel(id, []byte("certvault"), curve)
	if err != nil {
		return nil, fmt.Errorf("generate an EC key in the HSM: %w", err)
	}
	return k, nil
}

// GenerateRSA makes an RSA key pair in the token with the given CKA_ID;
// the key also decrypts (crypto.Decrypter).
func (h *HSM) GenerateRSA(id []byte, bits int) (crypto.Signer, error) {
	k, err := h.ctx().GenerateRSAKeyPairWithLabel(id, []byte("certvault"), bits)
	if err != nil {
		return nil, fmt.Errorf("generate an RSA key in the HSM: %w", err)
	}
	return k, nil
}

// FindKey returns the key pair with the CKA_ID; RSA keys also decrypt.
func (h *HSM) FindKey(id []byte) (crypto.Signer, error) {
	h.mu.RLock()
	k, ok := h.keys[string(id)]
	c := h.c
	h.mu.RUnlock()
	if ok {
		return k, nil
	}
	// One search: crypto11 returns RSA key pairs that also decrypt.
	ks, err := c.FindKeyPairs(id, nil)
	if err != nil {
		return nil, fmt.Errorf("find key in the HSM: %w", err)
	}
	if len(ks) == 0 {
		return nil, ErrNotFound
	}
	h.mu.Lock()
	if h.c == c { // not reopened meanwhile
		if h.keys == nil {
			h.keys = map[string]crypto.Signer{}
		}
		h.keys[string(id)] = ks[0]
	}
	h.mu.Unlock()
	return ks[0], nil
}

// DeleteKey destroys the key pair with the CKA_ID (no error if absent).
func (h *HSM) DeleteKey(id []byte) error {
	ks, err := h.ctx().FindKeyPairs(id, nil)
	if err != nil {
		return fmt.Errorf("find key in the HSM: %w", err)
	}
	h.mu.Lock()
	delete(h.keys, string(id))
	h.mu.Unlock()
	for _, k := range ks {
		if err := k.Delete(); err != nil {
			return fmt.Errorf("delete key in the HSM: %w", err)
		}
	}
	return nil
}

// KeyAttributes reports a private key's CKA_SENSITIVE and CKA_EXTRACTABLE.
func (h *HSM) KeyAttributes(id []byte) (sensitive, extractable bool, err error) {
	ks, err := h.ctx().FindPrivateKeys(id, nil)
	if err != nil {
		return false, false, fmt.Errorf("find private key: %w", err)
	}
	if len(ks) == 0 {
		return false, false, ErrNotFound
	}
	k := ks[0]
	attrs, err := h.ctx().GetAttributes(k, []crypto11.AttributeType{crypto11.CkaSensitive, crypto11.CkaExtractable})
	if err != nil {
		return false, false, fmt.Errorf("read key attributes: %w", err)
	}
	b := func(t crypto11.AttributeType) bool {
		a := attrs[t]
		return a != nil && len(a.Value) > 0 && a.Value[0] != 0
	}
	return b(crypto11.CkaSensitive), b(crypto11.CkaExtractable), nil
}

// SealAEAD returns AES-256-GCM under the token's seal key with the given
// CKA_ID, generating the key on first use when create is set.
func (h *HSM) SealAEAD(id []byte, create bool) (cipher.AEAD, error) {
	ks, err := h.ctx().FindKeys(id, nil)
	if err != nil {
		return nil, fmt.Errorf("find the seal key in the HSM: %w", err)
	}
	var k *crypto11.SecretKey
	if len(ks) > 0 {
		k = ks[0]
	} else {
		if !create {
			return nil, fmt.Errorf("the HSM has no seal key %q: is this the token the vault was created with?", id)
		}
		k, err = h.ctx().GenerateSecretKeyWithLabel(id, []byte("certvault seal"), 256, crypto11.CipherAES)
		if err != nil {
			return nil, fmt.Errorf("generate the seal key in the HSM: %w", err)
		}
	}
	aead, err := k.NewGCM()
	if err != nil {
		return nil, fmt.Errorf("AES-GCM in the HSM: %w", err)
	}
	return aead, nil
}

// KeyPairs lists the token's key pairs: each one's CKA_ID and public key.
func (h *HSM) KeyPairs() (map[string]crypto.PublicKey, error) {
	ks, err := h.ctx().FindAllKeyPairs()
	if err != nil {
		return nil, fmt.Errorf("list keys in the HSM: %w", err)
	}
	out := map[string]crypto.PublicKey{}
	for _, k := range ks {
		a, err := h.ctx().GetAttribute(k, crypto11.CkaId)
		if err != nil {
			return nil, fmt.Errorf("read a key's CKA_ID: %w", err)
		}
		out[string(a.Value)] = k.Public()
	}
	return out, nil
}
