package test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/certvault/certvault/test/testcluster"
)

// envFileVar reads an env file the way systemd's EnvironmentFile= does
// for the simple lines the agent writes (comments start with # or ;,
// KEY=VALUE otherwise) and returns the value of key.
func envFileVar(t *testing.T, path, key string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open env file: %v", err)
	}
	defer f.Close()
	val := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("env file line %q is not KEY=VALUE", line)
		}
		if k == key {
			val = v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read env file: %v", err)
	}
	return val
}

// miGet sends GET endpoint?api-version=2019-08-01&resource=resource with
// header (none when ""), and returns the status and the JSON answer.
func miGet(t *testing.T, endpoint, resource, header string) (int, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, endpoint+"?api-version=2019-08-01&resource="+url.QueryEscape(resource), nil)
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set("X-IDENTITY-HEADER", header)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	var body map[string]string
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, data)
	}
	return resp.StatusCode, body
}

// TestManagedIdentity (issue 18, item 4): a real agent serves the
// managed-identity endpoint; azidentity's ManagedIdentityCredential,
// configured only through IDENTITY_ENDPOINT and IDENTITY_HEADER (read
// from the env file the agent wrote, as systemd's EnvironmentFile= would),
// gets the service principal's token from it, and azsecrets reads a
// secret with that token within the principal's role and is refused
// outside it; a request without the header is refused, a resource that
// is not the vault is the vault's 400, the env file keeps its secret
// across a restart of the agent, and a reload serves a new identity and
// puts back a deleted env file. (No t.Parallel: t.Setenv.)
func TestManagedIdentity(t *testing.T) {
	c := testcluster.Start(t, 1, testcluster.Options{})
	agentBin := testcluster.AgentBinary(t)
	vault := c.Nodes[0].URL()
	dir := t.TempDir()

	mustCLI(t, c, "sp", "create", "billing", "--role", "Secrets User", "--scope", "/secrets/billing-", "--agent-group", "web", "-o", "json")
	const value = "billing-db-password-for-managed-identity"
	testcluster.KnownSecret(value)
	mustCLI(t, c, "secret", "set", "billing-db", "--value", value)
	mustCLI(t, c, "secret", "set", "payroll-db", "--value", "not-for-billing")

	tok, fp, _ := agentJoinToken(t, c, "--group", "web")
	state := filepath.Join(dir, "state")
	joinAgent(t, agentBin, vault, tok, fp, state, "--name", "app-vm")

	// The application's user: nobody where it exists, to see the env
	// file owned by another user than the agent's.
	appUser, appUID := "root", 0
	if u, err := user.Lookup("nobody"); err == nil {
		if uid, err := strconv.Atoi(u.Uid); err == nil {
			appUser, appUID = "nobody", uid
		}
	}
	addr := testcluster.FreeAddr(t)
	endpoint := "http://" + addr + "/msi/token"
	envFile := filepath.Join(dir, "run", "identity", appUser+".env")
	cfg := filepath.Join(dir, "agent.yaml")
	data := fmt.Sprintf(`vault: %s
ca_file: %s
state_dir: %s
managed_identity:
  listen: %s
  socket: %s
  identities:
    - user: %s
      service_principal: billing
      env_file: %s
`, vault, c.CACert, state, addr, filepath.Join(dir, "run", "identity.sock"), appUser, envFile)
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(agentBin, "check-config", "--config", cfg).CombinedOutput(); err != nil || !strings.Contains(string(out), "managed identity for 1 user on "+endpoint) {
		t.Fatalf("check-config: %v\n%s", err, out)
	}
	ag := startAgent(t, agentBin, cfg)

	// The endpoint is up once it refuses a request without the header.
	waitUntil(t, 30*time.Second, "the endpoint refuses a request without the header", func() (bool, string) {
		resp, err := http.Get(endpoint + "?api-version=2019-08-01&resource=" + url.QueryEscape(vault))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusUnauthorized, resp.Status
	})
	status, body := miGet(t, endpoint, vault, "")
	if status != http.StatusUnauthorized || !strings.Contains(body["error_description"], "X-IDENTITY-HEADER header is missing") {
		t.Fatalf("without the header: %d %v, want 401 saying the header is missing", status, body)
	}

	fi, err := os.Stat(envFile)
	if err != nil {
		t.Fatalf("env file: %v", err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o400 || int(st.Uid) != appUID {
		t.Fatalf("env file mode %04o owner %d, want 0400 and %d", fi.Mode().Perm(), st.Uid, appUID)
	}
	header := envFileVar(t, envFile, "IDENTITY_HEADER")
	if len(header) != 43 {
		t.Fatalf("IDENTITY_HEADER in the env file is %d characters, want 43", len(header))
	}
	testcluster.KnownSecret(header)

	// The application: azidentity and azsecrets, configured by the two
	// variables (and the vault's CA and challenge option, as every
	// application here).
	t.Setenv("IDENTITY_ENDPOINT", endpoint)
	t.Setenv("IDENTITY_HEADER", header)
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sc, err := azsecrets.NewClient(vault, cred, &azsecrets.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: c.HTTPClient(), Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := sc.GetSecret(ctx, "billing-db", "", nil)
	if err != nil {
		t.Fatalf("GetSecret with the managed identity: %v", err)
	}
	if got.Value == nil || *got.Value != value {
		t.Fatalf("GetSecret: got %v, want the secret's value", got.Value)
	}
	// The token is the service principal's: its role's scope holds.
	_, err = sc.GetSecret(ctx, "payroll-db", "", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("GetSecret outside the principal's scope: %v, want 403", err)
	}
	// A resource that is not the vault: the vault's 400, passed on.
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err == nil || !strings.Contains(err.Error(), "RESPONSE 400") || !strings.Contains(err.Error(), "the vault refused resource") {
		t.Fatalf("a token for another resource: %v, want the vault's 400", err)
	}
	status, body = miGet(t, endpoint, vault, "wrong")
	if status != http.StatusUnauthorized {
		t.Fatalf("a wrong header: %d %v, want 401", status, body)
	}
	status, body = miGet(t, endpoint, vault, header)
	if status != http.StatusOK || body["access_token"] == "" || body["token_type"] != "Bearer" || body["resource"] != vault {
		t.Fatalf("a plain request with the header: %d, token_type %q, resource %q", status, body["token_type"], body["resource"])
	}
	testcluster.KnownSecret(body["access_token"])

	// Restarted, the agent keeps the env file's secret: applications
	// need not restart.
	ag.kill()
	logs := ag.log.String()
	ag = startAgent(t, agentBin, cfg)
	waitUntil(t, 30*time.Second, "the restarted agent answers the same header", func() (bool, string) {
		resp, err := http.Get(endpoint)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return true, resp.Status
	})
	if again := envFileVar(t, envFile, "IDENTITY_HEADER"); again != header {
		t.Fatal("the env file has a new secret after a restart")
	}
	if status, _ := miGet(t, endpoint, vault, header); status != http.StatusOK {
		t.Fatalf("the same header after a restart: %d, want 200", status)
	}

	// A reload serves a new identity (the agent's own, for another
	// user) and puts back a deleted env file with the same secret.
	ownFile := filepath.Join(dir, "run", "identity", "own.env")
	ownUser := "root"
	if appUser == "root" {
		ownUser = "1"
	}
	data += fmt.Sprintf("    - {user: %q, env_file: %s}\n", ownUser, ownFile)
	if err := os.WriteFile(cfg, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(envFile); err != nil {
		t.Fatal(err)
	}
	if err := ag.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the new identity's env file and the deleted one back", func() (bool, string) {
		_, err1 := os.Stat(ownFile)
		_, err2 := os.Stat(envFile)
		return err1 == nil && err2 == nil, fmt.Sprint(err1, err2)
	})
	if again := envFileVar(t, envFile, "IDENTITY_HEADER"); again != header {
		t.Fatal("the deleted env file came back with another secret")
	}
	own := envFileVar(t, ownFile, "IDENTITY_HEADER")
	testcluster.KnownSecret(own)
	status, ownBody := miGet(t, endpoint, vault, own)
	if status != http.StatusOK || ownBody["access_token"] == "" || ownBody["access_token"] == body["access_token"] {
		t.Fatalf("the agent's own identity: %d, want 200 and another token than billing's", status)
	}
	testcluster.KnownSecret(ownBody["access_token"])

	logs += ag.log.String()
	for _, s := range []string{header, body["access_token"], value, own, ownBody["access_token"]} {
		if strings.Contains(logs, s) {
			t.Fatal("the agent's log holds a secret")
		}
	}
	if !strings.Contains(logs, "managed identity endpoint serving") {
		t.Errorf("the agent's log does not say the endpoint is serving:\n%s", logs)
	}
}
