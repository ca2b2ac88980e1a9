package core

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/raftstore"
)

// Key rotation in the domain core: rotate now, and the rotation policy
// (stored and served; its Rotate action is the renewal engine's to carry
// out).

// RotationPolicy is Key Vault's key rotation policy. certvault stores it
// and serves it; a Rotate action in it is carried out by the renewal
// engine once that exists, and POST /keys/{name}/rotate rotates now.
type RotationPolicy struct {
	ID              string                `json:"id,omitempty"`
	LifetimeActions []rotationAction      `json:"lifetimeActions"`
	Attributes      rotationPolicyAttribs `json:"attributes"`
}

type rotationAction struct {
	Trigger struct {
		TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
		TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
	} `json:"trigger"`
	Action struct {
		Type string `json:"type"`
	} `json:"action"`
}

type rotationPolicyAttribs struct {
	ExpiryTime string `json:"expiryTime,omitempty"`
	Created    int64  `json:"created,omitempty"`
	Updated    int64  `json:"updated,omitempty"`
}

// isoDuration matches the ISO 8601 durations Key Vault uses (P90D, P1Y2M,
// PT12H).
var isoDuration = regexp.MustCompile(`^P(?:\d+Y)?(?:\d+M)?(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+S)?)?$`)

func RotationPolicyKey(name string) string { return "rotation/keys/" + objname.Canonical(name) }

// RotateKeyRequest names the key to rotate.
type RotateKeyRequest struct {
	Name string
}

// RotateKey makes a new current version of a key with the same type,
// size or curve, operations and tags as the current one (an HSM key stays
// in the HSM). A managed key is refused.
func (c *Core) RotateKey(ctx context.Context, p Caller, req RotateKeyRequest) (KeyVersion, error) {
	name := req.Name
	m, version, err := c.ResolveVersion(KindKeys, name, "")
	if err != nil {
		return KeyVersion{}, err
	}
	if m.ManagedBy != "" {
		return KeyVersion{}, errManaged(KindKeys, name)
	}
	v, _, ok, err := c.LoadVersion(KindKeys, name, version)
	if err != nil || !ok {
		return KeyVersion{}, OrObjectNotFound(err, KindKeys, name, version)
	}
	pub, err := x509.ParsePKIXPublicKey(v.PublicKey)
	if err != nil {
		return KeyVersion{}, Internal(err)
	}
	kp := &keyvault.KeyProperties{}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		kp.KeyType, kp.KeySize = keyvault.KeyTypeRSA, k.N.BitLen()
	case *ecdsa.PublicKey:
		kp.KeyType, kp.Curve = keyvault.KeyTypeEC, k.Curve.Params().Name
	default:
		return KeyVersion{}, Internal(fmt.Errorf("key %s has an unknown type", name))
	}
	if v.HSM {
		kp.KeyType += "-HSM" // a rotated HSM key stays in the HSM
	}
	key, err := c.GenerateKey(kp)
	if err != nil {
		return KeyVersion{}, err
	}
	return c.storeKeyVersion(ctx, name, key, v.KeyOps, nil, v.Tags)
}

// KeyRotationPolicyRequest names the key whose rotation policy is read.
type KeyRotationPolicyRequest struct {
	Name string
}

// GetKeyRotationPolicy returns a key's rotation policy, or Key Vault's
// default (notify 30 days before expiry) when none was set. Its ID is
// left to the front.
func (c *Core) GetKeyRotationPolicy(ctx context.Context, p Caller, req KeyRotationPolicyRequest) (RotationPolicy, error) {
	if _, _, err := c.ResolveVersion(KindKeys, req.Name, ""); err != nil {
		return RotationPolicy{}, err
	}
	pol := RotationPolicy{LifetimeActions: []rotationAction{}}
	if e, ok := c.Store.Get(RotationPolicyKey(req.Name)); ok {
		json.Unmarshal(e.Value, &pol)
	} else {
		// Key Vault's default: notify 30 days before expiry.
		var a rotationAction
		a.Trigger.TimeBeforeExpiry, a.Action.Type = "P30D", "Notify"
		pol.LifetimeActions = []rotationAction{a}
	}
	return pol, nil
}

// SetKeyRotationPolicyRequest sets a key's rotation policy.
type SetKeyRotationPolicyRequest struct {
	Name   string
	Policy RotationPolicy
}

// KeyRotationPolicyResult is the stored policy (ID empty) and the index
// of the write.
type KeyRotationPolicyResult struct {
	Policy RotationPolicy
	Index  uint64
}

// SetKeyRotationPolicy validates and stores a key's rotation policy,
// keeping the creation time of the one it replaces.
func (c *Core) SetKeyRotationPolicy(ctx context.Context, p Caller, req SetKeyRotationPolicyRequest) (KeyRotationPolicyResult, error) {
	name, pol := req.Name, req.Policy
	if _, _, err := c.ResolveVersion(KindKeys, name, ""); err != nil {
		return KeyRotationPolicyResult{}, err
	}
	for i, a := range pol.LifetimeActions {
		t := a.Trigger
		if (t.TimeAfterCreate == "") == (t.TimeBeforeExpiry == "") {
			return KeyRotationPolicyResult{}, BadParameter(fmt.Sprintf("lifetimeActions[%d].trigger", i), "lifetimeActions[%d].trigger: give timeAfterCreate or timeBeforeExpiry (ISO 8601, such as P90D)", i)
		}
		for _, d := range []string{t.TimeAfterCreate, t.TimeBeforeExpiry} {
			if d != "" && !isoDuration.MatchString(d) {
				return KeyRotationPolicyResult{}, BadParameter(fmt.Sprintf("lifetimeActions[%d].trigger", i), "lifetimeActions[%d].trigger: %q is not an ISO 8601 duration such as P90D", i, d)
			}
		}
		switch a.Action.Type {
		case "Rotate", "Notify", "rotate", "notify":
		default:
			return KeyRotationPolicyResult{}, BadParameter(fmt.Sprintf("lifetimeActions[%d].action.type", i), "lifetimeActions[%d].action.type %q: use Rotate or Notify", i, a.Action.Type)
		}
	}
	if pol.Attributes.ExpiryTime != "" && !isoDuration.MatchString(pol.Attributes.ExpiryTime) {
		return KeyRotationPolicyResult{}, BadParameter("attributes.expiryTime", "attributes.expiryTime %q is not an ISO 8601 duration such as P2Y", pol.Attributes.ExpiryTime)
	}
	e, _ := c.Store.Get(RotationPolicyKey(name))
	now := nowUnix()
	pol.Attributes.Created, pol.Attributes.Updated = now, now
	if e.Value != nil {
		var old RotationPolicy
		if json.Unmarshal(e.Value, &old) == nil && old.Attributes.Created != 0 {
			pol.Attributes.Created = old.Attributes.Created
		}
	}
	pol.ID = ""
	idx, err := c.Commit(ctx, (&raftstore.Batch{}).PutIf(RotationPolicyKey(name), MustJSON(pol), e.Index))
	if err != nil {
		return KeyRotationPolicyResult{}, err
	}
	return KeyRotationPolicyResult{Policy: pol, Index: idx}, nil
}
