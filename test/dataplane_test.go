package test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/testcluster"
	"software.sslmate.com/src/go-pkcs12"
)

// dpDo sends a data-plane request and returns the status and decoded
// body (nil on an empty body).
func dpDo(t *testing.T, cl *client.Client, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	h := http.Header{}
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case []byte:
		rd = bytes.NewReader(b)
		h.Set("Content-Type", "application/json")
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		rd = bytes.NewReader(data)
		h.Set("Content-Type", "application/json")
	}
	resp, err := cl.Raw(context.Background(), method, path, rd, h)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	// An empty body (204, 202) decodes as io.EOF and leaves out nil.
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("%s %s: decode the %d answer: %v", method, path, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func errorOf(m map[string]any) (code, msg string) {
	e, _ := m["error"].(map[string]any)
	code, _ = e["code"].(string)
	msg, _ = e["message"].(string)
	return code, msg
}

// TestSeedWalkthroughCLI runs the seed's PowerShell walkthrough with the
// CLI: policy new, create, operation --wait, get; then the private part
// downloaded as PKCS#12 opens with openssl and its key matches the
// certificate.
func TestSeedWalkthroughCLI(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := c.CLI(args...)
		if code != 0 {
			t.Fatalf("certvault %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	run("cert", "policy", "new", "--subject", "CN=www.example.com", "--san", "www.example.com",
		"--content-type", "application/x-pkcs12", "--validity-months", "12", "--renew-days-before-expiry", "60", "--out", policy)
	run("cert", "create", "CertTrial", "--policy", policy)
	if out := run("cert", "operation", "CertTrial", "--wait"); !strings.Contains(out, "completed") {
		t.Fatalf("operation: got %q, want completed", out)
	}
	if out := run("cert", "get", "CertTrial"); !strings.Contains(out, "CN=www.example.com") || !strings.Contains(out, "www.example.com") {
		t.Fatalf("cert get: got %q", out)
	}
	pfx := filepath.Join(dir, "trial.pfx")
	run("secret", "get", "CertTrial", "--out", pfx)
	fi, err := os.Stat(pfx)
	if err != nil {
		t.Fatalf("stat the downloaded PKCS#12: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("downloaded PKCS#12 mode: got %v, want 0600", fi.Mode().Perm())
	}
	pubOf := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", strings.Join(args, " "))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	certPub := pubOf("openssl pkcs12 -in", pfx, "-passin pass: -nokeys -clcerts | openssl x509 -noout -pubkey")
	keyPub := pubOf("openssl pkcs12 -in", pfx, "-passin pass: -nocerts -nodes | openssl pkey -pubout")
	if !strings.Contains(certPub, "BEGIN PUBLIC KEY") || certPub != keyPub {
		t.Fatalf("openssl: the key does not match the certificate:\ncert: %s\nkey: %s", certPub, keyPub)
	}
	// The policy kept the seed's RenewAtNumberOfDaysBeforeExpiry 60.
	if out := run("cert", "policy", "get", "CertTrial"); !strings.Contains(out, `"days_before_expiry": 60`) {
		t.Fatalf("policy get: got %s", out)
	}
}

// TestDataPlaneBadInput sends each kind of bad input and checks Key
// Vault's error shape, a message that says what to fix, and that nothing
// was stored.
func TestDataPlaneBadInput(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	cl := c.Client(c.Nodes[0])
	policy := func(kp map[string]any, extra map[string]any) map[string]any {
		p := map[string]any{"key_props": kp, "x509_props": map[string]any{"subject": "CN=bad.example.com"}, "issuer": map[string]any{"name": "Self"}}
		for k, v := range extra {
			p[k] = v
		}
		return map[string]any{"policy": p}
	}
	expired := selfSignedPEM(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), true)
	noKey := selfSignedPEM(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), false)
	pfx := pkcs12Of(t, "right-password")
	tooBig := bytes.Repeat([]byte("x"), 1<<20+10)

	tests := []struct {
		name, method, path string
		body               any
		status             int
		code, msg          string
		// object whose absence proves nothing was stored ("" to skip).
		object string
	}{
		{"name outside the rule", "POST", "/certificates/bad_name!/create", policy(map[string]any{"kty": "EC"}, nil), 400, "BadParameter", "letters, digits and dashes", ""},
		{"malformed JSON", "POST", "/certificates/c1/create", []byte(`{"policy": {`), 400, "BadParameter", "not valid JSON", "/certificates/c1"},
		{"kty DSA", "POST", "/certificates/c2/create", policy(map[string]any{"kty": "DSA"}, nil), 400, "BadParameter", "RSA, RSA-HSM, EC or EC-HSM", "/certificates/c2"},
		{"key size 1024", "POST", "/certificates/c3/create", policy(map[string]any{"kty": "RSA", "key_size": 1024}, nil), 400, "BadParameter", "2048, 3072 or 4096", "/certificates/c3"},
		{"unknown curve", "POST", "/certificates/c4/create", policy(map[string]any{"kty": "EC", "crv": "P-999"}, nil), 400, "BadParameter", "P-256, P-384 or P-521", "/certificates/c4"},
		{"lifetime action out of range", "POST", "/certificates/c5/create", policy(map[string]any{"kty": "EC"}, map[string]any{
			"lifetime_actions": []any{map[string]any{"trigger": map[string]any{"lifetime_percentage": 120}, "action": map[string]any{"action_type": "AutoRenew"}}}}),
			400, "BadParameter", "1 to 99", "/certificates/c5"},
		{"lifetime action that cannot fire", "POST", "/certificates/c6/create", policy(map[string]any{"kty": "EC"}, map[string]any{
			"x509_props":       map[string]any{"subject": "CN=a", "validity_duration": "6d"},
			"lifetime_actions": []any{map[string]any{"trigger": map[string]any{"days_before_expiry": 10}, "action": map[string]any{"action_type": "AutoRenew"}}}}),
			400, "BadParameter", "can never fire", "/certificates/c6"},
		{"missing issuer", "POST", "/certificates/c7/create", policy(map[string]any{"kty": "EC"}, map[string]any{"issuer": map[string]any{"name": "nosuch"}}), 400, "BadParameter", "does not exist", "/certificates/c7"},
		{"PEM import without a private key", "POST", "/certificates/i1/import", map[string]any{"value": noKey}, 400, "BadParameter", "no private key", "/certificates/i1"},
		{"wrong PKCS#12 password", "POST", "/certificates/i2/import", map[string]any{"value": pfx, "pwd": "wrong"}, 400, "BadParameter", "password", "/certificates/i2"},
		{"expired certificate on import", "POST", "/certificates/i3/import", map[string]any{"value": expired}, 400, "BadParameter", "expired", "/certificates/i3"},
		{"body over 1 MiB", "PUT", "/secrets/s1", tooBig, 413, "RequestTooLarge", "larger than", "/secrets/s1"},
		{"secret without value", "PUT", "/secrets/s2", map[string]any{"contentType": "x"}, 400, "BadParameter", "value is required", "/secrets/s2"},
		{"maxresults out of range", "GET", "/secrets?maxresults=26", nil, 400, "BadParameter", "1 to 25", ""},
		{"key kty DSA", "POST", "/keys/k1/create", map[string]any{"kty": "DSA"}, 400, "BadParameter", "RSA, RSA-HSM, EC or EC-HSM", "/keys/k1"},
		{"key ops the type cannot do", "POST", "/keys/k2/create", map[string]any{"kty": "EC", "key_ops": []string{"encrypt"}}, 400, "BadParameter", "not possible", "/keys/k2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := dpDo(t, cl, tt.method, tt.path, tt.body)
			code, msg := errorOf(body)
			if status != tt.status || code != tt.code || !strings.Contains(msg, tt.msg) {
				t.Fatalf("got %d %s %q, want %d %s with %q", status, code, msg, tt.status, tt.code, tt.msg)
			}
			if tt.object != "" {
				if st, _ := dpDo(t, cl, "GET", tt.object, nil); st != http.StatusNotFound {
					t.Fatalf("GET %s after the refused request: got %d, want 404 (something was stored)", tt.object, st)
				}
			}
		})
	}
	// Nothing at all was stored by the refused requests.
	for _, list := range []string{"/certificates?includePending=true", "/secrets", "/keys"} {
		if _, body := dpDo(t, cl, "GET", list, nil); len(body["value"].([]any)) != 0 {
			t.Errorf("GET %s: got %v, want an empty list", list, body["value"])
		}
	}

	t.Run("merge with a key that does not match", func(t *testing.T) {
		st, _ := dpDo(t, cl, "POST", "/certificates/m1/create", policy(map[string]any{"kty": "EC"}, map[string]any{"issuer": map[string]any{"name": "Unknown"}}))
		if st != http.StatusAccepted {
			t.Fatalf("create Unknown: got %d", st)
		}
		other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatalf("generate key: %v", err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "bad.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, other.Public(), other)
		if err != nil {
			t.Fatalf("create certificate: %v", err)
		}
		status, body := dpDo(t, cl, "POST", "/certificates/m1/pending/merge", map[string]any{"x5c": [][]byte{der}})
		if code, msg := errorOf(body); status != 400 || code != "BadParameter" || !strings.Contains(msg, "not the key of the pending request") {
			t.Fatalf("merge: got %d %s %q", status, code, msg)
		}
		if _, op := dpDo(t, cl, "GET", "/certificates/m1/pending", nil); op["status"] != "inProgress" {
			t.Fatalf("after a refused merge the operation is %v, want still inProgress", op["status"])
		}
		// Nothing was made: the certificate still reads as Key Vault
		// shows a pending one, its coming version disabled, with no
		// certificate and the operation's id (issue 18).
		st, cert := dpDo(t, cl, "GET", "/certificates/m1", nil)
		pending, _ := cert["pending"].(map[string]any)
		attrs, _ := cert["attributes"].(map[string]any)
		if st != http.StatusOK || pending == nil || !strings.HasSuffix(fmt.Sprint(pending["id"]), "/certificates/m1/pending") || cert["cer"] != nil || attrs["enabled"] != false || cert["policy"] == nil {
			t.Fatalf("after a refused merge GET certificate: got %d %v, want 200, disabled, no cer, the policy and pending.id", st, cert)
		}
	})
}

// selfSignedPEM makes a key and a self-signed certificate valid between
// nbf and naf, as PEM (with the key only if withKey).
func selfSignedPEM(t *testing.T, nbf, naf time.Time, withKey bool) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "import.example.com"},
		DNSNames: []string{"import.example.com"}, NotBefore: nbf, NotAfter: naf}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if withKey {
		kd, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatalf("marshal key: %v", err)
		}
		pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: kd})
	}
	pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	return b.String()
}

