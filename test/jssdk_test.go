package test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// The JavaScript half of issue 18's SDK tests: the scripts in test/jssdk
// use only @azure/identity and the Key Vault clients, configured as an
// application is, through AZURE_* variables and NODE_EXTRA_CA_CERTS
// (common.mjs says which options the environment cannot give). The Go
// side starts real clusters, makes the service principals with the CLI,
// signs CSRs and checks every node.

// jsNPMTimeout bounds npm ci; jsScriptTimeout bounds one script.
const (
	jsNPMTimeout    = 10 * time.Minute
	jsScriptTimeout = 2 * time.Minute
)

// jsStampName is written into node_modules once npm ci succeeded; the
// Makefile's deps target writes the same file (JSSDK_STAMP).
const jsStampName = ".npm-ci-done"

var jsDeps struct {
	once sync.Once
	dir  string
	node string
	err  error
}

// jsSDK returns node's path and test/jssdk's, after making sure the npm
// packages of package-lock.json are installed: when node_modules is
// missing or older than the lockfile (the stamp says), it runs npm ci, as
// make deps does, bounded by jsNPMTimeout.
func jsSDK(t *testing.T) (node, dir string) {
	t.Helper()
	jsDeps.once.Do(func() {
		jsDeps.dir, jsDeps.node, jsDeps.err = jsInstall()
	})
	if jsDeps.err != nil {
		t.Fatal(jsDeps.err)
	}
	return jsDeps.node, jsDeps.dir
}

func jsInstall() (dir, node string, err error) {
	dir, err = filepath.Abs("jssdk")
	if err != nil {
		return "", "", fmt.Errorf("locate test/jssdk: %w", err)
	}
	node, err = exec.LookPath("node")
	if err != nil {
		return "", "", fmt.Errorf("node is not installed (%w): run `make deps`, which installs Debian's nodejs and npm and the locked npm packages", err)
	}
	stamp := filepath.Join(dir, "node_modules", jsStampName)
	if fresh, err := jsStampFresh(dir, stamp); err != nil || fresh {
		return dir, node, err
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", "", fmt.Errorf("test/jssdk/node_modules is missing or older than package-lock.json and npm is not installed (%w): run `make deps`", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), jsNPMTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("npm ci in test/jssdk (bounded by %v): %w\n%s\nrun `make deps` (or `cd test/jssdk && npm ci`) by hand to see more", jsNPMTimeout, err, out)
	}
	if err := os.WriteFile(stamp, nil, 0o644); err != nil {
		return "", "", fmt.Errorf("write %s: %w", stamp, err)
	}
	return dir, node, nil
}

// jsStampFresh reports whether stamp exists and is not older than the
// package manifest or the lockfile.
func jsStampFresh(dir, stamp string) (bool, error) {
	st, err := os.Stat(stamp)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", stamp, err)
	}
	for _, f := range []string{"package-lock.json", "package.json"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			return false, fmt.Errorf("stat test/jssdk/%s: %w", f, err)
		}
		if fi.ModTime().After(st.ModTime()) {
			return false, nil
		}
	}
	return true, nil
}

// jsResult is a script's run: its one JSON line decoded, or its failure.
type jsResult struct {
	out    map[string]any
	stderr string
	err    error
}

// str returns a string member of the result ("" if it is not one).
func (r jsResult) str(key string) string {
	s, _ := r.out[key].(string)
	return s
}

// runJS runs node SCRIPT ARGS in test/jssdk with exactly env (and PATH
// and a fresh HOME): nothing of the parent's environment, so no AZURE_*
// variable of the machine running the tests reaches the libraries. A
// script that exits 0 must print one JSON line.
func runJS(t *testing.T, env map[string]string, script string, args ...string) jsResult {
	t.Helper()
	node, dir := jsSDK(t)
	ctx, cancel := context.WithTimeout(context.Background(), jsScriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("node %s %s: still running after %v; stderr:\n%s", script, strings.Join(args, " "), jsScriptTimeout, stderr.String())
	}
	res := jsResult{stderr: stderr.String(), err: err}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run node %s: %v", script, err)
		}
		return res
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("node %s %s: printed %d lines, want one JSON line:\n%s", script, strings.Join(args, " "), len(lines), stdout.String())
	}
	if err := json.Unmarshal([]byte(lines[0]), &res.out); err != nil {
		t.Fatalf("node %s %s: decode %q: %v", script, strings.Join(args, " "), lines[0], err)
	}
	return res
}

