package keyvault

import (
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// ErrInvalidInput wraps every error of CheckTags and CheckAttributes; its
// message says what to fix.
var ErrInvalidInput = errors.New("keyvault: invalid input")

// Limits of the objects' metadata. The tag limits are Key Vault's own
// (15 tags, names and values of at most 256 characters, on keys, secrets
// and certificates alike); the others are certvault's and docs/api.md
// lists them.
const (
	MaxTags           = 15
	MaxTagNameChars   = 256
	MaxTagValueChars  = 256
	MaxSubjectAltName = 100 // DNS names, emails and UPNs of one policy together, as Let's Encrypt allows
)

// MinTime and MaxTime bound the nbf and exp attributes (Unix seconds):
// 1970-01-01 to 9999-12-31T23:59:59Z, the range that RFC 3339, X.509's
// GeneralizedTime and Go's JSON encoding of times all represent, and far
// from where adding a lifetime in nanoseconds overflows.
const (
	MinTime int64 = 0
	MaxTime int64 = 253402300799
)

// subjectBounds are RFC 5280's upper bounds (appendix A.1, in
// characters) for the attributes ParseSubject knows; a subject beyond
// them is refused by public CAs and by strict parsers.
var subjectBounds = []struct {
	attr   string
	max    int
	values func(n *pkix.Name) []string
}{
	{"CN", 64, func(n *pkix.Name) []string { return []string{n.CommonName} }}, // ub-common-name
	{"O", 64, func(n *pkix.Name) []string { return n.Organization }},          // ub-organization-name
	{"OU", 64, func(n *pkix.Name) []string { return n.OrganizationalUnit }},   // ub-organizational-unit-name
	{"L", 128, func(n *pkix.Name) []string { return n.Locality }},             // ub-locality-name
	{"ST", 128, func(n *pkix.Name) []string { return n.Province }},            // ub-state-name
	{"C", 2, func(n *pkix.Name) []string { return n.Country }},                // ub-country-name-alpha-length
	{"SERIALNUMBER", 64, func(n *pkix.Name) []string { return []string{n.SerialNumber} }},
}

// checkSubjectBounds refuses a subject attribute longer than RFC 5280
// allows.
func checkSubjectBounds(n *pkix.Name) error {
	for _, b := range subjectBounds {
		for _, v := range b.values(n) {
			if c := utf8.RuneCountInString(v); c > b.max {
				return fmt.Errorf("%s is %d characters long; RFC 5280 allows at most %d", b.attr, c, b.max)
			}
		}
	}
	return nil
}

// CheckTags refuses more than MaxTags tags, an empty tag name, and names
// or values longer than Key Vault allows. The message names the tag (cut
// short when long) but never quotes a value.
func CheckTags(tags map[string]string) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%w: %d tags given; at most %d are allowed", ErrInvalidInput, len(tags), MaxTags)
	}
	names := make([]string, 0, len(tags))
	for k := range tags {
		names = append(names, k)
	}
	slices.Sort(names) // the same error for the same input
	for _, k := range names {
		if k == "" {
			return fmt.Errorf("%w: a tag has an empty name; give every tag a name", ErrInvalidInput)
		}
		if c := utf8.RuneCountInString(k); c > MaxTagNameChars {
			return fmt.Errorf("%w: tag name %q is %d characters long; at most %d are allowed", ErrInvalidInput, short(k), c, MaxTagNameChars)
		}
		if c := utf8.RuneCountInString(tags[k]); c > MaxTagValueChars {
			return fmt.Errorf("%w: the value of tag %q is %d characters long; at most %d are allowed", ErrInvalidInput, short(k), c, MaxTagValueChars)
		}
	}
	return nil
}

// CheckAttributes refuses an nbf or exp outside MinTime..MaxTime.
func CheckAttributes(a *Attributes) error {
	if a == nil {
		return nil
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"nbf", a.NotBefore}, {"exp", a.Expires}} {
		if f.v != nil && (*f.v < MinTime || *f.v > MaxTime) {
			return fmt.Errorf("%w: attributes.%s %d is out of range: give Unix seconds from %d (%s) to %d (%s)", ErrInvalidInput,
				f.name, *f.v, MinTime, time.Unix(MinTime, 0).UTC().Format(time.RFC3339), MaxTime, time.Unix(MaxTime, 0).UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// short cuts a long name for an error message.
func short(s string) string {
	const keep = 32
	if utf8.RuneCountInString(s) <= keep {
		return s
	}
	r := []rune(s)
	return string(r[:keep]) + "…"
}
