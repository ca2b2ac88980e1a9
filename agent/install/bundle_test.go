package install

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// testPKI is a root CA, an intermediate under it and a leaf under that,
// all EC P-256.
type testPKI struct {
	root, inter, leaf          *x509.Certificate
	rootKey, interKey, leafKey *ecdsa.PrivateKey
}

var serial int64

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func makeCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func rsaKey() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) }

func caTemplate(cn string, notBefore, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// newPKI makes a PKI whose leaf is valid from notBefore to notAfter for
// names (the CAs for ten years around now).
func newPKI(t testing.TB, notBefore, notAfter time.Time, names ...string) *testPKI {
	t.Helper()
	now := time.Now()
	p := &testPKI{rootKey: newKey(t), interKey: newKey(t), leafKey: newKey(t)}
	p.root = makeCert(t, caTemplate("Test Root", now.AddDate(-5, 0, 0), now.AddDate(5, 0, 0)), nil, p.rootKey.Public(), p.rootKey)
	p.inter = makeCert(t, caTemplate("Test Intermediate", now.AddDate(-5, 0, 0), now.AddDate(5, 0, 0)), p.root, p.interKey.Public(), p.rootKey)
	p.leaf = makeCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "leaf"},
		DNSNames:    names,
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, p.inter, p.leafKey.Public(), p.interKey)
	return p
}

func validPKI(t testing.TB, names ...string) *testPKI {
	return newPKI(t, time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), names...)
}

func (p *testPKI) bundle(version string) Bundle {
	return Bundle{Version: version, Leaf: p.leaf, Chain: []*x509.Certificate{p.inter}, Key: p.leafKey}
}

