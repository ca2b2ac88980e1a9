package test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/agent/enroll"
	"github.com/certvault/certvault/test/testcluster"
)

// agentJoinToken creates a join token with the CLI.
func agentJoinToken(t *testing.T, c *testcluster.Cluster, args ...string) (token, fingerprint string, expires time.Time) {
	t.Helper()
	out := mustCLI(t, c, append([]string{"agent", "join-token", "create", "-o", "json"}, args...)...)
	var res struct {
		Token         string
		CAFingerprint string `json:"ca_fingerprint"`
		Expires       time.Time
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || !strings.HasPrefix(res.Token, "cva.") || !strings.HasPrefix(res.CAFingerprint, "sha256:") {
		t.Fatalf("agent join-token create -o json: %q (%v)", out, err)
	}
	testcluster.KnownSecret(res.Token)
	return res.Token, res.CAFingerprint, res.Expires
}

// mtlsStatus sends a request with an agent's client certificate.
func mtlsStatus(t *testing.T, cert *tls.Certificate, ca *enroll.Identity, url string) int {
	t.Helper()
	conf := ca.TLSConfig()
	conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAgentIdentity: enrollment with a join token (reuse and expiry
// refused), access through the agent's group, renewal over mutual TLS
// (the superseded certificate stops working), and revocation honoured by
// every node.
func TestAgentIdentity(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	ctx := context.Background()
	tok, fp, _ := agentJoinToken(t, c, "--group", "web", "--uses", "1", "--cert-ttl", "1h")
	state := t.TempDir()
	// Join through a follower: the enrollment is handed to the leader.
	id, err := enroll.Join(ctx, enroll.JoinConfig{VaultURL: c.Nodes[1].URL(), Token: tok, CAFingerprint: fp, StateDir: state, Name: "vm-1"})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if id.Group != "web" || time.Until(id.Expiry()) > time.Hour || time.Until(id.Expiry()) < 50*time.Minute {
		t.Fatalf("identity: group %q, expires %v", id.Group, id.Expiry())
	}
	// The token had one use.
	_, err = enroll.Join(ctx, enroll.JoinConfig{VaultURL: c.Nodes[0].URL(), Token: tok, CAFingerprint: fp, StateDir: t.TempDir(), Name: "vm-2"})
	if err == nil || !strings.Contains(err.Error(), "join token is not valid") {
		t.Fatalf("second join with a one-use token: %v", err)
	}
	// A token past its time is refused.
	short, _, exp := agentJoinToken(t, c, "--group", "web", "--uses", "5", "--ttl", "1s")
	time.Sleep(time.Until(exp) + 50*time.Millisecond) // the token's time must pass; nothing to poll
	if _, err := enroll.Join(ctx, enroll.JoinConfig{VaultURL: c.Nodes[0].URL(), Token: short, CAFingerprint: fp, StateDir: t.TempDir(), Name: "vm-3"}); err == nil {
		t.Fatal("join with an expired token succeeded")
	}
	// A wrong fingerprint is refused before the token is sent.
	if _, err := enroll.Join(ctx, enroll.JoinConfig{VaultURL: c.Nodes[0].URL(), Token: tok, CAFingerprint: "sha256:" + strings.Repeat("ab", 32), StateDir: t.TempDir()}); err == nil {
		t.Fatal("join with a wrong CA fingerprint succeeded")
	}

	// The group's role gives the agent its certificate's secret, nothing else.
	policy := filepath.Join(t.TempDir(), "policy.json")
	mustCLI(t, c, "cert", "policy", "new", "--subject", "CN=www.example.com", "--out", policy)
	mustCLI(t, c, "cert", "create", "www", "--policy", policy)
	mustCLI(t, c, "cert", "operation", "www", "--wait")
	mustCLI(t, c, "secret", "set", "other", "--value", "other-secret-value-123")
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:web", "--scope", "/certificates/www")
	first := id.Certificate()
	for _, n := range c.Nodes {
		if got := mtlsStatus(t, first, id, n.URL()+"/secrets/www?api-version=7.6"); got != 200 {
			t.Fatalf("agent reads /secrets/www on %s: %d", n.ID, got)
		}
		if got := mtlsStatus(t, first, id, n.URL()+"/secrets/other?api-version=7.6"); got != http.StatusForbidden {
			t.Fatalf("agent reads /secrets/other on %s: %d", n.ID, got)
		}
	}
	if out := mustCLI(t, c, "agent", "list"); !strings.Contains(out, id.AgentID) || !strings.Contains(out, "vm-1") || !strings.Contains(out, "active") {
		t.Fatalf("agent list: %q", out)
	}

	// Renewal over mutual TLS: a new certificate; the one before it still
	// works (requests in flight), the one before that does not.
	if err := id.Renew(ctx, c.Nodes[2].URL(), state); err != nil {
		t.Fatalf("renew: %v", err)
	}
	second := id.Certificate()
	if second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("renewal kept the serial")
	}
	if got := mtlsStatus(t, first, id, c.Nodes[0].URL()+"/secrets/www?api-version=7.6"); got != 200 {
		t.Fatalf("previous certificate right after a renewal: %d", got)
	}
	if err := id.Renew(ctx, c.Nodes[0].URL(), state); err != nil {
		t.Fatalf("second renewal: %v", err)
	}
	waitFor(t, 30*time.Second, "superseded certificate refused", func() bool {
		return mtlsStatus(t, first, id, c.Nodes[1].URL()+"/secrets/www?api-version=7.6") == http.StatusUnauthorized
	})
	loaded, err := enroll.Load(state)
	if err != nil || loaded.Certificate().Leaf.SerialNumber.Cmp(id.Certificate().Leaf.SerialNumber) != 0 {
		t.Fatalf("Load after renewals: %v", err)
	}

	// Revocation holds on every node at once.
	mustCLI(t, c, "agent", "revoke", id.AgentID)
	for _, n := range c.Nodes {
		n := n
		waitFor(t, 30*time.Second, "revoked agent refused on "+n.ID, func() bool {
			return mtlsStatus(t, id.Certificate(), id, n.URL()+"/secrets/www?api-version=7.6") == http.StatusUnauthorized
		})
	}
	if err := id.Renew(ctx, c.Nodes[0].URL(), state); err == nil {
		t.Fatal("a revoked agent renewed its identity")
	}
	if out := mustCLI(t, c, "agent", "status", id.AgentID); !strings.Contains(out, "revoked") {
		t.Fatalf("agent status after revoke: %q", out)
	}
}
