package issuance

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/acme"
	"github.com/certvault/certvault/vault/certs"
	"github.com/prometheus/client_golang/prometheus"
)

// The issuance core: how a certificate gets a version. A person's create
// and the renewal scheduler both go through startIssuance, which issues at
// once (Self, internal issuers), leaves a CSR to merge (Unknown), or
// queues an ACME order that the order runner drives (acmeorders.go).

// madeBy records on a version who made it and how (create, renewal,
// import, merge): the evidence report's rotation history.
func madeBy(by, how string) func(*core.VersionMeta) {
	return func(v *core.VersionMeta) { v.CreatedBy, v.How = by, how }
}

// opVersion is the id of the version an operation makes: the one chosen
// when it started (which Key Vault showed while it was pending), or a new
// one for an operation recorded before that was kept.
func opVersion(op *core.PendingOp) (string, error) {
	if op.Version != "" {
		return op.Version, nil
	}
	return core.NewVersionID()
}

// opMadeBy is madeBy for a version an operation produced.
func opMadeBy(op *core.PendingOp) func(*core.VersionMeta) {
	if op.Renewal {
		return madeBy("renewal", "renewal")
	}
	return madeBy(op.CreatedBy, "create")
}

func policyError(err error) error {
	if errors.Is(err, keyvault.ErrInvalidPolicy) {
		return core.BadParameter("policy", "%s", strings.TrimPrefix(err.Error(), keyvault.ErrInvalidPolicy.Error()+": "))
	}
	return err
}

// checkIssuer makes sure the policy's issuer exists.
func (s *Issuance) checkIssuer(p *keyvault.Policy) error {
	name := p.IssuerName()
	if name == keyvault.IssuerSelf || name == keyvault.IssuerUnknown {
		return nil
	}
	if _, ok := s.Store.Get(IssuerKey(name)); !ok {
		return core.BadParameter("policy.issuer.name", "issuer %q named by the policy does not exist: create it with 'certvault issuer set %s ...' or use Self or Unknown", name, name)
	}
	return s.checkValidityFits(p, s.Now())
}

// checkFreeName refuses a certificate name held by a deleted certificate
// or by a secret or key that the certificate would not manage.
func (s *Issuance) checkFreeName(name string) error {
	if _, _, _, err := s.MetaForNewVersion(core.KindCertificates, name); err != nil {
		return err
	}
	for _, k := range core.ManagedKinds {
		mm, _, ok, err := s.LoadMeta(k, name)
		if err != nil {
			return err
		}
		if ok && mm.ManagedBy != core.KindCertificates {
			return core.Conflict("Conflict", "a %s named %s exists; a certificate needs its name for its managed %s", core.Singular(k), name, core.Singular(k))
		}
	}
	return nil
}

// StartIssuance is create's core: it generates (or reuses) the key, then
// issues at once for Self and internal issuers, or leaves a pending
// operation with a CSR for Unknown. Everything random happens here, before
// the single raft command that records the result.
//
// extra adds conditions or writes to the command and may mark the
// operation (the renewal scheduler makes it conditional on the plan it
// consumes, and marks it a renewal).
//
// A person's create (no extra) that loses a race with the vault's own
// writes to the certificate (the scheduler planning its renewal or mail)
// is made again from a fresh read, up to issuanceTries times, instead of
// answering 409: the person asked for nothing that conflicts. A renewal
// (with extra conditions) is not: its conflict means the plan it consumed
// was taken.
//
// p is who asked (the zero caller for the vault's own renewals); the
// operation records its name. The raft index of the command is returned
// with the operation.
func (s *Issuance) StartIssuance(ctx context.Context, p core.Caller, name string, policy *keyvault.Policy, attrs *keyvault.Attributes, tags map[string]string, extra ...func(*raftstore.Batch, *core.PendingOp) error) (*core.PendingOp, uint64, error) {
	for try := 1; ; try++ {
		op, idx, err := s.startIssuanceOnce(ctx, p, name, policy, attrs, tags, extra...)
		if len(extra) == 0 && try < IssuanceTries && errors.Is(err, raftstore.ErrConflict) && ctx.Err() == nil {
			// The write that won may not be applied here yet (a
			// follower builds creates too): catch up before building
			// again, or the next try loses the same race.
			if !s.Store.IsLeader() {
				if lerr := s.Store.Linearize(ctx); lerr != nil {
					return nil, 0, lerr
				}
			}
			continue
		}
		return op, idx, err
	}
}