func certBlock(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func TestParseBundlePEM(t *testing.T) {
	p := validPKI(t, "www.example.com")
	ecDER, err := x509.MarshalECPrivateKey(p.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	p8DER, err := x509.MarshalPKCS8PrivateKey(p.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []*pem.Block{
		{Type: "EC PRIVATE KEY", Bytes: ecDER},
		{Type: "PRIVATE KEY", Bytes: p8DER},
	} {
		t.Run(key.Type, func(t *testing.T) {
			// Root first, key in the middle, leaf last: any order.
			var in bytes.Buffer
			in.Write(certBlock(p.root))
			in.Write(pem.EncodeToMemory(key))
			in.Write(certBlock(p.leaf))
			in.Write(certBlock(p.inter))
			b, err := ParseBundle("v1", "application/x-pem-file", in.String())
			if err != nil {
				t.Fatal(err)
			}
			if b.Version != "v1" || !b.Leaf.Equal(p.leaf) {
				t.Fatalf("leaf = %v, want the leaf", b.Leaf.Subject)
			}
			if len(b.Chain) != 2 || !b.Chain[0].Equal(p.inter) || !b.Chain[1].Equal(p.root) {
				t.Fatalf("chain is not intermediate, root: %v", b.Chain)
			}
			if !p.leafKey.PublicKey.Equal(b.Key.Public()) {
				t.Fatal("key is not the leaf key")
			}
			if err := Check(b, time.Now(), []string{"www.example.com"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseBundleRSA(t *testing.T) {
	key, err := rsaKey()
	if err != nil {
		t.Fatal(err)
	}
	leaf := makeCert(t, &x509.Certificate{
		Subject:   pkix.Name{CommonName: "rsa.example.com"},
		NotBefore: time.Now().Add(-time.Hour),
		NotAfter:  time.Now().Add(time.Hour),
	}, nil, key.Public(), key)
	in := string(certBlock(leaf)) + string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	b, err := ParseBundle("r1", "application/x-pem-file; charset=utf-8", in)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Leaf.Equal(leaf) || len(b.Chain) != 0 {
		t.Fatalf("got leaf %v chain %d", b.Leaf.Subject, len(b.Chain))
	}
	// A self-signed leaf with no chain passes; with no SANs the CN counts.
	if err := Check(b, time.Now(), []string{"rsa.example.com"}); err != nil {
		t.Fatal(err)
	}
}

func TestParseBundlePKCS12(t *testing.T) {
	p := validPKI(t, "www.example.com")
	pfx, err := pkcs12.Modern.Encode(p.leafKey, p.leaf, []*x509.Certificate{p.inter}, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBundle("v2", "application/x-pkcs12", base64.StdEncoding.EncodeToString(pfx))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Leaf.Equal(p.leaf) || len(b.Chain) != 1 || !b.Chain[0].Equal(p.inter) {
		t.Fatalf("got leaf %v, chain %v", b.Leaf.Subject, b.Chain)
	}
	if !p.leafKey.PublicKey.Equal(b.Key.Public()) {
		t.Fatal("key is not the leaf key")
	}
	if err := Check(b, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestParseBundleErrors(t *testing.T) {
	p := validPKI(t)
	other := newKey(t)
	otherDER, err := x509.MarshalPKCS8PrivateKey(other)
	if err != nil {
		t.Fatalf("marshal the other key: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(p.leafKey)
	if err != nil {
		t.Fatalf("marshal the leaf key: %v", err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	for name, tc := range map[string]struct{ ct, value, want string }{
		"content type": {"text/plain", keyPEM + string(certBlock(p.leaf)), "content type"},
		"no key":       {ContentTypePEM, string(certBlock(p.leaf)), "no private key"},
		"no cert":      {ContentTypePEM, keyPEM, "no certificate"},
		"other key":    {ContentTypePEM, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherDER})) + string(certBlock(p.leaf)), "no certificate is for the private key"},
		"bad block":    {ContentTypePEM, keyPEM + string(certBlock(p.leaf)) + string(pem.EncodeToMemory(&pem.Block{Type: "X", Bytes: []byte{1}})), `unexpected PEM block "X"`},
		"bad base64":   {ContentTypePKCS12, "!!!", "decode base64"},
		"bad pfx":      {ContentTypePKCS12, base64.StdEncoding.EncodeToString([]byte("nope")), "decode PKCS #12"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseBundle("v9", tc.ct, tc.value)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "parse version v9: ") {
				t.Fatalf("err = %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	p := validPKI(t, "www.example.com", "*.api.example.com")
	now := time.Now()
	good := p.bundle("v1")
	if err := Check(good, now, []string{"www.example.com", "x.api.example.com", "WWW.example.com."}); err != nil {
		t.Fatalf("good bundle: %v", err)
	}
	withRoot := good
	withRoot.Chain = []*x509.Certificate{p.inter, p.root}
	if err := Check(withRoot, now, nil); err != nil {
		t.Fatalf("bundle with root: %v", err)
	}
	leafOnly := good
	leafOnly.Chain = nil
	if err := Check(leafOnly, now, nil); err != nil {
		t.Fatalf("leaf alone: %v", err)
	}

	mismatch := good
	mismatch.Key = newKey(t)
	other := newPKI(t, now.Add(-time.Hour), now.Add(time.Hour))
	broken := good
	broken.Chain = []*x509.Certificate{other.inter}
	reversed := withRoot
	reversed.Chain = []*x509.Certificate{p.root, p.inter}
	expired := newPKI(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour), "www.example.com").bundle("v7")
	notYet := newPKI(t, now.Add(time.Hour), now.Add(48*time.Hour)).bundle("v8")

	for name, tc := range map[string]struct {
		b     Bundle
		names []string
		want  string
	}{
		"key mismatch": {mismatch, nil, "private key is not the leaf"},
		"broken chain": {broken, nil, "broken chain"},
		"wrong order":  {reversed, nil, "broken chain"},
		"expired":      {expired, nil, "version v7 expired at " + expired.Leaf.NotAfter.UTC().Format(time.RFC3339)},
		"not yet":      {notYet, nil, "version v8 is not valid before"},
		"missing name": {good, []string{"www.example.com", "mail.example.com", "a.b.api.example.com"}, "not valid for mail.example.com, a.b.api.example.com"},
	} {
		t.Run(name, func(t *testing.T) {
			err := Check(tc.b, now, tc.names)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestRender(t *testing.T) {
	p := validPKI(t, "www.example.com")
	out, err := Render(p.bundle("v1"), Files{
		Cert: "cert.pem", Chain: "chain.pem", Fullchain: "fullchain.pem",
		Key: "key.pem", Combined: "combined.pem", PFX: "cert.pfx",
	}, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 6 {
		t.Fatalf("got %d outputs, want 6", len(out))
	}
	certs := func(name string) []*x509.Certificate {
		t.Helper()
		var cs []*x509.Certificate
		for rest := out[name]; ; {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
		}
		return cs
	}
	if c := certs("cert.pem"); len(c) != 1 || !c[0].Equal(p.leaf) {
		t.Fatal("cert.pem is not the leaf")
	}
	if c := certs("chain.pem"); len(c) != 1 || !c[0].Equal(p.inter) {
		t.Fatal("chain.pem is not the intermediate")
	}
	if c := certs("fullchain.pem"); len(c) != 2 || !c[0].Equal(p.leaf) || !c[1].Equal(p.inter) {
		t.Fatal("fullchain.pem is not leaf, intermediate")
	}
	kb, _ := pem.Decode(out["key.pem"])
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatal("key.pem is not a PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil || !p.leafKey.Equal(k) {
		t.Fatalf("key.pem does not hold the key: %v", err)
	}
	var types []string
	for rest := out["combined.pem"]; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		types = append(types, b.Type)
	}
	if strings.Join(types, ",") != "PRIVATE KEY,CERTIFICATE,CERTIFICATE" {
		t.Fatalf("combined.pem holds %v, want key then two certificates", types)
	}
	if c := certs("combined.pem"); !c[0].Equal(p.leaf) || !c[1].Equal(p.inter) {
		t.Fatal("combined.pem certificates are not leaf, intermediate")
	}
	pk, leaf, cas, err := pkcs12.DecodeChain(out["cert.pfx"], "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Equal(p.leaf) || len(cas) != 1 || !cas[0].Equal(p.inter) || !p.leafKey.Equal(pk) {
		t.Fatal("cert.pfx does not hold key, leaf and intermediate")
	}
	if _, _, _, err := pkcs12.DecodeChain(out["cert.pfx"], "wrong"); err == nil {
		t.Fatal("cert.pfx decodes with a wrong password")
	}

	// Empty PFX password; only some outputs; a round trip through
	// ParseBundle.
	out, err = Render(p.bundle("v1"), Files{PFX: "x.pfx", Combined: "haproxy.pem"}, "")
	if err != nil || len(out) != 2 {
		t.Fatalf("render: %d outputs, %v", len(out), err)
	}
	if _, _, _, err := pkcs12.DecodeChain(out["x.pfx"], ""); err != nil {
		t.Fatalf("pfx with empty password: %v", err)
	}
	b, err := ParseBundle("v1", ContentTypePEM, string(out["haproxy.pem"]))
	if err != nil || !b.Leaf.Equal(p.leaf) {
		t.Fatalf("combined does not parse back: %v", err)
	}

	if _, err := Render(p.bundle("v1"), Files{Cert: "a.pem", Key: "a.pem"}, ""); err == nil {
		t.Fatal("two outputs with one name rendered")
	}
	if _, err := Render(p.bundle("v1"), Files{Cert: "../a.pem"}, ""); err == nil {
		t.Fatal("an output named ../a.pem rendered")
	}
	if _, err := Render(p.bundle("v1"), Files{}, ""); err == nil {
		t.Fatal("no outputs rendered")
	}
}
