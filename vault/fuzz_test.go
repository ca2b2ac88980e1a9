package vault

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/front"
	"github.com/certvault/certvault/vault/front/kvapi"
	"github.com/certvault/certvault/vault/front/v1api"

	"github.com/certvault/certvault/vault/barrier"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"

	"github.com/certvault/certvault/internal/keyvault"
)

// Fuzz targets of the parsers the vault's own handlers hold: JWK import,
// $skiptoken paging, join and bearer tokens, agent CSRs and backup blobs.
// Seed corpora are in testdata/fuzz/; make test runs them, make fuzz
// explores from them.

// jwkOfPrivate renders a private key as the JWK a Key Vault import takes.
func jwkOfPrivate(key any) keyvault.JWK {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		j := kvapi.JwkFromPublic("", &k.PublicKey, nil)
		j.D, j.P, j.Q = k.D.Bytes(), k.Primes[0].Bytes(), k.Primes[1].Bytes()
		j.DP, j.DQ, j.QI = k.Precomputed.Dp.Bytes(), k.Precomputed.Dq.Bytes(), k.Precomputed.Qinv.Bytes()
		return j
	case *ecdsa.PrivateKey:
		j := kvapi.JwkFromPublic("", &k.PublicKey, nil)
		d, err := k.Bytes()
		if err != nil {
			panic(err)
		}
		j.D = d
		return j
	}
	panic("jwkOfPrivate: unsupported key")
}

// sameNumber compares two big-endian numbers, ignoring leading zeros.
func sameNumber(a, b []byte) bool {
	return new(big.Int).SetBytes(a).Cmp(new(big.Int).SetBytes(b)) == 0
}

// FuzzJWKImport feeds key import bodies (PUT /keys/{name}) to the JWK
// reader. Properties of an accepted key: its type and size are ones the
// vault supports; its public part is the one the JWK states (n and e, or
// crv, x and y when given); and its own JWK imports again to the same key.
func FuzzJWKImport(f *testing.F) {
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	for _, j := range []keyvault.JWK{jwkOfPrivate(ec), {Kty: "EC", Crv: "P-256", D: []byte{1}}, {Kty: "RSA", N: []byte{1}, E: []byte{1, 0, 1}, D: []byte{1}, P: []byte{1}, Q: []byte{1}}} {
		body, err := json.Marshal(kvapi.KeyImportRequest{Key: &j})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req kvapi.KeyImportRequest
		if json.Unmarshal(body, &req) != nil || req.Key == nil {
			return
		}
		key, err := kvapi.PrivateFromJWK(req.Key)
		if err != nil {
			var ae *front.APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
				t.Fatalf("refused with %v, want a 400 APIError", err)
			}
			return
		}
		pub := kvapi.JwkFromPublic("", key.Public(), nil)
		j := req.Key
		switch k := key.(type) {
		case *rsa.PrivateKey:
			if b := k.N.BitLen(); b != 2048 && b != 3072 && b != 4096 {
				t.Fatalf("accepted an RSA key of %d bits", b)
			}
			if !sameNumber(pub.N, j.N) || !sameNumber(pub.E, j.E) {
				t.Fatalf("the key's public part (n %x, e %x) is not the JWK's (n %x, e %x)", pub.N, pub.E, j.N, j.E)
			}
		case *ecdsa.PrivateKey:
			if pub.Crv != j.Crv {
				t.Fatalf("curve %s, the JWK says %s", pub.Crv, j.Crv)
			}
			if (len(j.X) > 0 || len(j.Y) > 0) && (!sameNumber(pub.X, j.X) || !sameNumber(pub.Y, j.Y)) {
				t.Fatalf("the key's point (%x, %x) is not the JWK's (%x, %x)", pub.X, pub.Y, j.X, j.Y)
			}
		default:
			t.Fatalf("accepted a %T", key)
		}
		again := jwkOfPrivate(key)
		back, err := kvapi.PrivateFromJWK(&again)
		if err != nil {
			t.Fatalf("the JWK of an accepted key does not import: %v", err)
		}
		type equaler interface {
			Equal(x crypto.PrivateKey) bool
		}
		if !back.(equaler).Equal(key) {
			t.Fatal("JWK round trip changed the key")
		}
	})
}