// pkcs12Of makes a base64 PKCS#12 with a fresh key and certificate.
func pkcs12Of(t *testing.T, password string) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "p12.example.com"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	pfx, err := pkcs12.Modern.Encode(k, cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(pfx)
}

// TestInternalCAIssuesRevokesAndPublishesCRL creates an internal root,
// issues from it, checks the chain, revokes, and reads the serial back
// from the unauthenticated CRL.
func TestInternalCAIssuesRevokesAndPublishesCRL(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	cl := c.Client(c.Nodes[0])
	st, iss := dpDo(t, cl, "PUT", "/certificates/issuers/corp", map[string]any{"provider": "internal", "ca": map[string]any{"subject": "CN=Corp Test CA, O=Corp"}})
	if st != 200 {
		t.Fatalf("create internal issuer: %d %v", st, iss)
	}
	caDER, err := base64.StdEncoding.DecodeString(iss["ca_cert"].(string))
	if err != nil {
		t.Fatalf("decode base64: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	st, op := dpDo(t, cl, "POST", "/certificates/api/create", map[string]any{"policy": map[string]any{
		"key_props": map[string]any{"kty": "EC", "crv": "P-384"}, "x509_props": map[string]any{"subject": "CN=api.corp", "sans": map[string]any{"dns_names": []string{"api.corp"}}, "validity_duration": "47d"},
		"issuer": map[string]any{"name": "corp"}}})
	if st != http.StatusAccepted || op["status"] != "completed" {
		t.Fatalf("create from internal issuer: %d %v", st, op)
	}
	_, cert := dpDo(t, cl, "GET", "/certificates/api/", nil)
	leafDER, err := base64.StdEncoding.DecodeString(cert["cer"].(string))
	if err != nil {
		t.Fatalf("decode base64: %v", err)
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "api.corp"}); err != nil {
		t.Fatalf("the issued certificate does not verify to the internal CA: %v", err)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < 47*24*time.Hour || got > 47*24*time.Hour+2*time.Minute {
		t.Fatalf("validity: got %v, want 47 days", got)
	}
	// The certificate comes with its chain (x5c), and the CLI writes it.
	if x5c, _ := cert["x5c"].([]any); len(x5c) != 2 || x5c[1] != iss["ca_cert"] {
		t.Fatalf("x5c: got %d entries, want leaf and CA", len(x5c))
	}
	full := filepath.Join(t.TempDir(), "full.pem")
	if out, errOut, code := c.CLI("cert", "download", "api", "--chain", "--out", full); code != 0 {
		t.Fatalf("download --chain: %s %s", out, errOut)
	}
	if data, err := os.ReadFile(full); err != nil {
		t.Fatalf("read what download --chain wrote: %v", err)
	} else if strings.Count(string(data), "BEGIN CERTIFICATE") != 2 {
		t.Fatalf("download --chain wrote %d certificates, want 2", strings.Count(string(data), "BEGIN CERTIFICATE"))
	}
	// The managed secret carries the chain.
	_, sec := dpDo(t, cl, "GET", "/secrets/api/", nil)
	raw, err := base64.StdEncoding.DecodeString(sec["value"].(string))
	if err != nil {
		t.Fatalf("decode base64: %v", err)
	}
	_, _, chain, err := pkcs12.DecodeChain(raw, "")
	if err != nil || len(chain) != 1 || !chain[0].Equal(ca) {
		t.Fatalf("managed secret chain: got %d certs, err %v; want the CA", len(chain), err)
	}

	version := cert["id"].(string)[strings.LastIndex(cert["id"].(string), "/")+1:]
	out, errOut, code := c.CLI("cert", "revoke", "api", "--version", version)
	if code != 0 {
		t.Fatalf("revoke: %s %s", out, errOut)
	}
	crlURL := iss["crl_url"].(string)
	if len(leaf.CRLDistributionPoints) != 1 || leaf.CRLDistributionPoints[0] != crlURL {
		t.Fatalf("CRL distribution point: got %v, want %s", leaf.CRLDistributionPoints, crlURL)
	}
	resp, err := c.HTTPClient().Get(crlURL) // no token: relying parties fetch it anonymously
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var crlDER bytes.Buffer
	if _, err := crlDER.ReadFrom(resp.Body); err != nil {
		t.Fatalf("read the CRL (status %d): %v", resp.StatusCode, err)
	}
	crl, err := x509.ParseRevocationList(crlDER.Bytes())
	if err != nil {
		t.Fatalf("parse CRL (status %d): %v", resp.StatusCode, err)
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	found := false
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			found = true
		}
	}
	if !found {
		t.Fatalf("CRL does not list serial %x", leaf.SerialNumber)
	}
}