// mustJS is runJS for a script that must succeed.
func mustJS(t *testing.T, env map[string]string, script string, args ...string) jsResult {
	t.Helper()
	r := runJS(t, env, script, args...)
	if r.err != nil {
		t.Fatalf("node %s %s: %v; stderr:\n%s", script, strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// jsEnv is the environment of a script that signs in as a service
// principal of c through node n: DefaultAzureCredential's variables
// (credential is AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH
// with its value), the vault's CA and the vault's URL.
// AZURE_TOKEN_CREDENTIALS keeps DefaultAzureCredential to
// EnvironmentCredential, so that a failure is that credential's and no
// other in the chain goes looking for an Azure CLI or a metadata service.
func jsEnv(c *testcluster.Cluster, n *testcluster.Node, sp spAnswer, credential, value string) map[string]string {
	return map[string]string{
		"AZURE_TENANT_ID":         sp.TenantID,
		"AZURE_CLIENT_ID":         sp.ClientID,
		credential:                value,
		"AZURE_AUTHORITY_HOST":    n.URL(),
		"AZURE_TOKEN_CREDENTIALS": "EnvironmentCredential",
		"NODE_EXTRA_CA_CERTS":     c.CACert,
		"CERTVAULT_VAULT_URL":     n.URL(),
	}
}

// randomHex returns n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestJSSDKClientSecret (issue 18, item 5): @azure/identity's
// DefaultAzureCredential with a client secret from `certvault sp create`,
// and SecretClient's setSecret and getSecret; the secret is the vault's
// (the root token reads it back); a wrong secret and a name outside the
// role's scope are refused.
func TestJSSDKClientSecret(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	sp := spJSON(t, mustCLI(t, c, "sp", "create", "js-secrets", "--role", "Secrets Officer", "--scope", "/secrets/js-", "-o", "json"))
	env := jsEnv(c, n, sp, "AZURE_CLIENT_SECRET", sp.ClientSecret)

	value := "js-" + randomHex(t, 16)
	testcluster.KnownSecret(value)
	env["CERTVAULT_SECRET_VALUE"] = value
	r := mustJS(t, env, "secret-roundtrip.mjs", "js-db-password")
	if r.str("gotName") != "js-db-password" || r.str("gotValue") != value || r.str("setVersion") == "" ||
		r.str("gotVersion") != r.str("setVersion") || r.str("contentType") != "text/plain" || r.out["enabled"] != true {
		t.Fatalf("setSecret + getSecret: got %v, want the value set, one version, text/plain, enabled", r.out)
	}
	var stored struct{ Value, ID string }
	if err := c.Client(n).Do(context.Background(), http.MethodGet, "/secrets/js-db-password?api-version=7.6", nil, &stored); err != nil {
		t.Fatalf("GET /secrets/js-db-password as root: %v", err)
	}
	if stored.Value != value || !strings.HasSuffix(stored.ID, "/"+r.str("setVersion")) {
		t.Errorf("the vault holds %q at %s, want the value the JS SDK set, at version %s", stored.Value, stored.ID, r.str("setVersion"))
	}

	// Outside /secrets/js-: the token is good, the role does not reach.
	if r := runJS(t, env, "secret-roundtrip.mjs", "other-password"); r.err == nil || !strings.Contains(r.stderr, "statusCode: 403") {
		t.Errorf("setSecret outside the role's scope: got %v, stderr %q; want a 403", r.out, r.stderr)
	}
	// A wrong secret: the token endpoint refuses and the credential says so.
	bad := jsEnv(c, n, sp, "AZURE_CLIENT_SECRET", sp.ClientSecret+"x")
	bad["CERTVAULT_SECRET_VALUE"] = value
	if r := runJS(t, bad, "secret-roundtrip.mjs", "js-db-password"); r.err == nil || !strings.Contains(r.stderr, "AADSTS7000215") {
		t.Errorf("a wrong client secret: got %v, stderr %q; want the credential to fail with AADSTS7000215 (invalid client secret)", r.out, r.stderr)
	}
}

// TestJSSDKClientCertificate (issue 18, item 5): DefaultAzureCredential
// with a client certificate registered by `sp create --cert-file`
// (AZURE_CLIENT_CERTIFICATE_PATH, a PEM with the certificate and its
// key), and CertificateClient's CSR flow: a certificate whose issuer is
// "Unknown", its pending operation with the CSR, the CSR signed by the
// test's CA, mergeCertificate and getCertificate. The signed certificate
// is given as DER bytes, and as PEM text (the form Key Vault's
// documentation gives for a merge).
func TestJSSDKClientCertificate(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	// RSA: MSAL signs client assertions with PS256.
	certOnly, certAndKey := clientCertFiles(t, t.TempDir())
	sp := spJSON(t, mustCLI(t, c, "sp", "create", "js-certs", "--role", "Certificates Officer", "--scope", "/certificates/js-", "--cert-file", certOnly, "-o", "json"))
	if sp.ClientSecret != "" || len(sp.Certificates) != 1 {
		t.Fatalf("sp create --cert-file: got %+v, want one certificate and no secret", sp)
	}
	env := jsEnv(c, n, sp, "AZURE_CLIENT_CERTIFICATE_PATH", certAndKey)
	ca := newSDKCA(t)

	for _, form := range []string{"der", "pem"} {
		t.Run(form, func(t *testing.T) {
			name := "js-csr-" + form
			dns := name + ".example.test"
			op := mustJS(t, env, "certificate-csr.mjs", "create", name, "CN="+dns, dns)
			if op.str("status") != "inProgress" || op.str("issuerName") != "Unknown" || op.out["isCompleted"] != false ||
				!strings.HasSuffix(op.str("id"), "/certificates/"+name+"/pending") || op.str("csr") == "" {
				t.Fatalf("getCertificateOperation: got %v, want the pending operation in progress, issuer Unknown, with a CSR", op.out)
			}
			der, err := base64.StdEncoding.DecodeString(op.str("csr"))
			if err != nil {
				t.Fatalf("the operation's CSR is not base64: %v", err)
			}
			csr, err := x509.ParseCertificateRequest(der)
			if err != nil {
				t.Fatalf("parse the operation's CSR: %v", err)
			}
			if err := csr.CheckSignature(); err != nil {
				t.Fatalf("the CSR's signature: %v", err)
			}
			if csr.Subject.CommonName != dns || len(csr.DNSNames) != 1 || csr.DNSNames[0] != dns {
				t.Fatalf("CSR for %q %v, want CN=%s and the DNS name %s", csr.Subject.CommonName, csr.DNSNames, dns, dns)
			}
			if k, ok := csr.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
				t.Fatalf("CSR key %T, want the policy's RSA 2048", csr.PublicKey)
			}

			leaf := ca.sign(t, csr.Subject, csr.DNSNames, csr.PublicKey)
			leafFile := filepath.Join(t.TempDir(), "signed.pem")
			if err := os.WriteFile(leafFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			got := mustJS(t, env, "certificate-csr.mjs", "merge", name, leafFile, form)
			sum := sha1.Sum(leaf.Raw)
			if got.str("cer") != base64.StdEncoding.EncodeToString(leaf.Raw) || got.str("x5tHex") != hex.EncodeToString(sum[:]) {
				t.Fatalf("getCertificate after the merge: cer %.40s… x5t %s, want the certificate the CA signed (x5t %x)", got.str("cer"), got.str("x5tHex"), sum)
			}
			if got.out["enabled"] != true || got.str("version") == "" || got.str("version") != got.str("mergedVersion") || got.str("issuerName") != "Unknown" {
				t.Fatalf("getCertificate after the merge: got %v, want the merged version enabled, policy issuer Unknown", got.out)
			}
		})
	}
}

// jsAppliedEverywhere waits until every node of c has applied the
// leader's commit index as it is now (everything acknowledged so far).
func jsAppliedEverywhere(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	leader := c.Leader()
	st, err := c.Status(leader)
	if err != nil {
		t.Fatalf("status of the leader %s: %v", leader.ID, err)
	}
	for _, n := range c.Nodes {
		waitUntil(t, 30*time.Second, fmt.Sprintf("%s to apply index %d", n.ID, st.CommitIndex), func() (bool, string) {
			s, err := c.Status(n)
			if err != nil {
				return false, err.Error()
			}
			return s.AppliedIndex >= st.CommitIndex, fmt.Sprintf("applied %d", s.AppliedIndex)
		})
	}
}

// jsGetSecret reads a secret from node n with a bearer token and returns
// the status, the value and the WWW-Authenticate header.
func jsGetSecret(t *testing.T, c *testcluster.Cluster, n *testcluster.Node, tok, name string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, n.URL()+"/secrets/"+name+"?api-version=7.6", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s/secrets/%s: %v", n.ID, name, err)
	}
	defer resp.Body.Close()
	var body struct{ Value string }
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET %s/secrets/%s: decode: %v", n.ID, name, err)
		}
	}
	return resp.StatusCode, body.Value, resp.Header.Get("WWW-Authenticate")
}

