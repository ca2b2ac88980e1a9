package core

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/certvault/certvault/vault/barrier"

	"github.com/certvault/certvault/internal/objname"
)

// NameLayout is a storage prefix followed by an object name: directly
// (policy/certificates/NAME) or after a kind segment (meta/KIND/NAME).
type NameLayout struct {
	Prefix  string
	hasKind bool
}

// NameLayouts lists every key layout that carries an object or issuer
// name in the name's position. pki/ISSUER/revoked is handled apart.
var NameLayouts = []NameLayout{
	{"meta/", true}, {"ver/", true}, {"val/", true}, {"deleted/", true},
	{"policy/certificates/", false}, {"pending/certificates/", false}, {"pendkey/certificates/", false},
	{"rotation/keys/", false}, {"issuers/", false}, {ACMEOrdersPrefix, false},
	{PrefixRollouts, true}, {PrefixRolloutPlans, true},
}

// SplitNameKey cuts a storage key around its name segment: head ends with
// the "/" before the name, tail is "" or starts with the "/" after it.
func SplitNameKey(key string) (head, name, tail string, ok bool) {
	if rest, found := strings.CutPrefix(key, "pki/"); found {
		if issuer, after, cut := strings.Cut(rest, "/"); cut && after == "revoked" {
			return "pki/", issuer, "/revoked", true
		}
		return "", "", "", false
	}
	for _, l := range NameLayouts {
		rest, found := strings.CutPrefix(key, l.Prefix)
		if !found {
			continue
		}
		head = l.Prefix
		if l.hasKind {
			kind, after, cut := strings.Cut(rest, "/")
			if !cut {
				return "", "", "", false
			}
			head, rest = head+kind+"/", after
		}
		name, tail, _ = strings.Cut(rest, "/")
		if tail != "" || strings.HasSuffix(rest, "/") {
			tail = "/" + tail
		}
		return head, name, tail, name != ""
	}
	return "", "", "", false
}

// CanonicalStorageKey returns key with its name segment in canonical form
// (key itself when it carries no name).
func CanonicalStorageKey(key string) string {
	head, name, tail, ok := SplitNameKey(key)
	if !ok {
		return key
	}
	return head + objname.Canonical(name) + tail
}

// RekeyEntry returns the canonical key of an entry and its value as it
// must be stored there. fixSealed, when set, may change a sealed value's
// plaintext before it is sealed again under the new key (the node's
// migration restores an issuer's spelling inside its record).
func (c *Core) RekeyEntry(key string, value []byte, fixSealed func(key string, plaintext []byte) []byte) (string, []byte, error) {
	nk := CanonicalStorageKey(key)
	if nk == key {
		return key, value, nil
	}
	if strings.HasPrefix(string(value), barrier.BarrierMagic) {
		bar := c.Barrier.Load()
		if bar == nil {
			return "", nil, ErrNotInitialized
		}
		pt, err := bar.Decrypt(key, value)
		if err != nil {
			return "", nil, fmt.Errorf("re-seal %s: %w", key, err)
		}
		if fixSealed != nil {
			pt = fixSealed(key, pt)
		}
		ct, err := bar.Encrypt(nk, pt)
		if err != nil {
			return "", nil, fmt.Errorf("re-seal %s: %w", key, err)
		}
		return nk, ct, nil
	}
	if strings.HasPrefix(key, "meta/") {
		var m ObjectMeta
		if err := json.Unmarshal(value, &m); err != nil {
			return "", nil, fmt.Errorf("decode %s: %w", key, err)
		}
		if m.Name == "" {
			_, m.Name, _, _ = SplitNameKey(key)
		}
		return nk, MustJSON(m), nil
	}
	return nk, value, nil
}

// ACMEOrdersPrefix holds the ACME orders with work left: driving an
// order, or removing its challenge records.
const ACMEOrdersPrefix = "acme/orders/"

// Where rollouts keep their plans and their state.
const (
	PrefixRolloutPlans = "rollout/plans/"
	PrefixRollouts     = "rollout/state/"
)