// FuzzSkipToken feeds list query strings to the paging reader. Properties:
// an accepted query gives 1 to 25 results a page; the nextLink built for
// the key it resumes after reads back to the same key and page size.
func FuzzSkipToken(f *testing.F) {
	for _, q := range []string{
		"api-version=7.4",
		"api-version=7.5&maxresults=10",
		"api-version=7.4&$skiptoken=" + base64.RawURLEncoding.EncodeToString([]byte("meta/secrets/db-password")) + "&maxresults=25",
		"$skiptoken=bWV0YS9jZXJ0aWZpY2F0ZXMvd3d3&maxresults=1&includePending=true",
		"$skiptoken=!!&maxresults=0",
		"maxresults=26",
		"$skiptoken=%FF%FE",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := &http.Request{Method: http.MethodGet, Host: "vault.example:8443",
			URL: &url.URL{Scheme: "https", Host: "vault.example:8443", Path: "/secrets", RawQuery: rawQuery}}
		limit, after, err := kvapi.PageParams(r)
		if err != nil {
			var ae *front.APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
				t.Fatalf("refused with %v, want a 400 APIError", err)
			}
			return
		}
		if limit < 1 || limit > 25 {
			t.Fatalf("accepted a page size of %d", limit)
		}
		link := kvapi.NextLink(r, after, limit)
		u, err := url.Parse(*link)
		if err != nil {
			t.Fatalf("nextLink %q does not parse: %v", *link, err)
		}
		if u.Host != r.Host || u.Path != r.URL.Path {
			t.Fatalf("nextLink %q leaves %s%s", *link, r.Host, r.URL.Path)
		}
		r2 := &http.Request{Method: http.MethodGet, Host: u.Host, URL: u}
		limit2, after2, err := kvapi.PageParams(r2)
		if err != nil {
			t.Fatalf("nextLink %q is refused: %v", *link, err)
		}
		if limit2 != limit || after2 != after {
			t.Fatalf("nextLink %q reads back as (%d, %q), want (%d, %q)", *link, limit2, after2, limit, after)
		}
	})
}

// FuzzTokens feeds strings to the three token readers: bearer tokens
// (cvt.<id>.<secret>), agent join tokens (cva.<id>.<secret>) and cluster
// join tokens (cvj.<id>.<secret>.<ca>). Property: a token that is
// accepted has every part and writes back to exactly the token given, so
// that one token has one spelling (the CA pin of a join token included).
func FuzzTokens(f *testing.F) {
	ca, _, err := newCA(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		f.Fatal(err)
	}
	join, _, err := newJoinToken("0123456789abcdef", ca, time.Hour, 1, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	bearer, _, err := core.NewToken("0123456789abcdef", "alice", time.Hour, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{join, " " + join + "\n", bearer, "cva.0123456789abcdef.c2VjcmV0", "cva..x", "cvt.a.b.c", "cvj.a.b.c", "cvj.a.b.c.d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		if id, secret, ok := splitToken(tok); ok {
			if id == "" || secret == "" || strings.Contains(id, ".") || core.TokenPrefix+id+"."+secret != tok {
				t.Fatalf("bearer token %q split into %q and %q", tok, id, secret)
			}
		}
		if id, secret, ok := fleet.ParseAgentJoinToken(tok); ok {
			if id == "" || secret == "" || strings.Contains(id, ".") || fleet.AgentTokenPrefix+id+"."+secret != strings.TrimSpace(tok) {
				t.Fatalf("agent join token %q split into %q and %q", tok, id, secret)
			}
		}
		p, err := parseJoinToken(tok)
		if err != nil {
			if !errors.Is(err, ErrBadJoinToken) {
				t.Fatalf("join token refused with %v, want ErrBadJoinToken", err)
			}
			return
		}
		if len(p.caSum) != sha256.Size {
			t.Fatalf("join token %q: CA pin of %d bytes", tok, len(p.caSum))
		}
		again := joinTokenPrefix + p.id + "." + p.secret + "." + base64.RawURLEncoding.EncodeToString(p.caSum)
		if again != strings.TrimSpace(tok) {
			t.Fatalf("join token %q is accepted but writes back as %q", tok, again)
		}
	})
}

