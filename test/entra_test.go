package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/agent/enroll"
	"github.com/certvault/certvault/test/testcluster"
)

// azappRun runs test/azapp (an application written for Azure Key Vault)
// with exactly env, and returns its JSON answer, or its error output and
// false when it failed.
func azappRun(t *testing.T, env []string, args ...string) (map[string]any, string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testcluster.AzappBinary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, errOut.String() + err.Error(), false
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("azapp %v: answer %q: %v", args, out.String(), err)
	}
	return res, "", true
}

// clientCertFiles makes a self-signed RSA client certificate and writes
// it twice: the certificate alone (to register) and with its key (for
// AZURE_CLIENT_CERTIFICATE_PATH).
func clientCertFiles(t *testing.T, dir string) (certOnly, withKey string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: sdkSerial(t), Subject: pkix.Name{CommonName: "billing-app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certOnly, withKey = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.pem")
	if err := os.WriteFile(certOnly, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(withKey, append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})...), 0o600); err != nil {
		t.Fatal(err)
	}
	return certOnly, withKey
}

// TestEntraTokenEndpoint (issue 18, items 3 and 5): an application written
// for Azure Key Vault, using azidentity's DefaultAzureCredential and
// azsecrets unchanged, configured only through environment variables
// (plus the two documented options test/azapp explains), gets a token
// from the vault's token endpoint with a service principal's secret or
// certificate and reads and writes secrets, on the leader and on a
// follower; the token is accepted by every node and refused by every node
// once its service principal is deleted; a token for another resource is
// refused with OAuth's error shape; the challenge names the vault's
// tenant.
func TestEntraTokenEndpoint(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	dir := t.TempDir()
	certOnly, withKey := clientCertFiles(t, dir)
	secretSP := spJSON(t, mustCLI(t, c, "sp", "create", "billing", "--role", "Secrets Officer", "--scope", "/secrets/billing-", "-o", "json"))
	certSP := spJSON(t, mustCLI(t, c, "sp", "create", "payroll", "--role", "Secrets Officer", "--scope", "/secrets/payroll-", "--cert-file", certOnly, "-o", "json"))
	mustCLI(t, c, "role", "assign", "Certificates Officer", "--to", "sp:payroll", "--scope", "/certificates/payroll-")
	if certSP.TenantID != secretSP.TenantID {
		t.Fatalf("two service principals in two tenants: %s, %s", secretSP.TenantID, certSP.TenantID)
	}
	tenant := secretSP.TenantID
	hc := c.HTTPClient()

	env := func(n *testcluster.Node, cred ...string) []string {
		return append([]string{"VAULT_URL=" + n.URL(), "SSL_CERT_FILE=" + c.CACert, "AZURE_AUTHORITY_HOST=" + n.URL(),
			"AZURE_TENANT_ID=" + tenant}, cred...)
	}
	secretEnv := []string{"AZURE_CLIENT_ID=" + secretSP.ClientID, "AZURE_CLIENT_SECRET=" + secretSP.ClientSecret}
	certEnv := []string{"AZURE_CLIENT_ID=" + certSP.ClientID, "AZURE_CLIENT_CERTIFICATE_PATH=" + withKey}

	// The challenge names the vault's tenant, which the SDK hands to
	// the credential.
	resp, err := hc.Get(c.Nodes[0].URL() + "/secrets/billing-x?api-version=7.5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `authorization="`+c.Nodes[0].URL()+"/"+tenant+`"`) {
		t.Errorf("challenge: %d %q, want 401 naming %s/%s", resp.StatusCode, ch, c.Nodes[0].URL(), tenant)
	}

	leader := c.Leader()
	var follower *testcluster.Node
	for _, n := range c.Nodes {
		if n != leader {
			follower = n
		}
	}
	for _, tc := range []struct {
		name string
		node *testcluster.Node
		cred []string
		obj  string
	}{
		{"client secret at the leader", leader, secretEnv, "billing-db"},
		{"client certificate at a follower", follower, certEnv, "payroll-db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, errOut, ok := azappRun(t, env(tc.node, tc.cred...), "set-get", tc.obj, "v-"+tc.obj)
			if !ok || res["value"] != "v-"+tc.obj {
				t.Fatalf("azapp set-get: %v %s", res, errOut)
			}
			// Certificates through azcertificates, as the same app.
			if tc.obj == "payroll-db" {
				res, errOut, ok := azappRun(t, env(tc.node, tc.cred...), "cert-self", "payroll-web")
				if x5t, _ := res["x5t"].(string); !ok || len(x5t) != 40 {
					t.Errorf("azapp cert-self: %v %s, want a certificate's SHA-1 thumbprint", res, errOut)
				}
			}
			// Its role's scope holds: another prefix is refused.
			if _, errOut, ok := azappRun(t, env(tc.node, tc.cred...), "get", "other-"+tc.obj); ok || !strings.Contains(errOut, "403") {
				t.Errorf("azapp get outside its scope: ok=%v %s, want 403", ok, errOut)
			}
		})
	}

	// A token for the vault is accepted by every node, and by none once
	// its service principal is deleted.
	res, errOut, ok := azappRun(t, env(leader, secretEnv...), "token", leader.URL()+"/.default")
	if !ok {
		t.Fatalf("azapp token: %s", errOut)
	}
	tok, isString := res["token"].(string)
	if !isString || tok == "" {
		t.Fatalf("azapp token: %v, want a token", res)
	}
	get := func(n *testcluster.Node) int {
		req, err := http.NewRequest(http.MethodGet, n.URL()+"/secrets/billing-db?api-version=7.5", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET at %s: %v", n.ID, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, n := range c.Nodes {
		if code := get(n); code != http.StatusOK {
			t.Errorf("the token at %s: %d, want 200", n.ID, code)
		}
	}
	mustCLI(t, c, "sp", "delete", "billing")
	for _, n := range c.Nodes {
		deadline := time.Now().Add(30 * time.Second)
		code := get(n)
		for code != http.StatusUnauthorized && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			code = get(n)
		}
		if code != http.StatusUnauthorized {
			t.Errorf("the deleted principal's token at %s: %d, want 401", n.ID, code)
		}
	}

	// Another resource, a wrong secret, another tenant: refused in
	// OAuth's shape, which the library shows.
	if _, errOut, ok := azappRun(t, env(leader, certEnv...), "token", "https://management.azure.com/.default"); ok || !strings.Contains(errOut, "invalid_scope") {
		t.Errorf("azapp token for another resource: ok=%v %s, want invalid_scope", ok, errOut)
	}
	post := func(tenant string, form url.Values) (int, map[string]any) {
		resp, err := hc.PostForm(leader.URL()+"/"+tenant+"/oauth2/v2.0/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("token endpoint answer: %v", err)
		}
		return resp.StatusCode, body
	}
	other := spJSON(t, mustCLI(t, c, "sp", "create", "ledger", "--role", "Secrets User", "--scope", "/secrets/ledger-", "-o", "json"))
	good := url.Values{"grant_type": {"client_credentials"}, "client_id": {other.ClientID}, "client_secret": {other.ClientSecret}, "scope": {leader.URL() + "/.default"}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vs := range good {
			f[key] = vs
		}
		f.Set(k, v)
		return f
	}
	for _, tc := range []struct {
		name, tenant string
		form         url.Values
		status       int
		code         string
	}{
		{"good", tenant, good, 200, ""},
		{"Key Vault's resource name", tenant, with("scope", "https://vault.azure.net/.default"), 200, ""},
		{"another resource", tenant, with("scope", "https://graph.microsoft.com/.default"), 400, "invalid_scope"},
		{"wrong secret", tenant, with("client_secret", "x"+other.ClientSecret), 401, "invalid_client"},
		{"unknown client", tenant, with("client_id", "00000000-0000-4000-8000-000000000000"), 401, "unauthorized_client"},
		{"another tenant", "11111111-1111-4111-8111-111111111111", good, 400, "invalid_request"},
		{"password grant", tenant, with("grant_type", "password"), 400, "unsupported_grant_type"},
	} {
		status, body := post(tc.tenant, tc.form)
		if status != tc.status || (tc.code != "" && body["error"] != tc.code) {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
		if tc.code != "" && !strings.HasPrefix(fmt.Sprint(body["error_description"]), "AADSTS") {
			t.Errorf("%s: error_description %q, want Entra ID's AADSTS form", tc.name, body["error_description"])
		}
		if tc.code == "" && (body["token_type"] != "Bearer" || body["access_token"] == nil || body["expires_in"] == nil) {
			t.Errorf("%s: answer %v, want a bearer token with expires_in", tc.name, body)
		}
		if strings.Contains(fmt.Sprint(body), other.ClientSecret) {
			t.Errorf("%s: the answer carries the client secret", tc.name)
		}
	}
}

