package issuance

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/certs"
)

// The issuers core: issuers and their providers (internal CAs, ACME
// accounts), signing with an internal CA, its revocation list, and the
// bound an internal CA puts on a policy's validity.

// Issuer providers. "internal" is a CA held by the vault; the ACME ones
// are configured here and enroll in a later step.
const (
	providerInternal = "internal"
)

// knownProviders are the issuer providers accepted (case-insensitive).
var knownProviders = map[string]string{
	"internal":   providerInternal,
	"acme":       providerACME,
	"digicert":   providerDigiCert,
	"globalsign": providerGlobalSign,
}

func IssuerKey(name string) string { return "issuers/" + objname.Canonical(name) }

// StoredIssuer is an issuer as stored (through the barrier: it holds
// credentials and, for internal CAs, the CA key).
type StoredIssuer struct {
	// Name is the spelling the issuer was created with (issuer names are
	// case-insensitive; the key holds the canonical form).
	Name        string                      `json:"name,omitempty"`
	Provider    string                      `json:"provider"`
	Credentials *keyvault.IssuerCredentials `json:"credentials,omitempty"`
	OrgDetails  *keyvault.OrgDetails        `json:"org_details,omitempty"`
	Attributes  keyvault.IssuerAttributes   `json:"attributes"`
	// Internal CAs: the chain (CA first, DER) and the PKCS#8 key. An
	// intermediate waiting for its parent's signature has a key and a CSR
	// but no chain yet.
	CAChain [][]byte `json:"ca_chain,omitempty"`
	CAKey   []byte   `json:"ca_key,omitempty"`
	CACSR   []byte   `json:"ca_csr,omitempty"`
	// ACME issuers (acme, DigiCert, GlobalSign).
	ACME *acmeSettings `json:"acme,omitempty"`
}

// IssuerRequest is the body of PUT/PATCH /certificates/issuers/{name}:
// Key Vault's fields plus certvault's "ca" extension for internal CAs.
type IssuerRequest struct {
	Provider    string                     `json:"provider"`
	Credentials *credentialsRequest        `json:"credentials,omitempty"`
	OrgDetails  *keyvault.OrgDetails       `json:"org_details,omitempty"`
	Attributes  *keyvault.IssuerAttributes `json:"attributes,omitempty"`
	CA          *CARequest                 `json:"ca,omitempty"`
	ACME        *acmeRequest               `json:"acme,omitempty"`
}

// credentialsRequest is the "credentials" member of an issuer request.
// Password is a pointer so that a "pwd" given empty (refused) differs
// from one left out (the stored key is kept).
type credentialsRequest struct {
	AccountID string  `json:"account_id,omitempty"`
	Password  *string `json:"pwd,omitempty"`
}

// emptyIssuerKey refuses an issuer request whose API key is empty or
// only white space: stored, it would fail only at the first order.
func emptyIssuerKey() *core.Error {
	return core.BadParameter("credentials.pwd", "credentials.pwd is empty: put the CA account's API key in it "+
		"(for ACME External Account Binding, the EAB HMAC key, base64url, as the CA shows it; "+
		"with the CLI, the contents of --api-key-file), or leave pwd out to keep the stored key")
}

// CARequest creates an internal CA: a new root (subject, key, validity) or
// an import of an existing CA certificate chain and key (PEM).
type CARequest struct {
	Subject        string `json:"subject,omitempty"`
	KeyType        string `json:"kty,omitempty"`
	Curve          string `json:"crv,omitempty"`
	KeySize        int    `json:"key_size,omitempty"`
	ValidityMonths int    `json:"validity_months,omitempty"`
	ImportPEM      string `json:"import_pem,omitempty"`
	// Intermediate makes a key and a CSR for a parent CA to sign, instead
	// of a self-signed root; MergePEM later brings the signed certificate
	// (and the parent's chain) back.
	Intermediate bool   `json:"intermediate,omitempty"`
	MergePEM     string `json:"merge_pem,omitempty"`
}

