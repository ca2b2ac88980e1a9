package barrier

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/certvault/certvault/vault/hsm"
)

// Seal kinds (certvaultd --seal).
const (
	SealFile   = "file"
	SealPKCS11 = "pkcs11"
)

// Pkcs11SealKeyID is the CKA_ID of the AES-256 key, generated inside the
// HSM, that wraps the data key. Every node of a cluster reaches the same
// token, so every node finds it.
var Pkcs11SealKeyID = []byte("certvault-seal")

// PKCS11Seal wraps data keys with AES-256-GCM performed inside the HSM;
// the wrapping key never leaves it. It finds the key at each use, so it
// keeps working after the HSM's sessions were reopened.
type PKCS11Seal struct {
	hsm *hsm.HSM
}

// NewPKCS11Seal uses the token's seal key, generating it when create is
// set and there is none.
func NewPKCS11Seal(h *hsm.HSM, create bool) (*PKCS11Seal, error) {
	if _, err := h.SealAEAD(Pkcs11SealKeyID, create); err != nil {
		return nil, err
	}
	return &PKCS11Seal{hsm: h}, nil
}

func (s *PKCS11Seal) aead() (cipher.AEAD, error) {
	return s.hsm.SealAEAD(Pkcs11SealKeyID, false)
}

// Kind implements Seal.
func (s *PKCS11Seal) Kind() string { return SealPKCS11 }

// Wrap implements Seal.
func (s *PKCS11Seal) Wrap(dataKey []byte) ([]byte, error) {
	aead, err := s.aead()
	if err != nil {
		return nil, fmt.Errorf("wrap data key: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("wrap data key: %w", err)
	}
	out := aead.Seal(nil, nonce, dataKey, sealAAD)
	if out == nil {
		return nil, errors.New("wrap data key: the HSM failed to encrypt")
	}
	return append(nonce, out...), nil
}

// Unwrap implements Seal.
func (s *PKCS11Seal) Unwrap(wrapped []byte) ([]byte, error) {
	aead, err := s.aead()
	if err != nil {
		return nil, fmt.Errorf("unwrap data key: %w", err)
	}
	n := aead.NonceSize()
	if len(wrapped) < n {
		return nil, fmt.Errorf("unwrap data key: too short: %w", ErrSealMismatch)
	}
	key, err := aead.Open(nil, wrapped[:n], wrapped[n:], sealAAD)
	if err != nil {
		return nil, ErrSealMismatch
	}
	return key, nil
}
