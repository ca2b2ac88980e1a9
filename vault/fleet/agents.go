package fleet

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/internal/serial"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
)

// The core of agents: machines that authenticate with a client
// certificate from the vault's agent CA, an intermediate under the vault
// CA. An agent enrolls once with a join token ("cva.<id>.<secret>",
// limited in time and uses), sending a CSR for a key it made itself, and
// renews with its current identity. Revoking an agent marks its record;
// every node checks the record on each request, so the revocation holds
// as soon as it is applied.

const (
	keyAgentCACert        = "sys/agent-ca/cert"
	keyAgentCAKey         = "sys/agent-ca/key"
	PrefixAgents          = "agents/"
	prefixAgentJoinTokens = "sys/agent-join-tokens/"
	AgentTokenPrefix      = "cva."
	// AgentOU marks agent client certificates.
	AgentOU = "certvault-agent"
	// defaultAgentCertTTL is an agent identity's lifetime.
	defaultAgentCertTTL = 30 * 24 * time.Hour
)

// agentJoinRecord is an agent join token as stored (sealed).
type agentJoinRecord struct {
	Hash      []byte `json:"hash"`
	Group     string `json:"group"`
	Created   int64  `json:"created"`
	Expires   int64  `json:"expires"`
	Uses      int    `json:"uses"`
	CertTTL   int64  `json:"cert_ttl_seconds"`
	CreatedBy string `json:"created_by"`
}

