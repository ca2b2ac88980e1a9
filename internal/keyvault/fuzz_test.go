package keyvault

import (
	"bytes"
	"encoding/asn1"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Fuzz targets of the policy, subject, validity and OID parsers. Seed
// corpora are in testdata/fuzz/ (the policies from Key Vault's own docs
// and tools among them); make test runs them, make fuzz explores.

// clonePolicy deep-copies p, keeping nil and empty slices apart.
func clonePolicy(p *Policy) *Policy {
	if p == nil {
		return nil
	}
	q := *p
	cp := func(s []string) []string {
		if s == nil {
			return nil
		}
		return append([]string{}, s...)
	}
	cpBool := func(b *bool) *bool {
		if b == nil {
			return nil
		}
		v := *b
		return &v
	}
	cpInt := func(i *int64) *int64 {
		if i == nil {
			return nil
		}
		v := *i
		return &v
	}
	if p.KeyProperties != nil {
		kp := *p.KeyProperties
		kp.Exportable, kp.ReuseKey = cpBool(kp.Exportable), cpBool(kp.ReuseKey)
		q.KeyProperties = &kp
	}
	if p.SecretProperties != nil {
		sp := *p.SecretProperties
		q.SecretProperties = &sp
	}
	if p.X509Properties != nil {
		xp := *p.X509Properties
		xp.EKUs, xp.KeyUsage = cp(xp.EKUs), cp(xp.KeyUsage)
		if xp.SANs != nil {
			s := *xp.SANs
			s.DNSNames, s.Emails, s.UPNs = cp(s.DNSNames), cp(s.Emails), cp(s.UPNs)
			xp.SANs = &s
		}
		q.X509Properties = &xp
	}
	if p.LifetimeActions != nil {
		q.LifetimeActions = append([]LifetimeAction{}, p.LifetimeActions...)
	}
	if p.Issuer != nil {
		is := *p.Issuer
		is.CertificateTransparency = cpBool(is.CertificateTransparency)
		q.Issuer = &is
	}
	if p.Attributes != nil {
		a := *p.Attributes
		a.Enabled, a.NotBefore, a.Expires = cpBool(a.Enabled), cpInt(a.NotBefore), cpInt(a.Expires)
		q.Attributes = &a
	}
	return &q
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return b
}

// FuzzPolicy feeds policy JSON both to ParsePolicy (the CLI's reader,
// which also takes the camelCase of az and the SDKs) and to
// encoding/json (the API's body decoder), then normalises. Properties:
// ParsePolicy gives the same answer every time; a policy that normalises
// normalises again to itself (idempotence); its JSON read back and
// normalised is the same policy; a normalised policy holds what the
// certificate code relies on (a key type and size, a content type, a
// subject that parses, EKUs that encode, triggers in range).
func FuzzPolicy(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"x509_props":{"subject":"CN=a"}}`))
	f.Add([]byte(`{"key_props":{"kty":"EC","crv":"P-384"},"x509_props":{"subject":"CN=a","sans":{"dns_names":["a"]}}}`))
	f.Add([]byte(`{"key_props":{"kty":"RSA-HSM","exportable":false},"x509_props":{"sans":{"emails":["a@b.c"],"upns":["u@d"]},"validity_duration":"90m"},"issuer":{"name":"unknown"}}`))
	f.Add([]byte(`{"x509_props":{"subject":"CN=a","ekus":["1.3.6.1.5.5.7.3.1"],"key_usage":["digitalSignature"]},"lifetime_actions":[{"trigger":{"days_before_expiry":30},"action":{"action_type":"emailcontacts"}}]}`))
	f.Add([]byte(`{"keyProperties":{"keyType":"EC"},"key_props":{"kty":"RSA"},"x509_props":{"subject":"CN=a"}}`))
	f.Add([]byte(`{"policy":{"x509CertificateProperties":{"subject":"CN=a"}},"attributes":{"created":1}}`))
	f.Add([]byte(`{"x509_props":{"subject":"CN=a"},"attributes":{"nbf":9007199254740993}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var first []byte
		for i := 0; i < 4; i++ {
			p, err := ParsePolicy(data)
			got := fmt.Sprint(err)
			if err == nil {
				got = string(mustMarshal(t, p))
			}
			if i == 0 {
				first = []byte(got)
			} else if got != string(first) {
				t.Fatalf("ParsePolicy is not deterministic:\n%s\nthen\n%s", first, got)
			}
		}
		viaCLI, errCLI := ParsePolicy(data)
		if errCLI == nil {
			checkNormalize(t, "ParsePolicy", clonePolicy(viaCLI))
		}
		var viaAPI Policy
		errAPI := json.Unmarshal(data, &viaAPI)
		if errAPI == nil {
			checkNormalize(t, "json.Unmarshal", clonePolicy(&viaAPI))
		}
		// The CLI and the API read a policy in the REST form alike.
		if restFormOnly(data) && errAPI == nil {
			if errCLI != nil {
				t.Fatalf("the API reads the policy but ParsePolicy refuses it: %v", errCLI)
			}
			if a, c := mustMarshal(t, &viaAPI), mustMarshal(t, viaCLI); !bytes.Equal(a, c) {
				t.Fatalf("ParsePolicy and the API read the policy differently:\nAPI %s\nCLI %s", a, c)
			}
		}
	})
}

