// Package enroll is the agent's identity: it joins a vault with a join
// token, keeps the identity in a state directory and renews it.
//
// An identity is an ECDSA P-256 key made on the machine, which never
// leaves it, and a client certificate for that key from the vault's agent
// CA. The state directory (created 0700) holds, each file 0600:
//
//	key.pem        the private key (PKCS #8)
//	cert.pem       the certificate, then the agent CA
//	ca.pem         the vault CA, which the API's certificate chains to
//	identity.json  agent ID, group, vault URL and expiry
//
// Every file is written atomically. Join writes identity.json last, so
// that Load refuses a join that did not finish; Renew describes how a
// renewal replaces key and certificate so that a crash leaves the old or
// the new identity, never a mix.
//
// Nothing here may import the vault's packages: the agent is a small
// static binary.
package enroll

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/certvault/certvault/internal/client"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBadFingerprint means a CA fingerprint is not "sha256:" and 64 hex
// digits.
var ErrBadFingerprint = errors.New("malformed CA fingerprint")

// requestTimeout bounds one call to the vault when the caller's client
// sets no timeout of its own.
const requestTimeout = time.Minute

// maxAnswer bounds the size of an answer from the vault.
const maxAnswer = 1 << 20

// Identity is an agent's identity with a vault.
//
// The exported fields are the identity as Join or Load made it and never
// change afterwards, so that they can be read without locking. Renew
// replaces the certificate in an internal atomic slot, which TLSConfig,
// Certificate and Expiry read: use those for the current certificate.
type Identity struct {
	// AgentID is the ID the vault gave the agent; it is also the
	// certificate's common name.
	AgentID string
	// Group is the group whose permissions the agent has.
	Group string
	// VaultURL is the vault the agent joined, as stored in identity.json.
	VaultURL string
	// Cert is the certificate (leaf, then the agent CA) with its private
	// key; Cert.Leaf is set.
	Cert tls.Certificate
	// CAPool holds CA alone, to verify the vault's API with.
	CAPool *x509.CertPool
	// CA is the vault CA.
	CA *x509.Certificate
	// NotAfter is when Cert expires.
	NotAfter time.Time

	cur     atomic.Pointer[tls.Certificate]
	renewMu sync.Mutex
}

func newIdentity(agentID, group, vaultURL string, ca *x509.Certificate, cert tls.Certificate) *Identity {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	id := &Identity{AgentID: agentID, Group: group, VaultURL: vaultURL, Cert: cert, CAPool: pool, CA: ca, NotAfter: cert.Leaf.NotAfter}
	c := cert
	id.cur.Store(&c)
	return id
}

// Certificate returns the current certificate, the latest that Renew
// stored. The caller must not modify it.
func (id *Identity) Certificate() *tls.Certificate {
	if c := id.cur.Load(); c != nil {
		return c
	}
	return &id.Cert
}

// Expiry is when the current certificate expires.
func (id *Identity) Expiry() time.Time {
	if c := id.Certificate(); c.Leaf != nil {
		return c.Leaf.NotAfter
	}
	return id.NotAfter
}

// TLSConfig returns a client configuration for talking to the vault: it
// trusts only the vault CA and presents the current certificate. The
// certificate is read from the identity at each handshake, so clients
// built once keep working after Renew (connections already open keep the
// certificate they began with, which the vault accepts until the next
// renewal). Certificates is left empty on purpose: it would be a copy that
// Renew cannot update.
func (id *Identity) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    id.CAPool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.Certificate(), nil
		},
	}
}

// JoinConfig is what Join needs.
type JoinConfig struct {
	// VaultURL is the vault's API, such as https://vault.example:8443.
	VaultURL string
	// Token is the join token, "cva.<id>.<secret>".
	Token string
	// CAFingerprint pins the vault CA: "sha256:" and the lowercase hex
	// SHA-256 of its DER, as 'certvault agent join-token create' prints.
	CAFingerprint string
	// StateDir is where the identity is kept; it is created 0700 if
	// missing (an existing directory keeps its mode).
	StateDir string
	// Name is the agent's name as the vault shows it; the host name when
	// empty.
	Name string
	// HTTPClient, if set, is the base of the client Join uses: its
	// transport must be an *http.Transport (or nil), which Join clones
	// and gives the pinned TLS configuration. Redirects are not followed.
	HTTPClient *http.Client
}

