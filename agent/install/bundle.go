package install

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/pfx"
	"software.sslmate.com/src/go-pkcs12"
)

// Content types of a managed secret's value that ParseBundle reads.
const (
	// ContentTypePEM is a PEM text holding the private key and the
	// certificates, in any order.
	ContentTypePEM = "application/x-pem-file"
	// ContentTypePKCS12 is a base64 PKCS #12 file with an empty password.
	ContentTypePKCS12 = "application/x-pkcs12"
)

// Bundle is one certificate version as the vault gave it.
type Bundle struct {
	// Version is the vault's version of the certificate.
	Version string
	// Leaf is the certificate of Key.
	Leaf *x509.Certificate
	// Chain holds the other certificates, leaf excluded, each one the
	// issuer of the one before (Chain[0] issued Leaf). A root, when the
	// vault gave one, is last.
	Chain []*x509.Certificate
	// Key is the private key of Leaf.
	Key crypto.Signer
}

// ParseBundle reads a managed secret's value: PEM (a private key and
// certificates in any order; the key as "PRIVATE KEY", "EC PRIVATE KEY" or
// "RSA PRIVATE KEY") when contentType is application/x-pem-file, or base64
// PKCS #12 with an empty password when it is application/x-pkcs12.
//
// The leaf is the certificate whose public key is the key's. The other
// certificates are put in issuing order starting from the leaf; any that
// are not on that path follow in the order given, and Check rejects them.
func ParseBundle(version, contentType, value string) (Bundle, error) {
	var (
		key   crypto.Signer
		certs []*x509.Certificate
		err   error
	)
	switch mediaType(contentType) {
	case ContentTypePEM:
		key, certs, err = parsePEM([]byte(value))
	case ContentTypePKCS12:
		key, certs, err = parsePKCS12(value)
	default:
		err = fmt.Errorf("content type %q is neither %s nor %s", contentType, ContentTypePEM, ContentTypePKCS12)
	}
	if err != nil {
		return Bundle{}, fmt.Errorf("parse version %s: %w", version, err)
	}
	leafAt := -1
	for i, c := range certs {
		if publicKeyEqual(key.Public(), c.PublicKey) {
			leafAt = i
			break
		}
	}
	if leafAt < 0 {
		return Bundle{}, fmt.Errorf("parse version %s: no certificate is for the private key", version)
	}
	leaf := certs[leafAt]
	rest := append(append([]*x509.Certificate(nil), certs[:leafAt]...), certs[leafAt+1:]...)
	return Bundle{Version: version, Leaf: leaf, Chain: orderChain(leaf, rest), Key: key}, nil
}

// mediaType is contentType without parameters, in lower case.
func mediaType(contentType string) string {
	t, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

func parsePEM(data []byte) (crypto.Signer, []*x509.Certificate, error) {
	var (
		key   crypto.Signer
		certs []*x509.Certificate
	)
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("parse certificate: %w", err)
			}
			certs = append(certs, c)
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
			if key != nil {
				return nil, nil, errors.New("the PEM holds more than one private key")
			}
			k, err := parseKey(b)
			if err != nil {
				return nil, nil, err
			}
			key = k
		default:
			return nil, nil, fmt.Errorf("unexpected PEM block %q", b.Type)
		}
	}
	if len(bytes.TrimSpace(data)) != 0 {
		return nil, nil, errors.New("the PEM has text that is not a PEM block")
	}
	if key == nil {
		return nil, nil, errors.New("the PEM holds no private key")
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("the PEM holds no certificate")
	}
	return key, certs, nil
}

func parseKey(b *pem.Block) (crypto.Signer, error) {
	var (
		k   any
		err error
	)
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse private key: a %T cannot sign", k)
	}
	return s, nil
}

