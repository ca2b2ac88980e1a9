package issuance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/certs"
)

// The certificates core: create, import, merge, read, update, policies,
// pending operations and the vault's contacts; listing is ListObjects and
// ListVersions (core/objects.go). Each function takes the caller and a
// typed request, decides everything about the certificate (its name,
// versions, managed key and secret, what to store), commits one raft
// command for a write, and returns names, versions and the command's raft
// index; the Key Vault front (certificates.go) builds the ids and the
// JSON.

// Certificate is a certificate version as the core returns it: the public
// part, the policy, no URLs.
type Certificate struct {
	Name    string
	Version string
	// Chain is the certificate chain, leaf first, DER.
	Chain       [][]byte
	ContentType string
	// Attributes carry the recovery fields of the vault's current
	// settings.
	Attributes keyvault.Attributes
	Tags       map[string]string
	// Policy is the certificate's policy (nil when it has none).
	Policy *keyvault.Policy
	// RenewalInfo is the ACME CA's suggested renewal window, if any.
	RenewalInfo *keyvault.RenewalWindow
	// Pending marks the version an operation in progress will make: it
	// has no chain yet, and is disabled, as Key Vault shows it.
	Pending bool
}

// CertificateResult is the result of a write that makes or changes a
// certificate version.
type CertificateResult struct {
	Name    string
	Version string
	// Index is the raft index of the write.
	Index uint64
}

// CertificateOperationResult is a certificate's pending operation after a
// read or a write (Index is zero when nothing was written).
type CertificateOperationResult struct {
	Name      string
	Operation *core.PendingOp
	Index     uint64
}

// CertificatePolicyResult is a certificate's policy after a read or a
// write (Index is zero for a read).
type CertificatePolicyResult struct {
	Name   string
	Policy *keyvault.Policy
	Index  uint64
}

// Certificate loads a version of a certificate as the core shows it.
func (s *Issuance) Certificate(name, version string) (Certificate, error) {
	v, _, ok, err := s.LoadVersion(core.KindCertificates, name, version)
	if err != nil || !ok {
		return Certificate{}, core.OrObjectNotFound(err, core.KindCertificates, name, version)
	}
	c := Certificate{Name: name, Version: version, Chain: v.Chain, ContentType: v.ContentType, Attributes: s.Live(v.Attributes), Tags: v.Tags}
	if p, _, ok, _ := s.LoadPolicy(name); ok {
		c.Policy = p
	}
	if ri := v.RenewalInfo; ri != nil {
		c.RenewalInfo = &keyvault.RenewalWindow{Start: ri.Start, End: ri.End, ExplanationURL: ri.ExplanationURL}
	}
	return c, nil
}

// CreateCertificateRequest asks for a new version of a certificate made by
// its policy's issuer.
type CreateCertificateRequest struct {
	Name string
	// Policy is the certificate's new policy; nil takes the stored one.
	Policy     *keyvault.Policy
	Attributes *keyvault.Attributes
	Tags       map[string]string
}

// CreateCertificate starts an issuance (startIssuance): the operation it
// returns is completed (Self, internal issuers) or in progress (Unknown,
// ACME).
func (s *Issuance) CreateCertificate(ctx context.Context, p core.Caller, req CreateCertificateRequest) (CertificateOperationResult, error) {
	name := req.Name
	if err := core.ValidName(core.KindCertificates, name); err != nil {
		return CertificateOperationResult{}, err
	}
	policy := req.Policy
	if policy == nil {
		sp, _, ok, err := s.LoadPolicy(name)
		if err != nil {
			return CertificateOperationResult{}, err
		}
		if !ok {
			return CertificateOperationResult{}, core.BadParameter("policy", "policy is required for a new certificate")
		}
		policy = sp
	}
	if err := policy.Normalize(); err != nil {
		return CertificateOperationResult{}, policyError(err)
	}
	op, idx, err := s.StartIssuance(ctx, p, name, policy, req.Attributes, req.Tags)
	if err != nil {
		return CertificateOperationResult{}, err
	}
	return CertificateOperationResult{Name: name, Operation: op, Index: idx}, nil
}