func (s *Issuance) loadIssuer(name string) (*StoredIssuer, raftstore.Entry, bool, error) {
	e, ok := s.Store.Get(IssuerKey(name))
	if !ok {
		return nil, e, false, nil
	}
	var si StoredIssuer
	if err := s.GetSealedJSON(e, &si); err != nil {
		return nil, e, false, err
	}
	return &si, e, true, nil
}

func issuerNotFound(name string) *core.Error {
	return core.NotFound("CertificateIssuerNotFound", "Issuer not found: %s", name)
}

func orErr(err error, alt error) error {
	if err != nil {
		return err
	}
	return alt
}

// policiesNaming lists the certificates whose policy names the issuer.
func (s *Issuance) policiesNaming(issuer string) []string {
	var out []string
	entries, _ := s.Store.List("policy/certificates/", "", 0)
	for _, e := range entries {
		var p keyvault.Policy
		if json.Unmarshal(e.Value, &p) == nil && objname.Equal(p.IssuerName(), issuer) {
			out = append(out, strings.TrimPrefix(e.Key, "policy/certificates/"))
		}
	}
	return out
}

// makeCA fills si with a new root CA or an imported one.
func (s *Issuance) makeCA(si *StoredIssuer, req *CARequest, now time.Time) error {
	if req.ImportPEM != "" {
		imp, err := certs.ParseImport(req.ImportPEM, "", now)
		if err != nil {
			return core.BadParameter("ca.import_pem", "ca.import_pem: %s", strings.TrimPrefix(err.Error(), "certs: "))
		}
		if !imp.Chain[0].IsCA || imp.Chain[0].KeyUsage&x509.KeyUsageCertSign == 0 {
			return core.BadParameter("ca.import_pem", "ca.import_pem: the certificate is not a CA (basic constraints CA and keyCertSign are required)")
		}
		der, err := x509.MarshalPKCS8PrivateKey(imp.Key)
		if err != nil {
			return err
		}
		si.CAKey = der
		for _, c := range certs.SortChain(imp.Chain[0], imp.Chain[1:]) {
			si.CAChain = append(si.CAChain, c.Raw)
		}
		return nil
	}
	if req.Subject == "" {
		return core.BadParameter("ca.subject", "ca.subject is required, such as \"CN=Example Issuing CA, O=Example\"")
	}
	subject, err := keyvault.ParseSubject(req.Subject)
	if err != nil {
		return core.BadParameter("ca.subject", "ca.subject: %v", err)
	}
	kp := &keyvault.KeyProperties{KeyType: req.KeyType, Curve: req.Curve, KeySize: req.KeySize}
	if kp.KeyType == "" {
		kp.KeyType = keyvault.KeyTypeEC
	}
	p := &keyvault.Policy{KeyProperties: kp, X509Properties: &keyvault.X509Properties{Subject: req.Subject}}
	if err := p.Normalize(); err != nil {
		return policyError(err)
	}
	months := req.ValidityMonths
	if months == 0 {
		months = 120
	}
	if months < 1 || months > 360 {
		return core.BadParameter("ca.validity_months", "ca.validity_months %d: use 1 to 360", months)
	}
	key, err := s.GenerateKey(p.KeyProperties)
	if err != nil {
		return err
	}
	kder, err := core.EncodePrivateKey(key)
	if err != nil {
		return err
	}
	if req.Intermediate {
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: subject}, key)
		if err != nil {
			return fmt.Errorf("create CA CSR: %w", err)
		}
		si.CAKey, si.CACSR = kder, csr
		return nil
	}
	serial, err := certs.RandomSerial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: subject,
		NotBefore: now.Add(-time.Minute), NotAfter: now.AddDate(0, months, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	si.CAChain, si.CAKey = [][]byte{der}, kder
	return nil
}

