package vault

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/barrier"
	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/raftstore"
)

// A join token is "cvj.<id>.<secret>.<ca>": <ca> is the base64url SHA-256
// of the cluster CA, which the joining node pins before it trusts the
// cluster with anything.
// ErrBadJoinToken means a join token is malformed, unknown, expired or
// used up.
var ErrBadJoinToken = errors.New("vault: join token is not valid (wrong, expired or used up; print a new one with 'certvault cluster join-token')")

const joinTokenPrefix = "cvj."

func newJoinToken(id string, ca *x509.Certificate, ttl time.Duration, uses int, now time.Time) (string, joinTokenRecord, error) {
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return "", joinTokenRecord{}, fmt.Errorf("generate join token: %w", err)
	}
	s := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(s))
	caSum := sha256.Sum256(ca.Raw)
	tok := joinTokenPrefix + id + "." + s + "." + base64.RawURLEncoding.EncodeToString(caSum[:])
	return tok, joinTokenRecord{Hash: sum[:], Expires: now.Add(ttl).Unix(), Uses: uses, Created: now.Unix()}, nil
}

type parsedJoinToken struct {
	id, secret string
	caSum      []byte
}

func parseJoinToken(tok string) (parsedJoinToken, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(tok), joinTokenPrefix)
	parts := strings.Split(rest, ".")
	if !ok || len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return parsedJoinToken{}, fmt.Errorf("%w: expected cvj.<id>.<secret>.<ca> as printed by 'certvault cluster join-token'", ErrBadJoinToken)
	}
	// The pin has one spelling, the one the cluster prints: the decoder
	// alone would also take line breaks and stray bits in the last
	// character.
	caSum, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(caSum) != sha256.Size || base64.RawURLEncoding.EncodeToString(caSum) != parts[2] {
		return parsedJoinToken{}, fmt.Errorf("%w: the CA part is damaged", ErrBadJoinToken)
	}
	return parsedJoinToken{id: parts[0], secret: parts[1], caSum: caSum}, nil
}

// checkJoinToken validates a join token against its record without using
// it up, and returns the record's entry for a compare-and-set.
func (n *Node) checkJoinToken(tok string) (raftstore.Entry, joinTokenRecord, error) {
	var rec joinTokenRecord
	p, err := parseJoinToken(tok)
	if err != nil {
		return raftstore.Entry{}, rec, err
	}
	e, ok := n.Store.Get(prefixJoinTokens + p.id)
	if !ok {
		return e, rec, fmt.Errorf("%w: unknown token", ErrBadJoinToken)
	}
	if err := n.GetSealedJSON(e, &rec); err != nil {
		return e, rec, err
	}
	sum := sha256.Sum256([]byte(p.secret))
	if subtle.ConstantTimeCompare(sum[:], rec.Hash) != 1 {
		return e, rec, fmt.Errorf("%w: wrong secret", ErrBadJoinToken)
	}
	if time.Now().Unix() >= rec.Expires {
		return e, rec, fmt.Errorf("%w: expired", ErrBadJoinToken)
	}
	if rec.Uses <= 0 {
		return e, rec, fmt.Errorf("%w: used up", ErrBadJoinToken)
	}
	return e, rec, nil
}

func forbidden(err error) *front.APIError {
	return &front.APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: strings.TrimPrefix(err.Error(), "vault: ")}
}

// joinPrepareResponse gives a joining node what it needs to check its seal
// key: the wrapped keyring and the CA.
type joinPrepareResponse struct {
	Keyring json.RawMessage `json:"keyring"`
	CAPEM   string          `json:"ca_pem"`
}

func (n *Node) handleJoinPrepare(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
	}
	if err := front.DecodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if _, _, err := n.checkJoinToken(req.Token); err != nil {
		n.Log.Warn("join refused", "remote", r.RemoteAddr, "err", err)
		n.fail(w, r, forbidden(ErrBadJoinToken))
		return
	}
	kr, ok := n.Store.Get(keyKeyring)
	if !ok {
		n.fail(w, r, front.Unavailable(core.ErrNotInitialized))
		return
	}
	front.WriteJSON(w, http.StatusOK, joinPrepareResponse{Keyring: kr.Value, CAPEM: string(core.PEMCert(n.CACert.Load().Raw))})
}