// GetCertificateRequest names a certificate version (Version empty: the
// current one).
type GetCertificateRequest struct {
	Name    string
	Version string
}

// GetCertificate returns a version of a certificate that is not deleted.
//
// A certificate whose operation is still in progress reads, as in Key
// Vault, as the version that operation will make: disabled, with its
// policy and no chain (Pending), when it is the latest (the certificate
// has no other version) or asked for by its id.
func (s *Issuance) GetCertificate(ctx context.Context, p core.Caller, req GetCertificateRequest) (Certificate, error) {
	_, version, err := s.ResolveVersion(core.KindCertificates, req.Name, req.Version)
	if err == nil {
		var c Certificate
		if c, err = s.Certificate(req.Name, version); err == nil {
			return c, nil
		}
	}
	if core.IsKind(err, core.KindNotFound) {
		if c, ok, perr := s.pendingCertificate(req.Name, req.Version); perr != nil {
			return Certificate{}, perr
		} else if ok {
			return c, nil
		}
	}
	return Certificate{}, err
}

// pendingCertificate is the version that the operation in progress on a
// certificate will make, when version names it or is empty and the
// certificate has no current version. A failed or cancelled operation
// made nothing: the certificate then reads as not found, as before.
func (s *Issuance) pendingCertificate(name, version string) (Certificate, bool, error) {
	m, _, found, err := s.LoadMeta(core.KindCertificates, name)
	if err != nil || !found || m.Deleted != nil {
		return Certificate{}, false, err
	}
	op, _, ok, err := s.LoadPending(name)
	if err != nil || !ok || op.Version == "" || op.Status != keyvault.StatusInProgress {
		return Certificate{}, false, err
	}
	if version != op.Version && (version != "" || m.Current != "") {
		return Certificate{}, false, nil
	}
	disabled := false
	c := Certificate{Name: name, Version: op.Version, Tags: op.Tags, Pending: true,
		Attributes: s.Live(keyvault.Attributes{Enabled: &disabled, Created: op.Created, Updated: op.Created})}
	if p, _, ok, err := s.LoadPolicy(name); err != nil {
		return Certificate{}, false, err
	} else if ok {
		c.Policy = p
	}
	return c, true, nil
}

// ListCertificateVersions lists a certificate's versions and, while an
// operation is in progress, the version it will make (disabled, without
// a thumbprint), as Key Vault does: the version a pending certificate
// reads as by name and by id is listed too. It is added to the last page.
func (s *Issuance) ListCertificateVersions(ctx context.Context, p core.Caller, req core.ListVersionsRequest) (core.ListVersionsResult, error) {
	req.Kind = core.KindCertificates
	res, err := s.ListVersions(ctx, p, req)
	if (err != nil && !core.IsKind(err, core.KindNotFound)) || (err == nil && res.Next != "") {
		return res, err
	}
	op, _, ok, perr := s.LoadPending(req.Name)
	if perr != nil {
		return core.ListVersionsResult{}, perr
	}
	if !ok || op.Version == "" || op.Status != keyvault.StatusInProgress {
		return res, err
	}
	c, found, perr := s.pendingCertificate(req.Name, op.Version)
	if perr != nil || !found {
		return res, errors.Join(err, perr)
	}
	res.Items = append(res.Items, core.ObjectItem{Name: req.Name, Version: c.Version, Attributes: c.Attributes, Tags: c.Tags})
	return res, nil
}

// UpdateCertificateRequest changes a version's attributes and tags, and
// the certificate's policy (nil members are left as they are).
type UpdateCertificateRequest struct {
	Name       string
	Version    string
	Policy     *keyvault.Policy
	Attributes *keyvault.Attributes
	Tags       map[string]string
}

