package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

const testClientID = "6f1c2b8e-0d6a-4c1e-9f3a-2b7d5e8c1a90"
const testTenant = "9b2e4f10-3c5d-4a7e-8f6b-1d2c3e4f5a6b"

// testHosts is the vault's names in these tests.
func testHosts(h string) bool { return HostName(h) == "vault.example" }

// testSigner is a client's certificate and key.
type testSigner struct {
	key  crypto.Signer
	cert *x509.Certificate
}

func newTestSigner(t testing.TB, ec bool, notAfter time.Time) testSigner {
	t.Helper()
	var key crypto.Signer
	var err error
	if ec {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "app"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return testSigner{key: key, cert: cert}
}

// record is a service principal with s's certificate registered.
func (s testSigner) record(t testing.TB) ServicePrincipalRecord {
	t.Helper()
	pemText := "-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString(s.cert.Raw) + "\n-----END CERTIFICATE-----\n"
	certs, err := parseSPCertificates([]byte(pemText), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return ServicePrincipalRecord{Name: "billing", ClientID: testClientID, Certificates: certs}
}

// assertion signs claims with alg, naming the certificate in header key
// thumbKey (x5t or x5t#S256) in base64 (std, as MSAL Go writes it, or
// url).
func (s testSigner) assertion(t testing.TB, alg, thumbKey string, std bool, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	if std {
		enc = base64.StdEncoding
	}
	var thumb []byte
	if thumbKey == "x5t" {
		sum := sha1.Sum(s.cert.Raw)
		thumb = sum[:]
	} else {
		sum := sha256.Sum256(s.cert.Raw)
		thumb = sum[:]
	}
	head, err := json.Marshal(map[string]string{"alg": alg, "typ": "JWT", thumbKey: enc.EncodeToString(thumb)})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString(head) + "." + base64.RawURLEncoding.EncodeToString(body)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	signAlg := alg
	if _, ec := s.key.(*ecdsa.PrivateKey); ec {
		signAlg = "ES256" // whatever the header says
	}
	switch signAlg {
	case "PS256":
		sig, err = rsa.SignPSS(rand.Reader, s.key.(*rsa.PrivateKey), crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "RS256":
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key.(*rsa.PrivateKey), crypto.SHA256, sum[:])
	case "ES256":
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, s.key.(*ecdsa.PrivateKey), sum[:])
		if err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			ss.FillBytes(sig[32:])
		}
	default:
		sig = []byte("x")
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func goodClaims(now time.Time) map[string]any {
	return map[string]any{"aud": "https://vault.example:8443/" + testTenant + "/oauth2/v2.0/token", "iss": testClientID, "sub": testClientID,
		"jti": "j1", "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
}

func with(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for key, val := range m {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

func checkAssertion(s string, rec ServicePrincipalRecord, now time.Time) error {
	a, err := parseClientAssertion(s)
	if err != nil {
		return err
	}
	return a.verify(rec, testClientID, func(aud string) bool { return tokenEndpointAudience(aud, testTenant, testHosts) }, now)
}

// TestClientAssertions: an assertion is accepted only when a registered,
// unexpired certificate named by its thumbprint signed it with a matching
// algorithm, for this client and this vault's token endpoint, within its
// times; MSAL Go's standard-base64 thumbprints are taken.
func TestClientAssertions(t *testing.T) {
	now := time.Now()
	rsaS := newTestSigner(t, false, now.Add(24*time.Hour))
	ecS := newTestSigner(t, true, now.Add(24*time.Hour))
	oldS := newTestSigner(t, false, now.Add(time.Hour))
	other := newTestSigner(t, false, now.Add(24*time.Hour))
	good := goodClaims(now)
	for _, tc := range []struct {
		name   string
		s      testSigner
		tok    string
		rec    ServicePrincipalRecord
		at     time.Time
		reason string // "" when accepted
	}{
		{name: "PS256 with x5t#S256 in std base64 (MSAL Go)", s: rsaS, tok: rsaS.assertion(t, "PS256", "x5t#S256", true, good)},
		{name: "RS256 with x5t in base64url (msal-node)", s: rsaS, tok: rsaS.assertion(t, "RS256", "x5t", false, good)},
		{name: "ES256", s: ecS, tok: ecS.assertion(t, "ES256", "x5t#S256", false, good)},
		{name: "aud as a list", s: rsaS, tok: rsaS.assertion(t, "PS256", "x5t#S256", false, with(good, "aud", []string{"x", good["aud"].(string)}))},
		{name: "another vault's endpoint", s: rsaS, tok: rsaS.assertion(t, "PS256", "x5t#S256", false, with(good, "aud", "https://login.microsoftonline.com/"+testTenant+"/oauth2/v2.0/token")), reason: "audience"},
		{name: "another tenant's endpoint", s: rsaS, tok: rsaS.assertion(t, "PS256", "x5t#S256", false, with(good, "aud", "https://vault.example/common/oauth2/v2.0/token")), reason: "audience"},
		{name: "expired", s: rsaS, tok: rsaS.assertion(t, "PS256", "x5t#S256", false, with(good, "exp", now.Add(-10*time.Minute).Unix())), reason: "expired"},
		{name: "no expiry", s: rsaS, tok: rsaS.assertion(t, "PS256", "x5t#S256", false, with(good, "exp", nil)), reason: "no expiry"},
		{name: "lives a day", s: rsaS, tok: rsaS.assertion(t, "PS256", "x5t#S256", false, with(good, "exp", now.Add(24*time.Hour).Unix())), reason: "short-lived"},
		{name: "not yet valid", s: rsaS, tok: rsaS.assertion(t, "PS256", "x5t#S256", false, with(good, "nbf", now.Add(time.Hour).Unix())), reason: "not valid before"},
		{name: "another subject", s: rsaS, tok: rsaS.assertion(t, "PS256", "x5t#S256", false, with(good, "sub", "someone")), reason: "iss and sub"},
		{name: "unregistered certificate", s: rsaS, tok: other.assertion(t, "PS256", "x5t#S256", false, good), reason: "thumbprint"},
		{name: "alg of another key type", s: ecS, tok: ecS.assertion(t, "RS256", "x5t#S256", false, good), reason: "RSA certificate"},
		{name: "alg none", s: rsaS, tok: rsaS.assertion(t, "none", "x5t#S256", false, good), reason: "not supported"},
		{name: "HS256 (a MAC keyed with public data)", s: rsaS, tok: rsaS.assertion(t, "HS256", "x5t#S256", false, good), reason: "not supported"},
		{name: "tampered claims", s: rsaS, tok: tamper(rsaS.assertion(t, "PS256", "x5t#S256", false, good)), reason: "signature"},
		{name: "expired certificate", s: oldS, tok: oldS.assertion(t, "PS256", "x5t#S256", false, goodClaims(now.Add(2*time.Hour))), at: now.Add(2 * time.Hour), reason: "expired on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.s.record(t)
			at := tc.at
			if at.IsZero() {
				at = now
			}
			err := checkAssertion(tc.tok, rec, at)
			var oe *OAuthError
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.reason != "" && err == nil:
				t.Fatalf("accepted, want refused for %q", tc.reason)
			case tc.reason != "" && (!errors.As(err, &oe) || oe.Code != "invalid_client" || !strings.Contains(oe.Description, tc.reason)):
				t.Fatalf("refused with %v, want invalid_client saying %q", err, tc.reason)
			}
		})
	}
}

// tamper changes the claims of a signed JWT, keeping its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	body = []byte(strings.Replace(string(body), `"jti":"j1"`, `"jti":"j2"`, 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(body)
	return strings.Join(parts, ".")
}

// TestScopes: only the vault's own resource is a scope a token is made
// for.
func TestScopes(t *testing.T) {
	for scope, want := range map[string]string{
		"https://vault.example:8443/.default":                             "https://vault.example:8443",
		"https://VAULT.example/.default":                                  "https://vault.example",
		"https://vault.azure.net/.default":                                "https://vault.azure.net",
		"https://vault.example//.default":                                 "https://vault.example",
		"https://vault.example/.default openid offline_access":            "https://vault.example",
		"https://management.azure.com/.default":                           "",
		"https://vault.example.evil/.default":                             "",
		"https://vault.example@evil/.default":                             "",
		"https://vault.example/path/.default":                             "",
		"http://vault.example/.default":                                   "",
		"https://vault.example/secrets.read":                              "",
		"https://vault.example/.default https://vault.azure.net/.default": "",
		"": "",
	} {
		got, err := scopeResource(scope, testHosts)
		var oe *OAuthError
		if want == "" && (err == nil || !errors.As(err, &oe) || oe.Code != "invalid_scope") {
			t.Errorf("scope %q: %q %v, want invalid_scope", scope, got, err)
		}
		if want != "" && (err != nil || got != want) {
			t.Errorf("scope %q: %q %v, want %q", scope, got, err, want)
		}
	}
}

// FuzzClientAssertion: no input makes the assertion parser or checker
// panic, and nothing but a real signature is accepted.
func FuzzClientAssertion(f *testing.F) {
	now := time.Now()
	s := newTestSigner(f, false, now.Add(24*time.Hour))
	rec := s.record(f)
	f.Add(s.assertion(f, "PS256", "x5t#S256", true, goodClaims(now)))
	f.Add(s.assertion(f, "RS256", "x5t", false, goodClaims(now)))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		if checkAssertion(tok, rec, now) != nil {
			return
		}
		// Accepted: it must carry a signature the key made over what it
		// says (the fuzzer cannot forge one; it can only keep a seed's).
		a, err := parseClientAssertion(tok)
		if err != nil || verifyJWS(a.alg, s.cert.PublicKey, a.input, a.sig) != nil {
			t.Fatalf("accepted %q without a valid signature", tok)
		}
	})
}
