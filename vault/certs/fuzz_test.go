package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"software.sslmate.com/src/go-pkcs12"
)

// Fuzz targets of the import (PEM, PKCS#12) and merge (x5c DER) readers.
// Seed corpora are in testdata/fuzz/; the certificates they hold come
// from testdata/fuzz-pki.pem, a fixed PKI valid from 2025 to 2045 (root,
// intermediate, an EC and an RSA leaf with their keys).

// fuzzNow is the clock of the fuzz targets, inside the fixture's validity.
var fuzzNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// fuzzPKI is testdata/fuzz-pki.pem read.
type fuzzPKI struct {
	pem                   []byte
	ecKey, rsaKey         crypto.Signer
	leaf, inter, root, rl *x509.Certificate
}

func loadFuzzPKI(tb testing.TB) fuzzPKI {
	tb.Helper()
	data, err := os.ReadFile("testdata/fuzz-pki.pem")
	if err != nil {
		tb.Fatal(err)
	}
	p := fuzzPKI{pem: data}
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
	p.ecKey, p.rsaKey = keys[0], keys[1]
	p.leaf, p.inter, p.root, p.rl = certs[0], certs[1], certs[2], certs[3]
	return p
}

func pemOf(key crypto.Signer, certs ...*x509.Certificate) string {
	var b bytes.Buffer
	if key != nil {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			panic(err)
		}
		pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for _, c := range certs {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.String()
}

// FuzzParseImport feeds import values: PEM text, or (pfx true) the DER of
// a PKCS#12 file that the target base64-encodes as the API carries it.
// Properties of an accepted import: the first certificate is the key's,
// it is valid at the import time, the content type is the form read, and
// the vault's own encoding of the result (EncodeSecret, as the managed
// secret returns it) imports again to the same key and chain.
func FuzzParseImport(f *testing.F) {
	p := loadFuzzPKI(f)
	f.Add([]byte(p.pem), "", false)
	f.Add([]byte(pemOf(p.ecKey, p.inter, p.leaf, p.root)), "", false)
	f.Add([]byte(pemOf(p.rsaKey, p.rl)), "", false)
	f.Add([]byte(pemOf(nil, p.leaf)), "", false)
	for _, enc := range []*pkcs12.Encoder{pkcs12.LegacyDES, pkcs12.Modern2023} {
		pfx, err := enc.Encode(p.ecKey, p.leaf, []*x509.Certificate{p.inter, p.root}, "pw")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(pfx, "pw", true)
		f.Add(pfx, "wrong", true)
	}
	f.Fuzz(func(t *testing.T, data []byte, password string, pfx bool) {
		value := string(data)
		if pfx {
			value = base64.StdEncoding.EncodeToString(data)
		}
		imp, err := ParseImport(value, password, fuzzNow)
		if err != nil {
			return
		}
		if imp.Key == nil || len(imp.Chain) == 0 {
			t.Fatalf("accepted an import without key (%v) or certificate (%d)", imp.Key != nil, len(imp.Chain))
		}
		if !SamePublicKey(imp.Chain[0].PublicKey, imp.Key.Public()) {
			t.Fatal("the first certificate of an accepted import is not the key's")
		}
		if fuzzNow.After(imp.Chain[0].NotAfter) {
			t.Fatalf("accepted a leaf that expired on %v", imp.Chain[0].NotAfter)
		}
		wantCT := keyvault.ContentTypePKCS12
		if strings.HasPrefix(strings.TrimSpace(value), "-----BEGIN") {
			wantCT = keyvault.ContentTypePEM
		}
		if imp.ContentType != wantCT {
			t.Fatalf("content type %q, want %q", imp.ContentType, wantCT)
		}
		switch imp.Key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey:
		default:
			return // other key types are refused by the policy check after import
		}
		for _, ct := range []string{keyvault.ContentTypePEM, keyvault.ContentTypePKCS12} {
			secret, err := EncodeSecret(ct, imp.Key, imp.Chain)
			if err != nil {
				t.Fatalf("EncodeSecret(%s) of an accepted import: %v", ct, err)
			}
			again, err := ParseImport(secret, "", fuzzNow)
			if err != nil {
				t.Fatalf("the %s secret of an accepted import does not import: %v", ct, err)
			}
			if !SamePublicKey(again.Key.Public(), imp.Key.Public()) {
				t.Fatalf("%s round trip changed the key", ct)
			}
			if len(again.Chain) != len(imp.Chain) {
				t.Fatalf("%s round trip: %d certificates, want %d", ct, len(again.Chain), len(imp.Chain))
			}
			for i := range imp.Chain {
				if !bytes.Equal(again.Chain[i].Raw, imp.Chain[i].Raw) {
					t.Fatalf("%s round trip changed certificate %d", ct, i)
				}
			}
		}
	})
}

