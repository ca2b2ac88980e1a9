package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/testcluster"
)

// cliAs runs the CLI against node n with token tok.
func cliAs(t *testing.T, c *testcluster.Cluster, n *testcluster.Node, tok string, args ...string) (string, string, int) {
	t.Helper()
	return c.CLIAt(n, append([]string{"--token", tok}, args...)...)
}

// mustCLI runs the CLI as root and fails the test on a non-zero exit.
func mustCLI(t *testing.T, c *testcluster.Cluster, args ...string) string {
	t.Helper()
	out, errOut, code := c.CLI(args...)
	if code != 0 {
		t.Fatalf("certvault %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// createToken makes a token with the CLI and returns it.
func createToken(t *testing.T, c *testcluster.Cluster, args ...string) (tok, id string) {
	t.Helper()
	out := mustCLI(t, c, append([]string{"token", "create", "-o", "json"}, args...)...)
	var res struct{ Token, ID string }
	if err := json.Unmarshal([]byte(out), &res); err != nil || !strings.HasPrefix(res.Token, "cvt.") {
		t.Fatalf("token create -o json: %q (%v)", out, err)
	}
	testcluster.KnownSecret(res.Token)
	return res.Token, res.ID
}

func clientFor(t *testing.T, c *testcluster.Cluster, n *testcluster.Node, tok string) *client.Client {
	t.Helper()
	cl, err := client.New(client.Config{Addr: n.URL(), Token: tok, CACert: c.CACert, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// status sends a request and returns its status code.
func status(t *testing.T, cl *client.Client, method, path string, body any) int {
	t.Helper()
	resp, err := cl.DoResponse(context.Background(), method, path, body, nil)
	if resp == nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode
}

// TestSeparationOfDuty is the acceptance scenario: a Certificates
// Officer creates certificates under its prefix but gets 403 on the
// private key (/secrets/NAME) and on issuer reads, while a Secrets User
// and a Certificate User scoped to the certificate read the secret.
func TestSeparationOfDuty(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	secretValue := "s3cret-value-that-must-stay-out-of-logs"
	testcluster.KnownSecret(secretValue)
	root := c.Client(n)
	if code := status(t, root, http.MethodPut, "/secrets/db?api-version=7.6", map[string]any{"value": secretValue}); code != 200 {
		t.Fatalf("set secret: %d", code)
	}
	mustCLI(t, c, "issuer", "set", "ca-team-issuer", "--provider", "internal", "--ca-subject", "CN=Team CA")

	officer, _ := createToken(t, c, "--name", "app-team", "--ttl", "1h", "--role", "Certificates Officer", "--scope", "/certificates/web-")
	secretsUser, _ := createToken(t, c, "--name", "db-app", "--role", "Secrets User", "--scope", "/secrets/db")
	certUser, _ := createToken(t, c, "--name", "web-server", "--role", "certificate-user", "--scope", "/certificates/web-1")
	co, su, cu := clientFor(t, c, n, officer), clientFor(t, c, n, secretsUser), clientFor(t, c, n, certUser)

	policy := map[string]any{"policy": map[string]any{"issuer": map[string]any{"name": "ca-team-issuer"}, "x509_props": map[string]any{"subject": "CN=web-1.example.com"}}}
	if code := status(t, co, http.MethodPost, "/certificates/web-1/create?api-version=7.6", policy); code != http.StatusAccepted {
		t.Fatalf("officer creates web-1 naming the issuer: got %d, want 202", code)
	}
	waitFor(t, 30*time.Second, "web-1 issued", func() bool {
		return status(t, co, http.MethodGet, "/certificates/web-1?api-version=7.6", nil) == 200
	})
	for _, tc := range []struct {
		who          string
		cl           *client.Client
		method, path string
		want         int
	}{
		{"officer outside its prefix", co, "POST", "/certificates/www/create", http.StatusForbidden},
		{"officer reads its certificate", co, "GET", "/certificates/web-1", 200},
		{"officer reads the private key", co, "GET", "/secrets/web-1", http.StatusForbidden},
		{"officer reads a secret", co, "GET", "/secrets/db", http.StatusForbidden},
		{"officer reads the issuer", co, "GET", "/certificates/issuers/ca-team-issuer", http.StatusForbidden},
		{"officer lists issuers", co, "GET", "/certificates/issuers", http.StatusForbidden},
		{"officer changes the issuer", co, "PUT", "/certificates/issuers/ca-team-issuer", http.StatusForbidden},
		{"officer signs with the key", co, "POST", "/keys/web-1/sign", http.StatusForbidden},
		{"secrets user reads the secret", su, "GET", "/secrets/db", 200},
		{"secrets user reads another secret", su, "GET", "/secrets/web-1", http.StatusForbidden},
		{"certificate user reads its private key", cu, "GET", "/secrets/web-1", 200},
		{"certificate user reads another secret", cu, "GET", "/secrets/db", http.StatusForbidden},
		{"certificate user changes the certificate", cu, "PATCH", "/certificates/web-1", http.StatusForbidden},
	} {
		var body any
		if tc.method != "GET" {
			body = map[string]any{}
		}
		if got := status(t, tc.cl, tc.method, tc.path+"?api-version=7.6", body); got != tc.want {
			t.Errorf("%s: %s %s = %d, want %d", tc.who, tc.method, tc.path, got, tc.want)
		}
	}
	// The denial says what is missing.
	_, errOut, code := cliAs(t, c, n, officer, "secret", "get", "db")
	if code == 0 || !strings.Contains(errOut, "app-team may not secrets/getSecret on /secrets/db") {
		t.Errorf("officer secret get: exit %d, %q", code, errOut)
	}
	// whoami shows the assignment.
	out, _, _ := cliAs(t, c, n, officer, "token", "whoami")
	if !strings.Contains(out, "Certificates Officer") || !strings.Contains(out, "/certificates/web-*") {
		t.Errorf("whoami: %q", out)
	}
}

// TestTokenLifecycle: expiry, revocation honoured on every node, and the
// root token revocable only once another administrator exists.
func TestTokenLifecycle(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	// A short-lived token works until it expires, then is refused. On a
	// loaded machine a 2 s token can expire before its first use: such a
	// token (refused only once its lifetime has passed) is replaced by one
	// that lives longer.
	var cl *client.Client
	for i, ttl := range []time.Duration{2 * time.Second, 5 * time.Second, 15 * time.Second, 45 * time.Second} {
		made := time.Now()
		short, _ := createToken(t, c, "--name", fmt.Sprintf("short-lived-%d", i), "--ttl", ttl.String(), "--role", "Reader", "--scope", "/")
		cl = clientFor(t, c, c.Nodes[1], short)
		got := status(t, cl, "GET", "/v1/auth/self", nil)
		if got == http.StatusOK {
			break
		}
		if got != http.StatusUnauthorized || time.Since(made) < ttl {
			t.Fatalf("token with --ttl %s used %s after it was made: %d, want 200", ttl, time.Since(made).Round(time.Millisecond), got)
		}
		if i == 3 {
			t.Fatalf("a %s token expired before its first use: the machine is too slow for this test", ttl)
		}
	}
	waitFor(t, 60*time.Second, "short-lived token refused", func() bool {
		return status(t, cl, "GET", "/v1/auth/self", nil) == http.StatusUnauthorized
	})

	tok, id := createToken(t, c, "--name", "ops", "--role", "Reader", "--scope", "/")
	for _, n := range c.Nodes {
		if got := status(t, clientFor(t, c, n, tok), "GET", "/v1/sys/cluster/status", nil); got != 200 {
			t.Fatalf("token on %s before revocation: %d", n.ID, got)
		}
	}
	mustCLI(t, c, "token", "revoke", id)
	for _, n := range c.Nodes {
		n := n
		waitFor(t, 30*time.Second, "revoked token refused on "+n.ID, func() bool {
			return status(t, clientFor(t, c, n, tok), "GET", "/v1/sys/cluster/status", nil) == http.StatusUnauthorized
		})
	}
	if out := mustCLI(t, c, "token", "list"); !strings.Contains(out, "short-lived") || !strings.Contains(out, "expired") || strings.Contains(out, id) {
		t.Errorf("token list: %q", out)
	}

	// Root cannot go before another administrator exists.
	_, errOut, code := c.CLI("token", "revoke", "root")
	if code == 0 || !strings.Contains(errOut, "no principal with a valid token and Administrator") {
		t.Fatalf("revoke root alone: exit %d %q", code, errOut)
	}
	admin, adminID := createToken(t, c, "--name", "alice", "--role", "Administrator", "--scope", "/")
	mustCLI(t, c, "token", "revoke", "root")
	if got := status(t, c.Client(c.Nodes[0]), "GET", "/v1/auth/self", nil); got != http.StatusUnauthorized {
		t.Fatalf("root token after revocation: %d", got)
	}
	// alice is now the last administrator: her token stays.
	_, errOut, code = cliAs(t, c, c.Nodes[0], admin, "token", "revoke", adminID)
	if code == 0 || !strings.Contains(errOut, "LastAdministrator") {
		t.Fatalf("revoke the last administrator: exit %d %q", code, errOut)
	}
	out, _, _ := cliAs(t, c, c.Nodes[0], admin, "role", "assignments", "-o", "json")
	var as struct {
		Value []struct{ ID, Assignee string }
	}
	if err := json.Unmarshal([]byte(out), &as); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, out)
	}
	for _, a := range as.Value {
		if a.Assignee == "alice" {
			if _, errOut, code := cliAs(t, c, c.Nodes[0], admin, "role", "revoke", a.ID); code == 0 || !strings.Contains(errOut, "LastAdministrator") {
				t.Fatalf("unassign the last administrator: exit %d %q", code, errOut)
			}
		}
	}
	// Bad input says what to fix.
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"token", "create", "--name", "x", "--role", "Owner", "--scope", "/"}, "use one of Administrator"},
		{[]string{"token", "create", "--name", "x", "--role", "Reader", "--scope", "/vaults/x"}, "first segment must be one of"},
		{[]string{"token", "create", "--name", "root"}, "reserved"},
		{[]string{"token", "create", "--name", "x", "--ttl", "soon"}, "90m, 12h or 30d"},
		{[]string{"role", "assign", "Reader", "--to", "agent:1", "--scope", "/"}, "through their group"},
	} {
		if _, errOut, code := cliAs(t, c, c.Nodes[0], admin, tc.args...); code == 0 || !strings.Contains(errOut, tc.msg) {
			t.Errorf("certvault %s: exit %d %q, want %q", strings.Join(tc.args, " "), code, errOut, tc.msg)
		}
	}
}

// waitFor polls cond until it holds or d passes; then it fails naming
// what. A deadline only matters when the test fails: make it generous
// (30 s or more) so that a loaded machine does not fail it.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	waitUntil(t, d, what, func() (bool, string) { return cond(), "not yet" })
}

// waitUntil is waitFor for a cond that also says what it saw; a failure
// names what was waited for and what cond saw last.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() (ok bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: last saw %s", d, what, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
