package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/internal/serial"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
)

// Agents: machines that authenticate with a client certificate from the
// vault's agent CA, an intermediate under the vault CA. An agent enrolls
// once with a join token ("cva.<id>.<secret>", limited in time and uses),
// sending a CSR for a key it made itself, and renews over mutual TLS.
// Revoking an agent marks its record; every node checks the record on
// each request, so the revocation holds as soon as it is applied.

const (
	keyAgentCACert        = "sys/agent-ca/cert"
	keyAgentCAKey         = "sys/agent-ca/key"
	prefixAgents          = "agents/"
	prefixAgentJoinTokens = "sys/agent-join-tokens/"
	agentTokenPrefix      = "cva."
	// agentOU marks agent client certificates.
	agentOU = "certvault-agent"
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

func (n *Node) agentRoutes(vault func(string, string, http.HandlerFunc, ...access.Action), public func(string, string, http.HandlerFunc), add func(Endpoint, http.Handler)) {
	vault("POST", "/v1/agents/join-tokens", n.handleAgentJoinToken, access.AgentsManage)
	vault("GET", "/v1/agents", n.handleListAgents, access.AgentsManage, access.AuditRead)
	vault("GET", "/v1/agents/{id}", n.handleGetAgent, access.AgentsManage, access.AuditRead)
	vault("DELETE", "/v1/agents/{id}", n.handleRevokeAgent, access.AgentsManage)
	public("POST", "/v1/agents/enroll", n.leaderOnly(n.handleEnroll))
	add(Endpoint{Method: "POST", Pattern: "/v1/agents/renew", Agent: true}, n.agentOnly(n.handleAgentRenew))
	n.agentProtocolRoutes(add)
}

// leaderOnly hands a public write to the leader.
func (n *Node) leaderOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !n.store.IsLeader() {
			n.proxyToLeader(w, r)
			return
		}
		h(w, r)
	}
}

// agentOnly admits only agents presenting a valid, unrevoked identity;
// writes go to the leader.
func (n *Node) agentOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := n.authenticateRequest(w, r)
		if !ok {
			return
		}
		if c.AgentID == "" {
			infoOf(r).denied = true
			writeError(w, &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "only an agent, with its client certificate, may call this"})
			return
		}
		infoOf(r).object = "/agents/" + c.AgentID
		if isWrite(r.Method) && !n.store.IsLeader() {
			n.proxyToLeader(w, r)
			return
		}
		h(w, r)
	})
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

// agent returns an agent's record from the local state.
func (n *Node) agent(id string) (AgentRecord, uint64, bool) {
	e, ok := n.store.Get(prefixAgents + id)
	if !ok {
		return AgentRecord{}, 0, false
	}
	n.agentCache.mu.RLock()
	c, hit := n.agentCache.m[id]
	n.agentCache.mu.RUnlock()
	if hit && c.index == e.Index {
		return c.rec, e.Index, true
	}
	var rec AgentRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		n.log.Error("agent record does not decode", "agent", id, "err", err)
		return AgentRecord{}, 0, false
	}
	n.agentCache.mu.Lock()
	if n.agentCache.m == nil {
		n.agentCache.m = map[string]cachedAgent{}
	}
	n.agentCache.m[id] = cachedAgent{e.Index, rec}
	n.agentCache.mu.Unlock()
	return rec, e.Index, true
}

// agentCaller identifies an agent from a verified client chain. It
// returns an empty caller and no reason for a chain that is not an
// agent's, and a reason when it is one but may not be used.
// It fails with errNotCaughtUp when it cannot tell.
func (n *Node) agentCaller(chain []*x509.Certificate) (caller, string, error) {
	if !isAgentChain(chain) {
		return caller{}, "", nil
	}
	ca, err := n.agentCA()
	if err != nil || !bytes.Equal(chain[1].Raw, ca.Raw) {
		return caller{}, "the client certificate is not from this vault's agent CA", nil
	}
	leaf := chain[0]
	return n.agentRecordCaller(leaf.Subject.CommonName, leaf.SerialNumber.Text(16))
}