// FuzzAgentCSR feeds enrollment CSRs (PEM) to the agent CSR reader.
// Properties of an accepted CSR: its signature verifies, its key is one
// the agent CA signs (EC P-256/P-384, RSA of 2048 to 8192 bits), and its
// DER in a fresh PEM reads back to the same request.
func FuzzAgentCSR(f *testing.F) {
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P224()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "web-01"}, DNSNames: []string{"web-01.example.com"}}, k)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})))
	}
	f.Add("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n")
	f.Fuzz(func(t *testing.T, p string) {
		csr, err := v1api.ParseAgentCSR(p)
		if err != nil {
			var ae *front.APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
				t.Fatalf("refused with %v, want a 400 APIError", err)
			}
			return
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR whose signature does not verify: %v", err)
		}
		switch k := csr.PublicKey.(type) {
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
				t.Fatalf("accepted an EC key on %s", k.Curve.Params().Name)
			}
		case *rsa.PublicKey:
			if b := k.N.BitLen(); b < 2048 || b > 8192 {
				t.Fatalf("accepted an RSA key of %d bits", b)
			}
		default:
			t.Fatalf("accepted a %T key", csr.PublicKey)
		}
		back, err := v1api.ParseAgentCSR(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})))
		if err != nil || !bytes.Equal(back.Raw, csr.Raw) {
			t.Fatalf("the accepted CSR's DER in a fresh PEM reads back as %v", err)
		}
	})
}

// FuzzBackupBlob feeds backup plaintexts to the restore's reader, and
// the same bytes as a ciphertext to the barrier. Properties: an accepted
// blob is of the kind restored and names a valid object whose record it
// holds, and each of its entries is one of that object's (meta, ver, val
// and, for a certificate, its policy and its managed key and secret), so
// that a restore writes nothing else; what the barrier seals under the
// backup's additional data opens to the same bytes, and only under it.
func FuzzBackupBlob(f *testing.F) {
	seal, err := barrier.LoadFileSeal(filepath.Join(f.TempDir(), "seal.key"), true)
	if err != nil {
		f.Fatal(err)
	}
	kr, _, err := barrier.NewKeyring(seal)
	if err != nil {
		f.Fatal(err)
	}
	krJSON, err := json.Marshal(kr)
	if err != nil {
		f.Fatal(err)
	}
	bar, err := barrier.OpenKeyring(krJSON, seal)
	if err != nil {
		f.Fatal(err)
	}
	blob := func(kind, name string, keys ...string) []byte {
		b := core.BackupBlob{Kind: kind, Name: name, Entries: map[string][]byte{}}
		for _, k := range keys {
			b.Entries[k] = []byte(`{"current":"v1"}`)
		}
		return core.MustJSON(b)
	}
	f.Add(uint8(0), blob(core.KindSecrets, "db-password", "meta/secrets/db-password", "ver/secrets/db-password/v1", "val/secrets/db-password/v1"))
	f.Add(uint8(1), blob(core.KindCertificates, "www", "meta/certificates/www", "policy/certificates/www", "ver/certificates/www/v1",
		"meta/keys/www", "ver/keys/www/v1", "val/keys/www/v1", "meta/secrets/www", "ver/secrets/www/v1"))
	f.Add(uint8(2), blob(core.KindKeys, "k", "meta/keys/k", "ver/keys/k/1"))
	f.Add(uint8(0), blob(core.KindSecrets, "a", "meta/secrets/a", "sys/tokens/abc"))
	f.Add(uint8(0), blob(core.KindSecrets, "a", "meta/secrets/a", "meta/secrets/ab"))
	f.Add(uint8(0), blob(core.KindSecrets, "", "meta/secrets/"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		kind := []string{core.KindSecrets, core.KindCertificates, core.KindKeys}[int(which)%3]
		if ct, err := bar.Encrypt(core.BackupAAD, data); err != nil {
			t.Fatalf("encrypt: %v", err)
		} else if pt, err := bar.Decrypt(core.BackupAAD, ct); err != nil || !bytes.Equal(pt, data) {
			t.Fatalf("decrypt(encrypt(blob)) = %v", err)
		} else if _, err := bar.Decrypt("other", ct); !errors.Is(err, barrier.ErrDecrypt) {
			t.Fatalf("a backup opens under another additional data: %v", err)
		}
		if _, err := bar.Decrypt(core.BackupAAD, data); err == nil {
			t.Fatal("the barrier opened bytes it did not seal")
		}

		b, err := kvapi.ParseBackup(kind, data)
		if err != nil {
			var ae *front.APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
				t.Fatalf("refused with %v, want a 400 APIError", err)
			}
			return
		}
		if b.Kind != kind || core.ValidName(kind, b.Name) != nil {
			t.Fatalf("accepted a blob of kind %q named %q for a %s restore", b.Kind, b.Name, kind)
		}
		if _, ok := b.Entries["meta/"+kind+"/"+b.Name]; !ok {
			t.Fatal("accepted a blob without the object's record")
		}
		kinds := map[string]bool{kind: true}
		sections := map[string]bool{"meta": true, "ver": true, "val": true}
		if kind == core.KindCertificates {
			kinds[core.KindKeys], kinds[core.KindSecrets] = true, true
			sections["policy"] = true
		}
		for k := range b.Entries {
			parts := strings.SplitN(k, "/", 4)
			ok := len(parts) >= 3 && sections[parts[0]] && parts[2] == b.Name
			switch {
			case !ok:
			case parts[0] == "policy":
				ok = parts[1] == core.KindCertificates && len(parts) == 3
			case parts[0] == "meta":
				ok = kinds[parts[1]] && len(parts) == 3
			default:
				ok = kinds[parts[1]] && len(parts) == 4
			}
			if !ok {
				t.Fatalf("a restore of %s %q would write %q, which is not the object's", kind, b.Name, k)
			}
		}
	})
}