// UpdateCertificate updates a version (the current one when Version is
// empty); on the current version, the certificate's and its managed
// key's and secret's summaries follow.
func (s *Issuance) UpdateCertificate(ctx context.Context, p core.Caller, req UpdateCertificateRequest) (CertificateResult, error) {
	name := req.Name
	m, version, err := s.ResolveVersion(core.KindCertificates, name, req.Version)
	if err != nil {
		return CertificateResult{}, err
	}
	v, e, ok, err := s.LoadVersion(core.KindCertificates, name, version)
	if err != nil || !ok {
		return CertificateResult{}, core.OrObjectNotFound(err, core.KindCertificates, name, version)
	}
	b := &raftstore.Batch{}
	if req.Policy != nil {
		pol, pe, err := s.mergedPolicy(name, req.Policy)
		if err != nil {
			return CertificateResult{}, err
		}
		b.PutIf(core.PolicyKey(name), core.MustJSON(stampPolicy(pol, pe)), pe.Index)
	}
	v.ApplyUpdate(req.Attributes, req.Tags)
	s.PutVersionUpdate(b, core.KindCertificates, name, version, m.Current, v, e, append([]string{core.KindCertificates}, core.ManagedKinds...)...)
	idx, err := s.Commit(ctx, b)
	if err != nil {
		return CertificateResult{}, err
	}
	return CertificateResult{Name: name, Version: version, Index: idx}, nil
}