func parsePKCS12(value string) (crypto.Signer, []*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(value), ""))
	if err != nil {
		return nil, nil, fmt.Errorf("decode base64: %w", err)
	}
	if err := pfx.CheckIterations(der); err != nil {
		return nil, nil, fmt.Errorf("decode PKCS #12: %w", err)
	}
	k, leaf, cas, err := pkcs12.DecodeChain(der, "")
	if err != nil {
		return nil, nil, fmt.Errorf("decode PKCS #12: %w", err)
	}
	key, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("decode PKCS #12: a %T cannot sign", k)
	}
	return key, append([]*x509.Certificate{leaf}, cas...), nil
}

// orderChain puts certs in issuing order from leaf: each one the issuer
// of the one before. Certificates off that path follow in their order.
func orderChain(leaf *x509.Certificate, certs []*x509.Certificate) []*x509.Certificate {
	left := append([]*x509.Certificate(nil), certs...)
	var chain []*x509.Certificate
	for cur := leaf; !selfSigned(cur); {
		next := -1
		for i, c := range left {
			if issued(c, cur) {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		cur = left[next]
		chain = append(chain, cur)
		left = append(left[:next], left[next+1:]...)
	}
	return append(chain, left...)
}

// issued tells whether parent's key signed child.
func issued(parent, child *x509.Certificate) bool {
	return bytes.Equal(child.RawIssuer, parent.RawSubject) && child.CheckSignatureFrom(parent) == nil
}

// selfSigned tells whether c names itself as issuer and its own key
// signed it.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) &&
		c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// Check verifies a bundle before it is installed:
//
//   - the key is the leaf's;
//   - each certificate is signed by the next one of Chain (the last one
//     may have been issued by a root that is not in Chain); when Chain
//     ends with a self-signed root, the path is also verified as
//     crypto/x509 does, with that root as the only trust anchor. A
//     self-signed leaf with no chain, or a leaf alone, passes;
//   - now is within every certificate's NotBefore..NotAfter;
//   - when names is not empty, the leaf is valid for each name: a DNS SAN
//     equal to it or a wildcard SAN matching it (an IP SAN for an IP
//     address), or the subject CN when the leaf has no SANs.
func Check(b Bundle, now time.Time, names []string) error {
	if b.Leaf == nil || b.Key == nil {
		return fmt.Errorf("check version %s: the bundle has no leaf or no key", b.Version)
	}
	if !publicKeyEqual(b.Key.Public(), b.Leaf.PublicKey) {
		return fmt.Errorf("check version %s: the private key is not the leaf certificate's", b.Version)
	}
	if err := checkChain(b.Leaf, b.Chain, now); err != nil {
		return fmt.Errorf("check version %s: %w", b.Version, err)
	}
	for i, c := range append([]*x509.Certificate{b.Leaf}, b.Chain...) {
		what := "version " + b.Version
		if i > 0 {
			what = fmt.Sprintf("version %s: chain certificate %q", b.Version, c.Subject.String())
		}
		if now.Before(c.NotBefore) {
			return fmt.Errorf("%s is not valid before %s", what, c.NotBefore.UTC().Format(time.RFC3339))
		}
		if now.After(c.NotAfter) {
			return fmt.Errorf("%s expired at %s", what, c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	var missing []string
	for _, n := range names {
		if !validFor(b.Leaf, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("check version %s: the certificate is not valid for %s", b.Version, strings.Join(missing, ", "))
	}
	return nil
}

func checkChain(leaf *x509.Certificate, chain []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		if bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && !selfSigned(leaf) {
			return errors.New("the self-signed leaf's signature is not valid")
		}
		return nil
	}
	cur := leaf
	for _, next := range chain {
		if !bytes.Equal(cur.RawIssuer, next.RawSubject) {
			return fmt.Errorf("broken chain: %q is issued by %q, not by %q", cur.Subject.String(), cur.Issuer.String(), next.Subject.String())
		}
		if err := cur.CheckSignatureFrom(next); err != nil {
			return fmt.Errorf("broken chain: %q is not signed by %q: %w", cur.Subject.String(), next.Subject.String(), err)
		}
		cur = next
	}
	last := chain[len(chain)-1]
	if !selfSigned(last) {
		return nil
	}
	roots := x509.NewCertPool()
	roots.AddCert(last)
	inter := x509.NewCertPool()
	for _, c := range chain[:len(chain)-1] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) && invalid.Reason == x509.Expired {
		return nil // Check reports validity periods itself, with the dates.
	}
	if err != nil {
		return fmt.Errorf("verify chain to its root: %w", err)
	}
	return nil
}

// validFor tells whether leaf is good for name.
func validFor(leaf *x509.Certificate, name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if ip := net.ParseIP(name); ip != nil {
		for _, a := range leaf.IPAddresses {
			if a.Equal(ip) {
				return true
			}
		}
		return false
	}
	sans := leaf.DNSNames
	if len(sans) == 0 && len(leaf.IPAddresses) == 0 && len(leaf.EmailAddresses) == 0 && len(leaf.URIs) == 0 {
		sans = []string{leaf.Subject.CommonName}
	}
	for _, s := range sans {
		s = strings.ToLower(strings.TrimSuffix(s, "."))
		if s == name {
			return true
		}
		if rest, ok := strings.CutPrefix(s, "*."); ok {
			if _, after, ok := strings.Cut(name, "."); ok && after == rest && !strings.HasPrefix(name, "*") {
				return true
			}
		}
	}
	return false
}

// Files names the outputs Render makes, as base names in the target
// directory; "" means the output is not written.
type Files struct {
	// Cert is the leaf certificate, PEM.
	Cert string
	// Chain is the chain certificates, PEM, in order.
	Chain string
	// Fullchain is the leaf and then the chain, PEM.
	Fullchain string
	// Key is the private key, PKCS #8 "PRIVATE KEY" PEM.
	Key string
	// Combined is the key and then the full chain, PEM, as HAProxy reads
	// it.
	Combined string
	// PFX is a PKCS #12 file of key, leaf and chain.
	PFX string
}

// Render returns the content of each output f names, by base name: the
// leaf, the chain, the leaf and chain, the key as PKCS #8, the key then
// leaf and chain, and a PKCS #12 file (pkcs12.Modern) with pfxPassword,
// which may be empty.
func Render(b Bundle, f Files, pfxPassword string) (map[string][]byte, error) {
	if b.Leaf == nil || b.Key == nil {
		return nil, fmt.Errorf("render version %s: the bundle has no leaf or no key", b.Version)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Leaf.Raw})
	var chainPEM []byte
	for _, c := range b.Chain {
		chainPEM = append(chainPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	full := append(append([]byte(nil), certPEM...), chainPEM...)
	var keyPEM []byte
	if f.Key != "" || f.Combined != "" {
		der, err := x509.MarshalPKCS8PrivateKey(b.Key)
		if err != nil {
			return nil, fmt.Errorf("render version %s: encode key: %w", b.Version, err)
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	out := map[string][]byte{}
	add := func(name string, content func() ([]byte, error)) error {
		if name == "" {
			return nil
		}
		if err := checkFileName(name); err != nil {
			return err
		}
		if _, dup := out[name]; dup {
			return fmt.Errorf("two outputs are named %q", name)
		}
		c, err := content()
		if err != nil {
			return err
		}
		out[name] = c
		return nil
	}
	static := func(b []byte) func() ([]byte, error) {
		return func() ([]byte, error) { return b, nil }
	}
	outputs := []struct {
		name    string
		content func() ([]byte, error)
	}{
		{f.Cert, static(certPEM)},
		{f.Chain, static(chainPEM)},
		{f.Fullchain, static(full)},
		{f.Key, static(keyPEM)},
		{f.Combined, static(append(append([]byte(nil), keyPEM...), full...))},
		{f.PFX, func() ([]byte, error) {
			pfx, err := pkcs12.Modern.Encode(b.Key, b.Leaf, b.Chain, pfxPassword)
			if err != nil {
				return nil, fmt.Errorf("encode PKCS #12: %w", err)
			}
			return pfx, nil
		}},
	}
	for _, o := range outputs {
		if err := add(o.name, o.content); err != nil {
			return nil, fmt.Errorf("render version %s: %w", b.Version, err)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("render version %s: no output is named", b.Version)
	}
	return out, nil
}