// mergeCA completes an intermediate with the certificate its parent signed
// (PEM, optionally followed by the parent's chain).
func (s *Issuance) mergeCA(si *StoredIssuer, chainPEM string, now time.Time) error {
	if si.CACSR == nil {
		return core.BadParameter("ca.merge_pem", "ca.merge_pem: this issuer is not waiting for a signed CA certificate")
	}
	var chain []*x509.Certificate
	blocks, err := certs.ParsePEM([]byte(chainPEM))
	if err != nil {
		return core.BadParameter("ca.merge_pem", "ca.merge_pem: %s", strings.TrimPrefix(err.Error(), "certs: "))
	}
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return core.BadParameter("ca.merge_pem", "ca.merge_pem: %v", err)
		}
		chain = append(chain, c)
	}
	if err := certs.CheckRepeats(chain); err != nil {
		return core.BadParameter("ca.merge_pem", "ca.merge_pem: %s", strings.TrimPrefix(err.Error(), "certs: "))
	}
	if len(chain) == 0 {
		return core.BadParameter("ca.merge_pem", "ca.merge_pem holds no PEM certificate")
	}
	k, err := s.DecodePrivateKey(si.CAKey)
	if err != nil {
		return err
	}
	pub := k.Public()
	leafAt := -1
	for i, c := range chain {
		if certs.SamePublicKey(c.PublicKey, pub) {
			leafAt = i
		}
	}
	if leafAt < 0 {
		return core.BadParameter("ca.merge_pem", "ca.merge_pem: no certificate in it carries this issuer's key; sign the CSR from 'certvault issuer get'")
	}
	leaf := chain[leafAt]
	if !leaf.IsCA || leaf.KeyUsage&x509.KeyUsageCertSign == 0 {
		return core.BadParameter("ca.merge_pem", "ca.merge_pem: the signed certificate is not a CA certificate (basic constraints CA and keyCertSign are required)")
	}
	if now.After(leaf.NotAfter) {
		return core.BadParameter("ca.merge_pem", "ca.merge_pem: the signed certificate has expired")
	}
	rest2 := append(append([]*x509.Certificate{}, chain[:leafAt]...), chain[leafAt+1:]...)
	for _, c := range certs.SortChain(leaf, rest2) {
		si.CAChain = append(si.CAChain, c.Raw)
	}
	si.CACSR = nil
	return nil
}

// issueFromIssuer signs with a named internal issuer.
func (s *Issuance) issueFromIssuer(policy *keyvault.Policy, pub crypto.PublicKey, now time.Time) ([]byte, [][]byte, error) {
	name := policy.IssuerName()
	si, _, ok, err := s.loadIssuer(name)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, core.BadParameter("policy.issuer.name", "issuer %q does not exist", name)
	}
	if si.Attributes.Enabled != nil && !*si.Attributes.Enabled {
		return nil, nil, core.BadParameter("policy.issuer.name", "issuer %q is disabled", name)
	}
	if si.Provider != providerInternal {
		return nil, nil, &core.Error{Kind: core.KindNotImplemented, Code: "NotImplemented",
			Message: fmt.Sprintf("issuer %q uses provider %s, whose enrollment is not available yet", name, si.Provider)}
	}
	if len(si.CAChain) == 0 {
		return nil, nil, core.BadParameter("policy.issuer.name", "issuer %q is an intermediate CA still waiting for its signed certificate: merge it with 'certvault issuer set %s --ca-merge FILE'", name, name)
	}
	ca, err := x509.ParseCertificate(si.CAChain[0])
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA of issuer %s: %w", name, err)
	}
	k, err := s.DecodePrivateKey(si.CAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA key of issuer %s: %w", name, err)
	}
	der, err := certs.Sign(policy, pub, ca, k, certs.CRLURL(s.PublicURL(), name), now)
	if err != nil {
		return nil, nil, err
	}
	return der, si.CAChain, nil
}