// IssuesOnAnyNode reports whether a create with policy may be built on
// the node that received it, leader or not: the key is made in software
// (not in an HSM) and the certificate is signed at once, by its own key
// (issuer Self) or by an internal CA whose sealed key every node holds.
// Such a create reads only what a read index brings up to date and
// commits one batch whose compare-and-sets on the certificate's records
// (meta, policy, pending operation) refuse it when another node's write
// got there first, so it can be built anywhere; other creates (Unknown,
// ACME issuers, HSM keys, a create without a policy) go to the leader.
// See vault/DESIGN.md, "Creates built on any node".
func (s *Issuance) IssuesOnAnyNode(policy *keyvault.Policy) bool {
	if policy == nil {
		return false
	}
	if kp := policy.KeyProperties; kp != nil && strings.HasSuffix(kp.KeyType, "-HSM") {
		return false
	}
	switch name := policy.IssuerName(); name {
	case keyvault.IssuerSelf:
		return true
	case keyvault.IssuerUnknown:
		return false
	default:
		si, _, ok, err := s.loadIssuer(name)
		return err == nil && ok && si.Provider == providerInternal
	}
}

// IssuanceTries bounds how often a person's create is made again after a
// concurrent change of the same certificate.
const IssuanceTries = 3

// startIssuanceOnce is one try of startIssuance.
func (s *Issuance) startIssuanceOnce(ctx context.Context, p core.Caller, name string, policy *keyvault.Policy, attrs *keyvault.Attributes, tags map[string]string, extra ...func(*raftstore.Batch, *core.PendingOp) error) (*core.PendingOp, uint64, error) {
	if err := s.checkIssuer(policy); err != nil {
		return nil, 0, err
	}
	acmeIssuer, err := s.acmeIssuerOf(policy)
	if err != nil {
		return nil, 0, err
	}
	if err := s.checkFreeName(name); err != nil {
		return nil, 0, err
	}
	cm, cprev, found, err := s.LoadMeta(core.KindCertificates, name)
	if err != nil {
		return nil, 0, err
	}
	prevOp, opEntry, hasOp, err := s.LoadPending(name)
	if err != nil {
		return nil, 0, err
	}
	if hasOp && prevOp.Status == keyvault.StatusInProgress {
		return nil, 0, core.Conflict("Conflict", "certificate %s has a pending operation in progress; cancel or delete it first ('certvault cert operation %s --cancel')", name, name)
	}
	_, polEntry, _, err := s.LoadPolicy(name)
	if err != nil {
		return nil, 0, err
	}

	key, reused, err := s.keyForIssuance(name, cm, found, policy)
	if err != nil {
		return nil, 0, err
	}
	reqID, err := core.RandomID(16)
	if err != nil {
		return nil, 0, err
	}
	version, err := core.NewVersionID()
	if err != nil {
		return nil, 0, err
	}
	now := s.Now()
	op := &core.PendingOp{RequestID: reqID, Issuer: policy.IssuerName(), Status: keyvault.StatusInProgress, Created: now.Unix(), Attributes: attrs, Tags: tags, KeyReused: reused, CreatedBy: p.Name, Version: version}
	if policy.Issuer != nil {
		op.CertType = policy.Issuer.CertificateType
	}

	b := &raftstore.Batch{}
	b.PutIf(core.PolicyKey(name), core.MustJSON(stampPolicy(policy, polEntry)), polEntry.Index)
	for _, f := range extra {
		if err := f(b, op); err != nil {
			return nil, 0, err
		}
	}
	switch {
	case acmeIssuer:
		domains, err := acmeDomains(policy)
		if err != nil {
			return nil, 0, err
		}
		csr, err := certs.DomainCSR(domains, key)
		if err != nil {
			return nil, 0, err
		}
		op.CSR = csr
		ord := &acmeOrder{RequestID: reqID, Issuer: policy.IssuerName(), Progress: acme.Progress{Step: acme.StepQueued, Profile: policy.Issuer.Profile}}
		if found && cm.Current != "" {
			// A renewal through the issuer of the current version tells
			// the CA which certificate it replaces (RFC 9773).
			if v, _, ok, _ := s.LoadVersion(core.KindCertificates, name, cm.Current); ok && v.ACMEIssuer == policy.IssuerName() && len(v.Chain) > 0 {
				if leaf, err := x509.ParseCertificate(v.Chain[0]); err == nil {
					ord.Progress.Replaces, _ = acme.ARICertID(leaf)
				}
			}
		}
		if err := s.queueOrder(b, name, ord); err != nil {
			return nil, 0, err
		}
		op.StatusDetails = acme.StepQueued
		if err := s.holdPending(b, name, key, found, cprev, now); err != nil {
			return nil, 0, err
		}
	case policy.IssuerName() == keyvault.IssuerUnknown:
		csr, err := certs.CSR(policy, key)
		if err != nil {
			return nil, 0, err
		}
		op.CSR = csr
		op.StatusDetails = "Pending certificate created. Please perform a merge to complete the request."
		if err := s.holdPending(b, name, key, found, cprev, now); err != nil {
			return nil, 0, err
		}
	default:
		der, chain, err := s.issueNow(policy, key, now)
		if err != nil {
			return nil, 0, err
		}
		if err := s.addCertVersion(b, name, version, policy, key, append([][]byte{der}, chain...), attrs, tags, now, opMadeBy(op)); err != nil {
			return nil, 0, err
		}
		op.Status, op.StatusDetails = keyvault.StatusCompleted, ""
		if op.Renewal {
			if err := s.mailRenewed(b, name, cm, version, der, op.Issuer); err != nil {
				return nil, 0, err
			}
		}
	}
	b.PutIf(core.PendingKey(name), core.MustJSON(op), opEntry.Index)
	if s.BeforeIssuanceApply != nil {
		s.BeforeIssuanceApply(name)
	}
	idx, err := s.Commit(ctx, b)
	if err != nil {
		if errors.Is(err, raftstore.ErrConflict) {
			return nil, 0, &core.Error{Kind: core.KindConflict, Code: "Conflict", Message: fmt.Sprintf("certificate %s was changed concurrently; retry", name), Cause: err}
		}
		return nil, 0, err
	}
	return op, idx, nil
}