// Join enrolls the agent with a vault and stores the identity in
// cfg.StateDir. It trusts no CA in advance: the vault must present the CA
// that cfg.CAFingerprint pins and a certificate from it for the host in
// cfg.VaultURL, else nothing is sent. The private key is made here and
// never sent. An identity already in StateDir is replaced.
func Join(ctx context.Context, cfg JoinConfig) (*Identity, error) {
	pin, err := ParseFingerprint(cfg.CAFingerprint)
	if err != nil {
		return nil, err
	}
	base, host, err := vaultBase(cfg.VaultURL)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errors.New("join: give the join token from 'certvault agent join-token create'")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("join: give a state directory")
	}
	name := cfg.Name
	if name == "" {
		if name, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("get host name: %w", err)
		}
	}
	client, err := pinnedClient(cfg.HTTPClient, host, pin)
	if err != nil {
		return nil, err
	}
	// Make sure the identity can be stored before a join token's use is
	// spent on it.
	if err := prepareStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	key, csrPEM, err := newKeyAndCSR(name)
	if err != nil {
		return nil, err
	}
	var resp issueResponse
	req := enrollRequest{Token: strings.TrimSpace(cfg.Token), CSR: string(csrPEM), Name: name}
	if err := postJSON(ctx, client, base+"/v1/agents/enroll", req, &resp); err != nil {
		return nil, fmt.Errorf("enroll with %s: %w", base, err)
	}
	iss, err := checkIssued(&resp, key, func(ca *x509.Certificate) error {
		if sum := sha256.Sum256(ca.Raw); !bytes.Equal(sum[:], pin) {
			return fmt.Errorf("the vault CA in the answer has fingerprint %s, not %s", formatFingerprint(sum[:]), formatFingerprint(pin))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check enrollment answer from %s: %w", base, err)
	}
	if err := writeJoin(cfg.StateDir, base, key, iss); err != nil {
		return nil, err
	}
	return newIdentity(iss.agentID, iss.group, base, iss.ca, iss.cert), nil
}

// ParseFingerprint decodes a CA fingerprint, "sha256:" and 64 hex digits,
// into the SHA-256 it holds.
func ParseFingerprint(s string) ([]byte, error) {
	h, ok := strings.CutPrefix(strings.TrimSpace(s), "sha256:")
	sum, err := hex.DecodeString(h)
	if !ok || err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("%w %q: give sha256: and the 64 hex digits of the vault CA's SHA-256, as printed by 'certvault agent join-token create'", ErrBadFingerprint, s)
	}
	return sum, nil
}

func formatFingerprint(sum []byte) string {
	return "sha256:" + hex.EncodeToString(sum)
}

// vaultBase checks a vault URL and returns it without a trailing slash,
// and its host name.
func vaultBase(raw string) (base, host string, err error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return "", "", fmt.Errorf("vault URL %q: give the vault's https address, such as https://vault.example:8443", raw)
	}
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimSuffix(u.String(), "/"), u.Hostname(), nil
}

// pinnedClient makes a client that talks only to a server presenting the
// pinned CA and a certificate from it for host.
func pinnedClient(base *http.Client, host string, pin []byte) (*http.Client, error) {
	var c http.Client
	if base != nil {
		c = *base
	}
	var t *http.Transport
	switch rt := c.Transport.(type) {
	case nil:
		t = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		t = rt.Clone()
	default:
		return nil, fmt.Errorf("join: the HTTP client's transport is a %T; give an *http.Transport so that the vault CA can be pinned", rt)
	}
	t.TLSClientConfig = &tls.Config{
		MinVersion: tls.VersionTLS12,
		// No CA is trusted yet: VerifyConnection checks the chain
		// against the pinned CA instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs.PeerCertificates, host, pin)
		},
	}
	c.Transport = t
	c.CheckRedirect = noRedirect
	if c.Timeout == 0 {
		c.Timeout = requestTimeout
	}
	return &c, nil
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// verifyPinned accepts a server whose presented chain holds the CA with
// the pinned SHA-256 and whose leaf that CA issued for host.
func verifyPinned(certs []*x509.Certificate, host string, pin []byte) error {
	if len(certs) == 0 {
		return errors.New("the vault presented no certificate")
	}
	var ca *x509.Certificate
	for _, c := range certs {
		if sum := sha256.Sum256(c.Raw); bytes.Equal(sum[:], pin) {
			ca = c
			break
		}
	}
	if ca == nil {
		return fmt.Errorf("the vault's certificate chain does not hold the CA with fingerprint %s: check --ca-fingerprint and the vault address", formatFingerprint(pin))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host}); err != nil {
		return fmt.Errorf("verify vault certificate against the pinned CA: %w", err)
	}
	return nil
}