// checkValidityFits refuses a policy whose certificates, made at now,
// would outlive the CA of its internal issuer (the earliest notAfter of
// the CA's chain): a certificate is never valid past its issuer, and
// shortening it silently would make each renewal shorter than the last.
// The answer names the longest validity that fits. Other issuers are
// bounded by keyvault.MaxValidityMonths alone.
func (s *Issuance) checkValidityFits(p *keyvault.Policy, now time.Time) error {
	name := p.IssuerName()
	si, _, ok, err := s.loadIssuer(name)
	if err != nil || !ok || si.Provider != providerInternal || len(si.CAChain) == 0 {
		return err
	}
	var limit time.Time
	for i, der := range si.CAChain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("parse CA chain of issuer %s: %w", name, err)
		}
		if i == 0 || c.NotAfter.Before(limit) {
			limit = c.NotAfter
		}
	}
	if !p.NotAfter(now).After(limit) {
		return nil
	}
	until := limit.UTC().Format(time.RFC3339)
	if !limit.After(now) {
		return core.BadParameter("policy.issuer.name", "issuer %q's CA certificate expired at %s: renew the CA ('certvault issuer set %s ...') or name another issuer", name, until, name)
	}
	xp := p.X509Properties
	if xp.ValidityDuration == "" {
		months := (limit.Year()-now.Year())*12 + int(limit.Month()) - int(now.Month())
		for months > 0 && now.AddDate(0, months, 0).After(limit) {
			months--
		}
		if months >= 1 {
			return core.BadParameter("policy.x509_props.validity_months", "x509_props.validity_months %d ends after issuer %q's CA certificate expires (%s): use at most %d months, or renew the CA", xp.ValidityInMonths, name, until, months)
		}
		return core.BadParameter("policy.x509_props.validity_months", "x509_props.validity_months %d ends after issuer %q's CA certificate expires (%s), in less than a month: use a validity_duration of at most %s, or renew the CA", xp.ValidityInMonths, name, until, shortValidity(limit.Sub(now)))
	}
	return core.BadParameter("policy.x509_props.validity_duration", "x509_props.validity_duration %s ends after issuer %q's CA certificate expires (%s): use at most %s, or renew the CA", xp.ValidityDuration, name, until, shortValidity(limit.Sub(now)))
}

// shortValidity writes d, rounded down, as a validity_duration ("6d",
// "12h", "90m"; "0m" below a minute).
func shortValidity(d time.Duration) string {
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	default:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
}

// Revocation and CRLs of internal issuers.

func RevokedKey(issuer string) string { return "pki/" + objname.Canonical(issuer) + "/revoked" }

type revokedList struct {
	Entries []revokedEntry `json:"entries"`
}

type revokedEntry struct {
	Serial string `json:"serial"` // hex
	Time   int64  `json:"time"`
}

// Issuer is an issuer as the core shows it: never its credentials' secret
// or a CA key.
type Issuer struct {
	// Name is the spelling the issuer was created with.
	Name       string
	Provider   string
	AccountID  string
	OrgDetails *keyvault.OrgDetails
	Attributes keyvault.IssuerAttributes
	// Internal CAs: the CA certificate (DER), its fingerprint and the CRL's
	// URL; an intermediate waiting for its parent has only a CSR.
	CACert        []byte
	CAFingerprint string
	CRLURL        string
	CACSR         []byte
	// ACME shows an ACME issuer's directory, account and DNS solver.
	ACME *ACMEView
}

// IssuerResult is an issuer after a read or a write (Index is zero for a
// read).
type IssuerResult struct {
	Issuer Issuer
	Index  uint64
}

// issuerOf is what the core shows of a stored issuer; name is the name it
// was asked by.
func (s *Issuance) issuerOf(name string, si *StoredIssuer) Issuer {
	is := Issuer{Name: cmp.Or(si.Name, name), Provider: si.Provider, OrgDetails: si.OrgDetails, Attributes: si.Attributes}
	if si.Credentials != nil {
		is.AccountID = si.Credentials.AccountID
	}
	if len(si.CAChain) > 0 {
		is.CACert = si.CAChain[0]
		if c, err := x509.ParseCertificate(si.CAChain[0]); err == nil {
			is.CAFingerprint = core.Fingerprint(c)
		}
		is.CRLURL = certs.CRLURL(s.PublicURL(), name)
	} else {
		is.CACSR = si.CACSR
	}
	if si.ACME != nil {
		is.ACME = si.ACME.view()
	}
	return is
}