// holdPending adds to b the pending key of an operation completed later
// (by a merge or an ACME order) and, for a new name, its meta record: the
// name is taken from now on, as in Key Vault, and the certificate is
// listed with includePending.
func (s *Issuance) holdPending(b *raftstore.Batch, name string, key crypto.Signer, found bool, cprev raftstore.Entry, now time.Time) error {
	keyDER, err := core.EncodePrivateKey(key)
	if err != nil {
		return err
	}
	if err := core.PutSealed(b, s.Barrier.Load(), core.PendKeyKey(name), keyDER); err != nil {
		return err
	}
	if !found {
		core.PutMeta(b, core.KindCertificates, name, core.ObjectMeta{Created: now.Unix()}, cprev)
	}
	return nil
}

// keyForIssuance returns the current version's key when the policy says
// reuse_key and one exists with the same key properties, else a new key.
func (s *Issuance) keyForIssuance(name string, cm core.ObjectMeta, found bool, policy *keyvault.Policy) (crypto.Signer, bool, error) {
	if policy.ReuseKey() && found && cm.Current != "" {
		if key, err := s.CertKey(name, cm.Current); err == nil && key != nil && keyMatchesPolicy(key, policy) {
			return key, true, nil
		}
	}
	key, err := s.GenerateKey(policy.KeyProperties)
	return key, false, err
}

func keyMatchesPolicy(key crypto.Signer, p *keyvault.Policy) bool {
	want := certs.PolicyFor(&x509.Certificate{}, key, "").KeyProperties
	kp := p.KeyProperties
	return strings.TrimSuffix(kp.KeyType, "-HSM") == want.KeyType && kp.KeySize == want.KeySize
}

// issueNow signs a certificate for key with the policy's issuer (Self or a
// named internal CA) and returns it with the issuer chain.
func (s *Issuance) issueNow(policy *keyvault.Policy, key crypto.Signer, now time.Time) ([]byte, [][]byte, error) {
	if policy.IssuerName() == keyvault.IssuerSelf {
		der, err := certs.SelfSign(policy, key, now)
		return der, nil, err
	}
	return s.issueFromIssuer(policy, key.Public(), now)
}

