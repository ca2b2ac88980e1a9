package barrier

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
)

// Sentinel errors of the barrier and the seals.
var (
	// ErrSealMismatch means the seal cannot unwrap the cluster's keyring:
	// the node was started with a different seal key than the cluster's.
	ErrSealMismatch = errors.New("vault: the seal key does not open this cluster's keyring")
	// ErrDecrypt means a stored ciphertext failed authentication.
	ErrDecrypt = errors.New("vault: ciphertext failed authentication")
)

// keyring is the replicated record of the barrier's data keys, each
// wrapped by the seal. It is stored in plain JSON under keyKeyring: only
// wrapped keys are in it.
type keyring struct {
	Active uint32       `json:"active"`
	Keys   []wrappedKey `json:"keys"`
	Seal   string       `json:"seal"`
}

type wrappedKey struct {
	ID      uint32 `json:"id"`
	Wrapped []byte `json:"wrapped"`
}

// Barrier encrypts values before they are proposed to raft and decrypts
// them after they are read, with AES-256-GCM under the active data key.
// The storage key is the additional data, so a ciphertext moved to another
// key does not decrypt. It is safe for concurrent use.
type Barrier struct {
	mu        sync.RWMutex
	active    uint32
	rawActive []byte
	aeads     map[uint32]cipher.AEAD
}

// BarrierMagic starts every ciphertext, followed by the 4-byte key ID and
// the 12-byte nonce.
const BarrierMagic = "cvb1"

// NewKeyring generates a first data key, wraps it with seal and returns
// the keyring record and the plaintext key.
func NewKeyring(seal Seal) (*keyring, []byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, fmt.Errorf("generate data key: %w", err)
	}
	w, err := seal.Wrap(key)
	if err != nil {
		return nil, nil, fmt.Errorf("wrap data key: %w", err)
	}
	return &keyring{Active: 1, Keys: []wrappedKey{{ID: 1, Wrapped: w}}, Seal: seal.Kind()}, key, nil
}

// OpenKeyring unwraps every key of a stored keyring with seal.
func OpenKeyring(data []byte, seal Seal) (*Barrier, error) {
	var kr keyring
	if err := json.Unmarshal(data, &kr); err != nil {
		return nil, fmt.Errorf("decode keyring: %w", err)
	}
	b := &Barrier{active: kr.Active, aeads: map[uint32]cipher.AEAD{}}
	for _, k := range kr.Keys {
		key, err := seal.Unwrap(k.Wrapped)
		if err != nil {
			return nil, fmt.Errorf("unwrap data key %d: %w", k.ID, err)
		}
		if err := b.add(k.ID, key); err != nil {
			return nil, err
		}
		if k.ID == kr.Active {
			b.rawActive = key
		}
	}
	if _, ok := b.aeads[b.active]; !ok {
		return nil, fmt.Errorf("keyring: active key %d missing", b.active)
	}
	return b, nil
}

func (b *Barrier) add(id uint32, key []byte) error {
	block, err := aes.NewCipher(key)
	if err != nil {
		return fmt.Errorf("data key %d: %w", id, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return fmt.Errorf("data key %d: %w", id, err)
	}
	b.mu.Lock()
	b.aeads[id] = aead
	b.mu.Unlock()
	return nil
}

// Encrypt seals plaintext for storage under storageKey.
func (b *Barrier) Encrypt(storageKey string, plaintext []byte) ([]byte, error) {
	b.mu.RLock()
	id := b.active
	aead := b.aeads[id]
	b.mu.RUnlock()
	out := make([]byte, len(BarrierMagic)+4+aead.NonceSize(), len(BarrierMagic)+4+aead.NonceSize()+len(plaintext)+aead.Overhead())
	copy(out, BarrierMagic)
	binary.BigEndian.PutUint32(out[len(BarrierMagic):], id)
	nonce := out[len(BarrierMagic)+4:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, []byte(storageKey)), nil
}

// Decrypt opens a value read from storageKey.
func (b *Barrier) Decrypt(storageKey string, ciphertext []byte) ([]byte, error) {
	h := len(BarrierMagic) + 4
	if len(ciphertext) < h || string(ciphertext[:len(BarrierMagic)]) != BarrierMagic {
		return nil, fmt.Errorf("decrypt %s: not a barrier ciphertext: %w", storageKey, ErrDecrypt)
	}
	id := binary.BigEndian.Uint32(ciphertext[len(BarrierMagic):])
	b.mu.RLock()
	aead := b.aeads[id]
	b.mu.RUnlock()
	if aead == nil {
		return nil, fmt.Errorf("decrypt %s: unknown data key %d: %w", storageKey, id, ErrDecrypt)
	}
	ns := aead.NonceSize()
	if len(ciphertext) < h+ns {
		return nil, fmt.Errorf("decrypt %s: truncated: %w", storageKey, ErrDecrypt)
	}
	pt, err := aead.Open(nil, ciphertext[h:h+ns], ciphertext[h+ns:], []byte(storageKey))
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w", storageKey, ErrDecrypt)
	}
	return pt, nil
}

// Mac returns HMAC-SHA256 over purpose and msg under the active data key,
// for proofs that every holder of the keyring computes alike, such as the
// join proof that a new node opened the keyring with its seal.
func (b *Barrier) Mac(purpose string, parts ...[]byte) []byte {
	b.mu.RLock()
	key := b.rawActive
	b.mu.RUnlock()
	return hmacSHA256(key, append([][]byte{[]byte(purpose)}, parts...)...)
}

func hmacSHA256(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}