// TestJSSDKDeletedPrincipalRefused (issue 18, item 5): an access token
// that @azure/identity got for a service principal works on every node of
// a three-node cluster; once `certvault sp delete` is applied everywhere,
// the same token is refused on every node, and the credential gets no new
// one. A token for another audience is not issued.
func TestJSSDKDeletedPrincipalRefused(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	value := "shared-" + randomHex(t, 16)
	testcluster.KnownSecret(value)
	mustCLI(t, c, "secret", "set", "js-shared", "--value", value)
	sp := spJSON(t, mustCLI(t, c, "sp", "create", "js-gone", "--role", "Secrets User", "--scope", "/secrets/js-shared", "-o", "json"))
	env := jsEnv(c, c.Nodes[1], sp, "AZURE_CLIENT_SECRET", sp.ClientSecret)

	if r := runJS(t, env, "get-token.mjs", "https://management.azure.com/.default"); r.err == nil || !strings.Contains(r.stderr, "invalid_scope") {
		t.Errorf("getToken for https://management.azure.com: got %v, stderr %q; want invalid_scope (the vault issues tokens for itself only)", r.out, r.stderr)
	}

	tr := mustJS(t, env, "get-token.mjs", c.Nodes[1].URL()+"/.default")
	tok := tr.str("token")
	testcluster.KnownSecret(tok)
	if tok == "" || tr.str("tokenType") != "Bearer" {
		t.Fatalf("getToken: got %v, want a Bearer token", tr.out)
	}
	jsAppliedEverywhere(t, c)
	for _, n := range c.Nodes {
		if st, got, _ := jsGetSecret(t, c, n, tok, "js-shared"); st != http.StatusOK || got != value {
			t.Fatalf("GET js-shared on %s with the service principal's token: got %d %q, want 200 and the value", n.ID, st, got)
		}
	}

	mustCLI(t, c, "sp", "delete", "js-gone")
	jsAppliedEverywhere(t, c)
	for _, n := range c.Nodes {
		st, got, challenge := jsGetSecret(t, c, n, tok, "js-shared")
		if st != http.StatusUnauthorized || got != "" || !strings.HasPrefix(challenge, "Bearer ") {
			t.Errorf("GET js-shared on %s with the deleted service principal's token: got %d %q (WWW-Authenticate %q), want 401 with a Bearer challenge", n.ID, st, got, challenge)
		}
	}
	if r := runJS(t, env, "get-token.mjs", c.Nodes[1].URL()+"/.default"); r.err == nil || !strings.Contains(r.stderr, "AADSTS700016") {
		t.Errorf("getToken after sp delete: got %v, stderr %q; want AADSTS700016 (unknown application)", r.out, r.stderr)
	}
}

