package test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// spAnswer is what sp create, show and secret rotate print with -o json.
type spAnswer struct {
	Name, Principal string
	TenantID        string `json:"tenant_id"`
	ClientID        string `json:"client_id"`
	ClientSecret    string `json:"client_secret"`
	Secrets         []struct{ ID string }
	Certificates    []struct {
		X5tS256 string `json:"x5t#S256"`
	}
	Assignments []struct{ Role, Assignee, Scope string }
}

func spJSON(t *testing.T, out string) spAnswer {
	t.Helper()
	var sp spAnswer
	if err := json.Unmarshal([]byte(out), &sp); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if sp.ClientSecret != "" {
		testcluster.KnownSecret(sp.ClientSecret)
	}
	return sp
}

// TestServicePrincipals (issue 18, item 2): a service principal made with
// the CLI gets a tenant id, a client id and a client secret shown once,
// or registers a certificate; it is the principal sp:NAME that its role
// is assigned to; list and show never carry a secret; rotate replaces the
// secret; names are case-insensitive; delete removes it and its role.
func TestServicePrincipals(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]

	sp := spJSON(t, mustCLI(t, c, "sp", "create", "Billing", "--role", "Secrets User", "--scope", "/secrets/billing-", "-o", "json"))
	if sp.Name != "Billing" || sp.Principal != "sp:billing" || len(sp.TenantID) != 36 || len(sp.ClientID) != 36 || len(sp.ClientSecret) < 40 || len(sp.Secrets) != 1 {
		t.Fatalf("sp create: got %+v, want Billing as sp:billing with a tenant id, a client id and a secret", sp)
	}
	if len(sp.Assignments) != 1 || sp.Assignments[0].Assignee != "sp:billing" || sp.Assignments[0].Role != "Secrets User" || sp.Assignments[0].Scope != "/secrets/billing-*" && sp.Assignments[0].Scope != "/secrets/billing-" {
		t.Errorf("sp create: assignments %+v, want Secrets User at /secrets/billing- for sp:billing", sp.Assignments)
	}
	if out := mustCLI(t, c, "role", "assignments"); !strings.Contains(out, "sp:billing") {
		t.Errorf("role assignments does not list sp:billing:\n%s", out)
	}

	// The secret is never shown again, by any read.
	for _, args := range [][]string{{"sp", "list", "-o", "json"}, {"sp", "show", "billing", "-o", "json"}, {"sp", "list"}, {"sp", "show", "BILLING"}} {
		out := mustCLI(t, c, args...)
		if strings.Contains(out, sp.ClientSecret) || !strings.Contains(out, sp.ClientID) {
			t.Errorf("certvault %s: shows the secret or not the client id:\n%s", strings.Join(args, " "), out)
		}
	}

	// Another spelling is the same principal.
	if _, errOut, code := c.CLI("sp", "create", "BILLING", "--role", "Reader", "--scope", "/"); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Errorf("sp create BILLING after Billing: exit %d %q, want a refusal saying it exists", code, errOut)
	}

	rotated := spJSON(t, mustCLI(t, c, "sp", "secret", "rotate", "billing", "-o", "json"))
	if rotated.ClientSecret == "" || rotated.ClientSecret == sp.ClientSecret || rotated.ClientID != sp.ClientID || len(rotated.Secrets) != 1 || rotated.Secrets[0].ID == sp.Secrets[0].ID {
		t.Errorf("sp secret rotate: got %+v, want a new secret replacing the old one, same client id", rotated)
	}

	// A certificate instead of a secret: registered by its thumbprints;
	// its private key is refused before anything is sent.
	dir := t.TempDir()
	withKey := filepath.Join(dir, "with-key.pem")
	if err := os.WriteFile(withKey, []byte(selfSignedPEM(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), true)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := c.CLI("sp", "create", "web", "--role", "Certificate User", "--scope", "/certificates/www", "--cert-file", withKey); code == 0 || !strings.Contains(errOut, "private key") {
		t.Errorf("sp create --cert-file with a private key: exit %d %q, want a refusal", code, errOut)
	}
	certOnly := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certOnly, []byte(selfSignedPEM(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), false)), 0o600); err != nil {
		t.Fatal(err)
	}
	web := spJSON(t, mustCLI(t, c, "sp", "create", "web", "--role", "Certificate User", "--scope", "/certificates/www", "--cert-file", certOnly, "-o", "json"))
	if web.ClientSecret != "" || len(web.Secrets) != 0 || len(web.Certificates) != 1 || len(web.Certificates[0].X5tS256) != 43 || web.TenantID != sp.TenantID {
		t.Errorf("sp create --cert-file: got %+v, want one certificate, no secret, the same tenant", web)
	}
	if _, errOut, code := c.CLI("sp", "secret", "rotate", "web"); code == 0 || !strings.Contains(errOut, "certificate") {
		t.Errorf("sp secret rotate of a certificate principal: exit %d %q, want a refusal", code, errOut)
	}
	expired := filepath.Join(dir, "expired.pem")
	if err := os.WriteFile(expired, []byte(selfSignedPEM(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), false)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := c.CLI("sp", "create", "old", "--role", "Reader", "--scope", "/", "--cert-file", expired); code == 0 || !strings.Contains(errOut, "expired") {
		t.Errorf("sp create with an expired certificate: exit %d %q, want a refusal naming the expiry", code, errOut)
	}

	// Managing service principals needs access/manage.
	reader, _ := createToken(t, c, "--name", "auditor", "--role", "Reader", "--scope", "/")
	if st := status(t, clientFor(t, c, n, reader), http.MethodPost, "/v1/service-principals", map[string]string{"name": "x", "role": "Reader", "scope": "/"}); st != http.StatusForbidden {
		t.Errorf("sp create as a Reader: got %d, want 403", st)
	}

	mustCLI(t, c, "sp", "delete", "BILLING")
	if _, errOut, code := c.CLI("sp", "show", "billing"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Errorf("sp show after delete: exit %d %q, want not found", code, errOut)
	}
	if out := mustCLI(t, c, "role", "assignments"); strings.Contains(out, "sp:billing") {
		t.Errorf("role assignments still lists sp:billing after its delete:\n%s", out)
	}
	if out := mustCLI(t, c, "sp", "list"); strings.Contains(out, "Billing") || !strings.Contains(out, "web") {
		t.Errorf("sp list after delete:\n%s", out)
	}
}