// GetIssuer returns an issuer.
func (s *Issuance) GetIssuer(ctx context.Context, p core.Caller, name string) (IssuerResult, error) {
	si, _, ok, err := s.loadIssuer(name)
	if err != nil || !ok {
		return IssuerResult{}, orErr(err, issuerNotFound(name))
	}
	return IssuerResult{Issuer: s.issuerOf(name, si)}, nil
}

// IssuerItem is one entry of the issuer list.
type IssuerItem struct {
	Name     string
	Provider string
}

// IssuerPage is one page of the issuer list.
type IssuerPage struct {
	Items []IssuerItem
	// Next resumes the listing (PageRequest.After); empty at its end.
	Next string
}

// ListIssuersRequest asks for a page of issuers.
type ListIssuersRequest struct {
	Page core.PageRequest
}

// ListIssuers lists the issuers by canonical name, each with the spelling
// it was created with.
func (s *Issuance) ListIssuers(ctx context.Context, p core.Caller, req ListIssuersRequest) (IssuerPage, error) {
	const prefix = "issuers/"
	entries, next := s.ListUnder(prefix, req.Page, func(raftstore.Entry) bool { return true })
	out := IssuerPage{Next: next}
	for _, e := range entries {
		var si StoredIssuer
		if err := s.GetSealedJSON(e, &si); err != nil {
			return IssuerPage{}, err
		}
		out.Items = append(out.Items, IssuerItem{Name: cmp.Or(si.Name, strings.TrimPrefix(e.Key, prefix)), Provider: si.Provider})
	}
	return out, nil
}

// CheckIssuerName refuses an issuer name that is not valid, or Self or
// Unknown.
func CheckIssuerName(name string) error {
	if !core.ObjectName.MatchString(name) || objname.Equal(name, keyvault.IssuerSelf) || objname.Equal(name, keyvault.IssuerUnknown) {
		return core.BadParameter("name", "issuer name %q is not valid: use 1 to 127 letters, digits and dashes, other than Self and Unknown", name)
	}
	return nil
}

// SetIssuerRequest creates or replaces an issuer (PUT), or changes the
// members it sets (Patch). The members are Key Vault's, plus certvault's
// "ca" (internal CAs) and "acme" (ACME issuers).
type SetIssuerRequest struct {
	Name        string
	Patch       bool
	Provider    string
	Credentials *credentialsRequest
	OrgDetails  *keyvault.OrgDetails
	Attributes  *keyvault.IssuerAttributes
	CA          *CARequest
	ACME        *acmeRequest
}

