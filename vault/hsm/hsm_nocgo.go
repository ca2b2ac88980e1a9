//go:build !cgo

package hsm

import (
	"crypto"
	"crypto/cipher"
	"crypto/elliptic"
)

// Built reports whether this build can use PKCS#11.
const Built = false

// HSM is unavailable without cgo.
type HSM struct{}

// Open returns ErrNotBuilt.
func Open(Config) (*HSM, error) { return nil, ErrNotBuilt }

// Close does nothing.
func (h *HSM) Close() error { return nil }

// Ping returns ErrNotBuilt.
func (h *HSM) Ping([]byte) error { return ErrNotBuilt }

// GenerateEC returns ErrNotBuilt.
func (h *HSM) GenerateEC([]byte, elliptic.Curve) (crypto.Signer, error) { return nil, ErrNotBuilt }

// GenerateRSA returns ErrNotBuilt.
func (h *HSM) GenerateRSA([]byte, int) (crypto.Signer, error) { return nil, ErrNotBuilt }

// FindKey returns ErrNotBuilt.
func (h *HSM) FindKey([]byte) (crypto.Signer, error) { return nil, ErrNotBuilt }

// DeleteKey returns ErrNotBuilt.
func (h *HSM) DeleteKey([]byte) error { return ErrNotBuilt }

// KeyAttributes returns ErrNotBuilt.
func (h *HSM) KeyAttributes([]byte) (bool, bool, error) { return false, false, ErrNotBuilt }

// SealAEAD returns ErrNotBuilt.
func (h *HSM) SealAEAD([]byte, bool) (cipher.AEAD, error) { return nil, ErrNotBuilt }

// KeyPairs returns ErrNotBuilt.
func (h *HSM) KeyPairs() (map[string]crypto.PublicKey, error) { return nil, ErrNotBuilt }

// Reopen returns ErrNotBuilt.
func (h *HSM) Reopen() error { return ErrNotBuilt }
