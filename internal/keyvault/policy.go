package keyvault

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/certvault/certvault/internal/objname"
)

// ErrInvalidPolicy wraps every policy validation error; its message says
// what to fix.
var ErrInvalidPolicy = errors.New("keyvault: invalid certificate policy")

// Key types, curves, content types and actions Key Vault defines.
const (
	KeyTypeRSA    = "RSA"
	KeyTypeRSAHSM = "RSA-HSM"
	KeyTypeEC     = "EC"
	KeyTypeECHSM  = "EC-HSM"

	ContentTypePKCS12 = "application/x-pkcs12"
	ContentTypePEM    = "application/x-pem-file"

	ActionAutoRenew     = "AutoRenew"
	ActionEmailContacts = "EmailContacts"

	IssuerSelf    = "Self"
	IssuerUnknown = "Unknown"
)

// curveBits maps curve names to their key sizes.
var curveBits = map[string]int{"P-256": 256, "P-384": 384, "P-521": 521}

// keyUsages maps Key Vault's key usage names to x509 bits.
var keyUsages = map[string]x509.KeyUsage{
	"digitalSignature": x509.KeyUsageDigitalSignature,
	"nonRepudiation":   x509.KeyUsageContentCommitment,
	"keyEncipherment":  x509.KeyUsageKeyEncipherment,
	"dataEncipherment": x509.KeyUsageDataEncipherment,
	"keyAgreement":     x509.KeyUsageKeyAgreement,
	"keyCertSign":      x509.KeyUsageCertSign,
	"cRLSign":          x509.KeyUsageCRLSign,
	"encipherOnly":     x509.KeyUsageEncipherOnly,
	"decipherOnly":     x509.KeyUsageDecipherOnly,
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidPolicy, fmt.Sprintf(format, args...))
}

func boolPtr(b bool) *bool { return &b }