// newKeyAndCSR makes a P-256 key and a CSR for it with the common name cn.
func newKeyAndCSR(cn string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate agent key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CSR: %w", err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

type enrollRequest struct {
	Token string `json:"token"`
	CSR   string `json:"csr"`
	Name  string `json:"name"`
}

type renewRequest struct {
	CSR string `json:"csr"`
}

// issueResponse is the vault's answer to enroll and renew.
type issueResponse struct {
	AgentID     string    `json:"agent_id"`
	Group       string    `json:"group"`
	Certificate string    `json:"certificate"`
	Chain       string    `json:"chain"`
	CA          string    `json:"ca"`
	NotAfter    time.Time `json:"not_after"`
}

// VaultError is an error answer from the vault.
type VaultError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is the vault's error code, such as "Forbidden".
	Code string
	// Message is the vault's explanation.
	Message string
}

func (e *VaultError) Error() string {
	s := fmt.Sprintf("vault answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// postJSON posts in as JSON and decodes a 2xx answer into out; any other
// status becomes a *VaultError.
func postJSON(ctx context.Context, c *http.Client, url string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("make request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var ce *client.Error
		errors.As(client.ParseError(resp.StatusCode, data), &ce)
		return &VaultError{StatusCode: resp.StatusCode, Code: ce.Code, Message: ce.Message}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// issued is a checked enroll or renew answer.
type issued struct {
	agentID, group string
	ca             *x509.Certificate
	cert           tls.Certificate
}

// checkIssued checks an answer: checkCA accepts its vault CA, and its
// certificate is for key, chains through its chain to the CA and has not
// expired.
func checkIssued(resp *issueResponse, key *ecdsa.PrivateKey, checkCA func(*x509.Certificate) error) (*issued, error) {
	if resp.AgentID == "" {
		return nil, errors.New("the answer has no agent ID")
	}
	cas, err := parseCerts([]byte(resp.CA))
	if err != nil || len(cas) != 1 {
		return nil, errors.New("the answer's vault CA is not one PEM certificate")
	}
	if err := checkCA(cas[0]); err != nil {
		return nil, err
	}
	leaf, err := parseCerts([]byte(resp.Certificate))
	if err != nil || len(leaf) == 0 {
		return nil, errors.New("the answer's certificate is not PEM")
	}
	chain, err := parseCerts([]byte(resp.Chain))
	if err != nil {
		return nil, errors.New("the answer's chain is not PEM")
	}
	cert, err := assemble(append(leaf, chain...), key, cas[0], resp.AgentID)
	if err != nil {
		return nil, err
	}
	if !time.Now().Before(cert.Leaf.NotAfter) {
		return nil, fmt.Errorf("the vault issued a certificate that expired at %s (is this machine's clock right?)", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &issued{agentID: resp.AgentID, group: resp.Group, ca: cas[0], cert: cert}, nil
}

// assemble checks that certs[0] is agentID's certificate for key and
// chains through the rest to ca, and makes a tls.Certificate of them.
// Validity dates are not checked: the chain is verified as of the leaf's
// start, so that an expired identity still loads and a clock a little
// behind the vault's does not refuse a new one.
func assemble(certs []*x509.Certificate, key crypto.Signer, ca *x509.Certificate, agentID string) (tls.Certificate, error) {
	leaf := certs[0]
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return tls.Certificate{}, errors.New("the certificate is not for the agent's key")
	}
	if leaf.Subject.CommonName != agentID {
		return tls.Certificate{}, fmt.Errorf("the certificate is for %q, not agent %q", leaf.Subject.CommonName, agentID)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: leaf.NotBefore,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return tls.Certificate{}, fmt.Errorf("verify certificate against the vault CA: %w", err)
	}
	cert := tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range certs {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// parseCerts decodes every CERTIFICATE block of a PEM text; any other
// block is an error.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(bytes.TrimSpace(data)) != 0 {
		return nil, errors.New("trailing data after the PEM certificates")
	}
	return out, nil
}
