package core

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/certvault/certvault/vault/barrier"

	"github.com/certvault/certvault/raftstore"
)

// Secret material goes through the barrier: these put it into a batch
// and read it back.

// PutSealed adds a put of plaintext, encrypted by the barrier, to b.
func PutSealed(b *raftstore.Batch, bar *barrier.Barrier, key string, plaintext []byte) error {
	ct, err := bar.Encrypt(key, plaintext)
	if err != nil {
		return err
	}
	b.Put(key, ct)
	return nil
}

// PutSealedJSON is putSealed of v's JSON.
func PutSealedJSON(b *raftstore.Batch, bar *barrier.Barrier, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return PutSealed(b, bar, key, data)
}

// PutSealedJSONIf is PutSealedJSON as a compare-and-set on index
// (raftstore.NotExist: only while key is absent).
func PutSealedJSONIf(b *raftstore.Batch, bar *barrier.Barrier, key string, v any, index uint64) error {
	if bar == nil {
		return ErrNotInitialized
	}
	var one raftstore.Batch
	if err := PutSealedJSON(&one, bar, key, v); err != nil {
		return err
	}
	b.PutIf(key, one.Ops[0].Value, index)
	return nil
}

// GetSealedJSON decrypts an entry and decodes its JSON into v.
func (c *Core) GetSealedJSON(e raftstore.Entry, v any) error {
	pt, err := c.OpenSealed(e)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(pt, v); err != nil {
		return fmt.Errorf("decode %s: %w", e.Key, err)
	}
	return nil
}

// OpenSealed decrypts an entry's value.
func (c *Core) OpenSealed(e raftstore.Entry) ([]byte, error) {
	b := c.Barrier.Load()
	if b == nil {
		return nil, ErrNotInitialized
	}
	return b.Decrypt(e.Key, e.Value)
}

// CAKey decrypts the vault CA's private key.
func (c *Core) CAKey() (*ecdsa.PrivateKey, error) {
	e, ok := c.Store.Get(KeyCAKey)
	if !ok {
		return nil, ErrNotInitialized
	}
	pt, err := c.OpenSealed(e)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyPEM(pt)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("CA key is not ECDSA")
	}
	return ek, nil
}