// Normalize validates p and fills Key Vault's defaults in place: RSA 2048,
// exportable, reuse_key false, PKCS#12, 12 months, issuer Self, and an
// AutoRenew (EmailContacts for Unknown) at 80 % of the lifetime when no
// lifetime action is given. The returned error wraps ErrInvalidPolicy and
// says what to fix.
func (p *Policy) Normalize() error {
	if p.KeyProperties == nil {
		p.KeyProperties = &KeyProperties{}
	}
	kp := p.KeyProperties
	if kp.KeyType == "" {
		if kp.Curve != "" {
			kp.KeyType = KeyTypeEC
		} else {
			kp.KeyType = KeyTypeRSA
		}
	}
	switch kp.KeyType {
	case KeyTypeRSA, KeyTypeRSAHSM:
		if kp.Curve != "" {
			return invalid("key_props.crv %q is for EC keys; remove it or use kty EC", kp.Curve)
		}
		if kp.KeySize == 0 {
			kp.KeySize = 2048
		}
		if kp.KeySize != 2048 && kp.KeySize != 3072 && kp.KeySize != 4096 {
			return invalid("key_props.key_size %d: RSA keys must be 2048, 3072 or 4096 bits", kp.KeySize)
		}
	case KeyTypeEC, KeyTypeECHSM:
		if kp.Curve == "" {
			switch kp.KeySize {
			case 0, 256:
				kp.Curve = "P-256"
			case 384:
				kp.Curve = "P-384"
			case 521:
				kp.Curve = "P-521"
			}
		}
		bits, ok := curveBits[kp.Curve]
		if !ok {
			return invalid("key_props.crv %q: use P-256, P-384 or P-521", kp.Curve)
		}
		if kp.KeySize != 0 && kp.KeySize != bits {
			return invalid("key_props.key_size %d does not match curve %s (%d bits)", kp.KeySize, kp.Curve, bits)
		}
		kp.KeySize = bits
	default:
		return invalid("key_props.kty %q is not supported: use RSA, RSA-HSM, EC or EC-HSM", kp.KeyType)
	}
	if kp.Exportable == nil {
		kp.Exportable = boolPtr(!IsHSM(kp.KeyType))
	}
	if *kp.Exportable && IsHSM(kp.KeyType) {
		return invalid("key_props.exportable cannot be true for %s keys: HSM keys never leave the HSM", kp.KeyType)
	}
	if kp.ReuseKey == nil {
		kp.ReuseKey = boolPtr(false)
	}

	if p.SecretProperties == nil {
		p.SecretProperties = &SecretProperties{}
	}
	switch p.SecretProperties.ContentType {
	case "":
		p.SecretProperties.ContentType = ContentTypePKCS12
	case ContentTypePKCS12, ContentTypePEM:
	default:
		return invalid("secret_props.contentType %q: use %s or %s", p.SecretProperties.ContentType, ContentTypePKCS12, ContentTypePEM)
	}

	if p.X509Properties == nil {
		p.X509Properties = &X509Properties{}
	}
	xp := p.X509Properties
	if xp.Subject != "" {
		subject, err := ParseSubject(xp.Subject)
		if err != nil {
			return invalid("x509_props.subject %q: %v", xp.Subject, err)
		}
		if err := checkSubjectBounds(&subject); err != nil {
			return invalid("x509_props.subject: %v", err)
		}
	}
	if xp.SANs != nil {
		if n := len(xp.SANs.DNSNames) + len(xp.SANs.Emails) + len(xp.SANs.UPNs); n > MaxSubjectAltName {
			return invalid("x509_props.sans: %d names given; at most %d are allowed (split them over several certificates)", n, MaxSubjectAltName)
		}
		for _, d := range xp.SANs.DNSNames {
			if !validDNSName(d) {
				return invalid("x509_props.sans.dns_names: %q is not a valid DNS name", d)
			}
		}
		for _, e := range xp.SANs.Emails {
			if _, err := mail.ParseAddress(e); err != nil || !strings.Contains(e, "@") {
				return invalid("x509_props.sans.emails: %q is not an email address", e)
			}
		}
		for _, u := range xp.SANs.UPNs {
			if !strings.Contains(u, "@") {
				return invalid("x509_props.sans.upns: %q is not a user principal name (user@domain)", u)
			}
		}
	}
	if xp.Subject == "" && (xp.SANs == nil || len(xp.SANs.DNSNames)+len(xp.SANs.Emails)+len(xp.SANs.UPNs) == 0) {
		return invalid("x509_props: give a subject (such as CN=www.example.com) or at least one subject alternative name")
	}
	for _, eku := range xp.EKUs {
		if _, err := ParseOID(eku); err != nil {
			return invalid("x509_props.ekus: %q is not an OID such as 1.3.6.1.5.5.7.3.1", eku)
		}
	}
	for _, ku := range xp.KeyUsage {
		if _, ok := keyUsages[ku]; !ok {
			return invalid("x509_props.key_usage: %q is not a key usage (digitalSignature, keyEncipherment, ...)", ku)
		}
	}
	if xp.ValidityDuration != "" {
		if _, err := ParseValidity(xp.ValidityDuration); err != nil {
			return invalid("x509_props.validity_duration: %v", err)
		}
		xp.ValidityInMonths = 0
	} else {
		if xp.ValidityInMonths == 0 {
			xp.ValidityInMonths = 12
		}
		if xp.ValidityInMonths < 1 || xp.ValidityInMonths > MaxValidityMonths {
			return invalid("x509_props.validity_months %d: use 1 to %d (100 years, the longest certificate certvault makes)", xp.ValidityInMonths, MaxValidityMonths)
		}
	}

	if p.Issuer == nil {
		p.Issuer = &IssuerParameters{}
	}
	if p.Issuer.Name == "" {
		p.Issuer.Name = IssuerSelf
	}
	if objname.Equal(p.Issuer.Name, IssuerSelf) {
		p.Issuer.Name = IssuerSelf
	} else if objname.Equal(p.Issuer.Name, IssuerUnknown) {
		p.Issuer.Name = IssuerUnknown
	}

	if len(p.LifetimeActions) == 0 {
		action := ActionAutoRenew
		if p.Issuer.Name == IssuerUnknown {
			action = ActionEmailContacts
		}
		p.LifetimeActions = []LifetimeAction{{Trigger: Trigger{LifetimePercentage: 80}, Action: Action{ActionType: action}}}
	}
	seen := map[string]bool{}
	validity := p.nominalValidity()
	for i, la := range p.LifetimeActions {
		at := la.Action.ActionType
		switch {
		case strings.EqualFold(at, ActionAutoRenew):
			at = ActionAutoRenew
		case strings.EqualFold(at, ActionEmailContacts):
			at = ActionEmailContacts
		default:
			return invalid("lifetime_actions[%d].action.action_type %q: use AutoRenew or EmailContacts", i, at)
		}
		p.LifetimeActions[i].Action.ActionType = at
		if seen[at] {
			return invalid("lifetime_actions: %s appears twice; give one trigger per action", at)
		}
		seen[at] = true
		if at == ActionAutoRenew && p.Issuer.Name == IssuerUnknown {
			return invalid("lifetime_actions[%d]: AutoRenew is not possible with issuer Unknown (a person must merge each certificate); use EmailContacts", i)
		}
		t := la.Trigger
		switch {
		case t.LifetimePercentage != 0 && t.DaysBeforeExpiry != 0:
			return invalid("lifetime_actions[%d].trigger: give lifetime_percentage or days_before_expiry, not both", i)
		case t.LifetimePercentage != 0:
			if t.LifetimePercentage < 1 || t.LifetimePercentage > 99 {
				return invalid("lifetime_actions[%d].trigger.lifetime_percentage %d: use 1 to 99", i, t.LifetimePercentage)
			}
		case t.DaysBeforeExpiry != 0:
			if t.DaysBeforeExpiry < 1 {
				return invalid("lifetime_actions[%d].trigger.days_before_expiry %d: must be at least 1", i, t.DaysBeforeExpiry)
			}
			// Compared as day counts: days × 24 h overflows a Duration
			// from 106752 days on.
			if months := p.X509Properties.ValidityInMonths; p.X509Properties.ValidityDuration == "" && t.DaysBeforeExpiry > DaysPerMonth*months {
				return invalid("lifetime_actions[%d].trigger.days_before_expiry %d: use 1 to %d (%d days for each of the %d months of validity, as Key Vault)", i, t.DaysBeforeExpiry, DaysPerMonth*months, DaysPerMonth, months)
			}
			if day := 24 * time.Hour; int64(t.DaysBeforeExpiry) >= int64((validity+day-1)/day) {
				return invalid("lifetime_actions[%d].trigger.days_before_expiry %d can never fire: the certificate is valid for only %s", i, t.DaysBeforeExpiry, humanDuration(validity))
			}
		default:
			return invalid("lifetime_actions[%d].trigger: give lifetime_percentage (1-99) or days_before_expiry", i)
		}
	}
	return nil
}

