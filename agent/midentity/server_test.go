package midentity

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/certvault/certvault/agent/vaultclient"
)

// testServer is a Server with identities, serving on loopback TCP and
// on a Unix socket.
type testServer struct {
	*Server
	src      *fakeSource
	clk      *clock
	endpoint string // http://127.0.0.1:PORT/msi/token
	socket   string
	// secrets by user name.
	secrets map[string]string
}

// startServer serves ids (whose EnvFile is set here) until the test
// ends.
func startServer(t *testing.T, ids ...Identity) *testServer {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	ts := &testServer{src: &fakeSource{}, clk: newClock(), secrets: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	ts.Server = New(ctx, Options{Source: ts.src, Logger: quiet(), Now: ts.clk.Now})
	for i := range ids {
		ids[i].EnvFile = filepath.Join(dir, "identity", ids[i].User+".env")
	}
	if err := ts.SetIdentities(ids); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		s, err := readEnvFile(id.EnvFile, id.UID)
		if err != nil {
			t.Fatalf("env file of %s: %v", id.User, err)
		}
		ts.secrets[id.User] = s
	}
	tl, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.socket = filepath.Join(dir, "run", "identity.sock")
	ul, err := ListenUnix(ts.socket)
	if err != nil {
		t.Fatal(err)
	}
	ts.endpoint = "http://" + tl.Addr().String() + Path
	done := make(chan error, 1)
	go func() { done <- ts.Serve(ctx, tl, ul) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context was done")
		}
	})
	return ts
}

// answer is a decoded answer of the endpoint.
type answer struct {
	status int
	header http.Header
	body   map[string]string
}

// get sends GET endpoint?query with the header (none when "") through
// hc, or over TCP when hc is nil.
func (ts *testServer) get(t *testing.T, hc *http.Client, query, header string) answer {
	t.Helper()
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequest(http.MethodGet, ts.endpoint+"?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set(HeaderName, header)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: map[string]string{}}
	if err := json.Unmarshal(data, &a.body); err != nil {
		t.Fatalf("answer %d is not a JSON object of strings: %q", resp.StatusCode, data)
	}
	return a
}

// unixClient is an HTTP client whose connections go to the socket.
func (ts *testServer) unixClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", ts.socket)
		},
	}}
}

// query is a valid query for the vault's URL.
var query = "api-version=2019-08-01&resource=" + url.QueryEscape(vaultURL)

func TestServeToken(t *testing.T) {
	ts := startServer(t,
		Identity{User: "root", UID: 0, ServicePrincipal: "billing", ClientID: "c0ffee"},
		Identity{User: "app", UID: 4242})
	a := ts.get(t, nil, query, ts.secrets["root"])
	if a.status != 200 || a.body["access_token"] != "tok-1" || a.body["token_type"] != "Bearer" ||
		a.body["resource"] != vaultURL || a.body["client_id"] != "c0ffee" {
		t.Fatalf("got %d %v", a.status, a.body)
	}
	if want := strconv.FormatInt(ts.clk.Now().Add(time.Hour).Unix(), 10); a.body["expires_on"] != want {
		t.Fatalf("expires_on %q, want %q (a string of Unix seconds, as App Service writes it)", a.body["expires_on"], want)
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", a.header.Get("Cache-Control"))
	}
	// The other header is the other identity: the agent's own.
	if a := ts.get(t, nil, query, ts.secrets["app"]); a.status != 200 || a.body["access_token"] != "tok-2" || a.body["client_id"] != "" {
		t.Fatalf("the agent's own identity: got %d %v", a.status, a.body)
	}
	if ts.src.calls[0] != (asked{"billing", vaultURL}) || ts.src.calls[1] != (asked{"", vaultURL}) {
		t.Fatalf("the vault was asked %v", ts.src.calls)
	}
	// A scope, as some libraries send, is the resource.
	if a := ts.get(t, nil, "api-version=2019-08-01&scope="+url.QueryEscape(vaultURL+"/.default"), ts.secrets["root"]); a.status != 200 || a.body["access_token"] != "tok-1" {
		t.Fatalf("by scope: got %d %v", a.status, a.body)
	}
	// A user-assigned identity named by client id or service principal.
	for _, sel := range []string{"client_id=C0FFEE", "object_id=billing", "mi_res_id=sp:billing", "principal_id=c0ffee"} {
		if a := ts.get(t, nil, query+"&"+sel, ts.secrets["root"]); a.status != 200 {
			t.Errorf("%s: got %d %v", sel, a.status, a.body)
		}
	}
}