// SetIssuer creates or changes an issuer: an internal CA (made, imported,
// or an intermediate and its merge) or an ACME account's settings. The
// provider of an issuer never changes.
func (s *Issuance) SetIssuer(ctx context.Context, p core.Caller, req SetIssuerRequest) (IssuerResult, error) {
	name, patch := req.Name, req.Patch
	if err := CheckIssuerName(name); err != nil {
		return IssuerResult{}, err
	}
	if c := req.Credentials; c != nil && c.Password != nil && strings.TrimSpace(*c.Password) == "" {
		return IssuerResult{}, emptyIssuerKey()
	}
	cur, prev, found, err := s.loadIssuer(name)
	if err != nil {
		return IssuerResult{}, err
	}
	if patch && !found {
		return IssuerResult{}, issuerNotFound(name)
	}
	now := time.Now()
	si := &StoredIssuer{Attributes: keyvault.IssuerAttributes{Created: now.Unix()}}
	if found {
		si = cur
	}
	if req.Provider != "" || !patch {
		prov, ok := knownProviders[strings.ToLower(req.Provider)]
		if !ok {
			return IssuerResult{}, core.BadParameter("provider", "provider %q: use internal, acme, DigiCert or GlobalSign", req.Provider)
		}
		if found && prov != si.Provider {
			return IssuerResult{}, core.BadParameter("provider", "issuer %s has provider %s; delete it to change the provider", name, si.Provider)
		}
		si.Provider = prov
	}
	credsChanged := false
	if req.Credentials != nil {
		if si.Credentials == nil {
			si.Credentials = &keyvault.IssuerCredentials{}
		}
		if req.Credentials.AccountID != "" && req.Credentials.AccountID != si.Credentials.AccountID {
			si.Credentials.AccountID, credsChanged = req.Credentials.AccountID, true
		}
		if pw := req.Credentials.Password; pw != nil && *pw != si.Credentials.Password {
			si.Credentials.Password, credsChanged = *pw, true
		}
	}
	if req.OrgDetails != nil {
		si.OrgDetails = req.OrgDetails
	}
	if req.Attributes != nil && req.Attributes.Enabled != nil {
		si.Attributes.Enabled = req.Attributes.Enabled
	}
	if si.Attributes.Enabled == nil {
		t := true
		si.Attributes.Enabled = &t
	}
	si.Attributes.Updated = now.Unix()
	if si.Provider == providerInternal {
		if req.CA != nil && req.CA.MergePEM != "" {
			if err := s.mergeCA(si, req.CA.MergePEM, now); err != nil {
				return IssuerResult{}, err
			}
		} else if req.CA != nil {
			if len(si.CAChain) > 0 || si.CACSR != nil {
				return IssuerResult{}, core.BadParameter("ca", "issuer %s already holds a CA; delete the issuer to replace it", name)
			}
			if err := s.makeCA(si, req.CA, now); err != nil {
				return IssuerResult{}, err
			}
		}
		if len(si.CAChain) == 0 && si.CACSR == nil {
			return IssuerResult{}, core.BadParameter("ca", "an internal issuer needs a CA: give \"ca\": {\"subject\": \"CN=...\"} to create a root, or {\"import_pem\": ...} with the CA certificate and key")
		}
	} else if req.CA != nil {
		return IssuerResult{}, core.BadParameter("ca", "\"ca\" applies only to provider internal")
	}
	if isACMEProvider(si.Provider) {
		if err := applyACMERequest(si, req.ACME, credsChanged); err != nil {
			return IssuerResult{}, err
		}
	} else if req.ACME != nil {
		return IssuerResult{}, core.BadParameter("acme", "\"acme\" applies only to providers acme, DigiCert and GlobalSign")
	}
	if si.Name == "" {
		si.Name = name
	}
	b := &raftstore.Batch{}
	ct, err := s.Barrier.Load().Encrypt(IssuerKey(name), core.MustJSON(si))
	if err != nil {
		return IssuerResult{}, err
	}
	b.PutIf(IssuerKey(name), ct, prev.Index)
	idx, err := s.Commit(ctx, b)
	if err != nil {
		return IssuerResult{}, err
	}
	return IssuerResult{Issuer: s.issuerOf(name, si), Index: idx}, nil
}

// DeleteIssuer deletes an issuer that no certificate policy names, with
// its revocation list, and returns it.
func (s *Issuance) DeleteIssuer(ctx context.Context, p core.Caller, name string) (IssuerResult, error) {
	si, prev, ok, err := s.loadIssuer(name)
	if err != nil || !ok {
		return IssuerResult{}, orErr(err, issuerNotFound(name))
	}
	if users := s.policiesNaming(name); len(users) > 0 {
		more := ""
		if len(users) > 5 {
			more = fmt.Sprintf(" and %d more", len(users)-5)
			users = users[:5]
		}
		return IssuerResult{}, core.Conflict("Conflict", "issuer %s is named by the policies of %s%s; point them at another issuer first", name, strings.Join(users, ", "), more)
	}
	b := (&raftstore.Batch{}).DeleteIf(IssuerKey(name), prev.Index).Delete(RevokedKey(name))
	idx, err := s.Commit(ctx, b)
	if err != nil {
		return IssuerResult{}, err
	}
	return IssuerResult{Issuer: s.issuerOf(name, si), Index: idx}, nil
}