// Bounds of a policy's validity and triggers.
const (
	// MaxValidityMonths is the longest validity_months (100 years; a
	// validity_duration is bounded the same way). X.509 dates reach the
	// year 9999 (GeneralizedTime) and Key Vault documents no maximum;
	// a hundred years covers any root CA made in practice and keeps every
	// lifetime far inside the range of int64 nanoseconds.
	MaxValidityMonths = 1200
	// DaysPerMonth bounds days_before_expiry for a validity in months, as
	// Key Vault does: at most 27 days for each month (a month has at
	// least 28), so the trigger never falls before the certificate starts.
	DaysPerMonth = 27
)

// nominalValidity is the policy's validity, months counted as 30 days
// (used only to check triggers).
func (p *Policy) nominalValidity() time.Duration {
	if p.X509Properties.ValidityDuration != "" {
		d, _ := ParseValidity(p.X509Properties.ValidityDuration)
		return d
	}
	return time.Duration(p.X509Properties.ValidityInMonths) * 30 * 24 * time.Hour
}

// NotAfter returns the end of validity for a certificate starting at nbf.
func (p *Policy) NotAfter(nbf time.Time) time.Time {
	if p.X509Properties.ValidityDuration != "" {
		d, _ := ParseValidity(p.X509Properties.ValidityDuration)
		return nbf.Add(d)
	}
	return nbf.AddDate(0, p.X509Properties.ValidityInMonths, 0)
}

// IsHSM reports whether kty is an HSM key type.
func IsHSM(kty string) bool { return kty == KeyTypeRSAHSM || kty == KeyTypeECHSM }

// Exportable reports whether the policy lets the private key leave the
// vault through the managed secret.
func (p *Policy) Exportable() bool {
	return p.KeyProperties != nil && p.KeyProperties.Exportable != nil && *p.KeyProperties.Exportable
}

// ReuseKey reports the policy's reuse_key.
func (p *Policy) ReuseKey() bool {
	return p.KeyProperties != nil && p.KeyProperties.ReuseKey != nil && *p.KeyProperties.ReuseKey
}

// ContentType returns the managed secret's content type.
func (p *Policy) ContentType() string {
	if p.SecretProperties == nil || p.SecretProperties.ContentType == "" {
		return ContentTypePKCS12
	}
	return p.SecretProperties.ContentType
}