// TestKeysOperations signs and verifies through the keys API, checks the
// signature with Go's crypto against the returned JWK, and round-trips
// RSA encryption and key wrapping.
func TestKeysOperations(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	cl := c.Client(c.Nodes[0])
	st, k := dpDo(t, cl, "POST", "/keys/signer/create", map[string]any{"kty": "EC", "crv": "P-256"})
	if st != 200 {
		t.Fatalf("create EC key: %d %v", st, k)
	}
	jwk := k["key"].(map[string]any)
	b64 := func(s any) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s.(string))
		if err != nil {
			t.Fatalf("decode the JWK's base64url %q: %v", s, err)
		}
		return b
	}
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(b64(jwk["x"])), Y: new(big.Int).SetBytes(b64(jwk["y"]))}
	digest := sha256.Sum256([]byte("release 1.0"))
	st, sig := dpDo(t, cl, "POST", "/keys/signer/sign", map[string]any{"alg": "ES256", "value": base64.RawURLEncoding.EncodeToString(digest[:])})
	if st != 200 {
		t.Fatalf("sign: %d %v", st, sig)
	}
	s := b64(sig["value"])
	if len(s) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(s[:32]), new(big.Int).SetBytes(s[32:])) {
		t.Fatalf("the ES256 signature does not verify with Go against the JWK")
	}
	_, v := dpDo(t, cl, "POST", "/keys/signer/verify", map[string]any{"alg": "ES256", "digest": base64.RawURLEncoding.EncodeToString(digest[:]), "value": sig["value"]})
	if v["value"] != true {
		t.Fatalf("verify: got %v, want true", v)
	}
	other := sha256.Sum256([]byte("tampered"))
	_, v = dpDo(t, cl, "POST", "/keys/signer/verify", map[string]any{"alg": "ES256", "digest": base64.RawURLEncoding.EncodeToString(other[:]), "value": sig["value"]})
	if v["value"] != false {
		t.Fatalf("verify of another digest: got %v, want false", v)
	}

	st, rk := dpDo(t, cl, "POST", "/keys/wrapper/create", map[string]any{"kty": "RSA", "key_size": 2048})
	if st != 200 {
		t.Fatalf("create RSA key: %d %v", st, rk)
	}
	rj := rk["key"].(map[string]any)
	rpub := &rsa.PublicKey{N: new(big.Int).SetBytes(b64(rj["n"])), E: int(new(big.Int).SetBytes(b64(rj["e"])).Int64())}
	for _, alg := range []string{"RSA-OAEP", "RSA-OAEP-256"} {
		for _, pair := range [][2]string{{"encrypt", "decrypt"}, {"wrapkey", "unwrapkey"}} {
			plain := []byte("a 32-byte data encryption key!!!")
			_, enc := dpDo(t, cl, "POST", "/keys/wrapper/"+pair[0], map[string]any{"alg": alg, "value": base64.RawURLEncoding.EncodeToString(plain)})
			_, dec := dpDo(t, cl, "POST", "/keys/wrapper/"+pair[1], map[string]any{"alg": alg, "value": enc["value"]})
			if got := b64(dec["value"]); !bytes.Equal(got, plain) {
				t.Fatalf("%s %s/%s: got %q back", alg, pair[0], pair[1], got)
			}
		}
	}
	// PS256 through the API verifies with Go's rsa package.
	_, ps := dpDo(t, cl, "POST", "/keys/wrapper/sign", map[string]any{"alg": "PS256", "value": base64.RawURLEncoding.EncodeToString(digest[:])})
	if err := rsa.VerifyPSS(rpub, crypto.SHA256, digest[:], b64(ps["value"]), nil); err != nil {
		t.Fatalf("PS256 signature: %v", err)
	}
	// Rotation makes a new version of the same kind; the old one still
	// verifies what it signed.
	st, rot := dpDo(t, cl, "POST", "/keys/signer/rotate", nil)
	if st != 200 || rot["key"].(map[string]any)["kid"] == jwk["kid"] || rot["key"].(map[string]any)["crv"] != "P-256" {
		t.Fatalf("rotate: %d %v", st, rot)
	}
	if _, vs := dpDo(t, cl, "GET", "/keys/signer/versions", nil); len(vs["value"].([]any)) != 2 {
		t.Fatalf("versions after rotate: got %v, want 2", vs["value"])
	}
	oldKid := jwk["kid"].(string)
	_, v = dpDo(t, cl, "POST", "/keys/signer/"+oldKid[strings.LastIndex(oldKid, "/")+1:]+"/verify",
		map[string]any{"alg": "ES256", "digest": base64.RawURLEncoding.EncodeToString(digest[:]), "value": sig["value"]})
	if v["value"] != true {
		t.Fatalf("the old version no longer verifies after rotation: %v", v)
	}
	if st, rp := dpDo(t, cl, "PUT", "/keys/signer/rotationpolicy", map[string]any{"lifetimeActions": []any{
		map[string]any{"trigger": map[string]any{"timeAfterCreate": "P90D"}, "action": map[string]any{"type": "Rotate"}}},
		"attributes": map[string]any{"expiryTime": "P2Y"}}); st != 200 {
		t.Fatalf("set rotation policy: %d %v", st, rp)
	}
	if _, rp := dpDo(t, cl, "GET", "/keys/signer/rotationpolicy", nil); rp["attributes"].(map[string]any)["expiryTime"] != "P2Y" {
		t.Fatalf("get rotation policy: %v", rp)
	}
	if st, _ := dpDo(t, cl, "PUT", "/keys/signer/rotationpolicy", map[string]any{"lifetimeActions": []any{
		map[string]any{"trigger": map[string]any{"timeAfterCreate": "90 days"}, "action": map[string]any{"type": "Rotate"}}}}); st != 400 {
		t.Fatalf("rotation policy with a bad duration: got %d, want 400", st)
	}

	// A certificate's managed key signs too.
	dpDo(t, cl, "POST", "/certificates/tls/create", map[string]any{"policy": map[string]any{"key_props": map[string]any{"kty": "EC"}, "x509_props": map[string]any{"subject": "CN=tls"}}})
	st, ms := dpDo(t, cl, "POST", "/keys/tls/sign", map[string]any{"alg": "ES256", "value": base64.RawURLEncoding.EncodeToString(digest[:])})
	if st != 200 || ms["value"] == nil {
		t.Fatalf("sign with a certificate's managed key: %d %v", st, ms)
	}
	if st, body := dpDo(t, cl, "DELETE", "/keys/tls", nil); st != http.StatusForbidden {
		code, msg := errorOf(body)
		t.Fatalf("deleting a managed key: got %d %s %s, want 403", st, code, msg)
	}
}
