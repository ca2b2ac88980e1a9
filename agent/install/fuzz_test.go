package install

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// fuzzPKI reads testdata/fuzz-pki.pem, a fixed PKI valid from 2025 to
// 2045: an EC key, its leaf, the intermediate and root that issued it,
// and an RSA key with its leaf.
func fuzzPKI(tb testing.TB) (ecKey, rsaKey crypto.Signer, leaf, inter, root, rsaLeaf *x509.Certificate) {
	tb.Helper()
	data, err := os.ReadFile("testdata/fuzz-pki.pem")
	if err != nil {
		tb.Fatal(err)
	}
	var certs []*x509.Certificate
	var keys []crypto.Signer
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				tb.Fatal(err)
			}
			certs = append(certs, c)
			continue
		}
		k, err := parseKey(b)
		if err != nil {
			tb.Fatal(err)
		}
		keys = append(keys, k)
	}
	if len(certs) != 4 || len(keys) != 2 {
		tb.Fatalf("testdata/fuzz-pki.pem: %d certificates and %d keys, want 4 and 2", len(certs), len(keys))
	}
	return keys[0], keys[1], certs[0], certs[1], certs[2], certs[3]
}

func pemBundle(key crypto.Signer, certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic(err)
	}
	pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// sameBundle compares two bundles by their DER and keys.
func sameBundle(t *testing.T, what string, a, b Bundle) {
	t.Helper()
	if !bytes.Equal(a.Leaf.Raw, b.Leaf.Raw) || !publicKeyEqual(a.Key.Public(), b.Key.Public()) {
		t.Fatalf("%s: the leaf or the key changed", what)
	}
	if len(a.Chain) != len(b.Chain) {
		t.Fatalf("%s: %d chain certificates, want %d", what, len(b.Chain), len(a.Chain))
	}
	for i := range a.Chain {
		if !bytes.Equal(a.Chain[i].Raw, b.Chain[i].Raw) {
			t.Fatalf("%s: chain certificate %d changed", what, i)
		}
	}
}

// FuzzParseBundle feeds managed secret values to the agent's reader: PEM
// text, or (pfx true) a PKCS #12 file's DER that the target base64-encodes
// as the vault sends it. Properties of an accepted bundle: the key is the
// leaf's, Check does not panic on it, and the files Render
// writes from it (the combined PEM and the PKCS #12 file) read back to the
// same leaf, chain order and key.
func FuzzParseBundle(f *testing.F) {
	ecKey, rsaKey, leaf, inter, root, rsaLeaf := fuzzPKI(f)
	f.Add(pemBundle(ecKey, leaf, inter, root), false)
	f.Add(pemBundle(ecKey, root, inter, leaf), false)
	f.Add(pemBundle(rsaKey, rsaLeaf, inter), false)
	f.Add(pemBundle(ecKey, rsaLeaf), false)
	f.Add(append(pemBundle(ecKey, leaf), "trailing"...), false)
	for _, enc := range []*pkcs12.Encoder{pkcs12.LegacyDES, pkcs12.Modern2023} {
		pfx, err := enc.Encode(ecKey, leaf, []*x509.Certificate{inter, root}, "")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pfx, true)
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte, pfx bool) {
		ct, value := ContentTypePEM, string(data)
		if pfx {
			ct, value = ContentTypePKCS12, base64.StdEncoding.EncodeToString(data)
		}
		b, err := ParseBundle("v1", ct, value)
		if err != nil {
			return
		}
		if b.Leaf == nil || b.Key == nil || !publicKeyEqual(b.Key.Public(), b.Leaf.PublicKey) {
			t.Fatal("accepted a bundle whose key is not its leaf's")
		}
		_ = Check(b, now, []string{"www.example.com"}) // must not panic; its verdict is Check's tests' business
		files, err := Render(b, Files{Combined: "combined.pem", PFX: "bundle.pfx"}, "")
		if err != nil {
			t.Fatalf("Render of an accepted bundle: %v", err)
		}
		again, err := ParseBundle("v1", ContentTypePEM, string(files["combined.pem"]))
		if err != nil {
			t.Fatalf("the combined PEM of an accepted bundle does not read back: %v", err)
		}
		sameBundle(t, "combined PEM round trip", b, again)
		again, err = ParseBundle("v1", ContentTypePKCS12, base64.StdEncoding.EncodeToString(files["bundle.pfx"]))
		if err != nil {
			t.Fatalf("the PKCS #12 file of an accepted bundle does not read back: %v", err)
		}
		sameBundle(t, "PKCS #12 round trip", b, again)
	})
}
