package vault

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/certvault/certvault/vault/access"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/acme"
	"github.com/certvault/certvault/vault/certs"
)

// pendingOp is a certificate's pending operation as stored.
type pendingOp struct {
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
}

// madeBy records on a version who made it and how (create, renewal,
// import, merge): the evidence report's rotation history.
func madeBy(by, how string) func(*versionMeta) {
	return func(v *versionMeta) { v.CreatedBy, v.How = by, how }
}

// opMadeBy is madeBy for a version an operation produced.
func opMadeBy(op *pendingOp) func(*versionMeta) {
	if op.Renewal {
		return madeBy("renewal", "renewal")
	}
	return madeBy(op.CreatedBy, "create")
}

func (n *Node) certificateRoutes(rt *router) {
	rt.handle("POST", "/certificates/{name}/create", access.CertificatesWrite, n.handleCreateCertificate)
	rt.handle("POST", "/certificates/{name}/import", access.CertificatesWrite, n.handleImportCertificate)
	rt.handle("GET", "/certificates", access.CertificatesRead, n.handleListCertificates)
	rt.handle("GET", "/certificates/{name}", access.CertificatesRead, n.handleGetCertificate)
	rt.handle("GET", "/certificates/{name}/{version}", access.CertificatesRead, n.handleGetCertificate)
	rt.handle("PATCH", "/certificates/{name}", access.CertificatesWrite, n.handleUpdateCertificate)
	rt.handle("PATCH", "/certificates/{name}/{version}", access.CertificatesWrite, n.handleUpdateCertificate)
	rt.handle("GET", "/certificates/{name}/versions", access.CertificatesRead, n.handleCertificateVersions)
	rt.handle("GET", "/certificates/{name}/policy", access.CertificatesRead, n.handleGetPolicy)
	rt.handle("PATCH", "/certificates/{name}/policy", access.CertificatesWrite, n.handleUpdatePolicy)
	rt.handle("GET", "/certificates/{name}/pending", access.CertificatesRead, n.handleGetPending)
	rt.handle("PATCH", "/certificates/{name}/pending", access.CertificatesWrite, n.handleCancelPending)
	rt.handle("DELETE", "/certificates/{name}/pending", access.CertificatesWrite, n.handleDeletePending)
	rt.handle("POST", "/certificates/{name}/pending/merge", access.CertificatesWrite, n.handleMerge)
	rt.handle("DELETE", "/certificates/{name}", access.CertificatesDelete, n.handleDeleteObject(kindCertificates))
	rt.handle("GET", "/deletedcertificates", access.CertificatesRead, n.handleListDeleted(kindCertificates))
	rt.handle("GET", "/deletedcertificates/{name}", access.CertificatesRead, n.handleGetDeleted(kindCertificates))
	rt.handle("POST", "/deletedcertificates/{name}/recover", access.CertificatesDelete, n.handleRecover(kindCertificates))
	rt.handle("DELETE", "/deletedcertificates/{name}", access.CertificatesDelete, n.handlePurge(kindCertificates))
	rt.handle("POST", "/certificates/{name}/backup", access.CertificatesBackup, n.handleBackup(kindCertificates))
	rt.handle("POST", "/certificates/restore", access.CertificatesBackup, n.handleRestore(kindCertificates))
	rt.handle("GET", "/certificates/contacts", access.CertificatesRead, n.handleGetContacts)
	rt.handle("PUT", "/certificates/contacts", access.ContactsWrite, n.handleSetContacts)
	rt.handle("DELETE", "/certificates/contacts", access.ContactsWrite, n.handleDeleteContacts)
}

// loadPolicy returns a certificate's policy.
func (n *Node) loadPolicy(name string) (*keyvault.Policy, raftstore.Entry, bool, error) {
	e, ok := n.store.Get(policyKey(name))
	if !ok {
		return nil, e, false, nil
	}
	var p keyvault.Policy
	if err := json.Unmarshal(e.Value, &p); err != nil {
		return nil, e, false, fmt.Errorf("decode policy of %s: %w", name, err)
	}
	return &p, e, true, nil
}

func (n *Node) loadPending(name string) (*pendingOp, raftstore.Entry, bool, error) {
	e, ok := n.store.Get(pendingKey(name))
	if !ok {
		return nil, e, false, nil
	}
	var op pendingOp
	if err := json.Unmarshal(e.Value, &op); err != nil {
		return nil, e, false, fmt.Errorf("decode pending operation of %s: %w", name, err)
	}
	return &op, e, true, nil
}

func policyError(err error) error {
	if errors.Is(err, keyvault.ErrInvalidPolicy) {
		return badParameter("%s", strings.TrimPrefix(err.Error(), keyvault.ErrInvalidPolicy.Error()+": "))
	}
	return err
}

