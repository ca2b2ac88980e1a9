package vault

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/vault/access"
	"net/http"
	"regexp"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
)

// rotationPolicy is Key Vault's key rotation policy. certvault stores it
// and serves it; a Rotate action in it is carried out by the renewal
// engine once that exists, and POST /keys/{name}/rotate rotates now.
type rotationPolicy struct {
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

func rotationPolicyKey(name string) string { return "rotation/keys/" + objname.Canonical(name) }

func (n *Node) keyRotationRoutes(rt *router) {
	rt.handle("POST", "/keys/{name}/rotate", access.KeysWrite, n.handleRotateKey)
	rt.handle("GET", "/keys/{name}/rotationpolicy", access.KeysRead, n.handleGetRotationPolicy)
	rt.handle("PUT", "/keys/{name}/rotationpolicy", access.KeysWrite, n.handleSetRotationPolicy)
}

// handleRotateKey makes a new version of a key with the same type, size
// or curve and operations as the current one.
func (n *Node) handleRotateKey(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	m, version, err := n.resolveVersion(kindKeys, name, "")
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if m.ManagedBy != "" {
		n.fail(w, r, forbiddenManaged(kindKeys, name))
		return
	}
	v, _, ok, err := n.loadVersion(kindKeys, name, version)
	if err != nil || !ok {
		n.fail(w, r, orNotFound(err, kindKeys, name, version))
		return
	}
	pub, err := x509.ParsePKIXPublicKey(v.PublicKey)
	if err != nil {
		n.fail(w, r, internalError(err))
		return
	}
	kp := &keyvault.KeyProperties{}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		kp.KeyType, kp.KeySize = keyvault.KeyTypeRSA, k.N.BitLen()
	case *ecdsa.PublicKey:
		kp.KeyType, kp.Curve = keyvault.KeyTypeEC, k.Curve.Params().Name
	default:
		n.fail(w, r, internalError(fmt.Errorf("key %s has an unknown type", name)))
		return
	}
	if v.HSM {
		kp.KeyType += "-HSM" // a rotated HSM key stays in the HSM
	}
	key, err := n.generateKey(kp)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	n.storeNewKey(w, r, name, key, v.KeyOps, nil, v.Tags)
}

func (n *Node) handleGetRotationPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !n.linearized(w, r) {
		return
	}
	if _, _, err := n.resolveVersion(kindKeys, name, ""); err != nil {
		n.fail(w, r, err)
		return
	}
	p := rotationPolicy{LifetimeActions: []rotationAction{}}
	if e, ok := n.store.Get(rotationPolicyKey(name)); ok {
		json.Unmarshal(e.Value, &p)
	} else {
		// Key Vault's default: notify 30 days before expiry.
		var a rotationAction
		a.Trigger.TimeBeforeExpiry, a.Action.Type = "P30D", "Notify"
		p.LifetimeActions = []rotationAction{a}
	}
	p.ID = objectID(r, kindKeys, name, "") + "/rotationpolicy"
	writeJSON(w, http.StatusOK, p)
}

func (n *Node) handleSetRotationPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var p rotationPolicy
	if err := decodeBody(r, &p); err != nil {
		n.fail(w, r, err)
		return
	}
	if _, _, err := n.resolveVersion(kindKeys, name, ""); err != nil {
		n.fail(w, r, err)
		return
	}
	for i, a := range p.LifetimeActions {
		t := a.Trigger
		if (t.TimeAfterCreate == "") == (t.TimeBeforeExpiry == "") {
			n.fail(w, r, badParameter("lifetimeActions[%d].trigger: give timeAfterCreate or timeBeforeExpiry (ISO 8601, such as P90D)", i))
			return
		}
		for _, d := range []string{t.TimeAfterCreate, t.TimeBeforeExpiry} {
			if d != "" && !isoDuration.MatchString(d) {
				n.fail(w, r, badParameter("lifetimeActions[%d].trigger: %q is not an ISO 8601 duration such as P90D", i, d))
				return
			}
		}
		switch a.Action.Type {
		case "Rotate", "Notify", "rotate", "notify":
		default:
			n.fail(w, r, badParameter("lifetimeActions[%d].action.type %q: use Rotate or Notify", i, a.Action.Type))
			return
		}
	}
	if p.Attributes.ExpiryTime != "" && !isoDuration.MatchString(p.Attributes.ExpiryTime) {
		n.fail(w, r, badParameter("attributes.expiryTime %q is not an ISO 8601 duration such as P2Y", p.Attributes.ExpiryTime))
		return
	}
	e, _ := n.store.Get(rotationPolicyKey(name))
	now := nowUnix()
	p.Attributes.Created, p.Attributes.Updated = now, now
	if e.Value != nil {
		var old rotationPolicy
		if json.Unmarshal(e.Value, &old) == nil && old.Attributes.Created != 0 {
			p.Attributes.Created = old.Attributes.Created
		}
	}
	p.ID = ""
	if err := n.apply(r.Context(), w.Header(), (&raftstore.Batch{}).PutIf(rotationPolicyKey(name), mustJSON(p), e.Index)); err != nil {
		n.fail(w, r, err)
		return
	}
	p.ID = objectID(r, kindKeys, name, "") + "/rotationpolicy"
	writeJSON(w, http.StatusOK, p)
}
