package core

import (
	"crypto"
	"encoding/json"
	"fmt"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/renewal"
)

// Renewal and expiry-event plans, certificate policies and pending
// operations as stored: the core writes them with the versions they
// belong to; the issuance service reads them to renew.

// Renewal plans live in Raft under sched/certificates/DUE/NAME, DUE the
// Unix second the renewal is due, zero-padded so that keys sort by time.
// A certificate's meta record names its plan (objectMeta.Plan). The
// leader reads only the plans that are due, so a tick with nothing due
// costs the same with ten certificates or a million.
const (
	SchedPrefix     = "sched/certificates/"
	SchedMailPrefix = "schedmail/certificates/"
)

func SchedKey(due time.Time, name string) string {
	return schedAt(SchedPrefix, due, name)
}

func schedAt(prefix string, due time.Time, name string) string {
	return prefix + fmt.Sprintf("%012d", due.Unix()) + "/" + name
}

// RenewalPlan is a plan's value.
type RenewalPlan struct {
	Version string `json:"version"`
	// Attempts counts renewals of this version that failed; LastError
	// says why the last one did.
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
}

// RenewalHalt records that the renewal brake stopped a certificate's
// automatic renewal.
type RenewalHalt struct {
	// At is when (Unix seconds); Version the current version then.
	At      int64  `json:"at"`
	Version string `json:"version"`
	// Reason says what the brake saw, for the operation, event and mail.
	Reason string `json:"reason"`
}

// PlanVersion adds to b the renewal plan of a certificate's version (and
// the removal of the plan it replaces), and records it in cm.
func PlanVersion(b *raftstore.Batch, cm *ObjectMeta, name, version string, p *keyvault.Policy, v *VersionMeta) {
	var ari *renewal.Window
	if ri := v.RenewalInfo; ri != nil {
		ari = &renewal.Window{Start: time.Unix(ri.Start, 0), End: time.Unix(ri.End, 0)}
	}
	var nbf, exp time.Time
	if v.Attributes.NotBefore != nil && v.Attributes.Expires != nil {
		nbf, exp = time.Unix(*v.Attributes.NotBefore, 0), time.Unix(*v.Attributes.Expires, 0)
	}
	// The lifetime counts from when the vault got the certificate: a
	// notBefore backdated for clock skew (a minute, for the vault's own
	// issuers) must not make a short-lived version due at once, and a
	// version is never due before it exists.
	if created := time.Unix(v.Attributes.Created, 0); v.Attributes.Created != 0 && created.After(nbf) && created.Before(exp) {
		nbf = created
	}
	key := ""
	if due, ok := renewal.Due(p, name, nbf, exp, ari); ok && !exp.IsZero() && cm.Halted == nil {
		key = SchedKey(due, name)
	}
	if cm.Plan != "" && cm.Plan != key {
		b.Delete(cm.Plan)
	}
	if key != "" {
		b.Put(key, MustJSON(RenewalPlan{Version: version}))
	}
	cm.Plan = key
	mailKey := ""
	if due, ok := renewal.EmailDue(p, name, nbf, exp); ok && !exp.IsZero() {
		mailKey = schedAt(SchedMailPrefix, due, name)
	}
	if cm.MailPlan != "" && cm.MailPlan != mailKey {
		b.Delete(cm.MailPlan)
	}
	if mailKey != "" {
		b.Put(mailKey, MustJSON(RenewalPlan{Version: version}))
	}
	cm.MailPlan = mailKey
}