// FuzzMergeChain feeds merge request bodies ({"x5c": [...]}, DER or PEM
// entries in any order) to the merge's chain reader, with the fixture's
// EC leaf key as the pending request's key. Properties of an accepted
// x5c: the result is a permutation of the entries with the key's
// certificate first; the certificates that link do so by name and
// signature; and ordering the result again changes nothing.
func FuzzMergeChain(f *testing.F) {
	p := loadFuzzPKI(f)
	body := func(certs ...*x509.Certificate) []byte {
		var req keyvault.MergeRequest
		for _, c := range certs {
			req.X5C = append(req.X5C, c.Raw)
		}
		b, err := json.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(body(p.leaf, p.inter, p.root))
	f.Add(body(p.root, p.leaf, p.inter))
	f.Add(body(p.inter, p.rl, p.leaf))
	f.Add(body(p.leaf))
	f.Add(body(p.rl))
	f.Add([]byte(`{"x5c":["` + base64.StdEncoding.EncodeToString([]byte(pemOf(nil, p.leaf))) + `"]}`))
	f.Add([]byte(`{"x5c":["AAAA"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req keyvault.MergeRequest
		if json.Unmarshal(data, &req) != nil {
			return
		}
		out, err := MergeChain(req.X5C, p.ecKey.Public())
		if err != nil {
			if _, perr := ParseChainDER(req.X5C); perr == nil && !errors.Is(err, ErrKeyMismatch) {
				t.Fatalf("MergeChain of parsable certificates failed with %v, want ErrKeyMismatch", err)
			}
			return
		}
		if len(out) != len(req.X5C) {
			t.Fatalf("%d certificates out of %d entries", len(out), len(req.X5C))
		}
		if !SamePublicKey(out[0].PublicKey, p.ecKey.Public()) {
			t.Fatal("the first certificate is not the pending key's")
		}
		in, err := ParseChainDER(req.X5C)
		if err != nil {
			t.Fatalf("MergeChain accepted an x5c that ParseChainDER refuses: %v", err)
		}
		count := map[string]int{}
		for _, c := range in {
			count[string(c.Raw)]++
		}
		for _, c := range out {
			count[string(c.Raw)]--
		}
		for _, n := range count {
			if n != 0 {
				t.Fatal("the ordered chain is not a permutation of the x5c")
			}
		}
		for i := 1; i < len(out); i++ {
			if !bytes.Equal(out[i-1].RawIssuer, out[i].RawSubject) || out[i-1].CheckSignatureFrom(out[i]) != nil {
				// The rest does not link; it must be where SortChain
				// could not continue.
				for _, c := range out[i:] {
					if bytes.Equal(out[i-1].RawIssuer, c.RawSubject) && out[i-1].CheckSignatureFrom(c) == nil {
						t.Fatalf("certificate %d is followed by one that did not issue it while its issuer comes later", i-1)
					}
				}
				break
			}
		}
		again := SortChain(out[0], out[1:])
		for i := range out {
			if !bytes.Equal(again[i].Raw, out[i].Raw) {
				t.Fatalf("ordering the ordered chain again moved certificate %d", i)
			}
		}
	})
}
