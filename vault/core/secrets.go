package core

import (
	"context"
	"crypto"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/certs"
)

// Secrets in the domain core: set (a new version), get, update a
// version's attributes. Listing is ListObjects and ListVersions
// (objects.go), the lifecycle is lifecycle.go's. A certificate's
// managed secret is the certificate's to set, update and build.

// SecretVersion is one version of a secret as the core returns it.
type SecretVersion struct {
	// Name is the secret's name as the request gave it.
	Name    string
	Version string
	// Value is the secret value; empty in answers to updates. A managed
	// secret's value is the certificate's key and chain.
	Value       string
	ContentType string
	// Attributes carry the vault's current recovery settings.
	Attributes keyvault.Attributes
	Tags       map[string]string
	// ManagedBy is kindCertificates for a certificate's secret (GetSecret
	// builds it from the certificate version: managedSecret).
	ManagedBy string
	// Index is the raft index of the write, or of the version read.
	Index uint64
}

// SetSecretRequest sets a new version of a secret.
type SetSecretRequest struct {
	Name string
	// Value is required.
	Value       *string
	ContentType string
	Attributes  *keyvault.Attributes
	Tags        map[string]string
}

// SetSecret makes a new current version of a secret, creating the secret
// when it does not exist. Concurrent sets of one secret all succeed, each
// as a version, as in Key Vault. A deleted secret is a conflict; a
// certificate's managed secret is refused.
func (c *Core) SetSecret(ctx context.Context, p Caller, req SetSecretRequest) (SecretVersion, error) {
	name := req.Name
	if err := ValidName(KindSecrets, name); err != nil {
		return SecretVersion{}, err
	}
	if req.Value == nil {
		return SecretVersion{}, BadParameter("value", "value is required")
	}
	version, err := NewVersionID()
	if err != nil {
		return SecretVersion{}, err
	}
	now := nowUnix()
	v := VersionMeta{ContentType: req.ContentType, Tags: req.Tags, Sealed: true, Attributes: c.NewVersionAttributes(req.Attributes, now)}
	// Concurrent sets of one secret all succeed, each as a version, as in
	// Key Vault: they queue on the name, and a lost race on the meta record
	// (with a writer on another node) is retried.
	unlock := c.lockObject(KindSecrets, name)
	defer unlock()
	idx, err := c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		m, prev, found, err := c.MetaForNewVersion(KindSecrets, name)
		if err != nil {
			return nil, err
		}
		if found && m.ManagedBy != "" {
			return nil, Forbidden("secret %s is managed by the certificate of the same name and cannot be set; update the certificate instead", name)
		}
		if !found {
			m = ObjectMeta{Created: now}
		}
		m.Current, m.Summary, m.Tags, m.Content = version, v.Attributes, v.Tags, v.ContentType
		b := &raftstore.Batch{}
		if v.Attributes.Expires != nil || len(m.EventPlans) > 0 {
			c.PlanExpiryEvents(b, &m, KindSecrets, name, version, v.Attributes.NotBefore, v.Attributes.Expires)
		}
		PutMeta(b, KindSecrets, name, m, prev)
		if err := c.PutVersionRecord(b, KindSecrets, name, version, v, []byte(*req.Value)); err != nil {
			return nil, err
		}
		if err := c.EmitEvent(b, EventSecretNewVersionCreated, KindSecrets, name, version, v.Attributes.NotBefore, v.Attributes.Expires, ""); err != nil {
			return nil, err
		}
		return b, nil
	})
	if err != nil {
		return SecretVersion{}, err
	}
	return c.secretVersion(name, version, v, *req.Value, idx), nil
}

// secretVersion is the core's answer for version v of a secret.
func (c *Core) secretVersion(name, version string, v VersionMeta, value string, index uint64) SecretVersion {
	return SecretVersion{Name: name, Version: version, Value: value, ContentType: v.ContentType,
		Attributes: c.Live(v.Attributes), Tags: v.Tags, Index: index}
}

// GetSecretRequest reads a version of a secret ("": the current one).
type GetSecretRequest struct {
	Name, Version string
}