// TestAgentOwnToken (issue 18, item 4): an agent gets, over its client
// certificate, access tokens of its own identity (its group's roles) and
// of a service principal only when that principal lists its group; such
// a token reads what the group may, does not open the agents' own
// endpoints, and ends when the agent is revoked.
func TestAgentOwnToken(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	node := c.Nodes[0]
	mustCLI(t, c, "role", "assign", "Secrets User", "--to", "group:web", "--scope", "/secrets/web-")
	mustCLI(t, c, "secret", "set", "web-db", "--value", "web-db-value")
	mustCLI(t, c, "secret", "set", "other-db", "--value", "other-db-value")
	mustCLI(t, c, "sp", "create", "billing", "--role", "Secrets User", "--scope", "/secrets/billing-", "-o", "json")
	tok, fp, _ := agentJoinToken(t, c, "--group", "web")
	id, err := enroll.Join(context.Background(), enroll.JoinConfig{VaultURL: node.URL(), Token: tok, CAFingerprint: fp, StateDir: t.TempDir(), Name: "vm-1"})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	conf := id.TLSConfig()
	conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return id.Certificate(), nil }
	agentHC := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
	hc := c.HTTPClient()

	// do sends a request with a JSON body (nil: none) and a bearer token
	// ("" : none) and returns the status and the decoded answer.
	do := func(cl *http.Client, method, path, bearer string, body any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, node.URL()+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && err != io.EOF {
			t.Fatalf("%s %s: answer: %v", method, path, err)
		}
		return resp.StatusCode, out
	}

	status, ans := do(agentHC, http.MethodPost, "/v1/agents/token", "", map[string]string{"resource": node.URL()})
	own, isString := ans["access_token"].(string)
	if status != http.StatusOK || !isString || ans["principal"] != "agent:"+id.AgentID {
		t.Fatalf("the agent's own token: %d %v", status, ans)
	}
	if status, _ := do(agentHC, http.MethodPost, "/v1/agents/token", "", map[string]string{"resource": "https://management.azure.com"}); status != http.StatusBadRequest {
		t.Errorf("a token for another resource: %d, want 400", status)
	}
	if status, _ := do(agentHC, http.MethodPost, "/v1/agents/token", "", map[string]string{"resource": node.URL(), "service_principal": "billing"}); status != http.StatusForbidden {
		t.Errorf("a token of a principal that does not list the agent's group: %d, want 403", status)
	}
	mustCLI(t, c, "sp", "update", "billing", "--agent-group", "web")
	if status, ans := do(agentHC, http.MethodPost, "/v1/agents/token", "", map[string]string{"resource": node.URL(), "service_principal": "billing"}); status != http.StatusOK || ans["principal"] != "sp:billing" {
		t.Errorf("a token of a principal that lists the agent's group: %d %v, want 200 for sp:billing", status, ans)
	}

	if status, _ := do(hc, http.MethodGet, "/secrets/web-db?api-version=7.5", own, nil); status != http.StatusOK {
		t.Errorf("the agent's token on its group's secret: %d, want 200", status)
	}
	if status, _ := do(hc, http.MethodGet, "/secrets/other-db?api-version=7.5", own, nil); status != http.StatusForbidden {
		t.Errorf("the agent's token outside its group's roles: %d, want 403", status)
	}
	for _, path := range []string{"/v1/agents/token", "/v1/agents/renew", "/v1/agents/report"} {
		if status, _ := do(hc, http.MethodPost, path, own, map[string]string{"resource": node.URL()}); status != http.StatusUnauthorized && status != http.StatusForbidden {
			t.Errorf("POST %s with the agent's access token: %d, want 401 or 403 (not an agent)", path, status)
		}
	}
	mustCLI(t, c, "agent", "revoke", id.AgentID)
	if status, _ := do(hc, http.MethodGet, "/secrets/web-db?api-version=7.5", own, nil); status != http.StatusUnauthorized {
		t.Errorf("the revoked agent's token: %d, want 401", status)
	}
}
