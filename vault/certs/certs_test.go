package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/keyvault"
	"software.sslmate.com/src/go-pkcs12"
)

func policy(t *testing.T, mod func(*keyvault.Policy)) *keyvault.Policy {
	t.Helper()
	p := &keyvault.Policy{
		KeyProperties:  &keyvault.KeyProperties{KeyType: "EC"},
		X509Properties: &keyvault.X509Properties{Subject: "CN=www.example.com, O=Contoso", SANs: &keyvault.SubjectAlternativeNames{DNSNames: []string{"www.example.com"}}},
	}
	if mod != nil {
		mod(p)
	}
	if err := p.Normalize(); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCA returns a CA certificate and key.
func testCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	c, _ := x509.ParseCertificate(der)
	return c, k
}

func TestSelfSignFollowsPolicy(t *testing.T) {
	p := policy(t, func(p *keyvault.Policy) {
		p.X509Properties.ValidityDuration = "90m"
		p.X509Properties.EKUs = []string{"1.3.6.1.5.5.7.3.1", "1.2.3.4"}
		p.X509Properties.KeyUsage = []string{"digitalSignature", "keyAgreement"}
	})
	key, err := GenerateKey(p.KeyProperties)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	der, err := SelfSign(p, key, now)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	if c.Subject.CommonName != "www.example.com" || c.Subject.Organization[0] != "Contoso" || c.DNSNames[0] != "www.example.com" {
		t.Errorf("names: got %v %v", c.Subject, c.DNSNames)
	}
	if got := c.NotAfter.Sub(now); got < 89*time.Minute || got > 91*time.Minute {
		t.Errorf("validity: got %v, want 90m", got)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement || len(c.ExtKeyUsage) != 1 || len(c.UnknownExtKeyUsage) != 1 {
		t.Errorf("usages: got %v %v %v", c.KeyUsage, c.ExtKeyUsage, c.UnknownExtKeyUsage)
	}
	if err := CheckNames(p, c); err != nil {
		t.Errorf("CheckNames of its own certificate: %v", err)
	}
	other := policy(t, func(p *keyvault.Policy) { p.X509Properties.SANs.DNSNames = []string{"api.example.com"} })
	if err := CheckNames(other, c); err == nil || !strings.Contains(err.Error(), "api.example.com") {
		t.Errorf("CheckNames with a missing name: got %v", err)
	}
}

func TestSignByCAAndSortChain(t *testing.T) {
	ca, caKey := testCA(t)
	p := policy(t, nil)
	key, _ := GenerateKey(p.KeyProperties)
	der, err := Sign(p, key.Public(), ca, caKey, "https://vault/v1/pki/x/crl", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	if err := leaf.CheckSignatureFrom(ca); err != nil || leaf.CRLDistributionPoints[0] != "https://vault/v1/pki/x/crl" {
		t.Fatalf("signed leaf: %v %v", err, leaf.CRLDistributionPoints)
	}
	stranger, _ := testCA(t)
	got := SortChain(leaf, []*x509.Certificate{stranger, ca})
	if !got[0].Equal(leaf) || !got[1].Equal(ca) || !got[2].Equal(stranger) {
		t.Fatalf("SortChain: the issuer does not follow the leaf")
	}
}

func TestSecretEncodingsRoundTrip(t *testing.T) {
	ca, caKey := testCA(t)
	p := policy(t, nil)
	key, _ := GenerateKey(p.KeyProperties)
	der, _ := Sign(p, key.Public(), ca, caKey, "", time.Now())
	leaf, _ := x509.ParseCertificate(der)
	chain := []*x509.Certificate{leaf, ca}

	b64, err := EncodeSecret(keyvault.ContentTypePKCS12, key, chain)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(b64)
	k, c, cas, err := pkcs12.DecodeChain(raw, "")
	if err != nil || !SamePublicKey(k.(*ecdsa.PrivateKey).Public(), leaf.PublicKey) || !c.Equal(leaf) || len(cas) != 1 {
		t.Fatalf("PKCS#12: %v", err)
	}
	imp, err := ParseImport(b64, "", time.Now())
	if err != nil || !imp.Chain[0].Equal(leaf) {
		t.Fatalf("re-import PKCS#12: %v", err)
	}

	pemText, err := EncodeSecret(keyvault.ContentTypePEM, key, chain)
	if err != nil || strings.Count(pemText, "BEGIN CERTIFICATE") != 2 || !strings.Contains(pemText, "BEGIN PRIVATE KEY") {
		t.Fatalf("PEM: %v\n%s", err, pemText)
	}
	// Order does not matter on import: the leaf is the key's certificate.
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	reordered := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))
	imp, err = ParseImport(reordered, "", time.Now())
	if err != nil || !imp.Chain[0].Equal(leaf) || imp.ContentType != keyvault.ContentTypePEM {
		t.Fatalf("re-import PEM: %v", err)
	}

	noKey, _ := EncodeSecret(keyvault.ContentTypePEM, nil, chain)
	if strings.Contains(noKey, "PRIVATE KEY") {
		t.Fatal("a secret without a key still holds one")
	}
}

func TestParseImportRejects(t *testing.T) {
	p := policy(t, nil)
	key, _ := GenerateKey(p.KeyProperties)
	der, _ := SelfSign(p, key, time.Now().Add(-2*365*24*time.Hour))
	leaf, _ := x509.ParseCertificate(der)
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	other, _ := GenerateKey(p.KeyProperties)
	od, _ := x509.MarshalPKCS8PrivateKey(other)
	otherPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: od}))
	pfx, _ := pkcs12.Modern.Encode(key, leaf, nil, "secret")
	valid := time.Now().Add(-547 * 24 * time.Hour) // a time at which the certificate is valid

	for _, tt := range []struct {
		name, value, pw string
		at              time.Time
		want            error
	}{
		{"no key", certPEM, "", valid, ErrNoPrivateKey},
		{"no certificate", keyPEM, "", valid, ErrNoCert},
		{"key mismatch", otherPEM + certPEM, "", valid, ErrKeyMismatch},
		{"expired", keyPEM + certPEM, "", time.Now(), ErrExpired},
		{"wrong password", base64.StdEncoding.EncodeToString(pfx), "wrong", valid, ErrBadPassword},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseImport(tt.value, tt.pw, tt.at); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := ParseImport("!!! not base64", "", valid); err == nil {
		t.Fatal("garbage: got nil error")
	}
	if imp, err := ParseImport(base64.StdEncoding.EncodeToString(pfx), "secret", valid); err != nil || !bytes.Equal(imp.Chain[0].Raw, der) {
		t.Fatalf("right password: %v", err)
	}
}