// checkIssuer makes sure the policy's issuer exists.
func (n *Node) checkIssuer(p *keyvault.Policy) error {
	name := p.IssuerName()
	if name == keyvault.IssuerSelf || name == keyvault.IssuerUnknown {
		return nil
	}
	if _, ok := n.store.Get(issuerKey(name)); !ok {
		return badParameter("issuer %q named by the policy does not exist: create it with 'certvault issuer set %s ...' or use Self or Unknown", name, name)
	}
	return n.checkValidityFits(p, n.now())
}

// checkFreeName refuses a certificate name held by a deleted certificate
// or by a secret or key that the certificate would not manage.
func (n *Node) checkFreeName(name string) error {
	m, _, ok, err := n.loadMeta(kindCertificates, name)
	if err != nil {
		return err
	}
	if ok && m.Deleted != nil {
		return conflictDeleted(kindCertificates, name)
	}
	for _, k := range managedKinds {
		mm, _, ok, err := n.loadMeta(k, name)
		if err != nil {
			return err
		}
		if ok && mm.ManagedBy != kindCertificates {
			return &APIError{Status: http.StatusConflict, Code: "Conflict",
				Message: fmt.Sprintf("a %s named %s exists; a certificate needs its name for its managed %s", singular(k), name, singular(k))}
		}
	}
	return nil
}

func (n *Node) handleCreateCertificate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := validName(kindCertificates, name); err != nil {
		n.fail(w, r, err)
		return
	}
	var req keyvault.CreateCertificateRequest
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	policy := req.Policy
	if policy == nil {
		p, _, ok, err := n.loadPolicy(name)
		if err != nil {
			n.fail(w, r, err)
			return
		}
		if !ok {
			n.fail(w, r, badParameter("policy is required for a new certificate"))
			return
		}
		policy = p
	}
	if err := policy.Normalize(); err != nil {
		n.fail(w, r, policyError(err))
		return
	}
	op, err := n.startIssuance(r.Context(), w.Header(), name, policy, req.Attributes, req.Tags)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	w.Header().Set("Location", objectID(r, kindCertificates, name, "")+"/pending?api-version="+url.QueryEscape(r.URL.Query().Get("api-version")))
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusAccepted, operationBundle(r, name, op))
}

// startIssuance is create's core: it generates (or reuses) the key, then
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
func (n *Node) startIssuance(ctx context.Context, h http.Header, name string, policy *keyvault.Policy, attrs *keyvault.Attributes, tags map[string]string, extra ...func(*raftstore.Batch, *pendingOp) error) (*pendingOp, error) {
	for try := 1; ; try++ {
		op, err := n.startIssuanceOnce(ctx, h, name, policy, attrs, tags, extra...)
		if len(extra) == 0 && try < issuanceTries && errors.Is(err, raftstore.ErrConflict) && ctx.Err() == nil {
			continue
		}
		return op, err
	}
}

// issuanceTries bounds how often a person's create is made again after a
// concurrent change of the same certificate.
const issuanceTries = 3

