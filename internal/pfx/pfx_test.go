package pfx

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// marker is the iteration count the test files are made with: its DER
// (02 03 01 00 01) has room for counts up to 2^23-1 in place.
const marker = 65537

var markerDER = []byte{0x02, 0x03, 0x01, 0x00, 0x01}

func pfxFile(t *testing.T, enc *pkcs12.Encoder) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pfx test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	data, err := enc.Encode(key, cert, nil, "pw")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// patch replaces the n-th marker count in data with 8,388,607.
func patch(t *testing.T, data []byte, n int) []byte {
	t.Helper()
	out := bytes.Clone(data)
	at := -1
	for i := 0; i <= n; i++ {
		j := bytes.Index(out[at+1:], markerDER)
		if j < 0 {
			t.Fatalf("marker %d not found (only %d)", n, i)
		}
		at += 1 + j
	}
	copy(out[at+2:], []byte{0x7f, 0xff, 0xff})
	return out
}

func TestCheckIterations(t *testing.T) {
	for name, enc := range map[string]*pkcs12.Encoder{
		"LegacyDES (PKCS#12 PBE, SHA-1 MAC)":        pkcs12.LegacyDES,
		"Modern2023 (PBES2, SHA-256 MAC)":           pkcs12.Modern2023,
		"Modern2026 (PBES2, PBMAC1 with PBKDF2)":    pkcs12.Modern2026,
		"LegacyRC2 (PKCS#12 PBE with RC2 for safe)": pkcs12.LegacyRC2,
	} {
		t.Run(name, func(t *testing.T) {
			if err := CheckIterations(pfxFile(t, enc)); err != nil {
				t.Fatalf("a file with the encoder's own count: %v", err)
			}
			data := pfxFile(t, enc.WithIterations(marker))
			if err := CheckIterations(data); err != nil {
				t.Fatalf("a file with %d iterations: %v", marker, err)
			}
			// The MAC, the encrypted certificate safe and the shrouded key
			// each carry a count.
			slots := bytes.Count(data, markerDER)
			if slots != 3 {
				t.Fatalf("found %d iteration counts in the file, want 3", slots)
			}
			for i := 0; i < slots; i++ {
				if err := CheckIterations(patch(t, data, i)); !errors.Is(err, ErrTooCostly) {
					t.Errorf("count %d set to 8,388,607: got %v, want ErrTooCostly", i, err)
				}
			}
		})
	}
	for _, junk := range [][]byte{nil, {0x30, 0x00}, []byte("not a PFX")} {
		if err := CheckIterations(junk); err != nil {
			t.Errorf("CheckIterations(%x) = %v, want nil (the decoder refuses it)", junk, err)
		}
	}
}
