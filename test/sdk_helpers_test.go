package test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/certvault/certvault/test/testcluster"
)

// sdkCredential is an azcore.TokenCredential that hands out the
// cluster's root token and records the scopes it was asked for.
type sdkCredential struct {
	Token string

	mu     sync.Mutex
	scopes []string
}

// GetToken implements azcore.TokenCredential.
func (c *sdkCredential) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	c.scopes = append(c.scopes, opts.Scopes...)
	c.mu.Unlock()
	return azcore.AccessToken{Token: c.Token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Scopes returns every scope requested so far.
func (c *sdkCredential) Scopes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.scopes...)
}

// sdkRecordingTransport sends requests with an *http.Client that trusts the
// cluster CA and keeps a copy of every response body, so a test can assert
// that something (a password) never crossed the wire.
type sdkRecordingTransport struct {
	hc *http.Client

	mu     sync.Mutex
	bodies bytes.Buffer
}

// Do implements policy.Transporter.
func (rt *sdkRecordingTransport) Do(req *http.Request) (*http.Response, error) {
	resp, err := rt.hc.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	rt.bodies.Write(body)
	rt.bodies.WriteByte('\n')
	rt.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// Seen reports whether s appeared in any response body so far.
func (rt *sdkRecordingTransport) Seen(s string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return strings.Contains(rt.bodies.String(), s)
}

// sdkMaxResultsPolicy adds maxresults to the first request of a list (the
// Go SDKs no longer expose MaxResults); the server's nextLink carries it on.
type sdkMaxResultsPolicy struct{ n string }

// Do implements policy.Policy.
func (p sdkMaxResultsPolicy) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	if raw.Method == http.MethodGet && sdkIsListPath(raw.URL.Path) {
		q := raw.URL.Query()
		if q.Get("maxresults") == "" && q.Get("$skiptoken") == "" {
			q.Set("maxresults", p.n)
			raw.URL.RawQuery = q.Encode()
		}
	}
	return req.Next()
}

func sdkIsListPath(path string) bool {
	switch strings.Trim(path, "/") {
	case "secrets", "certificates", "deletedsecrets", "deletedcertificates", "certificates/issuers":
		return true
	}
	return strings.HasSuffix(path, "/versions")
}

// sdkEnv is a running single-node vault with SDK clients pointed at it.
type sdkEnv struct {
	cluster *testcluster.Cluster
	url     string
	cred    *sdkCredential
	wire    *sdkRecordingTransport
	certs   *azcertificates.Client
	secrets *azsecrets.Client
}

func newSDKEnv(t *testing.T) *sdkEnv {
	t.Helper()
	c := testcluster.Start(t, 1, testcluster.Options{})
	env := &sdkEnv{
		cluster: c,
		url:     c.Nodes[0].URL(),
		cred:    &sdkCredential{Token: c.Token},
		wire:    &sdkRecordingTransport{hc: c.HTTPClient()},
	}
	env.certs, env.secrets = env.clients(t, env.cred)
	return env
}

// clients returns new SDK clients (each with its own challenge state)
// that authenticate with cred.
func (env *sdkEnv) clients(t *testing.T, cred azcore.TokenCredential) (*azcertificates.Client, *azsecrets.Client) {
	t.Helper()
	opts := azcore.ClientOptions{
		Transport:       env.wire,
		PerCallPolicies: []policy.Policy{sdkMaxResultsPolicy{n: "5"}},
		// A failure must surface, not be retried into a slow test.
		Retry: policy.RetryOptions{MaxRetries: -1},
	}
	cc, err := azcertificates.NewClient(env.url, cred, &azcertificates.ClientOptions{ClientOptions: opts, DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatalf("azcertificates.NewClient: %v", err)
	}
	sc, err := azsecrets.NewClient(env.url, cred, &azsecrets.ClientOptions{ClientOptions: opts, DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatalf("azsecrets.NewClient: %v", err)
	}
	return cc, sc
}

// sdkCtx is a context for one subtest's SDK calls.
func sdkCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sdkWantStatus fails unless err is an *azcore.ResponseError with the
// given status (and, when code is not empty, error code).
func sdkWantStatus(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want HTTP %d", what, status)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("%s: got %T %v, want *azcore.ResponseError", what, err, err)
	}
	if re.StatusCode != status {
		t.Fatalf("%s: got HTTP %d (%s), want %d", what, re.StatusCode, re.ErrorCode, status)
	}
	if code != "" && re.ErrorCode != code {
		t.Fatalf("%s: got error code %q, want %q", what, re.ErrorCode, code)
	}
}

// sdkWaitOperation polls a certificate's pending operation until it is no
// longer inProgress.
func sdkWaitOperation(ctx context.Context, t *testing.T, cl *azcertificates.Client, name string) azcertificates.CertificateOperation {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := cl.GetCertificateOperation(ctx, name, nil)
		if err != nil {
			t.Fatalf("GetCertificateOperation(%s): %v", name, err)
		}
		if resp.Status == nil {
			t.Fatalf("GetCertificateOperation(%s): no status", name)
		}
		if *resp.Status != "inProgress" {
			return resp.CertificateOperation
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation of %s still inProgress after 30s", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sdkCA is a CA made by the test to sign CSRs and to issue imported
// certificates.
type sdkCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newSDKCA(t *testing.T) *sdkCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "certvault SDK test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &sdkCA{cert: cert, key: key}
}

// sign issues a leaf for pub with the CSR's (or the given) names.
func (ca *sdkCA) sign(t *testing.T, subject pkix.Name, dns []string, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		DNSNames:     dns,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(12 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// sdkSamePublicKey compares two public keys.
func sdkSamePublicKey(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// sdkPublicOf returns the public key of a private key.
func sdkPublicOf(t *testing.T, key any) crypto.PublicKey {
	t.Helper()
	s, ok := key.(crypto.Signer)
	if !ok {
		t.Fatalf("got private key %T, want a crypto.Signer", key)
	}
	return s.Public()
}

// sdkSerial returns a random 64-bit certificate serial.
func sdkSerial(t *testing.T) *big.Int {
	t.Helper()
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