// mergedPolicy applies a partial policy update onto the stored policy and
// validates the result.
func (s *Issuance) mergedPolicy(name string, upd *keyvault.Policy) (*keyvault.Policy, raftstore.Entry, error) {
	cur, pe, ok, err := s.LoadPolicy(name)
	if err != nil {
		return nil, pe, err
	}
	if !ok {
		return nil, pe, core.ObjectNotFound(core.KindCertificates, name, "")
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
	if err := s.checkIssuer(&p); err != nil {
		return nil, pe, err
	}
	return &p, pe, nil
}

// GetCertificatePolicy returns the policy of a certificate that is not
// deleted.
func (s *Issuance) GetCertificatePolicy(ctx context.Context, p core.Caller, name string) (CertificatePolicyResult, error) {
	if _, _, err := s.LiveObject(core.KindCertificates, name); err != nil {
		return CertificatePolicyResult{}, err
	}
	pol, _, ok, err := s.LoadPolicy(name)
	if err != nil || !ok {
		return CertificatePolicyResult{}, core.OrObjectNotFound(err, core.KindCertificates, name, "")
	}
	return CertificatePolicyResult{Name: name, Policy: pol}, nil
}

// UpdateCertificatePolicyRequest is a partial policy: the members it sets
// replace the stored policy's.
type UpdateCertificatePolicyRequest struct {
	Name   string
	Policy *keyvault.Policy
}

// UpdateCertificatePolicy merges the update into the policy and plans the
// current version's renewal anew (a person acting: it clears a halt of the
// renewal brake).
func (s *Issuance) UpdateCertificatePolicy(ctx context.Context, p core.Caller, req UpdateCertificatePolicyRequest) (CertificatePolicyResult, error) {
	name := req.Name
	if _, _, err := s.LiveObject(core.KindCertificates, name); err != nil {
		return CertificatePolicyResult{}, err
	}
	pol, pe, err := s.mergedPolicy(name, req.Policy)
	if err != nil {
		return CertificatePolicyResult{}, err
	}
	pol = stampPolicy(pol, pe)
	b := (&raftstore.Batch{}).PutIf(core.PolicyKey(name), core.MustJSON(pol), pe.Index)
	if err := s.replanCurrent(b, name, pol); err != nil {
		return CertificatePolicyResult{}, err
	}
	idx, err := s.Commit(ctx, b)
	if err != nil {
		return CertificatePolicyResult{}, err
	}
	return CertificatePolicyResult{Name: name, Policy: pol, Index: idx}, nil
}

func (s *Issuance) pendingOrNotFound(name string) (*core.PendingOp, raftstore.Entry, error) {
	op, e, ok, err := s.LoadPending(name)
	if err != nil {
		return nil, e, err
	}
	if !ok {
		return nil, e, core.NotFound("PendingCertificateNotFound", "Pending certificate not found: %s", name)
	}
	return op, e, nil
}

// GetCertificateOperation returns a certificate's pending (or last)
// operation.
func (s *Issuance) GetCertificateOperation(ctx context.Context, p core.Caller, name string) (CertificateOperationResult, error) {
	op, _, err := s.pendingOrNotFound(name)
	if err != nil {
		return CertificateOperationResult{}, err
	}
	return CertificateOperationResult{Name: name, Operation: op}, nil
}

// CancelCertificateOperationRequest asks to cancel a pending operation;
// CancellationRequested must be true.
type CancelCertificateOperationRequest struct {
	Name                  string
	CancellationRequested bool
}

// CancelCertificateOperation cancels an operation in progress (at once:
// an ACME order's driver sees it and stops); an operation that has ended
// is returned as it is.
func (s *Issuance) CancelCertificateOperation(ctx context.Context, p core.Caller, req CancelCertificateOperationRequest) (CertificateOperationResult, error) {
	name := req.Name
	if !req.CancellationRequested {
		return CertificateOperationResult{}, core.BadParameter("cancellation_requested", "cancellation_requested must be true")
	}
	op, e, err := s.pendingOrNotFound(name)
	if err != nil {
		return CertificateOperationResult{}, err
	}
	res := CertificateOperationResult{Name: name, Operation: op}
	if op.Status == keyvault.StatusInProgress {
		op.Cancel = true
		// Self, internal and Unknown issuers have nothing running outside
		// the vault: the cancellation takes effect at once.
		op.Status, op.StatusDetails = keyvault.StatusCancelled, "The operation was cancelled."
		b := (&raftstore.Batch{}).PutIf(core.PendingKey(name), core.MustJSON(op), e.Index).Delete(core.PendKeyKey(name))
		if res.Index, err = s.Commit(ctx, b); err != nil {
			return CertificateOperationResult{}, err
		}
	}
	return res, nil
}

// DeleteCertificateOperation deletes a certificate's operation and its
// pending key; a name held only by the operation is freed.
func (s *Issuance) DeleteCertificateOperation(ctx context.Context, p core.Caller, name string) (CertificateOperationResult, error) {
	op, e, err := s.pendingOrNotFound(name)
	if err != nil {
		return CertificateOperationResult{}, err
	}
	b := (&raftstore.Batch{}).DeleteIf(core.PendingKey(name), e.Index).Delete(core.PendKeyKey(name))
	// A name held only by a pending operation is freed.
	if m, me, ok, _ := s.LoadMeta(core.KindCertificates, name); ok && m.Current == "" && m.Deleted == nil {
		b.DeleteIf(core.MetaKey(core.KindCertificates, name), me.Index).Delete(core.PolicyKey(name))
	}
	idx, err := s.Commit(ctx, b)
	if err != nil {
		return CertificateOperationResult{}, err
	}
	return CertificateOperationResult{Name: name, Operation: op, Index: idx}, nil
}

// MergeCertificateRequest completes an Unknown-issuer operation with the
// chain signed outside (X5C, DER, in any order).
type MergeCertificateRequest struct {
	Name       string
	X5C        [][]byte
	Attributes *keyvault.Attributes
	Tags       map[string]string
	// Target is stored as the completed operation's target: the id the
	// front gives the certificate (Key Vault's operation names it).
	Target string
}

// MergeCertificate makes the merged chain the certificate's new version:
// the leaf must carry the pending key and the policy's names.
func (s *Issuance) MergeCertificate(ctx context.Context, p core.Caller, req MergeCertificateRequest) (CertificateResult, error) {
	name := req.Name
	if len(req.X5C) == 0 {
		return CertificateResult{}, core.BadParameter("x5c", "x5c must hold the signed certificate (and its chain)")
	}
	op, opEntry, err := s.pendingOrNotFound(name)
	if err != nil {
		return CertificateResult{}, err
	}
	if op.Status != keyvault.StatusInProgress || op.CSR == nil {
		return CertificateResult{}, core.Forbidden("certificate %s has no pending request to merge (status %s)", name, op.Status)
	}
	ke, ok := s.Store.Get(core.PendKeyKey(name))
	if !ok {
		return CertificateResult{}, core.Internal(fmt.Errorf("pending key of %s missing", name))
	}
	key, err := s.OpenPrivateKey(ke)
	if err != nil {
		return CertificateResult{}, err
	}
	ordered, err := certs.MergeChain(req.X5C, key.Public())
	if errors.Is(err, certs.ErrKeyMismatch) {
		return CertificateResult{}, core.BadParameter("x5c", "the merged certificate's public key is not the key of the pending request: sign the CSR from 'certvault cert operation %s'", name)
	}
	if err != nil {
		return CertificateResult{}, core.BadParameter("x5c", "%v", err)
	}
	leaf := ordered[0]
	policy, _, _, err := s.LoadPolicy(name)
	if err != nil || policy == nil {
		return CertificateResult{}, core.OrObjectNotFound(err, core.KindCertificates, name, "")
	}
	if err := certs.CheckNames(policy, leaf); err != nil {
		return CertificateResult{}, core.BadParameter("x5c", "%s", strings.TrimPrefix(err.Error(), "certs: "))
	}
	now := time.Now()
	if now.After(leaf.NotAfter) {
		return CertificateResult{}, core.BadParameter("x5c", "the merged certificate expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	ders := make([][]byte, len(ordered))
	for i, c := range ordered {
		ders[i] = c.Raw
	}
	version, err := opVersion(op)
	if err != nil {
		return CertificateResult{}, err
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
	if err := s.addCertVersion(b, name, version, policy, key, ders, attrs, tags, now, madeBy(p.Name, "merge")); err != nil {
		return CertificateResult{}, err
	}
	op.Status, op.StatusDetails, op.Target = keyvault.StatusCompleted, "", req.Target
	b.PutIf(core.PendingKey(name), core.MustJSON(op), opEntry.Index).Delete(core.PendKeyKey(name))
	idx, err := s.Commit(ctx, b)
	if err != nil {
		return CertificateResult{}, err
	}
	return CertificateResult{Name: name, Version: version, Index: idx}, nil
}

// ImportCertificateRequest imports a certificate with its key: Value is
// PKCS#12 (base64, Password) or PEM. Policy members left out are taken
// from the certificate.
type ImportCertificateRequest struct {
	Name       string
	Value      string
	Password   string
	Policy     *keyvault.Policy
	Attributes *keyvault.Attributes
	Tags       map[string]string
}

// ImportCertificate makes the imported certificate the new version.
func (s *Issuance) ImportCertificate(ctx context.Context, p core.Caller, req ImportCertificateRequest) (CertificateResult, error) {
	name := req.Name
	if err := core.ValidName(core.KindCertificates, name); err != nil {
		return CertificateResult{}, err
	}
	if strings.TrimSpace(req.Value) == "" {
		return CertificateResult{}, core.BadParameter("value", "value is required: the PKCS#12 (base64) or PEM to import")
	}
	now := time.Now()
	imp, err := certs.ParseImport(req.Value, req.Password, now)
	if err != nil {
		return CertificateResult{}, core.BadParameter("value", "%s", strings.TrimPrefix(err.Error(), "certs: "))
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
		return CertificateResult{}, policyError(err)
	}
	if !keyMatchesPolicy(imp.Key, policy) {
		return CertificateResult{}, core.BadParameter("policy.key_props", "the imported key does not match the policy's key_props (%s %d)", policy.KeyProperties.KeyType, policy.KeyProperties.KeySize)
	}
	if err := s.checkFreeName(name); err != nil {
		return CertificateResult{}, err
	}
	_, pe, _, err := s.LoadPolicy(name)
	if err != nil {
		return CertificateResult{}, err
	}
	ders := make([][]byte, len(imp.Chain))
	for i, c := range certs.SortChain(imp.Chain[0], imp.Chain[1:]) {
		ders[i] = c.Raw
	}
	version, err := core.NewVersionID()
	if err != nil {
		return CertificateResult{}, err
	}
	b := &raftstore.Batch{}
	b.PutIf(core.PolicyKey(name), core.MustJSON(stampPolicy(policy, pe)), pe.Index)
	if err := s.addCertVersion(b, name, version, policy, imp.Key, ders, req.Attributes, req.Tags, now, madeBy(p.Name, "import")); err != nil {
		return CertificateResult{}, err
	}
	idx, err := s.Commit(ctx, b)
	if err != nil {
		return CertificateResult{}, err
	}
	return CertificateResult{Name: name, Version: version, Index: idx}, nil
}

// Contacts.
