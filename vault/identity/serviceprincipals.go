package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
)

// Service principals are applications that authenticate the way Azure
// applications do (issue 18): a client id and either a client secret or a
// registered certificate, in the vault's tenant. A service principal is a
// principal like a token holder: its name as a principal is
// access.SPPrefix + NAME ("sp:billing"), which no token name can be, and
// roles are assigned to that name.

// Where service principals live: the sealed record by canonical name, and
// the client id's index to it.
const (
	PrefixServicePrincipals = "sys/service-principals/"
	PrefixSPClients         = "sys/sp-clients/"
	// KeyTenant holds the vault's tenant id, made with the first service
	// principal.
	KeyTenant = "sys/tenant"
)

// spMaxCertificates bounds the certificates registered to one principal.
const spMaxCertificates = 8

// ServicePrincipalRecord is a service principal as stored (sealed).
type ServicePrincipalRecord struct {
	Name     string `json:"name"`
	ClientID string `json:"client_id"`
	// Secrets are the hashes (SHA-256) of its client secrets; the
	// secrets themselves are shown once.
	Secrets      []SPSecret `json:"secrets,omitempty"`
	Certificates []SPCert   `json:"certificates,omitempty"`
	// AgentGroups are the agent groups whose agents may get tokens of
	// this principal for the applications on their machines (the
	// agent's managed-identity endpoint).
	AgentGroups []string `json:"agent_groups,omitempty"`
	Created     int64    `json:"created"`
	CreatedBy   string   `json:"created_by,omitempty"`
}

// SPSecret is a client secret's hash.
type SPSecret struct {
	ID      string `json:"id"`
	Hash    []byte `json:"hash"`
	Created int64  `json:"created"`
}

// SPCert is a registered certificate: a client assertion signed by its
// key, naming it by thumbprint, authenticates the principal.
type SPCert struct {
	// X5t and X5tS256 are the certificate's SHA-1 and SHA-256
	// thumbprints, base64url as in a JWT header.
	X5t      string `json:"x5t"`
	X5tS256  string `json:"x5t#S256"`
	Subject  string `json:"subject"`
	NotAfter int64  `json:"not_after"`
	DER      []byte `json:"der"`
}

// ServicePrincipal is what the API shows of a service principal: never a
// secret or its hash.
type ServicePrincipal struct {
	Name string `json:"name"`
	// Principal is the name roles are assigned to and audit records use.
	Principal    string              `json:"principal"`
	TenantID     string              `json:"tenant_id"`
	ClientID     string              `json:"client_id"`
	Secrets      []SPSecretInfo      `json:"secrets"`
	Certificates []SPCertInfo        `json:"certificates"`
	AgentGroups  []string            `json:"agent_groups"`
	Created      time.Time           `json:"created"`
	CreatedBy    string              `json:"created_by,omitempty"`
	Assignments  []access.Assignment `json:"assignments,omitempty"`
}

// SPSecretInfo names a client secret without it.
type SPSecretInfo struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
}

