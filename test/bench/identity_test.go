//go:build bench

package bench

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// Issue 18 (Azure identity): the vault's token endpoint, the
// client-credentials grant of docs/azure-identity.md, with a service
// principal's client secret and with a client assertion; then what a
// secret GET costs with the access token it issues against a certvault
// token (cvt.…) of the same role, on the same node in the same run.

// Result kinds of the identity group.
const (
	// kindToken rows count POST /{tenant}/oauth2/v2.0/token answered 200
	// with a bearer access token.
	kindToken = "token"
	// kindIdentityRead rows count GET /secrets/bench-x answered 200 with
	// the value; the benchmark name says which token the clients sent.
	kindIdentityRead = "identity-read"
)

// Benchmark and group names of the identity group, as the table shows
// them, and what it sets up.
const (
	benchTokenSecret = "token-secret"
	benchTokenAssert = "token-assertion"
	benchGetJWT      = "get-jwt"
	benchGetCVT      = "get-cvt"
	groupIdentity    = "identity"
	targetToken      = "the single node: POST /{tenant}/oauth2/v2.0/token, grant_type client_credentials, scope https://HOST/.default"
	targetGetJWT     = "the single node: GET /secrets/bench-x with the access token of the token endpoint (client secret flow)"
	targetGetCVT     = "the single node: GET /secrets/bench-x with a cvt token of the service principal's role and scope"
	// identityRole and identityScope are the role both principals hold
	// (the service principals and the cvt token's), identitySecret the
	// secret under that scope every GET reads.
	identityRole   = "Secrets User"
	identityScope  = "/secrets/bench-"
	identitySecret = "bench-x"
	// identityAssertions is how many client assertions each assertion run
	// makes beforehand; client i sends number i mod identityAssertions in
	// every request of the run.
	identityAssertions = 16
	// identityMeasure and identityWarmup bound the group's rows, so that
	// its twelve rows (at the default three client counts) take well
	// under a minute; CERTVAULT_BENCH_SECONDS and _WARMUP lower them.
	identityMeasure = 2 * time.Second
	identityWarmup  = 500 * time.Millisecond
)

// identityTimes returns the warm-up and measured time of each row of the
// identity group under cfg.
func identityTimes(cfg config) (warmup, measure time.Duration) {
	return min(cfg.warmup(), identityWarmup), min(cfg.measure(), identityMeasure)
}

// isIdentityKind reports whether rows of kind belong to the identity group.
func isIdentityKind(kind string) bool { return kind == kindToken || kind == kindIdentityRead }

// identityBench is one node with two service principals holding
// identityRole at identityScope, one with a client secret and one with a
// registered certificate, and a cvt token with the same role.
type identityBench struct {
	*apiBench
	// tokenURL is the token endpoint, also every assertion's audience;
	// scope the scope every token request asks for.
	tokenURL, scope string
	// secretID and secret are the client-secret principal's credentials.
	secretID, secret string
	// certID is the certificate principal's client id, certKey the key
	// of its certificate, certS256 the x5t#S256 thumbprint of it.
	certID   string
	certKey  *rsa.PrivateKey
	certS256 string
	// cvt is the certvault token of identityRole at identityScope.
	cvt string
}