// hugeRSACSR builds a CSR for a random RSA modulus of bits bits with a
// signature of junk: nobody needs the private key to send one.
func hugeRSACSR(t *testing.T, bits int) string {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits)))
	if err != nil {
		t.Fatal(err)
	}
	n.SetBit(n, bits-1, 1).SetBit(n, 0, 1)
	pub, err := asn1.Marshal(struct {
		N *big.Int
		E int
	}{n, 65537})
	if err != nil {
		t.Fatal(err)
	}
	type spki struct {
		Alg pkix.AlgorithmIdentifier
		Key asn1.BitString
	}
	subject, err := asn1.Marshal(pkix.Name{CommonName: "web-01"}.ToRDNSequence())
	if err != nil {
		t.Fatal(err)
	}
	info := struct {
		Version int
		Subject asn1.RawValue
		SPKI    spki
		Attrs   asn1.RawValue `asn1:"tag:0"`
	}{0, asn1.RawValue{FullBytes: subject},
		spki{pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}, Parameters: asn1.NullRawValue}, asn1.BitString{Bytes: pub, BitLength: len(pub) * 8}},
		asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true}}
	sig := make([]byte, bits/8)
	sig[1] = 1
	der, err := asn1.Marshal(struct {
		Info any
		Alg  pkix.AlgorithmIdentifier
		Sig  asn1.BitString
	}{info, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, Parameters: asn1.NullRawValue}, asn1.BitString{Bytes: sig, BitLength: len(sig) * 8}})
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// TestAgentCSRKeyCheckedBeforeSignature sends an enrollment CSR for a
// 262,144-bit RSA key: it is refused for its size, before its signature
// is checked (which took 2.5 s for this one and minutes for a CSR of the
// 1 MB a body may hold, on an endpoint that needs no token to reach it).
func TestAgentCSRKeyCheckedBeforeSignature(t *testing.T) {
	_, err := v1api.ParseAgentCSR(hugeRSACSR(t, 1<<18))
	var ae *front.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || !strings.Contains(ae.Message, "RSA keys need 2048 to 8192 bits, not 262144") {
		t.Fatalf("CSR of a 262144-bit RSA key: got %v, want 400 naming the size limit", err)
	}
}