// IssuerName returns the policy's issuer name.
func (p *Policy) IssuerName() string {
	if p.Issuer == nil || p.Issuer.Name == "" {
		return IssuerSelf
	}
	return p.Issuer.Name
}

var validityRe = regexp.MustCompile(`^([0-9]+)(m|h|d)$`)

// ParseValidity parses a short validity: "90m", "12h", "6d" (at least one
// minute, at most 100 years).
func ParseValidity(s string) (time.Duration, error) {
	m := validityRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q: use a number followed by m, h or d, such as 90m, 12h or 6d", s)
	}
	n, err := strconv.Atoi(m[1])
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q: must be at least 1%s", s, m[2])
	}
	unit := map[string]time.Duration{"m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
	if n > int(100*365*24*time.Hour/unit) {
		return 0, fmt.Errorf("%q: longer than 100 years", s)
	}
	return time.Duration(n) * unit, nil
}

func humanDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Hours()))
	default:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	}
}

// KeyUsageBits converts Key Vault key usage names to x509 bits.
func KeyUsageBits(names []string) x509.KeyUsage {
	var ku x509.KeyUsage
	for _, n := range names {
		ku |= keyUsages[n]
	}
	return ku
}

// KeyUsageNames converts x509 bits to Key Vault's names, in a fixed order.
func KeyUsageNames(ku x509.KeyUsage) []string {
	var out []string
	for _, n := range []string{"digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"} {
		if ku&keyUsages[n] != 0 {
			out = append(out, n)
		}
	}
	return out
}

// ParseOID parses a dotted OID such as 1.3.6.1.5.5.7.3.1: two or more
// arcs of decimal digits, the first 0, 1 or 2 and, under 0 and 1, the
// second below 40 (what DER can encode, so that an accepted OID can go
// into a certificate).
func ParseOID(s string) (asn1.ObjectIdentifier, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, fmt.Errorf("%q is not an OID", s)
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return nil, fmt.Errorf("%q is not an OID", s)
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("%q is not an OID", s)
		}
		oid[i] = n
	}
	if oid[0] > 2 || oid[0] < 2 && oid[1] >= 40 {
		return nil, fmt.Errorf("%q is not an OID: the first arc is 0, 1 or 2, and under 0 or 1 the second is below 40", s)
	}
	return oid, nil
}