type joinRequest struct {
	Token    string `json:"token"`
	NodeID   string `json:"node_id"`
	APIAddr  string `json:"api_addr"`
	RaftAddr string `json:"raft_addr"`
	CSR      string `json:"csr"`
	Proof    []byte `json:"proof"`
}

type joinResponse struct {
	CertPEM string `json:"cert_pem"`
	CAPEM   string `json:"ca_pem"`
}

// joinProof shows that the joining node opened the keyring with its seal.
func joinProof(b *barrier.Barrier, nodeID string, csrDER []byte) []byte {
	return b.Mac("certvault join", []byte(nodeID), csrDER)
}

func (n *Node) handleJoin(w http.ResponseWriter, r *http.Request) {
	var req joinRequest
	if err := front.DecodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	e, rec, err := n.checkJoinToken(req.Token)
	if err != nil {
		n.Log.Warn("join refused", "remote", r.RemoteAddr, "err", err)
		n.fail(w, r, forbidden(ErrBadJoinToken))
		return
	}
	if !validNodeID(req.NodeID) {
		n.fail(w, r, front.BadParameter("node ID %q: use 1-64 letters, digits, '-', '_' or '.'", req.NodeID))
		return
	}
	if _, err := n.resolveNode(req.NodeID); err == nil {
		n.fail(w, r, &front.APIError{Status: http.StatusConflict, Code: "Conflict",
			Message: fmt.Sprintf("node ID %q is already in the cluster; pick another --node-id or 'certvault cluster remove %s' first", req.NodeID, req.NodeID)})
		return
	}
	block, _ := pem.Decode([]byte(req.CSR))
	if block == nil {
		n.fail(w, r, front.BadParameter("csr is not PEM"))
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		n.fail(w, r, front.BadParameter("csr is not a valid signed certificate request"))
		return
	}
	if !hmac.Equal(req.Proof, joinProof(n.Barrier.Load(), req.NodeID, block.Bytes)) {
		n.Log.Warn("join refused: seal mismatch", "node", req.NodeID, "remote", r.RemoteAddr)
		n.fail(w, r, forbidden(barrier.ErrSealMismatch))
		return
	}
	caKey, err := n.CAKey()
	if err != nil {
		n.fail(w, r, err)
		return
	}
	hosts := append([]string{}, csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	now := time.Now()
	der, err := issueNodeCert(n.CACert.Load(), caKey, csr.PublicKey, req.NodeID, hosts, now)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	rec.Uses--
	b := &raftstore.Batch{}
	if rec.Uses > 0 {
		if err := core.PutSealedJSON(b, n.Barrier.Load(), e.Key, rec); err != nil {
			n.fail(w, r, err)
			return
		}
		b.Ops[0].HasIf, b.Ops[0].IfIndex = true, e.Index
	} else {
		b.DeleteIf(e.Key, e.Index)
	}
	nodeRec, _ := json.Marshal(nodeRecord{ID: req.NodeID, APIAddr: strings.TrimSuffix(req.APIAddr, "/"), RaftAddr: req.RaftAddr, Joined: now.Unix()})
	b.PutIf(prefixNodes+req.NodeID, nodeRec, raftstore.NotExist)
	if _, err := n.Store.Apply(r.Context(), b); err != nil {
		if errors.Is(err, raftstore.ErrConflict) {
			n.fail(w, r, forbidden(fmt.Errorf("%w: used concurrently", ErrBadJoinToken)))
			return
		}
		n.fail(w, r, err)
		return
	}
	n.Log.Info("node joined", "node", req.NodeID, "api", req.APIAddr, "raft", req.RaftAddr)
	front.WriteJSON(w, http.StatusOK, joinResponse{CertPEM: string(core.PEMCert(der)), CAPEM: string(core.PEMCert(n.CACert.Load().Raw))})
}

func validNodeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// join makes this new node a member of the cluster at opts.JoinURL: pin
// the CA from the token, check the seal key opens the cluster's keyring,
// get a node certificate, start raft, and ask to be added as a voter.
func (n *Node) join(ctx context.Context) error {
	tok, err := parseJoinToken(n.opts.JoinToken)
	if err != nil {
		return err
	}
	seal, err := n.openSeal(false)
	if err != nil {
		if n.opts.Seal == barrier.SealPKCS11 {
			return fmt.Errorf("%w (every node of a cluster with the pkcs11 seal must reach the same HSM token)", err)
		}
		return fmt.Errorf("%w (joining needs a copy of the cluster's seal key: pass --seal-key-file)", err)
	}
	n.seal = seal
	pinned := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified against the pinned CA below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyPinned(raw, tok.caSum)
		},
	}}}
	base := strings.TrimSuffix(n.opts.JoinURL, "/")

	var prep joinPrepareResponse
	if err := postJSON(ctx, pinned, base+"/v1/sys/cluster/join/prepare", map[string]string{"token": n.opts.JoinToken}, &prep); err != nil {
		return fmt.Errorf("join %s: %w", base, err)
	}
	ca, err := core.ParseCertPEM([]byte(prep.CAPEM))
	if err != nil {
		return fmt.Errorf("join: the cluster's CA: %w", err)
	}
	if sum := sha256.Sum256(ca.Raw); !bytes.Equal(sum[:], tok.caSum) {
		return errors.New("join: the cluster's CA does not match the fingerprint in the join token")
	}
	barrier, err := barrier.OpenKeyring(prep.Keyring, seal)
	if err != nil {
		return fmt.Errorf("join refused: %s does not open the cluster's keyring: start with a copy of the cluster's seal key: %w", n.opts.SealKeyFile, err)
	}
	nodeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate node key: %w", err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: n.opts.NodeID}}
	for _, h := range n.hosts() {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, tmpl, nodeKey)
	if err != nil {
		return fmt.Errorf("create CSR: %w", err)
	}
	var resp joinResponse
	if err := postJSON(ctx, pinned, base+"/v1/sys/cluster/join", joinRequest{
		Token: n.opts.JoinToken, NodeID: n.opts.NodeID, APIAddr: n.opts.APIAddr, RaftAddr: n.opts.RaftAddr,
		CSR:   string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		Proof: joinProof(barrier, n.opts.NodeID, csrDER),
	}, &resp); err != nil {
		return fmt.Errorf("join %s: %w", base, err)
	}
	cert, err := core.ParseCertPEM([]byte(resp.CertPEM))
	if err != nil {
		return fmt.Errorf("join: node certificate: %w", err)
	}
	if err := n.writeNodeFiles(ca.Raw, cert.Raw, nodeKey); err != nil {
		return err
	}
	if err := n.openStore(); err != nil {
		return err
	}
	n.Barrier.Store(barrier)
	if err := n.serve(); err != nil {
		return err
	}
	// Now that raft and the API run here, become a voter. The leader may
	// be changing; retry until the deadline.
	deadline := time.Now().Add(60 * time.Second)
	for {
		err = postJSON(ctx, n.client, base+"/v1/sys/cluster/members", map[string]string{"id": n.opts.NodeID, "raft_addr": n.opts.RaftAddr}, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("join: become a voter: %w", err)
		}
		n.Log.Warn("join: add voter failed, retrying", "err", err)
		select {
		case <-time.After(500 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	go n.awaitKeyring()
	n.Log.Info("joined the cluster", "node", n.opts.NodeID, "via", base)
	return nil
}

// verifyPinned accepts a server whose chain includes the CA with the
// pinned SHA-256 and whose leaf that CA issued.
func verifyPinned(raw [][]byte, caSum []byte) error {
	var ca *x509.Certificate
	for _, r := range raw {
		if sum := sha256.Sum256(r); bytes.Equal(sum[:], caSum) {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			ca = c
		}
	}
	if ca == nil {
		return errors.New("the server's certificate chain does not contain the CA pinned by the join token")
	}
	leaf, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
		return fmt.Errorf("the server's certificate is not issued by the pinned CA: %w", err)
	}
	return nil
}

// postJSON posts in as JSON and decodes a 200 answer into out (if not
// nil); any other status becomes an error with the server's message.
func postJSON(ctx context.Context, c *http.Client, url string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error.Message)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}
