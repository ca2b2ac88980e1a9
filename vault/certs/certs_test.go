package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/internal/pfx"
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
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
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
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
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
	key, err := GenerateKey(p.KeyProperties)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	der, err := Sign(p, key.Public(), ca, caKey, "https://vault/v1/pki/x/crl", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
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
	key, err := GenerateKey(p.KeyProperties)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	der, err := Sign(p, key.Public(), ca, caKey, "", time.Now())
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	chain := []*x509.Certificate{leaf, ca}

	b64, err := EncodeSecret(keyvault.ContentTypePKCS12, key, chain)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("decode base64: %v", err)
	}
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
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	reordered := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))
	imp, err = ParseImport(reordered, "", time.Now())
	if err != nil || !imp.Chain[0].Equal(leaf) || imp.ContentType != keyvault.ContentTypePEM {
		t.Fatalf("re-import PEM: %v", err)
	}

	noKey, err := EncodeSecret(keyvault.ContentTypePEM, nil, chain)
	if err != nil {
		t.Fatalf("encode secret: %v", err)
	}
	if strings.Contains(noKey, "PRIVATE KEY") {
		t.Fatal("a secret without a key still holds one")
	}
}

func TestParseImportRejects(t *testing.T) {
	p := policy(t, nil)
	key, err := GenerateKey(p.KeyProperties)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	der, err := SelfSign(p, key, time.Now().Add(-2*365*24*time.Hour))
	if err != nil {
		t.Fatalf("self-sign: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	other, err := GenerateKey(p.KeyProperties)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	od, err := x509.MarshalPKCS8PrivateKey(other)
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	otherPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: od}))
	pfx, err := pkcs12.Modern.Encode(key, leaf, nil, "secret")
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
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

// withMACIterations returns the PKCS#12 file der with its MAC iteration
// count set to n (the MAC is the last member of the outer SEQUENCE).
func withMACIterations(t *testing.T, der []byte, n int64) []byte {
	t.Helper()
	seq := func(raw []byte) []asn1.RawValue {
		var outer asn1.RawValue
		if _, err := asn1.Unmarshal(raw, &outer); err != nil {
			t.Fatal(err)
		}
		var out []asn1.RawValue
		for rest := outer.Bytes; len(rest) > 0; {
			var v asn1.RawValue
			var err error
			if rest, err = asn1.Unmarshal(rest, &v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	join := func(vs []asn1.RawValue) []byte {
		var body []byte
		for _, v := range vs {
			body = append(body, v.FullBytes...)
		}
		b, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pfx := seq(der)
	mac := seq(pfx[2].FullBytes)
	iter, err := asn1.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	if len(mac) == 2 { // the count is left out when it is 1, the default
		mac = append(mac, asn1.RawValue{})
	}
	mac[2].FullBytes = iter
	pfx[2].FullBytes = join(mac)
	return join(pfx)
}

// TestImportRefusesCostlyPKCS12 imports a PKCS#12 file whose MAC asks for
// 2^62 iterations (the file names its own cost): before the check the
// import spun for as long as the CPU lasted; now it is refused at once.
func TestImportRefusesCostlyPKCS12(t *testing.T) {
	ca, caKey := testCA(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "www.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	good, err := pkcs12.LegacyDES.WithIterations(2048).Encode(key, leaf, []*x509.Certificate{ca}, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseImport(base64.StdEncoding.EncodeToString(withMACIterations(t, good, 2048)), "pw", time.Now()); err != nil {
		t.Fatalf("the file with its MAC count rewritten to its own 2048: %v", err)
	}
	costly := withMACIterations(t, good, 1<<62)
	_, err = ParseImport(base64.StdEncoding.EncodeToString(costly), "pw", time.Now())
	if !errors.Is(err, pfx.ErrTooCostly) {
		t.Fatalf("import of a PKCS#12 with 2^62 MAC iterations: got %v, want pfx.ErrTooCostly", err)
	}
}

// TestPolicyForSubjectParses imports certificates whose subjects hold a
// comma in a value, an email address and domain components: the policy
// derived from them must normalise (before, its subject was
// pkix.Name.String(), which ParseSubject could not read, and the import
// failed with 400).
func TestPolicyForSubjectParses(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, subj := range []pkix.Name{
		{CommonName: "www.example.com", Organization: []string{"Example, Inc."}, Country: []string{"US"}},
		{CommonName: "www.example.com", ExtraNames: []pkix.AttributeTypeAndValue{
			{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, Value: "admin@example.com"},
			{Type: asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, Value: "example"}}},
		{CommonName: `quote " and \ backslash`, OrganizationalUnit: []string{" padded "}},
	} {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: subj, DNSNames: []string{"www.example.com"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		p := PolicyFor(leaf, key, keyvault.ContentTypePEM)
		if err := p.Normalize(); err != nil {
			t.Errorf("subject %s: the derived policy does not normalise: %v", leaf.Subject, err)
			continue
		}
		got, err := keyvault.ParseSubject(p.X509Properties.Subject)
		if err != nil {
			t.Fatalf("subject %q: %v", p.X509Properties.Subject, err)
		}
		if got.CommonName != subj.CommonName || !reflect.DeepEqual(got.Organization, subj.Organization) || !reflect.DeepEqual(got.OrganizationalUnit, subj.OrganizationalUnit) {
			t.Errorf("policy subject %q parses to %+v, want the certificate's %+v", p.X509Properties.Subject, got, subj)
		}
	}
}