// startIssuanceOnce is one try of startIssuance.
func (n *Node) startIssuanceOnce(ctx context.Context, h http.Header, name string, policy *keyvault.Policy, attrs *keyvault.Attributes, tags map[string]string, extra ...func(*raftstore.Batch, *pendingOp) error) (*pendingOp, error) {
	if err := n.checkIssuer(policy); err != nil {
		return nil, err
	}
	acmeIssuer, err := n.acmeIssuerOf(policy)
	if err != nil {
		return nil, err
	}
	if err := n.checkFreeName(name); err != nil {
		return nil, err
	}
	cm, cprev, found, err := n.loadMeta(kindCertificates, name)
	if err != nil {
		return nil, err
	}
	prevOp, opEntry, hasOp, err := n.loadPending(name)
	if err != nil {
		return nil, err
	}
	if hasOp && prevOp.Status == keyvault.StatusInProgress {
		return nil, &APIError{Status: http.StatusConflict, Code: "Conflict",
			Message: fmt.Sprintf("certificate %s has a pending operation in progress; cancel or delete it first ('certvault cert operation %s --cancel')", name, name)}
	}
	_, polEntry, _, err := n.loadPolicy(name)
	if err != nil {
		return nil, err
	}

	key, reused, err := n.keyForIssuance(name, cm, found, policy)
	if err != nil {
		return nil, err
	}
	reqID, err := randomID(16)
	if err != nil {
		return nil, err
	}
	now := n.now()
	op := &pendingOp{RequestID: reqID, Issuer: policy.IssuerName(), Status: keyvault.StatusInProgress, Created: now.Unix(), Attributes: attrs, Tags: tags, KeyReused: reused, CreatedBy: principalOf(ctx)}
	if policy.Issuer != nil {
		op.CertType = policy.Issuer.CertificateType
	}

	b := &raftstore.Batch{}
	b.PutIf(policyKey(name), mustJSON(stampPolicy(policy, polEntry)), polEntry.Index)
	for _, f := range extra {
		if err := f(b, op); err != nil {
			return nil, err
		}
	}
	switch {
	case acmeIssuer:
		domains, err := acmeDomains(policy)
		if err != nil {
			return nil, err
		}
		csr, err := certs.DomainCSR(domains, key)
		if err != nil {
			return nil, err
		}
		op.CSR = csr
		ord := &acmeOrder{RequestID: reqID, Issuer: policy.IssuerName(), Progress: acme.Progress{Step: acme.StepQueued, Profile: policy.Issuer.Profile}}
		if found && cm.Current != "" {
			// A renewal through the issuer of the current version tells
			// the CA which certificate it replaces (RFC 9773).
			if v, _, ok, _ := n.loadVersion(kindCertificates, name, cm.Current); ok && v.ACMEIssuer == policy.IssuerName() && len(v.Chain) > 0 {
				if leaf, err := x509.ParseCertificate(v.Chain[0]); err == nil {
					ord.Progress.Replaces, _ = acme.ARICertID(leaf)
				}
			}
		}
		if err := n.queueOrder(b, name, ord); err != nil {
			return nil, err
		}
		op.StatusDetails = acme.StepQueued
		if err := n.holdPending(b, name, key, found, cprev, now); err != nil {
			return nil, err
		}
	case policy.IssuerName() == keyvault.IssuerUnknown:
		csr, err := certs.CSR(policy, key)
		if err != nil {
			return nil, err
		}
		op.CSR = csr
		op.StatusDetails = "Pending certificate created. Please perform a merge to complete the request."
		if err := n.holdPending(b, name, key, found, cprev, now); err != nil {
			return nil, err
		}
	default:
		der, chain, err := n.issueNow(policy, key, now)
		if err != nil {
			return nil, err
		}
		version, err := newVersionID()
		if err != nil {
			return nil, err
		}
		if err := n.addCertVersion(b, name, version, policy, key, append([][]byte{der}, chain...), attrs, tags, now, opMadeBy(op)); err != nil {
			return nil, err
		}
		op.Status, op.StatusDetails = keyvault.StatusCompleted, ""
		if op.Renewal {
			if err := n.mailRenewed(b, name, cm, version, der, op.Issuer); err != nil {
				return nil, err
			}
		}
	}
	b.PutIf(pendingKey(name), mustJSON(op), opEntry.Index)
	if n.beforeIssuanceApply != nil {
		n.beforeIssuanceApply(name)
	}
	if err := n.apply(ctx, h, b); err != nil {
		if errors.Is(err, raftstore.ErrConflict) {
			return nil, &APIError{Status: http.StatusConflict, Code: "Conflict", Message: fmt.Sprintf("certificate %s was changed concurrently; retry", name), Cause: err}
		}
		return nil, err
	}
	return op, nil
}

// holdPending adds to b the pending key of an operation completed later
// (by a merge or an ACME order) and, for a new name, its meta record: the
// name is taken from now on, as in Key Vault, and the certificate is
// listed with includePending.
func (n *Node) holdPending(b *raftstore.Batch, name string, key crypto.Signer, found bool, cprev raftstore.Entry, now time.Time) error {
	keyDER, err := encodePrivateKey(key)
	if err != nil {
		return err
	}
	if err := putSealed(b, n.barrier.Load(), pendKeyKey(name), keyDER); err != nil {
		return err
	}
	if !found {
		putMeta(b, kindCertificates, name, objectMeta{Created: now.Unix()}, cprev)
	}
	return nil
}

// keyForIssuance returns the current version's key when the policy says
// reuse_key and one exists with the same key properties, else a new key.
func (n *Node) keyForIssuance(name string, cm objectMeta, found bool, policy *keyvault.Policy) (crypto.Signer, bool, error) {
	if policy.ReuseKey() && found && cm.Current != "" {
		if key, err := n.certKey(name, cm.Current); err == nil && key != nil && keyMatchesPolicy(key, policy) {
			return key, true, nil
		}
	}
	key, err := n.generateKey(policy.KeyProperties)
	return key, false, err
}

func keyMatchesPolicy(key crypto.Signer, p *keyvault.Policy) bool {
	want := certs.PolicyFor(&x509.Certificate{}, key, "").KeyProperties
	kp := p.KeyProperties
	return strings.TrimSuffix(kp.KeyType, "-HSM") == want.KeyType && kp.KeySize == want.KeySize
}