// spCreated is the part of `certvault sp create -o json` the group reads.
type spCreated struct {
	TenantID     string `json:"tenant_id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// newIdentityBench starts the node and creates the principals, their
// certificate and the secret the GETs read.
func newIdentityBench(t *testing.T) *identityBench {
	t.Helper()
	a := newAPIBench(t, 1)
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, code := a.cluster.CLI(args...)
		if code != 0 {
			t.Fatalf("certvault %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	sp := func(args ...string) spCreated {
		t.Helper()
		out := cli(append([]string{"sp", "create"}, args...)...)
		var s spCreated
		if err := json.Unmarshal([]byte(out), &s); err != nil || s.TenantID == "" || s.ClientID == "" {
			t.Fatalf("sp create %s: answer %q (%v), want a tenant and a client id", args[0], out, err)
		}
		return s
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench-assertion"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(t.TempDir(), "bench-assertion.crt")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	s256 := sha256.Sum256(der)

	withSecret := sp("bench-secret", "--role", identityRole, "--scope", identityScope, "-o", "json")
	if withSecret.ClientSecret == "" {
		t.Fatal("sp create bench-secret: no client secret in the answer")
	}
	testcluster.KnownSecret(withSecret.ClientSecret)
	withCert := sp("bench-cert", "--role", identityRole, "--scope", identityScope, "--cert-file", certFile, "-o", "json")
	if withCert.TenantID != withSecret.TenantID {
		t.Fatalf("two service principals in two tenants: %s, %s", withSecret.TenantID, withCert.TenantID)
	}
	var tok struct{ Token string }
	out := cli("token", "create", "--name", "bench-cvt", "--role", identityRole, "--scope", identityScope, "-o", "json")
	if err := json.Unmarshal([]byte(out), &tok); err != nil || !strings.HasPrefix(tok.Token, "cvt.") {
		t.Fatalf("token create -o json: %q (%v), want a cvt token", out, err)
	}
	testcluster.KnownSecret(tok.Token)
	cli("secret", "set", identitySecret, "--value", benchValue)

	u := a.cluster.Nodes[0].URL()
	return &identityBench{apiBench: a,
		tokenURL: u + "/" + withSecret.TenantID + "/oauth2/v2.0/token", scope: u + "/.default",
		secretID: withSecret.ClientID, secret: withSecret.ClientSecret,
		certID: withCert.ClientID, certKey: key, certS256: base64.RawURLEncoding.EncodeToString(s256[:]),
		cvt: tok.Token}
}

// secretForm is the body of a token request with the client secret.
func (ib *identityBench) secretForm() []byte {
	return []byte(url.Values{"grant_type": {"client_credentials"}, "client_id": {ib.secretID},
		"client_secret": {ib.secret}, "scope": {ib.scope}}.Encode())
}

// assertionForms returns n bodies of token requests with a client
// assertion each, made at now: a JWT signed PS256 with the certificate's
// key, naming the certificate by x5t#S256, iss and sub the client id, aud
// the token endpoint, valid from now for ten minutes, each with its own
// jti.
func (ib *identityBench) assertionForms(n int, now time.Time) ([][]byte, error) {
	head, err := json.Marshal(map[string]string{"alg": "PS256", "typ": "JWT", "x5t#S256": ib.certS256})
	if err != nil {
		return nil, fmt.Errorf("make assertion: %w", err)
	}
	forms := make([][]byte, n)
	for i := range forms {
		jti := make([]byte, 16)
		if _, err := rand.Read(jti); err != nil {
			return nil, fmt.Errorf("make assertion: %w", err)
		}
		claims, err := json.Marshal(map[string]any{"iss": ib.certID, "sub": ib.certID, "aud": ib.tokenURL,
			"exp": now.Add(10 * time.Minute).Unix(), "nbf": now.Unix(), "iat": now.Unix(), "jti": hex.EncodeToString(jti)})
		if err != nil {
			return nil, fmt.Errorf("make assertion: %w", err)
		}
		input := base64.RawURLEncoding.EncodeToString(head) + "." + base64.RawURLEncoding.EncodeToString(claims)
		sum := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPSS(rand.Reader, ib.certKey, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			return nil, fmt.Errorf("sign assertion: %w", err)
		}
		forms[i] = []byte(url.Values{"grant_type": {"client_credentials"}, "client_id": {ib.certID},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {input + "." + base64.RawURLEncoding.EncodeToString(sig)},
			"scope":                 {ib.scope}}.Encode())
	}
	return forms, nil
}

// tokenAnswer is the part of the token endpoint's answer the group reads.
type tokenAnswer struct {
	TokenType   string `json:"token_type"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// postToken posts form to the token endpoint and returns the access
// token of a 200 bearer answer, or "" and an error class.
func (ib *identityBench) postToken(hc *http.Client, form []byte, b *bytes.Buffer) (string, string) {
	req, err := http.NewRequest(http.MethodPost, ib.tokenURL, bytes.NewReader(form))
	if err != nil {
		return "", "request"
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if class := roundTrip(hc, req, b); class != "" {
		return "", class
	}
	var out tokenAnswer
	if err := json.Unmarshal(b.Bytes(), &out); err != nil {
		return "", "body"
	}
	if out.TokenType != "Bearer" || out.AccessToken == "" || out.ExpiresIn <= 0 {
		return "", "answer"
	}
	return out.AccessToken, ""
}

// tokenLoad returns a load of clients callers, each posting forms[i mod
// len(forms)] to the token endpoint over its own keep-alive HTTPS
// connection; a request counts only when it is answered 200 with a bearer
// token.
func (ib *identityBench) tokenLoad(clients int, forms [][]byte, warmup, measure time.Duration) load {
	hc := ib.httpClient(clients)
	bufs := make([]bytes.Buffer, clients) // caller i touches only bufs[i]
	post := func(i int) string {
		_, class := ib.postToken(hc, forms[i%len(forms)], &bufs[i])
		return class
	}
	return ib.newLoad(hc, clients, post, warmup, measure)
}

// getSecret reads identitySecret with auth and returns "" when it is
// answered 200 with the value, else an error class.
func (ib *identityBench) getSecret(hc *http.Client, auth string, b *bytes.Buffer) string {
	req, err := http.NewRequest(http.MethodGet, ib.cluster.Nodes[0].URL()+"/secrets/"+identitySecret+"?api-version=7.5", nil)
	if err != nil {
		return "request"
	}
	req.Header.Set("Authorization", auth)
	if class := roundTrip(hc, req, b); class != "" {
		return class
	}
	if !bytes.Contains(b.Bytes(), []byte(benchValue)) {
		return "value"
	}
	return ""
}

// secretGetLoad returns a load of clients callers, each reading
// identitySecret with the bearer token tok over its own keep-alive HTTPS
// connection; a read counts only when it is answered 200 with the value.
func (ib *identityBench) secretGetLoad(clients int, tok string, warmup, measure time.Duration) load {
	hc := ib.httpClient(clients)
	bufs := make([]bytes.Buffer, clients) // caller i touches only bufs[i]
	auth := "Bearer " + tok
	get := func(i int) string { return ib.getSecret(hc, auth, &bufs[i]) }
	return ib.newLoad(hc, clients, get, warmup, measure)
}

// check posts form once and reads the secret once with the token it
// gets, so that a group whose every request fails stops before it runs.
func (ib *identityBench) check(form []byte) (string, error) {
	hc := ib.httpClient(1)
	defer hc.CloseIdleConnections()
	var b bytes.Buffer
	tok, class := ib.postToken(hc, form, &b)
	if class != "" {
		return "", fmt.Errorf("token request: %s, answer %.300s", class, b.String())
	}
	if class := ib.getSecret(hc, "Bearer "+tok, &b); class != "" {
		return "", fmt.Errorf("GET %s with the access token: %s, answer %.300s", identitySecret, class, b.String())
	}
	return tok, nil
}

// runIdentity runs the identity group on one node: for each client
// count, token requests with the client secret and then with client
// assertions; then, for each client count, secret GETs with the cvt token
// and then with an access token of the client-secret principal.
func runIdentity(t *testing.T, cfg config, add func(*testing.T, result)) {
	ib := newIdentityBench(t)
	warmup, measure := identityTimes(cfg)
	secretForm := ib.secretForm()
	if _, err := ib.check(secretForm); err != nil {
		t.Fatalf("client secret: %v", err)
	}
	for _, n := range cfg.Clients {
		st, err := ib.tokenLoad(n, [][]byte{secretForm}, warmup, measure).run()
		if err != nil {
			t.Fatal(err)
		}
		add(t, result{Benchmark: benchTokenSecret, Kind: kindToken, Nodes: 1, Clients: n, Target: targetToken, runStats: st})
		// Fresh assertions for every run, so that none comes near its
		// expiry however long the rows take.
		forms, err := ib.assertionForms(identityAssertions, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ib.check(forms[0]); err != nil {
			t.Fatalf("client assertion: %v", err)
		}
		st, err = ib.tokenLoad(n, forms, warmup, measure).run()
		if err != nil {
			t.Fatal(err)
		}
		add(t, result{Benchmark: benchTokenAssert, Kind: kindToken, Nodes: 1, Clients: n, Target: targetToken, runStats: st})
	}
	// A token made now lives an hour, longer than the rows below.
	jwt, err := ib.check(secretForm)
	if err != nil {
		t.Fatalf("client secret: %v", err)
	}
	testcluster.KnownSecret(jwt)
	for _, n := range cfg.Clients {
		for _, g := range []struct{ bench, tok, target string }{{benchGetCVT, ib.cvt, targetGetCVT}, {benchGetJWT, jwt, targetGetJWT}} {
			st, err := ib.secretGetLoad(n, g.tok, warmup, measure).run()
			if err != nil {
				t.Fatal(err)
			}
			add(t, result{Benchmark: g.bench, Kind: kindIdentityRead, Nodes: 1, Clients: n, Names: 1, Target: g.target, runStats: st})
		}
	}
}

// identityRow returns the row of bench at clients, if it was run.
func identityRow(results []result, bench string, clients int) (result, bool) {
	for _, r := range results {
		if r.Benchmark == bench && r.Clients == clients {
			return r, true
		}
	}
	return result{}, false
}

// annotateIdentity sets each get-jwt row's ratio to the get-cvt rate at
// the same client count measured in the same run.
func annotateIdentity(results []result) {
	for i := range results {
		if results[i].Benchmark != benchGetJWT {
			continue
		}
		if c, ok := identityRow(results, benchGetCVT, results[i].Clients); ok && c.WritesPerSec > 0 {
			ratio := results[i].WritesPerSec / c.WritesPerSec
			results[i].RatioToCVT = &ratio
		}
	}
}

// identityTable renders the identity group's rows and, per client count,
// what the access token costs a GET against the cvt token.
func (r *report) identityTable(b *strings.Builder) {
	rows := rowsOfKind(r.Results, isIdentityKind)
	if len(rows) == 0 {
		return
	}
	warmup, measure := identityTimes(r.Config)
	const row = "%-15s %5s %7s %9s %7s %8s %8s %8s %7s %10s %10s %10s %10s\n"
	fmt.Fprintf(b, "\nidentity: token endpoint and secret GETs by token type, %.1f s per run after %.1f s warm-up\n", measure.Seconds(), warmup.Seconds())
	fmt.Fprintf(b, row, "benchmark", "nodes", "clients", "ops/s", "jwt/cvt", "p50 ms", "p99 ms", "max ms", "errors", "vault CPU%", "bench CPU%", "other CPU%", "CPU µs/op")
	for _, res := range rows {
		ratio := "-"
		if res.RatioToCVT != nil {
			ratio = fmt.Sprintf("%.2f", *res.RatioToCVT)
		}
		fmt.Fprintf(b, row, res.Benchmark, fmt.Sprint(res.Nodes), fmt.Sprint(res.Clients), fmt.Sprintf("%.0f", res.WritesPerSec), ratio,
			fmt.Sprintf("%.2f", res.P50ms), fmt.Sprintf("%.2f", res.P99ms), fmt.Sprintf("%.1f", res.Maxms), fmt.Sprint(res.Errors),
			fmt.Sprintf("%.0f", res.ServerCPUPct), fmt.Sprintf("%.0f", res.BenchCPUPct), fmt.Sprintf("%.0f", res.OtherCPUPct), cpuPerOp(res))
	}
	b.WriteString("\ntoken-secret: POST /{tenant}/oauth2/v2.0/token, client_credentials with a service principal's client_secret;\n")
	fmt.Fprintf(b, "token-assertion: the same with a client_assertion (PS256, RSA-2048, x5t#S256, aud the endpoint, 10 min), %d made\n", identityAssertions)
	b.WriteString("     before each run and reused (client i sends number i mod that): the vault's verification is measured, not\n")
	b.WriteString("     the client's signing; the vault keeps no replay record. Only 200 answers with a bearer token count.\n")
	b.WriteString("get-cvt, get-jwt: GET /secrets/bench-x?api-version=7.5 with a cvt token of the principal's role (Secrets User at\n")
	b.WriteString("     /secrets/bench-), or with one access token of the token endpoint, shared by all clients as an SDK caches it;\n")
	b.WriteString("     only 200 answers with the value count. jwt/cvt = get-jwt GETs/s over get-cvt GETs/s at the same client count.\n")
	b.WriteString("All over HTTPS, one keep-alive HTTP/1.1 connection per client, on one node. The token endpoint takes no\n")
	b.WriteString("     credential, so its requests count against --max-unauthenticated-requests (64 by default): more at once get\n")
	b.WriteString("     503 at once, with the connection closed.\n")
	b.WriteString("CPU µs/op: CPU time of the certvaultd process per counted operation.\n\n")
	for _, res := range rows {
		if res.Benchmark != benchGetJWT || res.RatioToCVT == nil {
			continue
		}
		c, _ := identityRow(r.Results, benchGetCVT, res.Clients)
		fmt.Fprintf(b, "%d clients: JWT GETs/s / cvt GETs/s = %s / %s = %.2f; p50 %.2f vs %.2f ms, p99 %.2f vs %.2f ms; vault CPU %s vs %s µs/GET\n",
			res.Clients, fmtFigure(res.WritesPerSec), fmtFigure(c.WritesPerSec), *res.RatioToCVT,
			res.P50ms, c.P50ms, res.P99ms, c.P99ms, cpuPerOp(res), cpuPerOp(c))
	}
}