// SPCertInfo describes a registered certificate.
type SPCertInfo struct {
	X5t      string    `json:"x5t"`
	X5tS256  string    `json:"x5t#S256"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
}

// CreateServicePrincipalRequest names the principal, the role it gets at
// a scope, and either a certificate (PEM) to register or nothing, for a
// client secret.
type CreateServicePrincipalRequest struct {
	Name  string
	Role  string
	Scope string
	// CertPEM is one or more PEM certificates; empty makes a client
	// secret.
	CertPEM []byte
	// AgentGroups are the agent groups whose agents may get tokens of
	// the principal (see ServicePrincipalRecord).
	AgentGroups []string
}

// CreateServicePrincipalResult is the new principal, its client secret
// (shown this once; empty when a certificate was registered) and the raft
// index that stored it.
type CreateServicePrincipalResult struct {
	ServicePrincipal
	ClientSecret string `json:"client_secret,omitempty"`
	Index        uint64 `json:"-"`
}

// SPPrincipal is the principal name of the service principal name: its
// canonical (lower-case) form, which role assignments name too.
func SPPrincipal(name string) string { return access.SPPrefix + objname.Canonical(name) }

// loadTenant returns the vault's tenant id, "" when there is none yet.
func (c *Identity) loadTenant() (string, error) {
	e, ok := c.Store.Get(KeyTenant)
	if !ok {
		return "", nil
	}
	var t struct {
		TenantID string `json:"tenant_id"`
	}
	if err := json.Unmarshal(e.Value, &t); err != nil || t.TenantID == "" {
		return "", fmt.Errorf("decode %s: %v", KeyTenant, err)
	}
	return t.TenantID, nil
}

// tenantID returns the vault's tenant id and, when there is none yet, adds
// to b the write that makes it.
func (c *Identity) tenantID(b *raftstore.Batch) (string, error) {
	if id, err := c.loadTenant(); id != "" || err != nil {
		return id, err
	}
	id, err := newUUID()
	if err != nil {
		return "", err
	}
	b.PutIf(KeyTenant, core.MustJSON(map[string]string{"tenant_id": id}), raftstore.NotExist)
	return id, nil
}

// TenantID returns the vault's tenant id ("" before the first service
// principal, or when its record does not decode).
func (c *Identity) TenantID() string {
	id, err := c.loadTenant()
	if err != nil {
		c.Log.Error("the tenant record does not decode", "err", err)
	}
	return id
}

// newUUID returns a random (version 4) UUID, the form Azure's tenant and
// client ids take.
func newUUID() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]), nil
}

// newClientSecret returns a client secret and its record.
func newClientSecret(now time.Time) (string, SPSecret, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", SPSecret{}, fmt.Errorf("client secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	id, err := core.RandomID(4)
	if err != nil {
		return "", SPSecret{}, err
	}
	sum := sha256.Sum256([]byte(secret))
	return secret, SPSecret{ID: id, Hash: sum[:], Created: now.Unix()}, nil
}

// parseSPCertificates reads the PEM certificates to register.
func parseSPCertificates(data []byte, now time.Time) ([]SPCert, error) {
	var out []SPCert
	for rest := data; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			if len(strings.TrimSpace(string(rest))) != 0 {
				return nil, core.BadParameter("certificate", "certificate: text after the last PEM block is not a PEM certificate")
			}
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, core.BadParameter("certificate", "certificate: a %q PEM block is not a certificate; give only the certificate (never its private key)", blk.Type)
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, core.BadParameter("certificate", "certificate: %v", err)
		}
		if !now.Before(cert.NotAfter) {
			return nil, core.BadParameter("certificate", "certificate %q expired on %s", cert.Subject.String(), cert.NotAfter.UTC().Format(time.RFC3339))
		}
		s1, s256 := sha1.Sum(cert.Raw), sha256.Sum256(cert.Raw)
		out = append(out, SPCert{X5t: base64.RawURLEncoding.EncodeToString(s1[:]), X5tS256: base64.RawURLEncoding.EncodeToString(s256[:]),
			Subject: cert.Subject.String(), NotAfter: cert.NotAfter.Unix(), DER: cert.Raw})
	}
	if len(out) == 0 {
		return nil, core.BadParameter("certificate", "certificate: no PEM certificate found")
	}
	if len(out) > spMaxCertificates {
		return nil, core.BadParameter("certificate", "certificate: %d certificates given, at most %d may be registered", len(out), spMaxCertificates)
	}
	return out, nil
}

// servicePrincipalView is what the API shows of rec.
func (c *Identity) servicePrincipalView(rec ServicePrincipalRecord, tenant string) ServicePrincipal {
	sp := ServicePrincipal{Name: rec.Name, Principal: SPPrincipal(rec.Name), TenantID: tenant, ClientID: rec.ClientID,
		Secrets: []SPSecretInfo{}, Certificates: []SPCertInfo{}, AgentGroups: append([]string{}, rec.AgentGroups...), Created: time.Unix(rec.Created, 0).UTC(), CreatedBy: rec.CreatedBy}
	for _, s := range rec.Secrets {
		sp.Secrets = append(sp.Secrets, SPSecretInfo{ID: s.ID, Created: time.Unix(s.Created, 0).UTC()})
	}
	for _, ct := range rec.Certificates {
		sp.Certificates = append(sp.Certificates, SPCertInfo{X5t: ct.X5t, X5tS256: ct.X5tS256, Subject: ct.Subject, NotAfter: time.Unix(ct.NotAfter, 0).UTC()})
	}
	as, _ := c.Assignments()
	for _, a := range as {
		if a.Assignee == sp.Principal {
			sp.Assignments = append(sp.Assignments, a)
		}
	}
	return sp
}

// spKey is the storage key of the service principal name.
func spKey(name string) string { return PrefixServicePrincipals + objname.Canonical(name) }

// loadServicePrincipal returns the record of the service principal name.
func (c *Identity) loadServicePrincipal(name string) (ServicePrincipalRecord, raftstore.Entry, error) {
	var rec ServicePrincipalRecord
	e, ok := c.Store.Get(spKey(name))
	if !ok {
		return rec, e, core.NotFound("ServicePrincipalNotFound", "service principal %s not found ('certvault sp list' shows them)", name)
	}
	return rec, e, c.GetSealedJSON(e, &rec)
}

// CreateServicePrincipal makes a service principal with a client secret
// (or the certificates given) and assigns it req.Role at req.Scope, in
// one batch.
func (c *Identity) CreateServicePrincipal(ctx context.Context, p core.Caller, req CreateServicePrincipalRequest) (CreateServicePrincipalResult, error) {
	if err := access.ValidPrincipalName(req.Name); err != nil {
		return CreateServicePrincipalResult{}, core.BadParameter("name", "name: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	if req.Role == "" || req.Scope == "" {
		return CreateServicePrincipalResult{}, core.BadParameter("role", "a service principal needs a role and a scope (scope / is the whole vault)")
	}
	asg, err := NewAssignment(req.Role, SPPrincipal(req.Name), req.Scope, p.Name)
	if err != nil {
		return CreateServicePrincipalResult{}, err
	}
	groups, err := checkAgentGroups(req.AgentGroups)
	if err != nil {
		return CreateServicePrincipalResult{}, err
	}
	now := time.Now()
	rec := ServicePrincipalRecord{Name: req.Name, AgentGroups: groups, Created: now.Unix(), CreatedBy: p.Name}
	if rec.ClientID, err = newUUID(); err != nil {
		return CreateServicePrincipalResult{}, err
	}
	var secret string
	if len(req.CertPEM) > 0 {
		if rec.Certificates, err = parseSPCertificates(req.CertPEM, now); err != nil {
			return CreateServicePrincipalResult{}, err
		}
	} else {
		var s SPSecret
		if secret, s, err = newClientSecret(now); err != nil {
			return CreateServicePrincipalResult{}, err
		}
		rec.Secrets = []SPSecret{s}
	}
	var tenant string
	idx, err := c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		if _, ok := c.Store.Get(spKey(req.Name)); ok {
			return nil, core.Conflict("Conflict", "service principal %s already exists; delete it first or pick another name", req.Name)
		}
		b := &raftstore.Batch{}
		var err error
		if tenant, err = c.tenantID(b); err != nil {
			return nil, err
		}
		if err := core.PutSealedJSONIf(b, c.Barrier.Load(), spKey(req.Name), rec, raftstore.NotExist); err != nil {
			return nil, err
		}
		b.PutIf(PrefixSPClients+rec.ClientID, []byte(objname.Canonical(req.Name)), raftstore.NotExist)
		as, aidx := c.Assignments()
		if as, asg, err = addAssignment(as, asg); err != nil {
			return nil, err
		}
		b.PutIf(core.KeyAssignments, core.MustJSON(as), aidx)
		return b, nil
	})
	if err != nil {
		return CreateServicePrincipalResult{}, err
	}
	view := c.servicePrincipalView(rec, tenant)
	view.Assignments = []access.Assignment{asg}
	return CreateServicePrincipalResult{ServicePrincipal: view, ClientSecret: secret, Index: idx}, nil
}

// ListServicePrincipals returns every service principal, by name.
func (c *Identity) ListServicePrincipals(ctx context.Context, p core.Caller) ([]ServicePrincipal, error) {
	es, _ := c.Store.List(PrefixServicePrincipals, "", 0)
	tenant := c.TenantID()
	out := []ServicePrincipal{}
	for _, e := range es {
		var rec ServicePrincipalRecord
		if err := c.GetSealedJSON(e, &rec); err != nil {
			return nil, err
		}
		out = append(out, c.servicePrincipalView(rec, tenant))
	}
	return out, nil
}

// GetServicePrincipal returns one service principal.
func (c *Identity) GetServicePrincipal(ctx context.Context, p core.Caller, name string) (ServicePrincipal, error) {
	rec, _, err := c.loadServicePrincipal(name)
	if err != nil {
		return ServicePrincipal{}, err
	}
	return c.servicePrincipalView(rec, c.TenantID()), nil
}

// RotateServicePrincipalSecret gives the service principal a new client
// secret, which replaces its others at once, and returns it (shown this
// once).
func (c *Identity) RotateServicePrincipalSecret(ctx context.Context, p core.Caller, name string) (CreateServicePrincipalResult, error) {
	secret, s, err := newClientSecret(time.Now())
	if err != nil {
		return CreateServicePrincipalResult{}, err
	}
	rec, idx, err := c.updateServicePrincipal(ctx, name, func(rec *ServicePrincipalRecord) error {
		if len(rec.Certificates) > 0 {
			return core.BadParameter("name", "service principal %s authenticates with a certificate, not a secret", name)
		}
		rec.Secrets = []SPSecret{s}
		return nil
	})
	if err != nil {
		return CreateServicePrincipalResult{}, err
	}
	return CreateServicePrincipalResult{ServicePrincipal: c.servicePrincipalView(rec, c.TenantID()), ClientSecret: secret, Index: idx}, nil
}

// updateServicePrincipal changes the record of the service principal
// name with change, in a compare-and-set write, and returns it as stored.
func (c *Identity) updateServicePrincipal(ctx context.Context, name string, change func(*ServicePrincipalRecord) error) (ServicePrincipalRecord, uint64, error) {
	var rec ServicePrincipalRecord
	idx, err := c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		var e raftstore.Entry
		var err error
		if rec, e, err = c.loadServicePrincipal(name); err != nil {
			return nil, err
		}
		if err := change(&rec); err != nil {
			return nil, err
		}
		b := &raftstore.Batch{}
		if err := core.PutSealedJSONIf(b, c.Barrier.Load(), e.Key, rec, e.Index); err != nil {
			return nil, err
		}
		return b, nil
	})
	return rec, idx, err
}

// DeleteServicePrincipal removes a service principal and its role
// assignments, so that a principal made again under its name starts with
// none.
func (c *Identity) DeleteServicePrincipal(ctx context.Context, p core.Caller, name string) (uint64, error) {
	return c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		rec, e, err := c.loadServicePrincipal(name)
		if err != nil {
			return nil, err
		}
		as, aidx := c.Assignments()
		principal := SPPrincipal(rec.Name)
		// Removing a service principal's assignments never removes an
		// administrator that AdminRemains counts (those hold tokens).
		kept := slices.DeleteFunc(slices.Clone(as), func(a access.Assignment) bool { return a.Assignee == principal })
		b := (&raftstore.Batch{}).DeleteIf(e.Key, e.Index).Delete(PrefixSPClients + rec.ClientID)
		if len(kept) != len(as) {
			b.PutIf(core.KeyAssignments, core.MustJSON(kept), aidx)
		}
		return b, nil
	})
}