// issueNow signs a certificate for key with the policy's issuer (Self or a
// named internal CA) and returns it with the issuer chain.
func (n *Node) issueNow(policy *keyvault.Policy, key crypto.Signer, now time.Time) ([]byte, [][]byte, error) {
	if policy.IssuerName() == keyvault.IssuerSelf {
		der, err := certs.SelfSign(policy, key, now)
		return der, nil, err
	}
	return n.issueFromIssuer(policy, key.Public(), now)
}

// certKey returns a certificate version's private key: decrypted, or
// found in the HSM (nil when the version has none, e.g. imported without
// its key).
func (n *Node) certKey(name, version string) (crypto.Signer, error) {
	e, ok := n.store.Get(valKey(kindCertificates, name, version))
	if !ok {
		return nil, nil
	}
	return n.openPrivateKey(e)
}

// openPrivateKey decrypts a stored private key (or its HSM reference).
func (n *Node) openPrivateKey(e raftstore.Entry) (crypto.Signer, error) {
	b, err := n.openSealed(e)
	if err != nil {
		return nil, err
	}
	k, err := n.decodePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", e.Key, err)
	}
	return k, nil
}

// addCertVersion adds the writes that make a new current version of a
// certificate with its managed key and secret.
//
// opts change the version record before it is written (an ACME order
// adds its issuer and the CA's renewal window); the renewal plan is made
// from the result.
func (n *Node) addCertVersion(b *raftstore.Batch, name, version string, policy *keyvault.Policy, key crypto.Signer, chain [][]byte, attrs *keyvault.Attributes, tags map[string]string, now time.Time, opts ...func(*versionMeta)) error {
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return fmt.Errorf("parse issued certificate: %w", err)
	}
	v := versionMeta{Tags: tags, ContentType: policy.ContentType(), Chain: chain, Sealed: key != nil, HSM: key != nil && isHSMKey(key)}
	applyAttributes(&v.Attributes, attrs)
	nbf, exp := leaf.NotBefore.Unix(), leaf.NotAfter.Unix()
	v.Attributes.NotBefore, v.Attributes.Expires = &nbf, &exp
	v.Attributes.Created, v.Attributes.Updated = now.Unix(), now.Unix()
	n.decorate(&v.Attributes)
	if tags == nil {
		// A renewal keeps the tags of the current version.
		if cm, _, ok, _ := n.loadMeta(kindCertificates, name); ok {
			v.Tags = cm.Tags
		}
	}
	for _, o := range opts {
		o(&v)
	}
	b.Put(verKey(kindCertificates, name, version), mustJSON(v))
	if key != nil {
		der, err := encodePrivateKey(key)
		if err != nil {
			return err
		}
		if err := putSealed(b, n.barrier.Load(), valKey(kindCertificates, name, version), der); err != nil {
			return err
		}
	}
	x5t := certs.Thumbprint(chain[0])
	cm, cprev, found, err := n.loadMeta(kindCertificates, name)
	if err != nil {
		return err
	}
	if !found {
		cm = objectMeta{Created: now.Unix()}
	}
	if err := recordRenewal(&cm, v.How == "renewal", now); err != nil {
		return err
	}
	cm.Current, cm.Summary, cm.Tags, cm.X5t, cm.Content, cm.Deleted = version, v.Attributes, v.Tags, x5t, v.ContentType, nil
	planVersion(b, &cm, name, version, policy, &v)
	n.planExpiryEvents(b, &cm, kindCertificates, name, version, &nbf, &exp)
	putMeta(b, kindCertificates, name, cm, cprev)
	if err := n.emitEvent(b, EventCertificateNewVersionCreated, kindCertificates, name, version, &nbf, &exp, ""); err != nil {
		return err
	}
	for _, k := range managedKinds {
		mm, mprev, found, err := n.loadMeta(k, name)
		if err != nil {
			return err
		}
		if !found {
			mm = objectMeta{Created: now.Unix(), ManagedBy: kindCertificates}
		}
		mm.Current, mm.Summary, mm.Tags, mm.Content = version, v.Attributes, v.Tags, v.ContentType
		putMeta(b, k, name, mm, mprev)
	}
	return nil
}

