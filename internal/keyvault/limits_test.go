package keyvault

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestNormalizeSubjectAndSANLimits(t *testing.T) {
	dns := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("h%d.example.com", i)
		}
		return out
	}
	cn64 := strings.Repeat("a", 52) + ".example.com" // 64 characters
	for _, tc := range []struct {
		name    string
		subject string
		sans    *SubjectAlternativeNames
		want    string // "" accepted
	}{
		{"CN of 64 characters", "CN=" + cn64, nil, ""},
		{"CN of 65 characters", "CN=a" + cn64, nil, "CN is 65 characters long; RFC 5280 allows at most 64"},
		{"CN of 64 multibyte characters", "CN=" + strings.Repeat("é", 64), nil, ""},
		{"O of 65 characters", "CN=x, O=" + strings.Repeat("o", 65), nil, "O is 65 characters"},
		{"L of 129 characters", "CN=x, L=" + strings.Repeat("l", 129), nil, "L is 129 characters"},
		{"country of 3 letters", "CN=x, C=FRA", nil, "C is 3 characters"},
		{"100 SANs", "CN=x", &SubjectAlternativeNames{DNSNames: dns(100)}, ""},
		{"101 DNS SANs", "CN=x", &SubjectAlternativeNames{DNSNames: dns(101)}, "101 names given; at most 100"},
		{"101 SANs of three kinds", "", &SubjectAlternativeNames{DNSNames: dns(99), Emails: []string{"a@example.com"}, UPNs: []string{"u@example.com"}}, "101 names given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Policy{X509Properties: &X509Properties{Subject: tc.subject, SANs: tc.sans}}
			err := p.Normalize()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Normalize: got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Normalize: got %v, want an invalid-policy error containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckTags(t *testing.T) {
	many := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("t%02d", i)] = "v"
		}
		return m
	}
	for _, tc := range []struct {
		name string
		tags map[string]string
		want string // "" accepted
	}{
		{"none", nil, ""},
		{"15 tags", many(15), ""},
		{"16 tags", many(16), "16 tags given; at most 15"},
		{"name of 256 characters", map[string]string{strings.Repeat("ñ", 256): "v"}, ""},
		{"name of 257 characters", map[string]string{strings.Repeat("n", 257): "v"}, "is 257 characters long; at most 256"},
		{"value of 256 characters", map[string]string{"env": strings.Repeat("ü", 256)}, ""},
		{"value of 257 characters", map[string]string{"env": strings.Repeat("v", 257)}, `value of tag "env" is 257 characters`},
		{"empty name", map[string]string{"": "v"}, "empty name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTags(tc.tags)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckTags: got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckTags: got %v, want an invalid-input error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), strings.Repeat("v", 33)) {
				t.Errorf("CheckTags: the message %q quotes a long name or a value", err)
			}
		})
	}
}

func TestCheckAttributes(t *testing.T) {
	at := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name string
		a    *Attributes
		want string // "" accepted
	}{
		{"nil", nil, ""},
		{"none set", &Attributes{}, ""},
		{"1970 and 9999", &Attributes{NotBefore: at(0), Expires: at(MaxTime)}, ""},
		{"nbf before 1970", &Attributes{NotBefore: at(-1)}, "attributes.nbf -1 is out of range"},
		{"exp after 9999", &Attributes{Expires: at(MaxTime + 1)}, "attributes.exp 253402300800 is out of range"},
		{"exp far out", &Attributes{Expires: at(1 << 62)}, "attributes.exp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckAttributes(tc.a)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckAttributes: got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "9999-12-31T23:59:59Z") {
				t.Fatalf("CheckAttributes: got %v, want an invalid-input error containing %q and the range", err, tc.want)
			}
		})
	}
}