// restFormOnly reports whether data is one JSON object without repeated
// members, without a "policy" wrapper and without any of the camelCase
// names that only ParsePolicy reads: a policy both readers must read alike.
func restFormOnly(data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	type level struct {
		obj     bool
		keys    map[string]bool
		wantKey bool
	}
	var stack []*level
	for first := true; ; first = false {
		tok, err := dec.Token()
		if err != nil {
			return len(stack) == 0 && !first && err.Error() == "EOF"
		}
		if d, ok := tok.(json.Delim); first && (!ok || d != '{') {
			return false
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.obj {
					top.wantKey = true
				}
				if len(stack) == 0 && v != '{' {
					return false
				}
				stack = append(stack, &level{obj: v == '{', keys: map[string]bool{}, wantKey: true})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if top != nil && top.obj && top.wantKey {
				k := strings.ToLower(v)
				if top.keys[k] || k == "policy" {
					return false
				}
				for camel := range azCLINames {
					if strings.EqualFold(camel, v) {
						return false
					}
				}
				top.keys[k] = true
				top.wantKey = false
				continue
			}
		}
		if top != nil && top.obj {
			top.wantKey = true
		}
	}
}

func checkNormalize(t *testing.T, via string, p *Policy) {
	t.Helper()
	if err := p.Normalize(); err != nil {
		if !strings.Contains(err.Error(), ErrInvalidPolicy.Error()) {
			t.Fatalf("%s: Normalize error %q does not wrap ErrInvalidPolicy", via, err)
		}
		return
	}
	again := clonePolicy(p)
	if err := again.Normalize(); err != nil {
		t.Fatalf("%s: a normalised policy does not normalise again: %v\n%s", via, err, mustMarshal(t, p))
	}
	if !reflect.DeepEqual(p, again) {
		t.Fatalf("%s: Normalize is not idempotent:\n%s\nthen\n%s", via, mustMarshal(t, p), mustMarshal(t, again))
	}
	data := mustMarshal(t, p)
	back, err := ParsePolicy(data)
	if err != nil {
		t.Fatalf("%s: the JSON of a normalised policy does not parse: %v\n%s", via, err, data)
	}
	if err := back.Normalize(); err != nil {
		t.Fatalf("%s: the JSON of a normalised policy does not normalise: %v\n%s", via, err, data)
	}
	if got := mustMarshal(t, back); !bytes.Equal(got, data) {
		t.Fatalf("%s: JSON round trip changed the policy:\n%s\nthen\n%s", via, data, got)
	}

	kp := p.KeyProperties
	switch kp.KeyType {
	case KeyTypeRSA, KeyTypeRSAHSM:
		if kp.KeySize != 2048 && kp.KeySize != 3072 && kp.KeySize != 4096 || kp.Curve != "" {
			t.Fatalf("%s: accepted RSA key_props %+v", via, kp)
		}
	case KeyTypeEC, KeyTypeECHSM:
		if curveBits[kp.Curve] != kp.KeySize {
			t.Fatalf("%s: accepted EC key_props %+v", via, kp)
		}
	default:
		t.Fatalf("%s: accepted kty %q", via, kp.KeyType)
	}
	if p.Exportable() && IsHSM(kp.KeyType) {
		t.Fatalf("%s: accepted an exportable HSM key", via)
	}
	if ct := p.ContentType(); ct != ContentTypePEM && ct != ContentTypePKCS12 {
		t.Fatalf("%s: accepted content type %q", via, ct)
	}
	xp := p.X509Properties
	if xp.Subject != "" {
		if _, err := ParseSubject(xp.Subject); err != nil {
			t.Fatalf("%s: accepted subject %q does not parse: %v", via, xp.Subject, err)
		}
	}
	for _, e := range xp.EKUs {
		oid, err := ParseOID(e)
		if err != nil {
			t.Fatalf("%s: accepted EKU %q does not parse: %v", via, e, err)
		}
		if _, err := asn1.Marshal(oid); err != nil {
			t.Fatalf("%s: accepted EKU %q cannot go into a certificate: %v", via, e, err)
		}
	}
	nbf := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if !p.NotAfter(nbf).After(nbf) {
		t.Fatalf("%s: accepted policy makes certificates that end at %v, not after they start at %v", via, p.NotAfter(nbf), nbf)
	}
	if len(p.LifetimeActions) == 0 {
		t.Fatalf("%s: a normalised policy has no lifetime action", via)
	}
	for _, la := range p.LifetimeActions {
		tr := la.Trigger
		if (tr.LifetimePercentage == 0) == (tr.DaysBeforeExpiry == 0) || tr.LifetimePercentage < 0 || tr.LifetimePercentage > 99 || tr.DaysBeforeExpiry < 0 {
			t.Fatalf("%s: accepted trigger %+v", via, tr)
		}
		if la.Action.ActionType != ActionAutoRenew && la.Action.ActionType != ActionEmailContacts {
			t.Fatalf("%s: accepted action %q", via, la.Action.ActionType)
		}
	}
}