// agentRecordCaller checks an agent's record: known, not revoked, and
// (when serial is set) presenting its current or previous certificate.
// It fails with errNotCaughtUp when a follower that does not know the
// agent cannot catch up to find out.
func (n *Node) agentRecordCaller(id, serial string) (caller, string, error) {
	rec, _, ok := n.agent(id)
	if !ok {
		if again, err := n.catchUp(); err != nil {
			return caller{}, "", err
		} else if again {
			rec, _, ok = n.agent(id) // enrolled a moment ago through the leader
		}
	}
	if !ok {
		return caller{}, "agent " + id + " is not known to this vault", nil
	}
	if rec.Revoked {
		return caller{}, "agent " + id + " was revoked; enroll it again with a new join token", nil
	}
	if serial != "" && serial != rec.Serial && serial != rec.PrevSerial {
		return caller{}, "agent " + id + " presented a superseded certificate; use the latest one", nil
	}
	return caller{Principal: access.Principal{Name: "agent:" + id, Groups: []string{rec.Group}}, AgentID: id}, "", nil
}

// agentHeader carries, from a follower to the leader, the ID of the agent
// whose request the follower hands over (its client certificate does not
// cross the proxy). Only a node may send it.
const agentHeader = "X-Certvault-Agent"

// agentByID is identify for a request a follower handed over.
func (n *Node) agentByID(id string) (caller, string, error) {
	c, why, err := n.agentRecordCaller(id, "")
	if err != nil {
		return caller{}, "", err
	}
	if why != "" {
		return caller{}, why, errUnauthenticated
	}
	return c, "", nil
}

// agentCA returns the agent CA certificate, nil error and nil cert when
// none was made yet.
func (n *Node) agentCA() (*x509.Certificate, error) {
	e, ok := n.store.Get(keyAgentCACert)
	if !ok {
		return nil, errors.New("vault: no agent CA yet")
	}
	return parseCertPEM(e.Value)
}

// ensureAgentCA makes the agent CA on first use (on the leader).
func (n *Node) ensureAgentCA(ctx context.Context) error {
	if _, ok := n.store.Get(keyAgentCACert); ok {
		return nil
	}
	root := n.caCert.Load()
	rootKey, err := n.caKey()
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate agent CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "certvault agent CA", Organization: []string{"certvault"}, OrganizationalUnit: []string{agentOU}},
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
	keyPEM, err := pemKey(key)
	if err != nil {
		return err
	}
	b := &raftstore.Batch{}
	b.PutIf(keyAgentCACert, pemCert(der), raftstore.NotExist)
	if err := putSealed(b, n.barrier.Load(), keyAgentCAKey, keyPEM); err != nil {
		return err
	}
	if _, err := n.store.Apply(ctx, b); err != nil && !errors.Is(err, raftstore.ErrConflict) {
		return fmt.Errorf("store agent CA: %w", err)
	}
	return nil
}

