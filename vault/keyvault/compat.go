package keyvault

import (
	"encoding/json"
	"fmt"
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
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: not JSON: %v", ErrInvalidPolicy, err)
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: want a JSON object", ErrInvalidPolicy)
	}
	if inner, ok := obj["policy"].(map[string]any); ok {
		obj = inner
	}
	norm, _ := json.Marshal(renameKeys(obj))
	var p Policy
	if err := json.Unmarshal(norm, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	return &p, nil
}

// renameKeys rewrites camelCase member names to the REST names, dropping
// nulls, recursively.
func renameKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range t {
			if val == nil {
				continue
			}
			if n, ok := azCLINames[k]; ok {
				k = n
			}
			out[k] = renameKeys(val)
		}
		return out
	case []any:
		out := make([]any, 0, len(t))
		for _, e := range t {
			out = append(out, renameKeys(e))
		}
		return out
	}
	return v
}
