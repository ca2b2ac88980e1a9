package solver

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// TSIGKey is a shared TSIG key (RFC 8945) that signs dynamic updates. Its
// String and GoString never show the secret, so a key printed by mistake
// does not leak it.
type TSIGKey struct {
	// Name is the key's name as the server knows it ("certvault" or
	// "certvault."), matched without regard to case.
	Name string
	// Algorithm is one of hmac-sha1, hmac-sha224, hmac-sha256,
	// hmac-sha384 and hmac-sha512 (with or without the final dot, any
	// case); empty means hmac-sha256, tsig-keygen's default. hmac-md5 is
	// refused.
	Algorithm string
	// Secret is the key in standard base64, as in the key file.
	Secret string
}

// String names the key and its algorithm, never the secret. It has a value
// receiver so that printing a TSIGKey or a *TSIGKey with %v or %+v hides
// the secret alike.
func (k TSIGKey) String() string {
	alg := k.Algorithm
	if alg == "" {
		alg = "hmac-sha256"
	}
	return fmt.Sprintf("TSIG key %q (%s)", k.Name, alg)
}

// GoString is String, so %#v does not print the secret either.
func (k TSIGKey) GoString() string { return k.String() }

// tsigAlgorithms maps the accepted spellings (lowercase, no final dot) to
// the algorithm names on the wire.
var tsigAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// wire checks the key and returns its canonical name, its wire algorithm
// name and its secret. Errors name the key, never the secret.
func (k *TSIGKey) wire() (name, alg, secret string, err error) {
	name = strings.TrimSpace(k.Name)
	if name == "" || name == "." {
		return "", "", "", fmt.Errorf("%w: the TSIG key has no name: set it to the name in the server's key statement", ErrConfig)
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", "", "", fmt.Errorf("%w: the TSIG key name %q is not a valid DNS name", ErrConfig, name)
	}
	name = dns.CanonicalName(name)
	alg, ok := wireAlgorithm(k.Algorithm)
	if !ok {
		return "", "", "", fmt.Errorf("%w: TSIG key %q: algorithm %q is not supported: use hmac-sha256 (or hmac-sha1/224/384/512)", ErrConfig, name, k.Algorithm)
	}
	secret, ok = normalSecret(k.Secret)
	if !ok {
		return "", "", "", fmt.Errorf("%w: TSIG key %q: the secret is not standard base64 (copy the secret \"...\" from the key file as it is)", ErrConfig, name)
	}
	return name, alg, secret, nil
}

// wireAlgorithm maps an accepted algorithm spelling to its wire name; ""
// means hmac-sha256.
func wireAlgorithm(a string) (string, bool) {
	a = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(a)), ".")
	if a == "" {
		a = "hmac-sha256"
	}
	alg, ok := tsigAlgorithms[a]
	return alg, ok
}

// normalSecret decodes a base64 secret and encodes it again without
// whitespace. It reports nothing about why a secret is bad: callers must
// not describe the secret.
func normalSecret(s string) (string, bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil || len(raw) == 0 {
		return "", false
	}
	return base64.StdEncoding.EncodeToString(raw), true
}