// GetSecret returns a version of a secret with its value. A disabled
// version is refused. A certificate's managed secret is the certificate
// version's key and chain (managedSecret).
func (c *Core) GetSecret(ctx context.Context, p Caller, req GetSecretRequest) (SecretVersion, error) {
	name := req.Name
	m, version, err := c.ResolveVersion(KindSecrets, name, req.Version)
	if err != nil {
		return SecretVersion{}, err
	}
	if m.ManagedBy == KindCertificates {
		return c.managedSecret(name, version)
	}
	v, e, ok, err := c.LoadVersion(KindSecrets, name, version)
	if err != nil {
		return SecretVersion{}, err
	}
	if !ok {
		return SecretVersion{}, ObjectNotFound(KindSecrets, name, version)
	}
	if !v.Attributes.IsEnabled() {
		return SecretVersion{}, Forbidden("operation get is not allowed on a disabled secret")
	}
	ve, ok := c.Store.Get(ValKey(KindSecrets, name, version))
	if !ok {
		return SecretVersion{}, ObjectNotFound(KindSecrets, name, version)
	}
	value, err := c.OpenSealed(ve)
	if err != nil {
		return SecretVersion{}, err
	}
	return c.secretVersion(name, version, v, string(value), e.Index), nil
}

// UpdateSecretRequest changes a version's attributes, tags or content
// type (nil: unchanged).
type UpdateSecretRequest struct {
	Name, Version string
	ContentType   *string
	Attributes    *keyvault.Attributes
	Tags          map[string]string
}

// UpdateSecret updates a version of a secret ("": the current one) and
// returns it without its value. A managed secret is refused.
func (c *Core) UpdateSecret(ctx context.Context, p Caller, req UpdateSecretRequest) (SecretVersion, error) {
	name := req.Name
	m, version, err := c.ResolveVersion(KindSecrets, name, req.Version)
	if err != nil {
		return SecretVersion{}, err
	}
	if m.ManagedBy != "" {
		return SecretVersion{}, Forbidden("secret %s is managed by its certificate; update the certificate instead", name)
	}
	v, e, ok, err := c.LoadVersion(KindSecrets, name, version)
	if err != nil || !ok {
		return SecretVersion{}, OrObjectNotFound(err, KindSecrets, name, version)
	}
	v.ApplyUpdate(req.Attributes, req.Tags)
	if req.ContentType != nil {
		v.ContentType = *req.ContentType
	}
	b := &raftstore.Batch{}
	c.PutVersionUpdate(b, KindSecrets, name, version, m.Current, v, e, KindSecrets)
	idx, err := c.Commit(ctx, b)
	if err != nil {
		return SecretVersion{}, err
	}
	return c.secretVersion(name, version, v, "", idx), nil
}

// managedSecret is a version of the secret a certificate manages, as
// GetSecret returns it: PKCS#12 (base64, no password) or PEM, per the
// policy; the private key only when the policy makes it exportable.
// Index is the raft index of the certificate version's record.
func (c *Core) managedSecret(name, version string) (SecretVersion, error) {
	v, e, ok, err := c.LoadVersion(KindCertificates, name, version)
	if err != nil || !ok {
		return SecretVersion{}, OrObjectNotFound(err, KindSecrets, name, version)
	}
	if !v.Attributes.IsEnabled() {
		return SecretVersion{}, Forbidden("operation get is not allowed on a disabled certificate")
	}
	policy, _, _, err := c.LoadPolicy(name)
	if err != nil {
		return SecretVersion{}, err
	}
	var key crypto.Signer
	if policy == nil || policy.Exportable() {
		if key, err = c.CertKey(name, version); err != nil {
			return SecretVersion{}, err
		}
	}
	chain, err := certs.ParseChainDER(v.Chain)
	if err != nil {
		return SecretVersion{}, Internal(err)
	}
	value, err := certs.EncodeSecret(v.ContentType, key, chain)
	if err != nil {
		return SecretVersion{}, err
	}
	s := c.secretVersion(name, version, v, value, e.Index)
	s.ManagedBy = KindCertificates
	return s, nil
}
