package barrier

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/certvault/certvault/internal/atomicfile"
)

// Seal wraps and unwraps the barrier's data keys. The key that does the
// wrapping never leaves the seal. Implementations must be safe for
// concurrent use; Unwrap of data wrapped by another seal returns an error
// wrapping ErrSealMismatch.
type Seal interface {
	// Kind names the seal ("file", "pkcs11").
	Kind() string
	// Wrap encrypts a data key.
	Wrap(dataKey []byte) ([]byte, error)
	// Unwrap decrypts a data key wrapped by Wrap.
	Unwrap(wrapped []byte) ([]byte, error)
}

// FileSeal is the embedded default: a 256-bit key-encryption key in a file
// readable only by the vault's user, used with AES-256-GCM.
type FileSeal struct {
	aead cipher.AEAD
}

const SealFileHeader = "certvault-seal-v1:"

// LoadFileSeal reads the seal key at path. With create set and no file
// there, it generates a new key and writes it with mode 0600.
func LoadFileSeal(path string, create bool) (*FileSeal, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && create {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate seal key: %w", err)
		}
		data = []byte(SealFileHeader + base64.StdEncoding.EncodeToString(key) + "\n")
		if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
			return nil, fmt.Errorf("write seal key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("read seal key %s: %w", path, err)
	}
	data = bytes.TrimSpace(data)
	if !bytes.HasPrefix(data, []byte(SealFileHeader)) {
		return nil, fmt.Errorf("seal key %s: not a certvault seal key file", path)
	}
	key, err := base64.StdEncoding.DecodeString(string(data[len(SealFileHeader):]))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("seal key %s: want 32 base64-encoded bytes after %q", path, SealFileHeader)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return &FileSeal{aead: aead}, nil
}

// Kind implements Seal.
func (s *FileSeal) Kind() string { return "file" }

// sealAAD binds wrapped keys to their purpose.
var sealAAD = []byte("certvault data key")

// Wrap implements Seal.
func (s *FileSeal) Wrap(dataKey []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("wrap data key: %w", err)
	}
	return s.aead.Seal(nonce, nonce, dataKey, sealAAD), nil
}

// Unwrap implements Seal.
func (s *FileSeal) Unwrap(wrapped []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(wrapped) < n {
		return nil, fmt.Errorf("unwrap data key: too short: %w", ErrSealMismatch)
	}
	key, err := s.aead.Open(nil, wrapped[:n], wrapped[n:], sealAAD)
	if err != nil {
		return nil, ErrSealMismatch
	}
	return key, nil
}
