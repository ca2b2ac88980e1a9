// Package certs turns certificate policies into keys and X.509
// certificates and back: key generation for a policy, templates, CSRs,
// self-signing and CA signing, checks that a key matches a certificate and
// that a chain verifies, and the encodings of a certificate's managed
// secret (PKCS#12 or PEM) and of imports. It holds no state and does no
// I/O; randomness is the only outside input, so callers run it before they
// propose a raft command.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/internal/pfx"
	"software.sslmate.com/src/go-pkcs12"
)

// Sentinel errors. Messages say what is wrong with the caller's input.
var (
	ErrKeyMismatch  = errors.New("certs: the certificate's public key does not match the private key")
	ErrNoPrivateKey = errors.New("certs: no private key in the imported data")
	ErrBadPassword  = errors.New("certs: the PKCS#12 password is wrong or the file is damaged")
	ErrExpired      = errors.New("certs: the certificate has expired")
	ErrNoCert       = errors.New("certs: no certificate in the data")
)

// GenerateKey makes a software key for the policy's key properties.
func GenerateKey(kp *keyvault.KeyProperties) (crypto.Signer, error) {
	switch kp.KeyType {
	case keyvault.KeyTypeRSA, keyvault.KeyTypeRSAHSM:
		k, err := rsa.GenerateKey(rand.Reader, kp.KeySize)
		if err != nil {
			return nil, fmt.Errorf("generate RSA key: %w", err)
		}
		return k, nil
	case keyvault.KeyTypeEC, keyvault.KeyTypeECHSM:
		c, err := Curve(kp.Curve)
		if err != nil {
			return nil, fmt.Errorf("generate EC key: %w", err)
		}
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate EC key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("generate key: key type %q not supported", kp.KeyType)
}

// Curve returns the elliptic curve of a JWK crv name.
func Curve(name string) (elliptic.Curve, error) {
	switch name {
	case "P-256":
		return elliptic.P256(), nil
	case "P-384":
		return elliptic.P384(), nil
	case "P-521":
		return elliptic.P521(), nil
	}
	return nil, fmt.Errorf("curve %q is not supported: use P-256, P-384 or P-521", name)
}

// RandomSerial returns a positive random 127-bit serial number.
func RandomSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

// Template builds the certificate template a policy describes, valid
// from nbf (backdated a minute for clock skew) to the policy's end.
func Template(p *keyvault.Policy, nbf time.Time) (*x509.Certificate, error) {
	xp := p.X509Properties
	serial, err := RandomSerial()
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    nbf.Add(-time.Minute),
		NotAfter:     p.NotAfter(nbf),
	}
	if xp.Subject != "" {
		if t.Subject, err = keyvault.ParseSubject(xp.Subject); err != nil {
			return nil, fmt.Errorf("subject: %w", err)
		}
	}
	if xp.SANs != nil {
		t.DNSNames = append(t.DNSNames, xp.SANs.DNSNames...)
		t.EmailAddresses = append(t.EmailAddresses, xp.SANs.Emails...)
		for _, upn := range xp.SANs.UPNs {
			// Carried as an email-shaped URI-less name: Go's x509 has no
			// otherName support, so UPNs are recorded as emails.
			t.EmailAddresses = append(t.EmailAddresses, upn)
		}
	}
	ekus := xp.EKUs
	if len(ekus) == 0 {
		ekus = []string{"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}
	}
	for _, e := range ekus {
		oid, err := keyvault.ParseOID(e)
		if err != nil {
			return nil, err
		}
		if ku, ok := knownEKU[oid.String()]; ok {
			t.ExtKeyUsage = append(t.ExtKeyUsage, ku)
		} else {
			t.UnknownExtKeyUsage = append(t.UnknownExtKeyUsage, oid)
		}
	}
	t.KeyUsage = keyvault.KeyUsageBits(xp.KeyUsage)
	if t.KeyUsage == 0 {
		t.KeyUsage = x509.KeyUsageDigitalSignature
		if strings.HasPrefix(p.KeyProperties.KeyType, keyvault.KeyTypeRSA) {
			t.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
	}
	return t, nil
}

var knownEKU = map[string]x509.ExtKeyUsage{
	"1.3.6.1.5.5.7.3.1": x509.ExtKeyUsageServerAuth,
	"1.3.6.1.5.5.7.3.2": x509.ExtKeyUsageClientAuth,
	"1.3.6.1.5.5.7.3.3": x509.ExtKeyUsageCodeSigning,
	"1.3.6.1.5.5.7.3.4": x509.ExtKeyUsageEmailProtection,
	"1.3.6.1.5.5.7.3.8": x509.ExtKeyUsageTimeStamping,
	"1.3.6.1.5.5.7.3.9": x509.ExtKeyUsageOCSPSigning,
}

// SelfSign makes a self-signed certificate for the policy.
func SelfSign(p *keyvault.Policy, key crypto.Signer, now time.Time) ([]byte, error) {
	t, err := Template(p, now)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, t, t, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign: %w", err)
	}
	return der, nil
}

// Sign issues a certificate for pub from the policy, signed by a CA; crl,
// if set, is the CRL distribution point the certificate carries.
func Sign(p *keyvault.Policy, pub crypto.PublicKey, ca *x509.Certificate, caKey crypto.Signer, crl string, now time.Time) ([]byte, error) {
	t, err := Template(p, now)
	if err != nil {
		return nil, err
	}
	if t.NotAfter.After(ca.NotAfter) {
		t.NotAfter = ca.NotAfter
	}
	if crl != "" {
		t.CRLDistributionPoints = []string{crl}
	}
	der, err := x509.CreateCertificate(rand.Reader, t, ca, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	return der, nil
}

// CSR makes a certificate signing request for the policy.
func CSR(p *keyvault.Policy, key crypto.Signer) ([]byte, error) {
	t, err := Template(p, time.Now())
	if err != nil {
		return nil, err
	}
	req := &x509.CertificateRequest{Subject: t.Subject, DNSNames: t.DNSNames, EmailAddresses: t.EmailAddresses}
	der, err := x509.CreateCertificateRequest(rand.Reader, req, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	return der, nil
}

// DomainCSR returns a CSR (DER) for exactly the DNS names given, the first
// as the common name, as ACME CAs expect: the names of the order and
// nothing else.
func DomainCSR(domains []string, key crypto.Signer) ([]byte, error) {
	if len(domains) == 0 {
		return nil, fmt.Errorf("certs: a CSR needs at least one DNS name")
	}
	cn := domains[0]
	if len(cn) > 64 {
		cn = "" // longer than a common name may be; the SANs carry it
	}
	req := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, DNSNames: domains}
	der, err := x509.CreateCertificateRequest(rand.Reader, req, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	return der, nil
}

// SamePublicKey reports whether two public keys are equal.
func SamePublicKey(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	if e, ok := a.(eq); ok {
		return e.Equal(b)
	}
	return false
}

// Thumbprint is the SHA-1 of the DER (Key Vault's x5t).
func Thumbprint(der []byte) []byte {
	s := sha1.Sum(der)
	return s[:]
}

// EncodeSecret encodes a key and chain (leaf first) as the managed secret
// of a certificate: base64 PKCS#12 without a password (as Key Vault
// returns it) or PEM (key, then chain).
func EncodeSecret(contentType string, key crypto.Signer, chain []*x509.Certificate) (string, error) {
	switch contentType {
	case keyvault.ContentTypePEM:
		var b bytes.Buffer
		if key != nil {
			der, err := x509.MarshalPKCS8PrivateKey(key)
			if err != nil {
				return "", fmt.Errorf("encode key: %w", err)
			}
			pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
		}
		for _, c := range chain {
			pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		return b.String(), nil
	default:
		// An empty password, 3DES and a SHA-1 MAC, as Key Vault's own
		// PFX files: every PKCS#12 reader (Windows, Java, OpenSSL 1 and 3)
		// opens it, and its integrity is checked.
		var pfx []byte
		var err error
		if key == nil {
			pfx, err = pkcs12.LegacyDES.EncodeTrustStore(chain, "")
		} else {
			pfx, err = pkcs12.LegacyDES.Encode(key, chain[0], chain[1:], "")
		}
		if err != nil {
			return "", fmt.Errorf("encode PKCS#12: %w", err)
		}
		return base64.StdEncoding.EncodeToString(pfx), nil
	}
}

// Imported is what ParseImport found.
type Imported struct {
	Key         crypto.Signer
	Chain       []*x509.Certificate // leaf first
	ContentType string
}

// ParseImport reads an import value: PEM text (key and certificates), or
// base64 PKCS#12 with password. The leaf (the certificate whose key is
// the private key) is put first.
func ParseImport(value, password string, now time.Time) (*Imported, error) {
	trimmed := strings.TrimSpace(value)
	var imp Imported
	if strings.HasPrefix(trimmed, "-----BEGIN") {
		imp.ContentType = keyvault.ContentTypePEM
		blocks, err := ParsePEM([]byte(value))
		if err != nil {
			return nil, err
		}
		for _, b := range blocks {
			switch b.Type {
			case "CERTIFICATE":
				c, err := x509.ParseCertificate(b.Bytes)
				if err != nil {
					return nil, fmt.Errorf("parse certificate: %w", err)
				}
				imp.Chain = append(imp.Chain, c)
			case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY":
				if imp.Key != nil {
					return nil, fmt.Errorf("%w: more than one private key; import one key with its certificates", ErrBadPEM)
				}
				k, err := parseKey(b)
				if err != nil {
					return nil, err
				}
				imp.Key = k
			case "ENCRYPTED PRIVATE KEY":
				return nil, errors.New("certs: encrypted PEM keys are not supported: import a PKCS#12 with its password, or an unencrypted PEM")
			}
		}
		if err := CheckRepeats(imp.Chain); err != nil {
			return nil, err
		}
	} else {
		imp.ContentType = keyvault.ContentTypePKCS12
		raw, err := base64.StdEncoding.DecodeString(trimmed)
		if err != nil {
			return nil, errors.New("certs: the value is neither PEM nor base64 PKCS#12")
		}
		if err := pfx.CheckIterations(raw); err != nil {
			return nil, fmt.Errorf("%w; export it again with a usual count (openssl pkcs12 -export uses 2048)", err)
		}
		key, leaf, cas, err := pkcs12.DecodeChain(raw, password)
		if err != nil {
			if errors.Is(err, pkcs12.ErrIncorrectPassword) {
				return nil, ErrBadPassword
			}
			return nil, fmt.Errorf("%w: %v", ErrBadPassword, err)
		}
		s, ok := key.(crypto.Signer)
		if !ok {
			return nil, errors.New("certs: the PKCS#12 key type is not supported")
		}
		imp.Key = s
		imp.Chain = append([]*x509.Certificate{leaf}, cas...)
	}
	if imp.Key == nil {
		return nil, ErrNoPrivateKey
	}
	if len(imp.Chain) == 0 {
		return nil, ErrNoCert
	}
	leafAt := -1
	for i, c := range imp.Chain {
		if SamePublicKey(c.PublicKey, imp.Key.Public()) {
			leafAt = i
			break
		}
	}
	if leafAt < 0 {
		return nil, ErrKeyMismatch
	}
	imp.Chain[0], imp.Chain[leafAt] = imp.Chain[leafAt], imp.Chain[0]
	if now.After(imp.Chain[0].NotAfter) {
		return nil, fmt.Errorf("%w on %s", ErrExpired, imp.Chain[0].NotAfter.UTC().Format(time.RFC3339))
	}
	return &imp, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch b.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("certs: private key type not supported")
	}
	return s, nil
}

// PolicyFor describes an existing certificate and key as a policy (for
// imports without one).
func PolicyFor(leaf *x509.Certificate, key crypto.Signer, contentType string) *keyvault.Policy {
	kp := &keyvault.KeyProperties{}
	switch k := key.Public().(type) {
	case *rsa.PublicKey:
		kp.KeyType, kp.KeySize = keyvault.KeyTypeRSA, k.N.BitLen()
	case *ecdsa.PublicKey:
		kp.KeyType, kp.Curve, kp.KeySize = keyvault.KeyTypeEC, k.Curve.Params().Name, k.Curve.Params().BitSize
	}
	t, f := true, false
	kp.Exportable, kp.ReuseKey = &t, &f
	xp := &keyvault.X509Properties{Subject: keyvault.FormatSubject(leaf.Subject), KeyUsage: keyvault.KeyUsageNames(leaf.KeyUsage)}
	if len(leaf.DNSNames)+len(leaf.EmailAddresses) > 0 {
		xp.SANs = &keyvault.SubjectAlternativeNames{DNSNames: leaf.DNSNames, Emails: leaf.EmailAddresses}
	}
	for _, e := range leaf.ExtKeyUsage {
		for oid, ku := range knownEKU {
			if ku == e {
				xp.EKUs = append(xp.EKUs, oid)
			}
		}
	}
	months := int(leaf.NotAfter.Sub(leaf.NotBefore).Hours()/24/30 + 0.5)
	if months < 1 {
		xp.ValidityDuration = fmt.Sprintf("%dm", int(leaf.NotAfter.Sub(leaf.NotBefore).Minutes()))
	} else {
		xp.ValidityInMonths = months
	}
	return &keyvault.Policy{
		KeyProperties:    kp,
		SecretProperties: &keyvault.SecretProperties{ContentType: contentType},
		X509Properties:   xp,
		Issuer:           &keyvault.IssuerParameters{Name: keyvault.IssuerUnknown},
		LifetimeActions:  []keyvault.LifetimeAction{{Trigger: keyvault.Trigger{LifetimePercentage: 80}, Action: keyvault.Action{ActionType: keyvault.ActionEmailContacts}}},
	}
}

// CheckNames reports an error when the leaf lacks a DNS name or the
// common name the policy asks for.
func CheckNames(p *keyvault.Policy, leaf *x509.Certificate) error {
	xp := p.X509Properties
	if xp.SANs != nil {
		have := map[string]bool{}
		for _, d := range leaf.DNSNames {
			have[strings.ToLower(d)] = true
		}
		for _, d := range xp.SANs.DNSNames {
			if !have[strings.ToLower(d)] {
				return fmt.Errorf("certs: the certificate lacks the DNS name %q that the policy asks for", d)
			}
		}
	}
	if xp.Subject != "" {
		want, err := keyvault.ParseSubject(xp.Subject)
		if err == nil && want.CommonName != "" && !strings.EqualFold(want.CommonName, leaf.Subject.CommonName) {
			return fmt.Errorf("certs: the certificate's common name %q is not the policy's %q", leaf.Subject.CommonName, want.CommonName)
		}
	}
	return nil
}

// SortChain orders certificates leaf first, each followed by its issuer
// where present; certificates that do not link are kept at the end.
func SortChain(leaf *x509.Certificate, rest []*x509.Certificate) []*x509.Certificate {
	out := []*x509.Certificate{leaf}
	left := append([]*x509.Certificate{}, rest...)
	for cur := leaf; ; {
		next := -1
		for i, c := range left {
			if bytes.Equal(cur.RawIssuer, c.RawSubject) && cur.CheckSignatureFrom(c) == nil {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		cur = left[next]
		out = append(out, cur)
		left = append(left[:next], left[next+1:]...)
	}
	return append(out, left...)
}

// ParseChainDER parses DER certificates.
func ParseChainDER(ders [][]byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i, d := range ders {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			// Key Vault also accepts PEM text inside x5c entries: one
			// certificate each, nothing around it.
			if bytes.HasPrefix(bytes.TrimSpace(d), pemBegin) {
				blocks, perr := ParsePEM(d)
				if perr != nil {
					return nil, fmt.Errorf("x5c[%d]: %w", i, perr)
				}
				if len(blocks) != 1 || blocks[0].Type != "CERTIFICATE" {
					return nil, fmt.Errorf("x5c[%d]: give exactly one CERTIFICATE block per entry: %w", i, ErrBadPEM)
				}
				if c, err = x509.ParseCertificate(blocks[0].Bytes); err == nil {
					out = append(out, c)
					continue
				}
			}
			return nil, fmt.Errorf("x5c[%d] is not a certificate: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// MergeChain reads the x5c of a merge: certificates (DER, or PEM text)
// in any order. The leaf is the certificate of pub (the pending request's
// key); the result is leaf first, each certificate followed by its issuer
// where present, then any that do not link. An x5c without a certificate
// of pub is refused with ErrKeyMismatch.
func MergeChain(x5c [][]byte, pub crypto.PublicKey) ([]*x509.Certificate, error) {
	chain, err := ParseChainDER(x5c)
	if err == nil {
		err = CheckRepeats(chain)
	}
	if err != nil {
		return nil, err
	}
	leafAt := -1
	for i, c := range chain {
		if SamePublicKey(c.PublicKey, pub) {
			leafAt = i
		}
	}
	if leafAt < 0 {
		return nil, ErrKeyMismatch
	}
	rest := append(append([]*x509.Certificate{}, chain[:leafAt]...), chain[leafAt+1:]...)
	return SortChain(chain[leafAt], rest), nil
}

// SubjectString renders a name in Key Vault's style ("CN=a, O=b"), in
// the form a policy's subject takes (keyvault.FormatSubject).
func SubjectString(n pkix.Name) string { return keyvault.FormatSubject(n) }

// CRLURL joins a base URL and an issuer name into the CRL address.
func CRLURL(base, issuer string) string {
	return strings.TrimSuffix(base, "/") + "/v1/pki/" + url.PathEscape(issuer) + "/crl"
}
