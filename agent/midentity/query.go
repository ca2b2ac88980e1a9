package midentity

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// APIVersion is the one api-version of the App Service protocol served.
const APIVersion = "2019-08-01"

// defaultScopeSuffix is what a scope ends with where a resource does not
// ("https://vault.example:8443/.default").
const defaultScopeSuffix = "/.default"

// maxResource bounds the length of a resource.
const maxResource = 1024

// maxSelector bounds the length of an identity selector's value.
const maxSelector = 512

// selectorParams are the query parameters by which the libraries name a
// user-assigned identity: client_id (azidentity's ClientID, msal-node's
// userAssignedClientId), object_id and principal_id, and mi_res_id
// (App Service's name for a resource id) or msi_res_id (IMDS's).
var selectorParams = []string{"client_id", "object_id", "principal_id", "mi_res_id", "msi_res_id"}

// Request is a token request's query, checked.
type Request struct {
	// Resource is the resource the token is for, with a scope's
	// "/.default" taken off; never empty.
	Resource string
	// SelectorParam and Selector are the user-assigned identity the
	// request names ("client_id" and its value), or empty for the
	// identity the header selects as it is.
	SelectorParam, Selector string
}

// ParseQuery checks the query of a token request: api-version must be
// 2019-08-01; resource (or, from a library that sends it, scope, one
// scope, "/.default" taken off) must be there, and both must agree when
// both are; at most one of client_id, object_id, principal_id, mi_res_id
// and msi_res_id may name an identity. No parameter may be given twice.
// Other parameters (msal-node's xms_cc, token_sha256_to_refresh) are
// ignored. A refusal is an *Error with status 400 whose message says
// what to fix.
func ParseQuery(raw string) (Request, error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return Request{}, badRequest("invalid_request", "the query does not parse: %v", err)
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if n := len(q[k]); n > 1 {
			return Request{}, badRequest("invalid_request", "%q is given %d times: give it once", short(k), n)
		}
	}
	switch v, ok := q["api-version"]; {
	case !ok:
		return Request{}, badRequest("invalid_request", "api-version is missing: this endpoint speaks the App Service protocol, api-version=%s", APIVersion)
	case v[0] != APIVersion:
		return Request{}, badRequest("invalid_request", "api-version %q is not served: use %s (the App Service protocol, as IDENTITY_ENDPOINT and IDENTITY_HEADER select it)", short(v[0]), APIVersion)
	}
	var r Request
	res, scope := q.Get("resource"), q.Get("scope")
	if strings.ContainsAny(scope, " \t") {
		return Request{}, badRequest("invalid_request", "scope holds several scopes: ask for one resource at a time")
	}
	scope = strings.TrimSuffix(scope, defaultScopeSuffix)
	res = strings.TrimSuffix(res, defaultScopeSuffix)
	switch {
	case res == "" && scope == "":
		return Request{}, badRequest("invalid_request", "resource is missing: ask for the vault's URL, like resource=https://vault.example:8443")
	case res != "" && scope != "" && res != scope:
		return Request{}, badRequest("invalid_request", "resource %q and scope %q disagree: give one", short(res), short(scope))
	case res == "":
		res = scope
	}
	switch {
	case strings.HasSuffix(res, defaultScopeSuffix):
		return Request{}, badRequest("invalid_request", "resource %q ends with %s twice: ask for the vault's URL", short(res), defaultScopeSuffix)
	case len(res) > maxResource:
		return Request{}, badRequest("invalid_request", "resource is longer than %d bytes", maxResource)
	case hasControl(res):
		return Request{}, badRequest("invalid_request", "resource holds control characters")
	}
	r.Resource = res
	for _, p := range selectorParams {
		v, ok := q[p]
		if !ok {
			continue
		}
		if r.SelectorParam != "" {
			return Request{}, badRequest("invalid_request", "both %s and %s name an identity: give at most one", r.SelectorParam, p)
		}
		switch {
		case v[0] == "":
			return Request{}, badRequest("invalid_request", "%s is empty: leave it out for the identity the header selects", p)
		case len(v[0]) > maxSelector || hasControl(v[0]):
			return Request{}, badRequest("invalid_request", "%s is not an identity: longer than %d bytes, or control characters", p, maxSelector)
		}
		r.SelectorParam, r.Selector = p, v[0]
	}
	return r, nil
}

// hasControl reports whether s holds an ASCII control character or DEL.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// short cuts s to 100 bytes for a message (which quotes it with %q).
func short(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// badRequest is a 400 refusal.
func badRequest(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}
