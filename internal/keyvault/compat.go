package keyvault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// azCLINames maps the camelCase member names that Key Vault's own tooling
// prints (az keyvault certificate get-default-policy, the Python and .NET
// SDK models) to the REST API's names.
var azCLINames = map[string]string{
	"issuerParameters":          "issuer",
	"certificateType":           "cty",
	"certificateTransparency":   "cert_transparency",
	"keyProperties":             "key_props",
	"curve":                     "crv",
	"keySize":                   "key_size",
	"keyType":                   "kty",
	"reuseKey":                  "reuse_key",
	"lifetimeActions":           "lifetime_actions",
	"actionType":                "action_type",
	"daysBeforeExpiry":          "days_before_expiry",
	"lifetimePercentage":        "lifetime_percentage",
	"secretProperties":          "secret_props",
	"x509CertificateProperties": "x509_props",
	"x509Properties":            "x509_props",
	"keyUsage":                  "key_usage",
	"validityInMonths":          "validity_months",
	"subjectAlternativeNames":   "sans",
	"dnsNames":                  "dns_names",
	"userPrincipalNames":        "upns",
	"enhancedKeyUsage":          "ekus",
}

// ParsePolicy reads a certificate policy in the REST API's JSON or in the
// camelCase JSON that Key Vault's tooling prints, and returns it in the
// REST form. Members set to null are dropped. A whole certificate bundle
// is accepted too: its "policy" member is used.
func ParsePolicy(data []byte) (*Policy, error) {
	// Numbers stay json.Number so that large integers keep every digit.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrInvalidPolicy, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: not JSON: text after the policy object", ErrInvalidPolicy)
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: want a JSON object", ErrInvalidPolicy)
	}
	if inner, ok := obj["policy"].(map[string]any); ok {
		obj = inner
	}
	renamed, err := renameKeys(obj)
	if err != nil {
		return nil, err
	}
	norm, err := json.Marshal(renamed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	var p Policy
	if err := json.Unmarshal(norm, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	return &p, nil
}

// renameKeys rewrites camelCase member names to the REST names, dropping
// nulls, recursively. An object that gives one member in both spellings
// (keyProperties and key_props) is refused: which one would win is not
// defined.
func renameKeys(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		from := map[string]string{}
		for k, val := range t {
			if val == nil {
				continue
			}
			orig := k
			if n, ok := azCLINames[k]; ok {
				k = n
			}
			if other, dup := from[k]; dup {
				a, b := min(orig, other), max(orig, other)
				return nil, fmt.Errorf("%w: %q and %q are the same member; give one of them", ErrInvalidPolicy, a, b)
			}
			from[k] = orig
			r, err := renameKeys(val)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(t))
		for _, e := range t {
			r, err := renameKeys(e)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	}
	return v, nil
}