var dnsLabel = regexp.MustCompile(`^(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)

func validDNSName(s string) bool { return len(s) <= 253 && dnsLabel.MatchString(s) }

// OIDs of the subject attributes that pkix.Name has no field for.
var (
	oidEmailAddress    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	oidDomainComponent = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
)

// ParseSubject parses a distinguished name such as
// "CN=www.example.com, O=Contoso, OU=IT, L=Paris, ST=IDF, C=FR".
// Attributes are separated by commas or semicolons. A value may be put in
// double quotes (O="Contoso, Ltd"), and a backslash takes the next
// character literally (O=Contoso\, Ltd), as RFC 4514 and
// pkix.Name.String write it. Spaces around a value are dropped unless
// quoted or escaped. FormatSubject writes a name back in this form.
func ParseSubject(s string) (pkix.Name, error) {
	var n pkix.Name
	if !utf8.ValidString(s) {
		return n, errors.New("not valid UTF-8")
	}
	parts, err := splitDN(s)
	if err != nil {
		return n, err
	}
	if len(parts) == 0 {
		return n, errors.New("empty distinguished name")
	}
	for _, part := range parts {
		k, raw, ok := strings.Cut(part, "=")
		k = strings.TrimSpace(k)
		v, err := dnValue(raw)
		if err != nil {
			return n, fmt.Errorf("%q: %w", part, err)
		}
		if !ok || k == "" || v == "" {
			return n, fmt.Errorf("%q is not ATTRIBUTE=value", part)
		}
		switch strings.ToUpper(k) {
		case "CN":
			n.CommonName = v
		case "O":
			n.Organization = append(n.Organization, v)
		case "OU":
			n.OrganizationalUnit = append(n.OrganizationalUnit, v)
		case "L":
			n.Locality = append(n.Locality, v)
		case "ST", "S":
			n.Province = append(n.Province, v)
		case "C":
			n.Country = append(n.Country, v)
		case "STREET":
			n.StreetAddress = append(n.StreetAddress, v)
		case "POSTALCODE":
			n.PostalCode = append(n.PostalCode, v)
		case "SERIALNUMBER":
			n.SerialNumber = v
		case "E", "EMAIL", "EMAILADDRESS":
			n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidEmailAddress, Value: v})
		case "DC":
			n.ExtraNames = append(n.ExtraNames, pkix.AttributeTypeAndValue{Type: oidDomainComponent, Value: v})
		default:
			return n, fmt.Errorf("attribute %q is not supported (use CN, O, OU, L, ST, C, E, DC, STREET, POSTALCODE, SERIALNUMBER)", k)
		}
	}
	return n, nil
}

// splitDN splits on commas and semicolons outside double quotes and not
// escaped by a backslash.
func splitDN(s string) ([]string, error) {
	var parts []string
	var cur strings.Builder
	quoted, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
			cur.WriteRune(r)
		case r == '\\':
			escaped = true
			cur.WriteRune(r)
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case (r == ',' || r == ';') && !quoted:
			if strings.TrimSpace(cur.String()) != "" {
				parts = append(parts, cur.String())
			}
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	if escaped {
		return nil, errors.New("ends with a lone backslash")
	}
	if quoted {
		return nil, errors.New("unbalanced quote")
	}
	if strings.TrimSpace(cur.String()) != "" {
		parts = append(parts, cur.String())
	}
	return parts, nil
}

// dnValue reads one attribute value: spaces around it dropped, then either
// "quoted" or bare, with backslash escapes in both. A quote inside a bare
// value or text after a closing quote is an error.
func dnValue(raw string) (string, error) {
	rs := []rune(strings.TrimLeftFunc(raw, unicode.IsSpace))
	quoted := len(rs) > 0 && rs[0] == '"'
	if quoted {
		rs = rs[1:]
	}
	var out []rune
	keep, closed := 0, false // keep: length of out without trailing unescaped spaces
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case closed:
			if !unicode.IsSpace(r) {
				return "", errors.New("text after the closing quote")
			}
		case r == '\\':
			if i+1 == len(rs) {
				return "", errors.New("ends with a lone backslash")
			}
			i++
			out = append(out, rs[i])
			keep = len(out)
		case r == '"':
			if !quoted {
				return "", errors.New(`a quote inside a value: quote the whole value ("...") or escape the quote (\")`)
			}
			closed = true
		default:
			out = append(out, r)
			if quoted || !unicode.IsSpace(r) {
				keep = len(out)
			}
		}
	}
	if quoted && !closed {
		return "", errors.New("unbalanced quote")
	}
	return string(out[:keep]), nil
}

// FormatSubject writes n in the form ParseSubject reads ("CN=www.example.com,
// O=Contoso\, Ltd, C=FR"): CN, OU, O, L, ST, C, STREET, POSTALCODE,
// SERIALNUMBER, then E and DC in their order, with backslash escapes where
// a value needs them. Attributes ParseSubject does not know are left out.
// ParseSubject(FormatSubject(n)) gives back the attributes it kept.
func FormatSubject(n pkix.Name) string {
	var parts []string
	add := func(k string, vs ...string) {
		for _, v := range vs {
			if v != "" {
				parts = append(parts, k+"="+escapeDNValue(v))
			}
		}
	}
	add("CN", n.CommonName)
	add("OU", n.OrganizationalUnit...)
	add("O", n.Organization...)
	add("L", n.Locality...)
	add("ST", n.Province...)
	add("C", n.Country...)
	add("STREET", n.StreetAddress...)
	add("POSTALCODE", n.PostalCode...)
	add("SERIALNUMBER", n.SerialNumber)
	// A name parsed from a certificate has these in Names; one built by
	// ParseSubject has them in ExtraNames.
	extra := n.ExtraNames
	if len(extra) == 0 {
		extra = n.Names
	}
	for _, a := range extra {
		v, ok := a.Value.(string)
		switch {
		case !ok:
		case a.Type.Equal(oidEmailAddress):
			add("E", v)
		case a.Type.Equal(oidDomainComponent):
			add("DC", v)
		}
	}
	return strings.Join(parts, ", ")
}

// escapeDNValue escapes the characters ParseSubject would otherwise take
// as syntax: separators, quotes, backslashes, and spaces at either end.
func escapeDNValue(v string) string {
	rs := []rune(v)
	var b strings.Builder
	for i, r := range rs {
		switch {
		case strings.ContainsRune(`,;"\+`, r),
			unicode.IsSpace(r) && (i == 0 || i == len(rs)-1):
			b.WriteRune('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