func TestServeRefusals(t *testing.T) {
	ts := startServer(t,
		Identity{User: "root", UID: 0, ServicePrincipal: "billing"},
		Identity{User: "app", UID: 4242})
	root := ts.secrets["root"]
	for _, tc := range []struct {
		name, path, query, header string
		status                    int
		code, want                string
	}{
		{"no header", Path, query, "", 401, "unauthorized_client", "the X-IDENTITY-HEADER header is missing"},
		{"wrong header", Path, query, "not-the-secret", 401, "unauthorized_client", "matches no identity of this agent"},
		{"no api-version", Path, "resource=x", root, 400, "invalid_request", "api-version is missing"},
		{"IMDS api-version", Path, "api-version=2018-02-01&resource=x", root, 400, "invalid_request", `api-version "2018-02-01" is not served: use 2019-08-01`},
		{"no resource", Path, "api-version=2019-08-01", root, 400, "invalid_request", "resource is missing"},
		{"another identity", Path, query + "&client_id=someone-else", root, 400, "invalid_request",
			`client_id "someone-else" is not the identity of this header (user root's identity, service principal billing): configure the credential without a user-assigned identity, or with "billing" or "sp:billing"`},
		{"a client id for the agent's own", Path, query + "&client_id=x", ts.secrets["app"], 400, "invalid_request", "or with a client_id set on the identity in the agent's configuration"},
		{"another path", "/metadata/identity/oauth2/token", query, root, 404, "invalid_request", "IDENTITY_ENDPOINT is http://ADDRESS/msi/token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := ts.endpoint
			ts.endpoint = strings.TrimSuffix(ts.endpoint, Path) + tc.path
			defer func() { ts.endpoint = saved }()
			a := ts.get(t, nil, tc.query, tc.header)
			if a.status != tc.status || a.body["error"] != tc.code || !strings.Contains(a.body["error_description"], tc.want) {
				t.Fatalf("got %d %v, want %d %s saying %q", a.status, a.body, tc.status, tc.code, tc.want)
			}
			for _, s := range ts.secrets {
				if strings.Contains(a.body["error_description"], s) {
					t.Fatal("a refusal holds a secret")
				}
			}
		})
	}
	if ts.src.count() != 0 {
		t.Fatalf("refused requests asked the vault %d times", ts.src.count())
	}
	// POST is refused.
	resp, err := http.Post(ts.endpoint+"?"+query, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("POST: got %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestServeVaultRefusals(t *testing.T) {
	ts := startServer(t, Identity{User: "root", UID: 0, ServicePrincipal: "billing"})
	for i, tc := range []struct {
		name       string
		err        error
		status     int
		code, want string
		retryAfter string
	}{
		{"not the vault", &vaultclient.Error{Status: 400, Code: "BadParameter", Message: "resource is not this vault"}, 400, "invalid_resource", `the vault refused resource "https://vault.example:8443": resource is not this vault`, ""},
		{"not allowed", &vaultclient.Error{Status: 403, Code: "Forbidden", Message: "agent may not act as sp:billing"}, 403, "unauthorized_client", "the vault does not let this agent get tokens for service principal billing: agent may not act as sp:billing", ""},
		{"no such principal", &vaultclient.Error{Status: 404, Code: "NotFound", Message: "no service principal billing"}, 400, "invalid_request", "fix service_principal in the agent's configuration", ""},
		{"vault busy", &vaultclient.Error{Status: 503, Code: "ServiceUnavailable", Message: "no leader", RetryAfter: 3 * time.Second}, 503, "temporarily_unavailable", "the vault is not answering tokens now (503: no leader)", "3"},
		{"vault refuses the agent", &vaultclient.Error{Status: 401, Code: "Unauthorized", Message: "revoked"}, 502, "temporarily_unavailable", "the vault refused the agent (401 Unauthorized: revoked)", ""},
		{"vault unreachable", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, 503, "temporarily_unavailable", "the agent cannot reach the vault: dial tcp: connection refused", "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts.src.setFail(tc.err)
			ts.clk.Add(DefaultFailureHold) // past the previous case's hold
			a := ts.get(t, nil, query, ts.secrets["root"])
			if a.status != tc.status || a.body["error"] != tc.code || !strings.Contains(a.body["error_description"], tc.want) {
				t.Fatalf("got %d %v, want %d %s saying %q", a.status, a.body, tc.status, tc.code, tc.want)
			}
			if got := a.header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			if ts.src.count() != i+1 {
				t.Errorf("%d vault calls, want %d", ts.src.count(), i+1)
			}
		})
	}
}