func (n *Node) agentCAKey() (crypto.Signer, error) {
	e, ok := n.store.Get(keyAgentCAKey)
	if !ok {
		return nil, errors.New("vault: no agent CA key")
	}
	pt, err := n.openSealed(e)
	if err != nil {
		return nil, err
	}
	return parseKeyPEM(pt)
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

func (n *Node) handleAgentJoinToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Group   string `json:"group"`
		TTL     string `json:"ttl"`
		Uses    int    `json:"uses"`
		CertTTL string `json:"cert_ttl"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if req.Group == "" {
		n.fail(w, r, badParameter("group is required: the agents' group, to which roles are assigned as group:NAME"))
		return
	}
	if err := access.ValidPrincipalName(req.Group); err != nil {
		n.fail(w, r, badParameter("group: %s", strings.TrimPrefix(err.Error(), "access: ")))
		return
	}
	ttl := time.Hour
	if req.TTL != "" {
		d, err := parseTTL(req.TTL)
		if err != nil || d > 30*24*time.Hour {
			n.fail(w, r, badParameter("ttl %q: give a duration up to 30d, such as 1h", req.TTL))
			return
		}
		ttl = d
	}
	certTTL := defaultAgentCertTTL
	if req.CertTTL != "" {
		d, err := parseTTL(req.CertTTL)
		if err != nil || d < time.Minute || d > 365*24*time.Hour {
			n.fail(w, r, badParameter("cert_ttl %q: give a duration from 1m to 365d, such as 30d", req.CertTTL))
			return
		}
		certTTL = d
	}
	if req.Uses == 0 {
		req.Uses = 1
	}
	if req.Uses < 0 || req.Uses > 100000 {
		n.fail(w, r, badParameter("uses %d: give a number from 1 to 100000", req.Uses))
		return
	}
	if err := n.ensureAgentCA(r.Context()); err != nil {
		n.fail(w, r, err)
		return
	}
	id, err := randomID(8)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		n.fail(w, r, err)
		return
	}
	s := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(s))
	now := time.Now()
	rec := agentJoinRecord{Hash: sum[:], Group: req.Group, Created: now.Unix(), Expires: now.Add(ttl).Unix(), Uses: req.Uses, CertTTL: int64(certTTL / time.Second), CreatedBy: callerOf(r).Name}
	b := &raftstore.Batch{}
	if err := putSealedJSON(b, n.barrier.Load(), prefixAgentJoinTokens+id, rec); err != nil {
		n.fail(w, r, err)
		return
	}
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, AgentJoinToken{ID: id, Token: agentTokenPrefix + id + "." + s, Group: req.Group,
		Exp: time.Unix(rec.Expires, 0).UTC(), Uses: req.Uses, CAFingerprint: fingerprint(n.caCert.Load()), CertTTL: certTTL.String()})
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

func (n *Node) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
		CSR   string `json:"csr"`
		Name  string `json:"name"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	csr, err := parseAgentCSR(req.CSR)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	name := req.Name
	if name == "" {
		name = csr.Subject.CommonName
	}
	if name != "" && access.ValidPrincipalName(name) != nil {
		n.fail(w, r, badParameter("name %q: use a host name (letters, digits, . _ @ -)", name))
		return
	}
	infoOf(r).caller = caller{Principal: access.Principal{Name: "enroll:" + name}}
	tokID, secret, ok := parseAgentJoinToken(req.Token)
	if !ok {
		n.fail(w, r, forbidden(errBadAgentToken))
		return
	}
	id, err := randomID(8)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	var resp EnrollResponse
	err = n.applyCAS(r.Context(), w.Header(), func() (*raftstore.Batch, error) {
		e, ok := n.store.Get(prefixAgentJoinTokens + tokID)
		if !ok {
			return nil, forbidden(errBadAgentToken)
		}
		var jt agentJoinRecord
		if err := n.getSealedJSON(e, &jt); err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(sum[:], jt.Hash) != 1 || time.Now().Unix() >= jt.Expires || jt.Uses <= 0 {
			return nil, forbidden(errBadAgentToken)
		}
		jt.Uses--
		rec := AgentRecord{ID: id, Name: name, Group: jt.Group, Enrolled: time.Now().UTC(), JoinToken: tokID, Source: infoSource(r), CertTTLSeconds: jt.CertTTL}
		var err error
		if resp, err = n.issueAgentCert(&rec, csr); err != nil {
			return nil, err
		}
		b := &raftstore.Batch{}
		if err := putSealedJSON(b, n.barrier.Load(), e.Key, jt); err != nil {
			return nil, err
		}
		b.Check(e.Key, e.Index)
		b.PutIf(prefixAgents+id, mustJSON(rec), raftstore.NotExist)
		return b, nil
	})
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusForbidden {
			infoOf(r).denied = true
			n.log.Warn("agent enrollment refused", "remote", r.RemoteAddr, "name", name)
		}
		n.fail(w, r, err)
		return
	}
	infoOf(r).object = "/agents/" + id
	writeJSON(w, http.StatusCreated, resp)
}

// parseAgentJoinToken splits an agent join token, "cva.<id>.<secret>"
// (surrounding white space ignored); both parts must be there.
func parseAgentJoinToken(tok string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(tok), agentTokenPrefix)
	if !found {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, ".")
	return id, secret, ok && id != "" && secret != ""
}

// infoSource is the caller's address without the port.
func infoSource(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// maxAgentRSABits bounds an agent's RSA key: checking a signature costs
// about the cube of the key size, and an enrollment CSR is read before the
// join token is checked.
const maxAgentRSABits = 8192

// parseAgentCSR checks an agent's CSR: PEM, an EC P-256/P-384 or RSA
// 2048-8192 key (checked first: a CSR of a megabyte RSA key would cost
// minutes of CPU to verify) and a good signature.
func parseAgentCSR(p string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(p))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, badParameter("csr: give a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, badParameter("csr does not parse: %v", err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, badParameter("csr key: use EC P-256 or P-384, or RSA of 2048 to %d bits", maxAgentRSABits)
		}
	case *rsa.PublicKey:
		if b := k.N.BitLen(); b < 2048 || b > maxAgentRSABits {
			return nil, badParameter("csr key: RSA keys need 2048 to %d bits, not %d", maxAgentRSABits, b)
		}
	default:
		return nil, badParameter("csr key: use EC P-256 or P-384, or RSA of 2048 to %d bits", maxAgentRSABits)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, badParameter("csr signature does not verify: %v", err)
	}
	return csr, nil
}