// IssuerCRL returns the CRL of an internal issuer (DER), signed now.
func (s *Issuance) IssuerCRL(ctx context.Context, name string) ([]byte, error) {
	if s.Barrier.Load() == nil {
		return nil, &core.Error{Kind: core.KindUnavailable, Code: "ServiceUnavailable", Message: "the cluster has no leader or is not ready; retry", Cause: core.ErrNotInitialized}
	}
	si, _, ok, err := s.loadIssuer(name)
	if err != nil || !ok || si.Provider != providerInternal {
		return nil, orErr(err, issuerNotFound(name))
	}
	if len(si.CAChain) == 0 {
		return nil, core.Conflict("Conflict", "issuer %s is an intermediate CA still waiting for its signed certificate; it has no CRL yet", name)
	}
	var rl revokedList
	if e, ok := s.Store.Get(RevokedKey(name)); ok {
		json.Unmarshal(e.Value, &rl)
	}
	ca, _ := x509.ParseCertificate(si.CAChain[0])
	k, err := s.DecodePrivateKey(si.CAKey)
	if err != nil {
		return nil, err
	}
	var revoked []x509.RevocationListEntry
	for _, e := range rl.Entries {
		serial, ok := new(big.Int).SetString(e.Serial, 16)
		if ok {
			revoked = append(revoked, x509.RevocationListEntry{SerialNumber: serial, RevocationTime: time.Unix(e.Time, 0)})
		}
	}
	now := time.Now()
	return x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(now.Unix()), ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour),
		RevokedCertificateEntries: revoked, Issuer: pkix.Name{},
	}, ca, k)
}

// RevokeCertificateRequest names the certificate version to revoke
// (Version empty: the current one).
type RevokeCertificateRequest struct {
	Name    string
	Version string
}

// RevokeCertificateResult says which serial went on which issuer's CRL;
// Index is zero when it was there already.
type RevokeCertificateResult struct {
	Version string
	Serial  *big.Int
	Issuer  string
	Index   uint64
}

// RevokeCertificate puts a certificate version's serial on the CRL of the
// internal issuer that issued it.
func (s *Issuance) RevokeCertificate(ctx context.Context, p core.Caller, req RevokeCertificateRequest) (RevokeCertificateResult, error) {
	name := req.Name
	_, version, err := s.ResolveVersion(core.KindCertificates, name, req.Version)
	if err != nil {
		return RevokeCertificateResult{}, err
	}
	v, _, ok, err := s.LoadVersion(core.KindCertificates, name, version)
	if err != nil || !ok {
		return RevokeCertificateResult{}, core.OrObjectNotFound(err, core.KindCertificates, name, version)
	}
	leaf, err := x509.ParseCertificate(v.Chain[0])
	if err != nil || len(v.Chain) < 2 {
		return RevokeCertificateResult{}, core.BadParameter("version", "certificate %s/%s was not issued by an internal issuer of this vault; revoke it with its CA", name, version)
	}
	issuer := ""
	for _, u := range leaf.CRLDistributionPoints {
		if i := strings.Index(u, "/v1/pki/"); i >= 0 {
			issuer = strings.TrimSuffix(u[i+len("/v1/pki/"):], "/crl")
		}
	}
	si, _, ok, err := s.loadIssuer(issuer)
	if err != nil || !ok || si.Provider != providerInternal {
		return RevokeCertificateResult{}, core.BadParameter("version", "certificate %s/%s was not issued by an internal issuer of this vault; revoke it with its CA", name, version)
	}
	var rl revokedList
	e, found := s.Store.Get(RevokedKey(issuer))
	if found {
		json.Unmarshal(e.Value, &rl)
	}
	stored := leaf.SerialNumber.Text(16) // the CRL list's form; shown as openssl prints it
	already := false
	for _, x := range rl.Entries {
		if x.Serial == stored {
			already = true
		}
	}
	res := RevokeCertificateResult{Version: version, Serial: leaf.SerialNumber, Issuer: issuer}
	if !already {
		rl.Entries = append(rl.Entries, revokedEntry{Serial: stored, Time: time.Now().Unix()})
		if res.Index, err = s.Commit(ctx, (&raftstore.Batch{}).PutIf(RevokedKey(issuer), core.MustJSON(rl), e.Index)); err != nil {
			return RevokeCertificateResult{}, err
		}
	}
	return res, nil
}