// TestJSSDKManagedIdentity (issue 18, item 5): @azure/identity's
// ManagedIdentityCredential against a running certvault-agent, configured
// only by IDENTITY_ENDPOINT and IDENTITY_HEADER (read from the env file
// the agent wrote), and SecretClient.getSecret with the service
// principal's token: as the system-assigned identity, and as a
// user-assigned one named by the service principal's client id; another
// client id is refused, and so is a secret outside the principal's role.
func TestJSSDKManagedIdentity(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	agentBin := testcluster.AgentBinary(t)
	vault := c.Nodes[0].URL()
	dir := t.TempDir()

	sp := spJSON(t, mustCLI(t, c, "sp", "create", "js-mi", "--role", "Secrets User", "--scope", "/secrets/js-mi-", "--agent-group", "js-apps", "-o", "json"))
	value := "js-mi-" + randomHex(t, 16)
	testcluster.KnownSecret(value)
	mustCLI(t, c, "secret", "set", "js-mi-db", "--value", value)
	mustCLI(t, c, "secret", "set", "other-db", "--value", "not-for-js-mi")

	tok, fp, _ := agentJoinToken(t, c, "--group", "js-apps")
	state := filepath.Join(dir, "state")
	joinAgent(t, agentBin, vault, tok, fp, state, "--name", "js-vm")
	addr := testcluster.FreeAddr(t)
	endpoint := "http://" + addr + "/msi/token"
	envFile := filepath.Join(dir, "run", "identity", "root.env")
	cfg := filepath.Join(dir, "agent.yaml")
	data := fmt.Sprintf(`vault: %s
ca_file: %s
state_dir: %s
managed_identity:
  listen: %s
  identities:
    - user: root
      service_principal: js-mi
      client_id: %s
      env_file: %s
`, vault, c.CACert, state, addr, sp.ClientID, envFile)
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	startAgent(t, agentBin, cfg)
	hc := &http.Client{Timeout: 10 * time.Second}
	waitUntil(t, 30*time.Second, "the agent's env file and endpoint", func() (bool, string) {
		if _, err := os.Stat(envFile); err != nil {
			return false, err.Error()
		}
		resp, err := hc.Get(endpoint)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return true, resp.Status
	})
	header := envFileVar(t, envFile, "IDENTITY_HEADER")
	if header == "" {
		t.Fatalf("%s holds no IDENTITY_HEADER", envFile)
	}
	testcluster.KnownSecret(header)
	env := map[string]string{
		"IDENTITY_ENDPOINT":   endpoint,
		"IDENTITY_HEADER":     header,
		"NODE_EXTRA_CA_CERTS": c.CACert,
		"CERTVAULT_VAULT_URL": vault,
	}

	for _, tc := range []struct{ name, clientID string }{
		{"system-assigned", ""},
		{"client id", sp.ClientID},
	} {
		args := []string{"js-mi-db"}
		if tc.clientID != "" {
			args = append(args, tc.clientID)
		}
		r := mustJS(t, env, "managed-identity.mjs", args...)
		if r.str("name") != "js-mi-db" || r.str("value") != value || r.str("version") == "" {
			t.Errorf("%s: getSecret with ManagedIdentityCredential: got %v, want js-mi-db's value", tc.name, r.out)
		}
	}
	if r := runJS(t, env, "managed-identity.mjs", "other-db"); r.err == nil || !strings.Contains(r.stderr, "statusCode: 403") {
		t.Errorf("getSecret outside the principal's role: got %v, stderr %q; want a 403", r.out, r.stderr)
	}
	other := "00000000-0000-4000-8000-000000000000"
	if r := runJS(t, env, "managed-identity.mjs", "js-mi-db", other); r.err == nil || !strings.Contains(r.stderr, "is not the identity of this header") {
		t.Errorf("ManagedIdentityCredential with another client id: got %v, stderr %q; want the agent's refusal", r.out, r.stderr)
	}
}