// issueAgentCert signs the agent's certificate and records its serial.
func (n *Node) issueAgentCert(rec *AgentRecord, csr *x509.CertificateRequest) (EnrollResponse, error) {
	ca, err := n.agentCA()
	if err != nil {
		return EnrollResponse{}, err
	}
	caKey, err := n.agentCAKey()
	if err != nil {
		return EnrollResponse{}, err
	}
	serial, err := randomSerial()
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
		Subject:      pkix.Name{CommonName: rec.ID, Organization: []string{"certvault"}, OrganizationalUnit: []string{agentOU, "group:" + rec.Group}},
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
	return EnrollResponse{AgentID: rec.ID, Group: rec.Group, Certificate: string(pemCert(der)), Chain: string(pemCert(ca.Raw)),
		CA: string(pemCert(n.caCert.Load().Raw)), NotAfter: rec.NotAfter}, nil
}

func (n *Node) handleAgentRenew(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CSR string `json:"csr"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	csr, err := parseAgentCSR(req.CSR)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	id := callerOf(r).AgentID
	var resp EnrollResponse
	err = n.applyCAS(r.Context(), w.Header(), func() (*raftstore.Batch, error) {
		rec, idx, ok := n.agent(id)
		if !ok || rec.Revoked {
			return nil, forbidden(errors.New("agent " + id + " is revoked or unknown"))
		}
		rec.Renewed = time.Now().UTC()
		var err error
		if resp, err = n.issueAgentCert(&rec, csr); err != nil {
			return nil, err
		}
		return (&raftstore.Batch{}).PutIf(prefixAgents+id, mustJSON(rec), idx), nil
	})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// agents returns every agent record, by ID.
func (n *Node) agents() []AgentRecord {
	es, _ := n.store.List(prefixAgents, "", 0)
	out := make([]AgentRecord, 0, len(es))
	for _, e := range es {
		var rec AgentRecord
		if err := json.Unmarshal(e.Value, &rec); err == nil {
			out = append(out, rec)
		}
	}
	return out
}

func (n *Node) handleListAgents(w http.ResponseWriter, r *http.Request) {
	if !n.linearized(w, r) {
		return
	}
	q := r.URL.Query()
	out := []AgentStatus{}
	for _, a := range n.agents() {
		if g := q.Get("group"); g != "" && a.Group != g {
			continue
		}
		st := AgentStatus{AgentRecord: a.view(), Bindings: n.agentBindings(a.ID)}
		if cert := q.Get("certificate"); cert != "" && !slices.ContainsFunc(st.Bindings, func(b BindingState) bool { return objname.Equal(b.Object, kindCertificates+"/"+cert) }) {
			continue
		}
		out = append(out, st)
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (n *Node) handleGetAgent(w http.ResponseWriter, r *http.Request) {
	if !n.linearized(w, r) {
		return
	}
	rec, _, ok := n.agent(r.PathValue("id"))
	if !ok {
		n.fail(w, r, notFound("AgentNotFound", "no agent has ID %q ('certvault agent list' shows them)", r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, AgentStatus{AgentRecord: rec.view(), Bindings: n.agentBindings(rec.ID)})
}

// AgentStatus is an agent with what it last reported per binding.
type AgentStatus struct {
	AgentRecord
	Bindings []BindingState `json:"bindings"`
}

func (n *Node) handleRevokeAgent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if rec, _, ok := n.agent(id); ok && rec.Revoked {
		writeJSON(w, http.StatusOK, rec.view()) // already revoked: nothing to change
		return
	}
	var rec AgentRecord
	err := n.applyCAS(r.Context(), w.Header(), func() (*raftstore.Batch, error) {
		var idx uint64
		var ok bool
		rec, idx, ok = n.agent(id)
		if !ok {
			return nil, notFound("AgentNotFound", "no agent has ID %q ('certvault agent list' shows them)", id)
		}
		if rec.Revoked {
			// Revoked meanwhile: an unconditional no-op keeps the batch valid.
			return (&raftstore.Batch{}).Check(prefixAgents+id, idx), nil
		}
		rec.Revoked, rec.RevokedAt, rec.RevokedBy = true, time.Now().UTC(), callerOf(r).Name
		return (&raftstore.Batch{}).PutIf(prefixAgents+id, mustJSON(rec), idx), nil
	})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec.view())
}