// addCertVersion adds the writes that make a new current version of a
// certificate with its managed key and secret.
//
// opts change the version record before it is written (an ACME order
// adds its issuer and the CA's renewal window); the renewal plan is made
// from the result.
func (s *Issuance) addCertVersion(b *raftstore.Batch, name, version string, policy *keyvault.Policy, key crypto.Signer, chain [][]byte, attrs *keyvault.Attributes, tags map[string]string, now time.Time, opts ...func(*core.VersionMeta)) error {
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("parse issued certificate: %w", err)
	}
	v := core.VersionMeta{Tags: tags, ContentType: policy.ContentType(), Chain: chain, Sealed: key != nil, HSM: key != nil && core.IsHSMKey(key),
		Attributes: s.NewVersionAttributes(attrs, now.Unix())}
	// The certificate's validity, whatever the request said.
	nbf, exp := leaf.NotBefore.Unix(), leaf.NotAfter.Unix()
	v.Attributes.NotBefore, v.Attributes.Expires = &nbf, &exp
	if tags == nil {
		// A renewal keeps the tags of the current version.
		if cm, _, ok, _ := s.LoadMeta(core.KindCertificates, name); ok {
			v.Tags = cm.Tags
		}
	}
	for _, o := range opts {
		o(&v)
	}
	var der []byte
	if key != nil {
		if der, err = core.EncodePrivateKey(key); err != nil {
			return err
		}
	}
	if err := s.PutVersionRecord(b, core.KindCertificates, name, version, v, der); err != nil {
		return err
	}
	x5t := certs.Thumbprint(chain[0])
	cm, cprev, found, err := s.LoadMeta(core.KindCertificates, name)
	if err != nil {
		return err
	}
	if !found {
		cm = core.ObjectMeta{Created: now.Unix()}
	}
	if err := recordRenewal(&cm, v.How == "renewal", now); err != nil {
		return err
	}
	cm.Current, cm.Summary, cm.Tags, cm.X5t, cm.Content, cm.Deleted = version, v.Attributes, v.Tags, x5t, v.ContentType, nil
	core.PlanVersion(b, &cm, name, version, policy, &v)
	s.PlanExpiryEvents(b, &cm, core.KindCertificates, name, version, &nbf, &exp)
	core.PutMeta(b, core.KindCertificates, name, cm, cprev)
	if err := s.EmitEvent(b, core.EventCertificateNewVersionCreated, core.KindCertificates, name, version, &nbf, &exp, ""); err != nil {
		return err
	}
	for _, k := range core.ManagedKinds {
		mm, mprev, found, err := s.LoadMeta(k, name)
		if err != nil {
			return err
		}
		if !found {
			mm = core.ObjectMeta{Created: now.Unix(), ManagedBy: core.KindCertificates}
		}
		mm.Current, mm.Summary, mm.Tags, mm.Content = version, v.Attributes, v.Tags, v.ContentType
		core.PutMeta(b, k, name, mm, mprev)
	}
	return nil
}

// stampPolicy sets the policy's read-only attributes: enabled, created
// (kept from the stored policy, prev) and updated.
func stampPolicy(p *keyvault.Policy, prev raftstore.Entry) *keyvault.Policy {
	now := time.Now().Unix()
	created := now
	if prev.Value != nil {
		var old keyvault.Policy
		if json.Unmarshal(prev.Value, &old) == nil && old.Attributes != nil && old.Attributes.Created != 0 {
			created = old.Attributes.Created
		}
	}
	a := keyvault.Attributes{Created: created, Updated: now}
	if p.Attributes != nil && p.Attributes.Enabled != nil {
		a.Enabled = p.Attributes.Enabled
	} else {
		t := true
		a.Enabled = &t
	}
	cp := *p
	cp.Attributes = &a
	return &cp
}

// Issuance is certificates: their policies and pending operations,
// issuance through the issuers (the internal CA, ACME CAs, a CSR to an
// offline CA), and renewal planning and the renewal scheduler.
type Issuance struct {
	*core.Core
	// Renewals counts automatic renewals by result (done, failed,
	// halted).
	Renewals *prometheus.CounterVec
	// BeforeIssuanceApply, set only by tests, runs just before an
	// issuance's raft command: a test writes to the certificate there to
	// lose the race that the scheduler's writes can win on a busy node.
	BeforeIssuanceApply func(name string)
}

// NewIssuance returns the issuance service over c.
func NewIssuance(c *core.Core) *Issuance {
	return &Issuance{Core: c, Renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certvault_renewals_total",
		Help: "Automatic renewals by this node as leader: done, failed, or halted (by the renewal brake).",
	}, []string{"result"})}
}
