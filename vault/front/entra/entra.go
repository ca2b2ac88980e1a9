// Package entra is the front of the Microsoft identity platform's
// dialect (issue 18): enough of Entra ID's endpoints for the official
// libraries (azidentity, @azure/identity, MSAL) to get a token for the
// vault with a service principal's client secret or certificate, so that
// an application written for Azure Key Vault moves here by changing its
// environment variables only.
//
// Routes live under /{tenant}/, as Entra ID's do (the libraries take the
// first path segment of the authority as the tenant): the OpenID
// configuration document, the instance-discovery answer, an empty key set
// (tokens are for the vault alone, which checks them itself) and the
// token endpoint with the client-credentials grant. The domain decides in
// vault/identity; this package speaks HTTP and OAuth's error shape.
package entra

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/front"
	"github.com/certvault/certvault/vault/identity"
)

// Front serves the identity platform's endpoints over the domain.
type Front struct {
	*front.Env
}

// Routes registers the endpoints: public (a token request carries its
// own credential) and under /{tenant}/.
func (f *Front) Routes(add func(front.Endpoint, http.Handler)) {
	pub := func(method, pattern string, h http.HandlerFunc) {
		add(front.Endpoint{Method: method, Pattern: pattern, Public: true, Tenant: true}, h)
	}
	pub("GET", "/{tenant}/v2.0/.well-known/openid-configuration", f.handleOpenIDConfiguration)
	pub("GET", "/{tenant}/discovery/instance", f.handleInstanceDiscovery)
	pub("GET", "/{tenant}/discovery/v2.0/keys", f.handleKeys)
	pub("POST", "/{tenant}/oauth2/v2.0/token", f.handleToken)
}

// base is the vault's URL as the client reached it, in lower case as
// MSAL writes authorities.
func base(r *http.Request) string { return "https://" + strings.ToLower(r.Host) }

// tenant checks the request's {tenant} against the vault's and returns
// the vault's. A follower that does not know it catches up with the
// leader once (the first service principal makes the tenant); when they
// still differ it answers 400 with code (Entra ID says invalid_tenant for
// its discovery documents, invalid_request at its token endpoint) and
// returns "".
func (f *Front) tenant(w http.ResponseWriter, r *http.Request, code string) string {
	want := r.PathValue("tenant")
	t := f.TenantID()
	if t == "" || !strings.EqualFold(want, t) {
		again, err := f.CatchUp()
		if err != nil {
			f.Fail(w, r, err)
			return ""
		}
		if again {
			t = f.TenantID()
		}
	}
	if t == "" || !strings.EqualFold(want, t) {
		writeOAuthError(w, r, http.StatusBadRequest, &identity.OAuthError{Code: code, AADSTS: 90002,
			Description: "Tenant '" + want + "' not found: this vault's tenant id is the tenant_id 'certvault sp show NAME' prints (AZURE_TENANT_ID)"})
		return ""
	}
	return t
}

// handleOpenIDConfiguration answers the OpenID Connect discovery
// document of the vault's tenant, with the endpoints at the host the
// client used (MSAL checks that the issuer's host is the authority's).
func (f *Front) handleOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	t := f.tenant(w, r, "invalid_tenant")
	if t == "" {
		return
	}
	authority := base(r) + "/" + t
	front.WriteJSON(w, http.StatusOK, map[string]any{
		"issuer":                                           authority + "/v2.0",
		"token_endpoint":                                   authority + "/oauth2/v2.0/token",
		"authorization_endpoint":                           authority + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":                    authority + "/oauth2/v2.0/devicecode",
		"end_session_endpoint":                             authority + "/oauth2/v2.0/logout",
		"jwks_uri":                                         authority + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported":            []string{"client_secret_post", "private_key_jwt"},
		"grant_types_supported":                            []string{"client_credentials"},
		"response_types_supported":                         []string{"token"},
		"scopes_supported":                                 []string{base(r) + "/.default", identity.KeyVaultResource + "/.default"},
		"subject_types_supported":                          []string{"pairwise"},
		"id_token_signing_alg_values_supported":            []string{"RS256"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"PS256", "RS256", "ES256"},
		"tenant_region_scope":                              nil,
		"cloud_instance_name":                              strings.ToLower(r.Host),
		"request_uri_parameter_supported":                  false,
	})
}