// TestServeUnixSocket: on the socket the caller's uid must be the
// identity's user. The test runs as root: the identity mapped to root is
// answered, the one mapped to another user is refused with its header.
func TestServeUnixSocket(t *testing.T) {
	ts := startServer(t,
		Identity{User: "root", UID: 0, ServicePrincipal: "billing"},
		Identity{User: "app", UID: 4242})
	uc := ts.unixClient()
	if a := ts.get(t, uc, query, ts.secrets["root"]); a.status != 200 || a.body["access_token"] != "tok-1" {
		t.Fatalf("root's identity, called by root: got %d %v", a.status, a.body)
	}
	a := ts.get(t, uc, query, ts.secrets["app"])
	if want := "the identity of this header is for user app (uid 4242), and the caller runs as uid 0: run the application as app"; a.status != 403 || a.body["error_description"] != want {
		t.Fatalf("app's identity, called by root: got %d %v, want 403 %q", a.status, a.body, want)
	}
	if a := ts.get(t, uc, query, ""); a.status != 401 {
		t.Fatalf("no header on the socket: got %d %v, want 401", a.status, a.body)
	}
	// Over TCP the uid is not known: the header alone decides.
	if a := ts.get(t, nil, query, ts.secrets["app"]); a.status != 200 {
		t.Fatalf("app's identity over TCP: got %d %v", a.status, a.body)
	}
	fi, err := os.Lstat(ts.socket)
	if err != nil || fi.Mode().Perm() != 0o666 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket: %v %v, want a socket with mode 0666", fi, err)
	}
}

func TestListen(t *testing.T) {
	if _, err := ListenTCP("0.0.0.0:0"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("ListenTCP on every address: got %v, want ErrNotLoopback", err)
	}
	if _, err := ListenTCP("localhost:0"); err == nil {
		t.Error("ListenTCP on a name was accepted")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "id.sock")
	inUse, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	// A socket in use is not taken over.
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := inUse.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := ListenUnix(sock); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("a socket in use: got %v, want ErrSocketInUse", err)
	}
	if err := inUse.Close(); err != nil {
		t.Fatal(err)
	}
	<-accepted
	// A stale socket (its listener gone without removing it) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	if err := stale.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A file is not removed.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(file); err == nil || !strings.Contains(err.Error(), "something else is there") {
		t.Errorf("over a file: got %v", err)
	}
}

// TestAzidentity: azidentity's ManagedIdentityCredential, configured
// only through IDENTITY_ENDPOINT and IDENTITY_HEADER, takes the
// endpoint's answers: a token (its expiry from expires_on), and a
// refusal it reports with the endpoint's description.
func TestAzidentity(t *testing.T) {
	ts := startServer(t, Identity{User: "root", UID: 0, ServicePrincipal: "billing"})
	t.Setenv("IDENTITY_ENDPOINT", ts.endpoint)
	t.Setenv("IDENTITY_HEADER", ts.secrets["root"])
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// MSAL caches tokens per process by resource: this test's resource
	// is its own.
	const res = "https://azidentity-unit.example:8443"
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{res + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Token != "tok-1" || !tok.ExpiresOn.Equal(ts.clk.Now().Add(time.Hour)) {
		t.Fatalf("got %q expiring %v, want tok-1 expiring %v", tok.Token, tok.ExpiresOn, ts.clk.Now().Add(time.Hour))
	}
	if ts.src.calls[0] != (asked{"billing", res}) {
		t.Fatalf("the vault was asked %v, want the resource without /.default", ts.src.calls)
	}
	ts.src.setFail(&vaultclient.Error{Status: 400, Message: "resource is not this vault"})
	_, err = cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com/.default"}})
	if err == nil || !strings.Contains(err.Error(), "the vault refused resource") || !strings.Contains(err.Error(), "RESPONSE 400") {
		t.Fatalf("a resource that is not the vault: got %v", err)
	}
}