// AgentRecord is what the vault knows of an agent.
type AgentRecord struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Group     string    `json:"group"`
	Serial    string    `json:"serial"`
	NotAfter  time.Time `json:"not_after"`
	Enrolled  time.Time `json:"enrolled"`
	Renewed   time.Time `json:"renewed,omitzero"`
	JoinToken string    `json:"join_token"`
	Source    string    `json:"source"`
	Revoked   bool      `json:"revoked"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	RevokedBy string    `json:"revoked_by,omitempty"`
	// PrevSerial is the certificate before the last renewal, accepted
	// too so that requests in flight during a renewal still pass.
	PrevSerial string `json:"prev_serial,omitempty"`
	// CertTTLSeconds is the lifetime given at each renewal.
	CertTTLSeconds int64 `json:"cert_ttl_seconds"`
}

// view is the record as the API shows it: the serials as openssl prints
// them (the record keeps them as big.Int.Text(16), the form requests are
// matched against).
func (rec AgentRecord) view() AgentRecord {
	rec.Serial, rec.PrevSerial = serial.FormatHex(rec.Serial), serial.FormatHex(rec.PrevSerial)
	return rec
}

// agentCache keeps decoded agent records by store index.
type agentCache struct {
	mu sync.RWMutex
	m  map[string]cachedAgent
}

type cachedAgent struct {
	index uint64
	rec   AgentRecord
}

// Agent returns an agent's record from the local state.
func (f *Fleet) Agent(id string) (AgentRecord, uint64, bool) {
	e, ok := f.Store.Get(PrefixAgents + id)
	if !ok {
		return AgentRecord{}, 0, false
	}
	f.agentCache.mu.RLock()
	c, hit := f.agentCache.m[id]
	f.agentCache.mu.RUnlock()
	if hit && c.index == e.Index {
		return c.rec, e.Index, true
	}
	var rec AgentRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		f.Log.Error("agent record does not decode", "agent", id, "err", err)
		return AgentRecord{}, 0, false
	}
	f.agentCache.mu.Lock()
	if f.agentCache.m == nil {
		f.agentCache.m = map[string]cachedAgent{}
	}
	f.agentCache.m[id] = cachedAgent{e.Index, rec}
	f.agentCache.mu.Unlock()
	return rec, e.Index, true
}

// AgentCA returns the agent CA certificate, nil error and nil cert when
// none was made yet.
func (f *Fleet) AgentCA() (*x509.Certificate, error) {
	e, ok := f.Store.Get(keyAgentCACert)
	if !ok {
		return nil, errors.New("vault: no agent CA yet")
	}
	return core.ParseCertPEM(e.Value)
}

// ensureAgentCA makes the agent CA on first use (on the leader).
func (f *Fleet) ensureAgentCA(ctx context.Context) error {
	if _, ok := f.Store.Get(keyAgentCACert); ok {
		return nil
	}
	root := f.CACert.Load()
	rootKey, err := f.CAKey()
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate agent CA key: %w", err)
	}
	serial, err := core.RandomSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "certvault agent CA", Organization: []string{"certvault"}, OrganizationalUnit: []string{AgentOU}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              root.NotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &key.PublicKey, rootKey)
	if err != nil {
		return fmt.Errorf("sign agent CA: %w", err)
	}
	keyPEM, err := core.PEMKey(key)
	if err != nil {
		return err
	}
	b := &raftstore.Batch{}
	b.PutIf(keyAgentCACert, core.PEMCert(der), raftstore.NotExist)
	if err := core.PutSealed(b, f.Barrier.Load(), keyAgentCAKey, keyPEM); err != nil {
		return err
	}
	if _, err := f.Commit(ctx, b); err != nil && !errors.Is(err, raftstore.ErrConflict) {
		return fmt.Errorf("store agent CA: %w", err)
	}
	return nil
}

func (f *Fleet) agentCAKey() (crypto.Signer, error) {
	e, ok := f.Store.Get(keyAgentCAKey)
	if !ok {
		return nil, errors.New("vault: no agent CA key")
	}
	pt, err := f.OpenSealed(e)
	if err != nil {
		return nil, err
	}
	return core.ParseKeyPEM(pt)
}

// AgentJoinToken answers the creation of an agent join token.
type AgentJoinToken struct {
	ID    string    `json:"id"`
	Token string    `json:"token"`
	Group string    `json:"group"`
	Exp   time.Time `json:"expires"`
	Uses  int       `json:"uses"`
	// CAFingerprint pins the vault CA that serves the API.
	CAFingerprint string `json:"ca_fingerprint"`
	CertTTL       string `json:"cert_ttl"`
}

// EnrollResponse gives an agent its identity.
type EnrollResponse struct {
	AgentID string `json:"agent_id"`
	Group   string `json:"group"`
	// Certificate is the agent's certificate (PEM); Chain the agent CA
	// (PEM) to send with it; CA the vault CA (PEM) to trust the API with.
	Certificate string    `json:"certificate"`
	Chain       string    `json:"chain"`
	CA          string    `json:"ca"`
	NotAfter    time.Time `json:"not_after"`
}

// errBadAgentToken is the one answer to any join-token problem, so that a
// caller learns nothing about which tokens exist.
var errBadAgentToken = errors.New("vault: agent join token is not valid (wrong, expired or used up; ask for a new one: certvault agent join-token create)")

// ParseAgentJoinToken splits an agent join token, "cva.<id>.<secret>"
// (surrounding white space ignored); both parts must be there.
func ParseAgentJoinToken(tok string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(tok), AgentTokenPrefix)
	if !found {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, ".")
	return id, secret, ok && id != "" && secret != ""
}

// issueAgentCert signs the agent's certificate and records its serial.
func (f *Fleet) issueAgentCert(rec *AgentRecord, csr *x509.CertificateRequest) (EnrollResponse, error) {
	ca, err := f.AgentCA()
	if err != nil {
		return EnrollResponse{}, err
	}
	caKey, err := f.agentCAKey()
	if err != nil {
		return EnrollResponse{}, err
	}
	serial, err := core.RandomSerial()
	if err != nil {
		return EnrollResponse{}, err
	}
	ttl := time.Duration(rec.CertTTLSeconds) * time.Second
	if ttl <= 0 {
		ttl = defaultAgentCertTTL
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: rec.ID, Organization: []string{"certvault"}, OrganizationalUnit: []string{AgentOU, "group:" + rec.Group}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, csr.PublicKey, caKey)
	if err != nil {
		return EnrollResponse{}, fmt.Errorf("sign agent certificate: %w", err)
	}
	if rec.Serial != "" {
		rec.PrevSerial = rec.Serial
	}
	rec.Serial = serial.Text(16)
	rec.NotAfter = tmpl.NotAfter.UTC().Truncate(time.Second)
	return EnrollResponse{AgentID: rec.ID, Group: rec.Group, Certificate: string(core.PEMCert(der)), Chain: string(core.PEMCert(ca.Raw)),
		CA: string(core.PEMCert(f.CACert.Load().Raw)), NotAfter: rec.NotAfter}, nil
}

// agents returns every agent record, by ID.
func (f *Fleet) agents() []AgentRecord {
	return core.ListJSON[AgentRecord](f.Core, PrefixAgents, "")
}

// AgentStatus is an agent with what it last reported per binding.
type AgentStatus struct {
	AgentRecord
	Bindings []BindingState `json:"bindings"`
}

// CreateAgentJoinTokenRequest asks for a token with which agents enroll
// into a group.
type CreateAgentJoinTokenRequest struct {
	// Group is the agents' group, to which roles are assigned as
	// group:NAME.
	Group string
	// TTL is how long the token can be used (90m, 12h, 30d; up to 30d);
	// "" is an hour.
	TTL string
	// Uses is how many agents may enroll with it, 1 to 100000; 0 is one.
	Uses int
	// CertTTL is the lifetime of the agents' certificates, 1m to 365d;
	// "" is 30 days.
	CertTTL string
}

// CreateAgentJoinTokenResult is the new token (shown this once) and the
// raft index that stored it.
type CreateAgentJoinTokenResult struct {
	Token AgentJoinToken
	Index uint64
}

// CreateAgentJoinToken makes an agent join token (and the agent CA, on
// first use). p is recorded as its creator.
func (f *Fleet) CreateAgentJoinToken(ctx context.Context, p core.Caller, req CreateAgentJoinTokenRequest) (CreateAgentJoinTokenResult, error) {
	if req.Group == "" {
		return CreateAgentJoinTokenResult{}, core.BadParameter("group", "group is required: the agents' group, to which roles are assigned as group:NAME")
	}
	if err := access.ValidPrincipalName(req.Group); err != nil {
		return CreateAgentJoinTokenResult{}, core.BadParameter("group", "group: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	ttl := time.Hour
	if req.TTL != "" {
		d, err := core.ParseTTL(req.TTL)
		if err != nil || d > 30*24*time.Hour {
			return CreateAgentJoinTokenResult{}, core.BadParameter("ttl", "ttl %q: give a duration up to 30d, such as 1h", req.TTL)
		}
		ttl = d
	}
	certTTL := defaultAgentCertTTL
	if req.CertTTL != "" {
		d, err := core.ParseTTL(req.CertTTL)
		if err != nil || d < time.Minute || d > 365*24*time.Hour {
			return CreateAgentJoinTokenResult{}, core.BadParameter("cert_ttl", "cert_ttl %q: give a duration from 1m to 365d, such as 30d", req.CertTTL)
		}
		certTTL = d
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	if req.Uses < 0 || req.Uses > 100000 {
		return CreateAgentJoinTokenResult{}, core.BadParameter("uses", "uses %d: give a number from 1 to 100000", req.Uses)
	}
	if err := f.ensureAgentCA(ctx); err != nil {
		return CreateAgentJoinTokenResult{}, err
	}
	id, err := core.RandomID(8)
	if err != nil {
		return CreateAgentJoinTokenResult{}, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return CreateAgentJoinTokenResult{}, err
	}
	s := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(s))
	now := time.Now()
	rec := agentJoinRecord{Hash: sum[:], Group: req.Group, Created: now.Unix(), Expires: now.Add(ttl).Unix(), Uses: req.Uses, CertTTL: int64(certTTL / time.Second), CreatedBy: p.Name}
	b := &raftstore.Batch{}
	if err := core.PutSealedJSON(b, f.Barrier.Load(), prefixAgentJoinTokens+id, rec); err != nil {
		return CreateAgentJoinTokenResult{}, err
	}
	idx, err := f.Commit(ctx, b)
	if err != nil {
		return CreateAgentJoinTokenResult{}, err
	}
	return CreateAgentJoinTokenResult{Token: AgentJoinToken{ID: id, Token: AgentTokenPrefix + id + "." + s, Group: req.Group,
		Exp: time.Unix(rec.Expires, 0).UTC(), Uses: req.Uses, CAFingerprint: core.Fingerprint(f.CACert.Load()), CertTTL: certTTL.String()}, Index: idx}, nil
}

// AgentEnrollName is the name an agent enrolls under: the one it asks
// for, else its CSR's common name; a name must be a host name.
func AgentEnrollName(requested string, csr *x509.CertificateRequest) (string, error) {
	name := requested
	if name == "" {
		name = csr.Subject.CommonName
	}
	if name != "" && access.ValidPrincipalName(name) != nil {
		return "", core.BadParameter("name", "name %q: use a host name (letters, digits, . _ @ -)", name)
	}
	return name, nil
}

// EnrollAgentRequest enrolls an agent with a join token.
type EnrollAgentRequest struct {
	// TokenID and TokenSecret are the agent join token's parts
	// (parseAgentJoinToken).
	TokenID     string
	TokenSecret string
	// CSR is for the key the agent made; the front has checked its key
	// and signature (parseAgentCSR).
	CSR *x509.CertificateRequest
	// Name is the agent's name, from AgentEnrollName.
	Name string
	// Source is the address the agent enrolled from.
	Source string
}

// EnrollAgentResult is the agent's new identity and the raft index that
// recorded it.
type EnrollAgentResult struct {
	Enrollment EnrollResponse
	Index      uint64
}

// EnrollAgent checks the join token (any problem with it is the same
// KindForbidden error, so that a caller learns nothing about which tokens
// exist), uses it up by one, signs the agent's certificate and records
// the agent, in one compare-and-set on the token.
func (f *Fleet) EnrollAgent(ctx context.Context, p core.Caller, req EnrollAgentRequest) (EnrollAgentResult, error) {
	tokID, secret := req.TokenID, req.TokenSecret
	id, err := core.RandomID(8)
	if err != nil {
		return EnrollAgentResult{}, err
	}
	var resp EnrollResponse
	idx, err := f.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		e, ok := f.Store.Get(prefixAgentJoinTokens + tokID)
		if !ok {
			return nil, BadAgentToken()
		}
		var jt agentJoinRecord
		if err := f.GetSealedJSON(e, &jt); err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(sum[:], jt.Hash) != 1 || time.Now().Unix() >= jt.Expires || jt.Uses <= 0 {
			return nil, BadAgentToken()
		}
		jt.Uses--
		rec := AgentRecord{ID: id, Name: req.Name, Group: jt.Group, Enrolled: time.Now().UTC(), JoinToken: tokID, Source: req.Source, CertTTLSeconds: jt.CertTTL}
		var err error
		if resp, err = f.issueAgentCert(&rec, req.CSR); err != nil {
			return nil, err
		}
		b := &raftstore.Batch{}
		if err := core.PutSealedJSON(b, f.Barrier.Load(), e.Key, jt); err != nil {
			return nil, err
		}
		b.Check(e.Key, e.Index)
		b.PutIf(PrefixAgents+id, core.MustJSON(rec), raftstore.NotExist)
		return b, nil
	})
	if err != nil {
		return EnrollAgentResult{}, err
	}
	return EnrollAgentResult{Enrollment: resp, Index: idx}, nil
}

// BadAgentToken is the one refusal of any join-token problem, a
// malformed token's too.
func BadAgentToken() *core.Error {
	return core.Forbidden("%s", strings.TrimPrefix(errBadAgentToken.Error(), "vault: "))
}

// RenewAgentRequest renews an agent's identity for a new CSR.
type RenewAgentRequest struct {
	// CSR is checked by the front (parseAgentCSR).
	CSR *x509.CertificateRequest
}

// RenewAgentResult is the agent's new identity and the raft index that
// recorded it.
type RenewAgentResult struct {
	Enrollment EnrollResponse
	Index      uint64
}

// RenewAgent signs a new certificate for the calling agent (p.AgentID);
// the one before stays valid until the next renewal.
func (f *Fleet) RenewAgent(ctx context.Context, p core.Caller, req RenewAgentRequest) (RenewAgentResult, error) {
	id := p.AgentID
	var resp EnrollResponse
	idx, err := f.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		rec, idx, ok := f.Agent(id)
		if !ok || rec.Revoked {
			return nil, core.Forbidden("agent %s is revoked or unknown", id)
		}
		rec.Renewed = time.Now().UTC()
		var err error
		if resp, err = f.issueAgentCert(&rec, req.CSR); err != nil {
			return nil, err
		}
		return (&raftstore.Batch{}).PutIf(PrefixAgents+id, core.MustJSON(rec), idx), nil
	})
	if err != nil {
		return RenewAgentResult{}, err
	}
	return RenewAgentResult{Enrollment: resp, Index: idx}, nil
}

// ListAgentsRequest filters the agents listed.
type ListAgentsRequest struct {
	// Group, when set, lists the agents of this group.
	Group string
	// Certificate, when set, lists the agents that reported on this
	// certificate (any spelling of its name).
	Certificate string
}

// ListAgents lists the agents by ID, each with its bindings.
func (f *Fleet) ListAgents(ctx context.Context, p core.Caller, req ListAgentsRequest) ([]AgentStatus, error) {
	out := []AgentStatus{}
	for _, a := range f.agents() {
		if req.Group != "" && a.Group != req.Group {
			continue
		}
		st := AgentStatus{AgentRecord: a.view(), Bindings: f.agentBindings(a.ID)}
		if req.Certificate != "" && !slices.ContainsFunc(st.Bindings, func(b BindingState) bool { return objname.Equal(b.Object, core.KindCertificates+"/"+req.Certificate) }) {
			continue
		}
		out = append(out, st)
	}
	return out, nil
}

// ErrAgentNotFound is the answer about an agent id nobody has.
func ErrAgentNotFound(id string) *core.Error {
	return core.NotFound("AgentNotFound", "no agent has ID %q ('certvault agent list' shows them)", id)
}

// GetAgent is one agent with its bindings.
func (f *Fleet) GetAgent(ctx context.Context, p core.Caller, id string) (AgentStatus, error) {
	rec, _, ok := f.Agent(id)
	if !ok {
		return AgentStatus{}, ErrAgentNotFound(id)
	}
	return AgentStatus{AgentRecord: rec.view(), Bindings: f.agentBindings(rec.ID)}, nil
}

// RevokeAgentResult is the agent's record after the revocation and the
// raft index of the write (0 when it was revoked already: nothing was
// written).
type RevokeAgentResult struct {
	Agent AgentRecord
	Index uint64
}

// RevokeAgent revokes agent id, recording p as who did; revoking a
// revoked agent changes nothing.
func (f *Fleet) RevokeAgent(ctx context.Context, p core.Caller, id string) (RevokeAgentResult, error) {
	if rec, _, ok := f.Agent(id); ok && rec.Revoked {
		return RevokeAgentResult{Agent: rec.view()}, nil // already revoked: nothing to change
	}
	var rec AgentRecord
	idx, err := f.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		var idx uint64
		var ok bool
		rec, idx, ok = f.Agent(id)
		if !ok {
			return nil, ErrAgentNotFound(id)
		}
		if rec.Revoked {
			// Revoked meanwhile: an unconditional no-op keeps the batch valid.
			return (&raftstore.Batch{}).Check(PrefixAgents+id, idx), nil
		}
		rec.Revoked, rec.RevokedAt, rec.RevokedBy = true, time.Now().UTC(), p.Name
		return (&raftstore.Batch{}).PutIf(PrefixAgents+id, core.MustJSON(rec), idx), nil
	})
	if err != nil {
		return RevokeAgentResult{}, err
	}
	return RevokeAgentResult{Agent: rec.view(), Index: idx}, nil
}

// Fleet is the agents: their enrollment and certificates, their bindings
// to objects and what they report, rollouts, and the evidence report.
type Fleet struct {
	*core.Core
	// agentCache keeps agent records by ID and index.
	agentCache agentCache
	// rolloutCache keeps decoded rollouts by index.
	rolloutCache rolloutCache
	// AuditRecords reads the audit trails of every node (the evidence
	// report's secret reads); the node provides it.
	AuditRecords func(ctx context.Context, q core.AuditQuery) (core.AuditRecords, error)
	// systemAudit is the trail in which the leader's own work (version
	// retention) is recorded (SetSystemAudit).
	systemAudit atomic.Pointer[nodeTrail]
}
