package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// FuzzSPCertificates: whatever a client sends as the certificate of a
// service principal, parseSPCertificates returns certificates or a bad
// parameter, never panics; what it accepts is unexpired, at most
// spMaxCertificates, and named by the SHA-256 of its own DER.
func FuzzSPCertificates(f *testing.F) {
	now := time.Now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		f.Fatal(err)
	}
	good := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	f.Add(good)
	f.Add(append(append([]byte{}, good...), good...))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}))
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("not DER")}))
	f.Add(append(append([]byte{}, good...), []byte("trailing")...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := parseSPCertificates(data, now)
		if err != nil {
			return
		}
		if len(certs) == 0 || len(certs) > spMaxCertificates {
			t.Fatalf("accepted %d certificates", len(certs))
		}
		for _, c := range certs {
			sum := sha256.Sum256(c.DER)
			if c.X5tS256 != base64.RawURLEncoding.EncodeToString(sum[:]) {
				t.Fatalf("x5t#S256 %s is not the SHA-256 of the certificate", c.X5tS256)
			}
			if c.NotAfter <= now.Unix() {
				t.Fatalf("accepted a certificate that expired at %d", c.NotAfter)
			}
		}
	})
}