// PlanExpiryEvents adds to b the NearExpiry and Expired events of a
// version that expires at exp (and drops the previous version's), and
// records them in m.
func (c *Core) PlanExpiryEvents(b *raftstore.Batch, m *ObjectMeta, kind, name, version string, nbf, exp *int64) {
	for _, k := range m.EventPlans {
		b.Delete(k)
	}
	m.EventPlans = nil
	if exp == nil {
		return
	}
	near, expired := EventCertificateNearExpiry, EventCertificateExpired
	if kind == KindSecrets {
		near, expired = EventSecretNearExpiry, EventSecretExpired
	}
	end := time.Unix(*exp, 0)
	at := end.Add(-c.settings().nearExpiry())
	if nbf != nil && at.Before(time.Unix(*nbf, 0)) {
		at = time.Unix(*nbf, 0)
	}
	for _, p := range []struct {
		typ string
		due time.Time
	}{{near, at}, {expired, end}} {
		key := SchedEventPrefix + fmt.Sprintf("%012d", p.due.Unix()) + "/" + kind + "/" + name + "/" + p.typ
		b.Put(key, MustJSON(RenewalPlan{Version: version}))
		m.EventPlans = append(m.EventPlans, key)
	}
}

// Expiry events are planned like renewals, under
// schedevt/DUE/KIND/NAME/TYPE, when a version is made.
const SchedEventPrefix = "schedevt/"

// LoadPolicy returns a certificate's policy.
func (c *Core) LoadPolicy(name string) (*keyvault.Policy, raftstore.Entry, bool, error) {
	e, ok := c.Store.Get(PolicyKey(name))
	if !ok {
		return nil, e, false, nil
	}
	var p keyvault.Policy
	if err := json.Unmarshal(e.Value, &p); err != nil {
		return nil, e, false, fmt.Errorf("decode policy of %s: %w", name, err)
	}
	return &p, e, true, nil
}

func (c *Core) LoadPending(name string) (*PendingOp, raftstore.Entry, bool, error) {
	e, ok := c.Store.Get(PendingKey(name))
	if !ok {
		return nil, e, false, nil
	}
	var op PendingOp
	if err := json.Unmarshal(e.Value, &op); err != nil {
		return nil, e, false, fmt.Errorf("decode pending operation of %s: %w", name, err)
	}
	return &op, e, true, nil
}

// OpenPrivateKey decrypts a stored private key (or its HSM reference).
func (c *Core) OpenPrivateKey(e raftstore.Entry) (crypto.Signer, error) {
	b, err := c.OpenSealed(e)
	if err != nil {
		return nil, err
	}
	k, err := c.DecodePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", e.Key, err)
	}
	return k, nil
}

// CertKey returns a certificate version's private key: decrypted, or
// found in the HSM (nil when the version has none, e.g. imported without
// its key).
func (c *Core) CertKey(name, version string) (crypto.Signer, error) {
	e, ok := c.Store.Get(ValKey(KindCertificates, name, version))
	if !ok {
		return nil, nil
	}
	return c.OpenPrivateKey(e)
}

// PendingOp is a certificate's pending operation as stored.
type PendingOp struct {
	RequestID     string               `json:"request_id"`
	Issuer        string               `json:"issuer"`
	CertType      string               `json:"cty,omitempty"`
	CSR           []byte               `json:"csr,omitempty"`
	Status        string               `json:"status"`
	StatusDetails string               `json:"status_details,omitempty"`
	Error         *keyvault.ErrorInfo  `json:"error,omitempty"`
	Cancel        bool                 `json:"cancel,omitempty"`
	Target        string               `json:"target,omitempty"`
	Created       int64                `json:"created"`
	Attributes    *keyvault.Attributes `json:"attributes,omitempty"`
	Tags          map[string]string    `json:"tags,omitempty"`
	// KeyReused is set when the pending key is the current version's.
	KeyReused bool `json:"key_reused,omitempty"`
	// Renewal marks an operation the renewal scheduler started: the
	// contacts are told how it ends.
	Renewal bool `json:"renewal,omitempty"`
	// ACMEOrder is the URL of an ACME issuer's order at the CA, once
	// placed (the order's state is at acmeOrderKey).
	ACMEOrder string `json:"acme_order,omitempty"`
	// CreatedBy is the principal that asked for the certificate (empty
	// for a renewal).
	CreatedBy string `json:"created_by,omitempty"`
	// Version is the id of the version the operation makes, chosen when
	// it starts: Key Vault shows a pending certificate as that version,
	// disabled, until it completes. Empty in operations recorded before
	// it was kept; they get an id when they complete.
	Version string `json:"version,omitempty"`
}