// handleInstanceDiscovery answers the instance-discovery request the
// libraries make before they trust an authority: this host is its own
// cloud, with no aliases.
func (f *Front) handleInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	t := f.TenantID()
	if t == "" {
		writeOAuthError(w, r, http.StatusBadRequest, &identity.OAuthError{Code: "invalid_instance", AADSTS: 50049,
			Description: "this vault has no tenant yet: it is made with the first service principal ('certvault sp create')"})
		return
	}
	host := strings.ToLower(r.Host)
	front.WriteJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": base(r) + "/" + t + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []map[string]any{{"preferred_network": host, "preferred_cache": host, "aliases": []string{host}}},
	})
}

// handleKeys answers an empty key set: the vault's tokens are for the
// vault alone, which checks them itself.
func (f *Front) handleKeys(w http.ResponseWriter, r *http.Request) {
	if f.tenant(w, r, "invalid_tenant") == "" {
		return
	}
	front.WriteJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
}

// tokenParams are the form parameters a token request may carry; each
// may appear once.
var tokenParams = []string{"grant_type", "client_id", "client_secret", "client_assertion_type", "client_assertion", "scope"}

// handleToken answers POST /{tenant}/oauth2/v2.0/token.
func (f *Front) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	form, oerr := readTokenForm(r)
	if oerr != nil {
		writeOAuthError(w, r, http.StatusBadRequest, oerr)
		return
	}
	if f.tenant(w, r, "invalid_request") == "" {
		return
	}
	req := identity.TokenRequest{Tenant: r.PathValue("tenant"), GrantType: form["grant_type"], ClientID: form["client_id"],
		ClientSecret: form["client_secret"], AssertionType: form["client_assertion_type"], Assertion: form["client_assertion"],
		Scope: form["scope"], Hosts: f.VaultHosts, Issuer: front.Authority(r, f.TenantID()) + "/v2.0"}
	tok, err := f.ClientCredentials(r.Context(), req)
	if errors.Is(err, identity.ErrUnknownClient) {
		// A principal made a moment ago on the leader may not have
		// reached this node yet.
		again, cerr := f.CatchUp()
		if cerr != nil {
			f.Fail(w, r, cerr)
			return
		}
		if again {
			tok, err = f.ClientCredentials(r.Context(), req)
		}
	}
	var oe *identity.OAuthError
	if errors.As(err, &oe) {
		status := http.StatusBadRequest
		if oe.Code == "invalid_client" || oe.Code == "unauthorized_client" {
			status = http.StatusUnauthorized
			// The trail shows which client id failed (never what it
			// presented).
			ri := front.InfoOf(r)
			ri.Denied = true
			ri.Object = "/service-principals/client-id/" + strings.ToLower(req.ClientID)
		}
		writeOAuthError(w, r, status, oe)
		return
	}
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	ri := front.InfoOf(r)
	ri.Caller = core.Caller{Principal: access.Principal{Name: tok.Principal}}
	ri.Object = "/service-principals/" + strings.TrimPrefix(tok.Principal, access.SPPrefix)
	exp := tok.ExpiresIn(time.Now())
	front.WriteJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     exp,
		"ext_expires_in": exp,
		"access_token":   tok.AccessToken,
	})
}

// readTokenForm reads a token request's form body: URL-encoded, each
// known parameter at most once (a repeated one is ambiguous: which did
// the client mean?).
func readTokenForm(r *http.Request) (map[string]string, *identity.OAuthError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, &identity.OAuthError{Code: "invalid_request", AADSTS: 900144,
			Description: "the token request must be a form (Content-Type: application/x-www-form-urlencoded)"}
	}
	if err := r.ParseForm(); err != nil {
		return nil, &identity.OAuthError{Code: "invalid_request", AADSTS: 900144, Description: "the request body is not a valid form: " + err.Error()}
	}
	return formParams(r.PostForm)
}

// formParams picks the known parameters out of a parsed form.
func formParams(v url.Values) (map[string]string, *identity.OAuthError) {
	out := map[string]string{}
	for _, k := range tokenParams {
		switch vs := v[k]; len(vs) {
		case 0:
		case 1:
			out[k] = vs[0]
		default:
			return nil, &identity.OAuthError{Code: "invalid_request", AADSTS: 90015, Description: "parameter '" + k + "' is given more than once"}
		}
	}
	return out, nil
}

// writeOAuthError answers e in the shape of Entra ID's errors, which the
// libraries parse and show (error, error_description, error_codes).
func writeOAuthError(w http.ResponseWriter, r *http.Request, status int, e *identity.OAuthError) {
	front.WriteJSON(w, status, map[string]any{
		"error":             e.Code,
		"error_description": fmt.Sprintf("AADSTS%d: %s", e.AADSTS, e.Description),
		"error_codes":       []int{e.AADSTS},
		"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id":          w.Header().Get("x-ms-request-id"),
		"correlation_id":    r.Header.Get("client-request-id"),
	})
}
