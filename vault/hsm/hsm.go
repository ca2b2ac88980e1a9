// Package hsm keeps keys in a PKCS#11 token (a hardware security module,
// or SoftHSM2 in tests) through crypto11: keys generated there with
// CKA_SENSITIVE true and CKA_EXTRACTABLE false, found again by their
// CKA_ID on any node that reaches the same token, and the AES key that
// wraps the vault's data key for the pkcs11 seal.
//
// PKCS#11 needs cgo. A build with CGO_ENABLED=0 still compiles this
// package; Open then returns ErrNotBuilt, and certvaultd says "built
// without PKCS#11 support" when asked for it.
package hsm

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrNotBuilt is returned by Open in a build without cgo.
var ErrNotBuilt = errors.New("built without PKCS#11 support: rebuild certvaultd with CGO_ENABLED=1")

// ErrNotFound is returned when no key has the ID asked for.
var ErrNotFound = errors.New("hsm: no such key in the token")

// Config says how to reach the token.
type Config struct {
	// Module is the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// TokenLabel selects the token by label; Slot by slot number when
	// TokenLabel is empty.
	TokenLabel string
	Slot       *int
	// PINFile holds the user PIN (never a flag value, which ps shows).
	PINFile string
}

// readPIN reads the PIN file: its first line, without surrounding space.
func readPIN(path string) (string, error) {
	if path == "" {
		return "", errors.New("--pkcs11-pin-file is required: the file holding the token's user PIN")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read the PIN file: %w", err)
	}
	pin, _, _ := strings.Cut(string(b), "\n")
	pin = strings.TrimSpace(pin)
	if pin == "" {
		return "", fmt.Errorf("the PIN file %s is empty", path)
	}
	return pin, nil
}

func (c Config) check() error {
	if c.Module == "" {
		return errors.New("--pkcs11-module is required: the PKCS#11 library of the HSM (e.g. /usr/lib/softhsm/libsofthsm2.so)")
	}
	if _, err := os.Stat(c.Module); err != nil {
		return fmt.Errorf("--pkcs11-module %s: %w", c.Module, err)
	}
	if c.TokenLabel == "" && c.Slot == nil {
		return errors.New("--pkcs11-token-label (or --pkcs11-slot) is required: which token holds the vault's keys")
	}
	return nil
}