// certBundle renders a certificate version.
func (n *Node) certBundle(r *http.Request, name, version string) (keyvault.Certificate, error) {
	v, _, ok, err := n.loadVersion(kindCertificates, name, version)
	if err != nil || !ok {
		return keyvault.Certificate{}, orNotFound(err, kindCertificates, name, version)
	}
	c := keyvault.Certificate{
		ID:          objectID(r, kindCertificates, name, version),
		Kid:         objectID(r, kindKeys, name, version),
		Sid:         objectID(r, kindSecrets, name, version),
		X5t:         certs.Thumbprint(v.Chain[0]),
		Cer:         v.Chain[0],
		X5C:         v.Chain,
		ContentType: v.ContentType,
		Attributes:  n.live(v.Attributes),
		Tags:        v.Tags,
	}
	if p, _, ok, _ := n.loadPolicy(name); ok {
		c.Policy = policyBundle(r, name, p)
	}
	if ri := v.RenewalInfo; ri != nil {
		c.RenewalInfo = &keyvault.RenewalWindow{Start: ri.Start, End: ri.End, ExplanationURL: ri.ExplanationURL}
	}
	return c, nil
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

func policyBundle(r *http.Request, name string, p *keyvault.Policy) *keyvault.Policy {
	cp := *p
	cp.ID = objectID(r, kindCertificates, name, "") + "/policy"
	return &cp
}

func operationBundle(r *http.Request, name string, op *pendingOp) keyvault.Operation {
	o := keyvault.Operation{
		ID:                    objectID(r, kindCertificates, name, "") + "/pending",
		Issuer:                &keyvault.IssuerParameters{Name: op.Issuer, CertificateType: op.CertType},
		CSR:                   op.CSR,
		CancellationRequested: op.Cancel,
		Status:                op.Status,
		StatusDetails:         op.StatusDetails,
		Error:                 op.Error,
		Target:                op.Target,
		RequestID:             op.RequestID,
	}
	o.ACMEOrder = op.ACMEOrder
	if o.Target == "" && op.Status == keyvault.StatusCompleted {
		// Orders completed in the background have no request to name
		// the host; the reader's request does.
		o.Target = objectID(r, kindCertificates, name, "")
	}
	return o
}

func (n *Node) handleGetCertificate(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if !n.linearized(w, r) {
		return
	}
	_, version, err := n.resolveVersion(kindCertificates, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	c, err := n.certBundle(r, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (n *Node) handleUpdateCertificate(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	var req keyvault.UpdateCertificateRequest
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	m, version, err := n.resolveVersion(kindCertificates, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	v, e, ok, err := n.loadVersion(kindCertificates, name, version)
	if err != nil || !ok {
		n.fail(w, r, orNotFound(err, kindCertificates, name, version))
		return
	}
	b := &raftstore.Batch{}
	if req.Policy != nil {
		p, pe, err := n.mergedPolicy(name, req.Policy)
		if err != nil {
			n.fail(w, r, err)
			return
		}
		b.PutIf(policyKey(name), mustJSON(stampPolicy(p, pe)), pe.Index)
	}
	applyAttributes(&v.Attributes, req.Attributes)
	if req.Tags != nil {
		v.Tags = req.Tags
	}
	v.Attributes.Updated = nowUnix()
	b.PutIf(e.Key, mustJSON(v), e.Index)
	if version == m.Current {
		for _, k := range append([]string{kindCertificates}, managedKinds...) {
			mm, me, ok, _ := n.loadMeta(k, name)
			if ok {
				mm.Summary, mm.Tags = v.Attributes, v.Tags
				putMeta(b, k, name, mm, me)
			}
		}
	}
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	c, err := n.certBundle(r, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// mergedPolicy applies a partial policy update onto the stored policy and
// validates the result.
func (n *Node) mergedPolicy(name string, upd *keyvault.Policy) (*keyvault.Policy, raftstore.Entry, error) {
	cur, pe, ok, err := n.loadPolicy(name)
	if err != nil {
		return nil, pe, err
	}
	if !ok {
		return nil, pe, objNotFound(kindCertificates, name, "")
	}
	p := *cur
	if upd.KeyProperties != nil {
		p.KeyProperties = upd.KeyProperties
	}
	if upd.SecretProperties != nil {
		p.SecretProperties = upd.SecretProperties
	}
	if upd.X509Properties != nil {
		p.X509Properties = upd.X509Properties
	}
	if upd.LifetimeActions != nil {
		p.LifetimeActions = upd.LifetimeActions
	}
	if upd.Issuer != nil {
		p.Issuer = upd.Issuer
	}
	if upd.Attributes != nil {
		p.Attributes = upd.Attributes
	}
	if err := p.Normalize(); err != nil {
		return nil, pe, policyError(err)
	}
	if err := n.checkIssuer(&p); err != nil {
		return nil, pe, err
	}
	return &p, pe, nil
}

func (n *Node) handleGetPolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !n.linearized(w, r) {
		return
	}
	m, _, ok, err := n.loadMeta(kindCertificates, name)
	if err != nil || !ok || m.Deleted != nil {
		n.fail(w, r, orNotFound(err, kindCertificates, name, ""))
		return
	}
	p, _, ok, err := n.loadPolicy(name)
	if err != nil || !ok {
		n.fail(w, r, orNotFound(err, kindCertificates, name, ""))
		return
	}
	writeJSON(w, http.StatusOK, policyBundle(r, name, p))
}

func (n *Node) handleUpdatePolicy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var upd keyvault.Policy
	if err := decodeBody(r, &upd); err != nil {
		n.fail(w, r, err)
		return
	}
	m, _, ok, err := n.loadMeta(kindCertificates, name)
	if err != nil || !ok || m.Deleted != nil {
		n.fail(w, r, orNotFound(err, kindCertificates, name, ""))
		return
	}
	p, pe, err := n.mergedPolicy(name, &upd)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	p = stampPolicy(p, pe)
	b := (&raftstore.Batch{}).PutIf(policyKey(name), mustJSON(p), pe.Index)
	if err := n.replanCurrent(b, name, p); err != nil {
		n.fail(w, r, err)
		return
	}
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, policyBundle(r, name, p))
}

func (n *Node) handleCertificateVersions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, after, err := pageParams(r)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if !n.linearized(w, r) {
		return
	}
	if _, _, err := n.resolveVersion(kindCertificates, name, ""); err != nil {
		n.fail(w, r, err)
		return
	}
	prefix := verPrefix(kindCertificates, name)
	if after != "" {
		after = prefix + after
	}
	entries, last := n.listPage(prefix, after, limit, func(raftstore.Entry) bool { return true })
	var out []keyvault.CertificateItem
	for _, e := range entries {
		var v versionMeta
		json.Unmarshal(e.Value, &v)
		out = append(out, keyvault.CertificateItem{ID: objectID(r, kindCertificates, name, strings.TrimPrefix(e.Key, prefix)),
			X5t: certs.Thumbprint(v.Chain[0]), Attributes: n.live(v.Attributes), Tags: v.Tags})
	}
	writePage(w, r, out, strings.TrimPrefix(last, prefix), limit)
}

func (n *Node) handleListCertificates(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if !n.linearized(w, r) {
		return
	}
	includePending := strings.EqualFold(r.URL.Query().Get("includePending"), "true")
	prefix := "meta/" + kindCertificates + "/"
	if after != "" {
		after = prefix + after
	}
	entries, last := n.listPage(prefix, after, limit, func(e raftstore.Entry) bool {
		var m objectMeta
		return json.Unmarshal(e.Value, &m) == nil && m.Deleted == nil && (m.Current != "" || includePending)
	})
	var out []keyvault.CertificateItem
	for _, e := range entries {
		var m objectMeta
		json.Unmarshal(e.Value, &m)
		out = append(out, keyvault.CertificateItem{ID: objectID(r, kindCertificates, m.displayName(strings.TrimPrefix(e.Key, prefix)), ""),
			X5t: m.X5t, Attributes: n.live(m.Summary), Tags: m.Tags})
	}
	writePage(w, r, out, strings.TrimPrefix(last, prefix), limit)
}

func (n *Node) pendingOrNotFound(name string) (*pendingOp, raftstore.Entry, error) {
	op, e, ok, err := n.loadPending(name)
	if err != nil {
		return nil, e, err
	}
	if !ok {
		return nil, e, notFound("PendingCertificateNotFound", "Pending certificate not found: %s", name)
	}
	return op, e, nil
}

func (n *Node) handleGetPending(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !n.linearized(w, r) {
		return
	}
	op, _, err := n.pendingOrNotFound(name)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, operationBundle(r, name, op))
}

func (n *Node) handleCancelPending(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req struct {
		Cancel *bool `json:"cancellation_requested"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if req.Cancel == nil || !*req.Cancel {
		n.fail(w, r, badParameter("cancellation_requested must be true"))
		return
	}
	op, e, err := n.pendingOrNotFound(name)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if op.Status == keyvault.StatusInProgress {
		op.Cancel = true
		// Self, internal and Unknown issuers have nothing running outside
		// the vault: the cancellation takes effect at once.
		op.Status, op.StatusDetails = keyvault.StatusCancelled, "The operation was cancelled."
		b := (&raftstore.Batch{}).PutIf(pendingKey(name), mustJSON(op), e.Index).Delete(pendKeyKey(name))
		if err := n.apply(r.Context(), w.Header(), b); err != nil {
			n.fail(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, operationBundle(r, name, op))
}

func (n *Node) handleDeletePending(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	op, e, err := n.pendingOrNotFound(name)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	b := (&raftstore.Batch{}).DeleteIf(pendingKey(name), e.Index).Delete(pendKeyKey(name))
	// A name held only by a pending operation is freed.
	if m, me, ok, _ := n.loadMeta(kindCertificates, name); ok && m.Current == "" && m.Deleted == nil {
		b.DeleteIf(metaKey(kindCertificates, name), me.Index).Delete(policyKey(name))
	}
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, operationBundle(r, name, op))
}

// handleMerge completes an Unknown-issuer operation with the chain signed
// outside: the leaf must carry the pending key and the policy's names.
func (n *Node) handleMerge(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req keyvault.MergeRequest
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if len(req.X5C) == 0 {
		n.fail(w, r, badParameter("x5c must hold the signed certificate (and its chain)"))
		return
	}
	op, opEntry, err := n.pendingOrNotFound(name)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if op.Status != keyvault.StatusInProgress || op.CSR == nil {
		n.fail(w, r, &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: fmt.Sprintf("certificate %s has no pending request to merge (status %s)", name, op.Status)})
		return
	}
	ke, ok := n.store.Get(pendKeyKey(name))
	if !ok {
		n.fail(w, r, internalError(fmt.Errorf("pending key of %s missing", name)))
		return
	}
	key, err := n.openPrivateKey(ke)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	ordered, err := certs.MergeChain(req.X5C, key.Public())
	if errors.Is(err, certs.ErrKeyMismatch) {
		n.fail(w, r, badParameter("the merged certificate's public key is not the key of the pending request: sign the CSR from 'certvault cert operation %s'", name))
		return
	}
	if err != nil {
		n.fail(w, r, badParameter("%v", err))
		return
	}
	leaf := ordered[0]
	policy, _, _, err := n.loadPolicy(name)
	if err != nil || policy == nil {
		n.fail(w, r, orNotFound(err, kindCertificates, name, ""))
		return
	}
	if err := certs.CheckNames(policy, leaf); err != nil {
		n.fail(w, r, badParameter("%s", strings.TrimPrefix(err.Error(), "certs: ")))
		return
	}
	now := time.Now()
	if now.After(leaf.NotAfter) {
		n.fail(w, r, badParameter("the merged certificate expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339)))
		return
	}
	ders := make([][]byte, len(ordered))
	for i, c := range ordered {
		ders[i] = c.Raw
	}
	version, err := newVersionID()
	if err != nil {
		n.fail(w, r, err)
		return
	}
	attrs := op.Attributes
	if req.Attributes != nil {
		attrs = req.Attributes
	}
	tags := op.Tags
	if req.Tags != nil {
		tags = req.Tags
	}
	b := &raftstore.Batch{}
	if err := n.addCertVersion(b, name, version, policy, key, ders, attrs, tags, now, madeBy(principalOf(r.Context()), "merge")); err != nil {
		n.fail(w, r, err)
		return
	}
	op.Status, op.StatusDetails, op.Target = keyvault.StatusCompleted, "", objectID(r, kindCertificates, name, "")
	b.PutIf(pendingKey(name), mustJSON(op), opEntry.Index).Delete(pendKeyKey(name))
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	c, err := n.certBundle(r, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

func (n *Node) handleImportCertificate(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := validName(kindCertificates, name); err != nil {
		n.fail(w, r, err)
		return
	}
	var req keyvault.ImportCertificateRequest
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if strings.TrimSpace(req.Value) == "" {
		n.fail(w, r, badParameter("value is required: the PKCS#12 (base64) or PEM to import"))
		return
	}
	now := time.Now()
	imp, err := certs.ParseImport(req.Value, req.Password, now)
	if err != nil {
		n.fail(w, r, badParameter("%s", strings.TrimPrefix(err.Error(), "certs: ")))
		return
	}
	policy := req.Policy
	contentType := imp.ContentType
	if policy != nil && policy.SecretProperties != nil && policy.SecretProperties.ContentType != "" {
		contentType = policy.SecretProperties.ContentType
	}
	base := certs.PolicyFor(imp.Chain[0], imp.Key, contentType)
	if policy == nil {
		policy = base
	} else {
		if policy.KeyProperties == nil {
			policy.KeyProperties = base.KeyProperties
		}
		if policy.X509Properties == nil {
			policy.X509Properties = base.X509Properties
		}
		if policy.Issuer == nil {
			policy.Issuer = base.Issuer
		}
		if policy.SecretProperties == nil {
			policy.SecretProperties = base.SecretProperties
		}
	}
	if err := policy.Normalize(); err != nil {
		n.fail(w, r, policyError(err))
		return
	}
	if !keyMatchesPolicy(imp.Key, policy) {
		n.fail(w, r, badParameter("the imported key does not match the policy's key_props (%s %d)", policy.KeyProperties.KeyType, policy.KeyProperties.KeySize))
		return
	}
	if err := n.checkFreeName(name); err != nil {
		n.fail(w, r, err)
		return
	}
	_, pe, _, err := n.loadPolicy(name)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	ders := make([][]byte, len(imp.Chain))
	for i, c := range certs.SortChain(imp.Chain[0], imp.Chain[1:]) {
		ders[i] = c.Raw
	}
	version, err := newVersionID()
	if err != nil {
		n.fail(w, r, err)
		return
	}
	b := &raftstore.Batch{}
	b.PutIf(policyKey(name), mustJSON(stampPolicy(policy, pe)), pe.Index)
	if err := n.addCertVersion(b, name, version, policy, imp.Key, ders, req.Attributes, req.Tags, now, madeBy(principalOf(r.Context()), "import")); err != nil {
		n.fail(w, r, err)
		return
	}
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	c, err := n.certBundle(r, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// getManagedSecret answers GET /secrets/NAME for a certificate: the key and
// chain as PKCS#12 (base64, no password) or PEM, per the policy.
func (n *Node) getManagedSecret(w http.ResponseWriter, r *http.Request, name, version string) {
	v, e, ok, err := n.loadVersion(kindCertificates, name, version)
	if err != nil || !ok {
		n.fail(w, r, orNotFound(err, kindSecrets, name, version))
		return
	}
	if !v.Attributes.IsEnabled() {
		n.fail(w, r, &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "operation get is not allowed on a disabled certificate"})
		return
	}
	policy, _, _, err := n.loadPolicy(name)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	var key crypto.Signer
	if policy == nil || policy.Exportable() {
		if key, err = n.certKey(name, version); err != nil {
			n.fail(w, r, err)
			return
		}
	}
	chain, err := certs.ParseChainDER(v.Chain)
	if err != nil {
		n.fail(w, r, internalError(err))
		return
	}
	value, err := certs.EncodeSecret(v.ContentType, key, chain)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	w.Header().Set("X-Certvault-Index", itoa(e.Index))
	writeJSON(w, http.StatusOK, keyvault.Secret{
		Value: value, ID: objectID(r, kindSecrets, name, version), ContentType: v.ContentType,
		Attributes: n.live(v.Attributes), Tags: v.Tags, Kid: objectID(r, kindKeys, name, version), Managed: true,
	})
}

// Contacts.

const keyContacts = "sys/contacts"

func (n *Node) handleGetContacts(w http.ResponseWriter, r *http.Request) {
	if !n.linearized(w, r) {
		return
	}
	e, ok := n.store.Get(keyContacts)
	if !ok {
		n.fail(w, r, notFound("ContactsNotFound", "Contacts not found"))
		return
	}
	var c keyvault.Contacts
	if err := json.Unmarshal(e.Value, &c); err != nil {
		n.fail(w, r, err)
		return
	}
	c.ID = baseURL(r) + "/certificates/contacts"
	writeJSON(w, http.StatusOK, c)
}

func (n *Node) handleSetContacts(w http.ResponseWriter, r *http.Request) {
	var c keyvault.Contacts
	if err := decodeBody(r, &c); err != nil {
		n.fail(w, r, err)
		return
	}
	if len(c.Contacts) == 0 {
		n.fail(w, r, badParameter("contacts must list at least one contact; use DELETE to remove them all"))
		return
	}
	for i, ct := range c.Contacts {
		if ct.Email == "" || !strings.Contains(ct.Email, "@") {
			n.fail(w, r, badParameter("contacts[%d].email %q is not an email address", i, ct.Email))
			return
		}
	}
	c.ID = ""
	if err := n.apply(r.Context(), w.Header(), (&raftstore.Batch{}).Put(keyContacts, mustJSON(c))); err != nil {
		n.fail(w, r, err)
		return
	}
	c.ID = baseURL(r) + "/certificates/contacts"
	writeJSON(w, http.StatusOK, c)
}

func (n *Node) handleDeleteContacts(w http.ResponseWriter, r *http.Request) {
	e, ok := n.store.Get(keyContacts)
	if !ok {
		n.fail(w, r, notFound("ContactsNotFound", "Contacts not found"))
		return
	}
	var c keyvault.Contacts
	json.Unmarshal(e.Value, &c)
	if err := n.apply(r.Context(), w.Header(), (&raftstore.Batch{}).Delete(keyContacts)); err != nil {
		n.fail(w, r, err)
		return
	}
	c.ID = baseURL(r) + "/certificates/contacts"
	writeJSON(w, http.StatusOK, c)
}