// FuzzParseSubject checks that a subject that parses is written back by
// FormatSubject in a form that parses to the same name, and that the
// form is a fixed point.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{
		"CN=www.example.com",
		`CN=www.example.com, O="Contoso, Ltd"; OU=IT, C=US`,
		`CN=www.example.com,O=Example\, Inc.,C=US`,
		"CN=x, E=admin@example.com, DC=example, DC=com, STREET=1 Main St, POSTALCODE=75001, SERIALNUMBER=42, L=Paris, ST=IDF, S=IDF",
		`CN=\ lead and trail\ , O="  kept  "`,
		`CN="unterminated`,
		`CN=a"b"c`,
		`O=a\`,
		"CN=caf\u00e9, O=\u65e5\u672c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSubject(s)
		if err != nil {
			return
		}
		out := FormatSubject(n)
		n2, err := ParseSubject(out)
		if err != nil {
			t.Fatalf("ParseSubject(%q) parses but its FormatSubject %q does not: %v", s, out, err)
		}
		if !reflect.DeepEqual(n, n2) {
			t.Fatalf("subject %q: parsed %#v, re-rendered as %q, re-parsed %#v", s, n, out, n2)
		}
		if out2 := FormatSubject(n2); out2 != out {
			t.Fatalf("FormatSubject is not a fixed point: %q then %q", out, out2)
		}
	})
}

// FuzzParseOID checks that an OID that parses can be DER-encoded (so it
// can go into a certificate) and that its dotted form parses to the same.
func FuzzParseOID(f *testing.F) {
	for _, s := range []string{"1.3.6.1.5.5.7.3.1", "2.5.29.37.0", "1.2", "0.39", "1.40", "3.1", "+1.2", "1..2", "1", "2.999.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		oid, err := ParseOID(s)
		if err != nil {
			return
		}
		if _, err := asn1.Marshal(oid); err != nil {
			t.Fatalf("ParseOID(%q) = %v, which DER cannot encode: %v", s, oid, err)
		}
		back, err := ParseOID(oid.String())
		if err != nil || !back.Equal(oid) {
			t.Fatalf("ParseOID(%q) = %v; its string %q parses to %v, %v", s, oid, oid.String(), back, err)
		}
	})
}

// FuzzParseValidity checks that an accepted short validity lies between
// one minute and 100 years and that its canonical form parses back to it.
func FuzzParseValidity(f *testing.F) {
	for _, s := range []string{"90m", "12h", "6d", " 6d ", "0m", "36500d", "36501d", "876000h", "52560001m", "9223372036854775807d", "1y", "-1d", "+1d", "٣d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseValidity(s)
		if err != nil {
			return
		}
		if d < time.Minute || d > 100*365*24*time.Hour {
			t.Fatalf("ParseValidity(%q) = %v, outside one minute to 100 years", s, d)
		}
		var canon string
		switch {
		case d%(24*time.Hour) == 0:
			canon = fmt.Sprintf("%dd", d/(24*time.Hour))
		case d%time.Hour == 0:
			canon = fmt.Sprintf("%dh", d/time.Hour)
		default:
			canon = fmt.Sprintf("%dm", d/time.Minute)
		}
		if back, err := ParseValidity(canon); err != nil || back != d {
			t.Fatalf("ParseValidity(%q) = %v; its canonical form %q parses to %v, %v", s, d, canon, back, err)
		}
	})
}
