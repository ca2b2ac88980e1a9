package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// The client-credentials grant of the Microsoft identity platform
// (OAuth 2.0, RFC 6749 section 4.4, with RFC 7523 client assertions), as
// azidentity, @azure/identity and MSAL speak it: a service principal's
// client id and either its client secret or a JWT signed with the key of
// a certificate registered to it, for a scope of the vault.

// ClientAssertionType is the client_assertion_type of a JWT assertion.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionLifetime bounds how far in the future a client assertion
// may expire: MSAL makes them for ten minutes, and one that lives longer
// is a stolen token waiting to be replayed.
const maxAssertionLifetime = time.Hour

// TokenRequest is a token request's parameters (the form a client posts
// to /{tenant}/oauth2/v2.0/token).
type TokenRequest struct {
	// Tenant is the tenant in the request's path.
	Tenant        string
	GrantType     string
	ClientID      string
	ClientSecret  string
	AssertionType string
	Assertion     string
	Scope         string
	// Hosts tells whether a host names this vault (for the scope and the
	// assertion's audience).
	Hosts VaultHosts
	// Issuer is the authority the token is made by
	// (https://HOST/TENANT/v2.0).
	Issuer string
}

// OAuthError is a refused token request in the shape OAuth clients parse
// (RFC 6749 section 5.2, with Entra ID's error code, which MSAL shows).
type OAuthError struct {
	// Code is the OAuth error code: invalid_request, invalid_client,
	// invalid_scope, unsupported_grant_type.
	Code string
	// AADSTS is Entra ID's number for the same error.
	AADSTS int
	// Description says what to fix.
	Description string
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("%s: AADSTS%d: %s", e.Code, e.AADSTS, e.Description)
}

// ErrUnknownClient is wrapped by the error of a token request whose client
// id this node does not know: a follower catches up with the leader and
// tries once more before it refuses.
var ErrUnknownClient = errors.New("identity: unknown client id")

type unknownClient struct{ *OAuthError }

func (e unknownClient) Unwrap() []error { return []error{e.OAuthError, ErrUnknownClient} }

func oauthErr(code string, aadsts int, format string, args ...any) *OAuthError {
	return &OAuthError{Code: code, AADSTS: aadsts, Description: fmt.Sprintf(format, args...)}
}

// ClientCredentials answers a client-credentials token request: the
// tenant, the grant, the scope and the client's credential are checked
// and an access token for the service principal is made. Refusals are
// *OAuthError (wrapping ErrUnknownClient for an unknown client id).
func (c *Identity) ClientCredentials(ctx context.Context, req TokenRequest) (IssuedToken, error) {
	now := time.Now()
	tenant, err := c.loadTenant()
	if err != nil {
		return IssuedToken{}, err
	}
	if tenant == "" || !strings.EqualFold(req.Tenant, tenant) {
		return IssuedToken{}, oauthErr("invalid_request", 90002,
			"Tenant '%s' not found: this vault's tenant id is the tenant_id 'certvault sp show NAME' prints (AZURE_TENANT_ID)", req.Tenant)
	}
	if req.GrantType != "client_credentials" {
		return IssuedToken{}, oauthErr("unsupported_grant_type", 70003,
			"grant_type %q is not supported: this vault issues tokens to applications only (grant_type=client_credentials)", req.GrantType)
	}
	resource, err := scopeResource(req.Scope, req.Hosts)
	if err != nil {
		return IssuedToken{}, err
	}
	clientID := req.ClientID
	var assertion *clientAssertion
	switch {
	case req.ClientSecret != "" && req.Assertion != "":
		return IssuedToken{}, oauthErr("invalid_request", 90014, "give either client_secret or client_assertion, not both")
	case req.Assertion != "":
		if req.AssertionType != ClientAssertionType {
			return IssuedToken{}, oauthErr("invalid_request", 50027, "client_assertion_type must be %s", ClientAssertionType)
		}
		if assertion, err = parseClientAssertion(req.Assertion); err != nil {
			return IssuedToken{}, err
		}
		if clientID == "" {
			clientID = assertion.claims.Sub
		}
	case req.ClientSecret == "":
		return IssuedToken{}, oauthErr("invalid_client", 7000218,
			"the request body must contain client_secret or client_assertion (AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH)")
	}
	if clientID == "" {
		return IssuedToken{}, oauthErr("invalid_request", 900144, "the request body must contain client_id (AZURE_CLIENT_ID)")
	}
	name, ok := c.spNameByClientID(clientID)
	if !ok {
		return IssuedToken{}, unknownClient{oauthErr("unauthorized_client", 700016,
			"application with identifier '%s' was not found in tenant '%s': check AZURE_CLIENT_ID against 'certvault sp list'", clientID, tenant)}
	}
	rec, _, err := c.loadServicePrincipal(name)
	if err != nil {
		return IssuedToken{}, err
	}
	if assertion != nil {
		endpoint := func(aud string) bool { return tokenEndpointAudience(aud, tenant, req.Hosts) }
		if err := assertion.verify(rec, clientID, endpoint, now); err != nil {
			return IssuedToken{}, err
		}
	} else if !secretMatches(rec, req.ClientSecret) {
		return IssuedToken{}, oauthErr("invalid_client", 7000215,
			"invalid client secret for application '%s': give the client_secret 'certvault sp create' or 'certvault sp secret rotate' printed", clientID)
	}
	tok, err := c.mintAccessToken(AccessClaims{Aud: resource, Iss: req.Issuer, Sub: rec.ClientID, AppID: rec.ClientID}, now)
	if err != nil {
		return IssuedToken{}, err
	}
	tok.Principal = SPPrincipal(rec.Name)
	return tok, nil
}

// spNameByClientID returns the canonical name of the service principal
// with the client id.
func (c *Identity) spNameByClientID(clientID string) (string, bool) {
	e, ok := c.Store.Get(PrefixSPClients + strings.ToLower(clientID))
	if !ok {
		return "", false
	}
	return string(e.Value), true
}

// secretMatches compares secret with each of rec's client secrets in
// constant time.
func secretMatches(rec ServicePrincipalRecord, secret string) bool {
	sum := sha256.Sum256([]byte(secret))
	ok := 0
	for _, s := range rec.Secrets {
		ok |= subtle.ConstantTimeCompare(sum[:], s.Hash)
	}
	return ok == 1
}

// oidcScopes are the OpenID Connect scopes a library may add to a
// request; they ask for nothing here and are ignored.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

// scopeResource returns the one resource a token request's scope names
// (RESOURCE/.default), which must be this vault.
func scopeResource(scope string, hosts VaultHosts) (string, error) {
	var res []string
	for _, s := range strings.Fields(scope) {
		if !oidcScopes[s] {
			res = append(res, s)
		}
	}
	if len(res) != 1 {
		return "", oauthErr("invalid_scope", 70011,
			"scope must name one resource, this vault: https://VAULT-HOST/.default or %s/.default (got %q)", KeyVaultResource, scope)
	}
	base, ok := strings.CutSuffix(res[0], "/.default")
	if !ok {
		return "", oauthErr("invalid_scope", 70011,
			"scope %q is not valid: the client-credentials flow takes RESOURCE/.default, e.g. https://VAULT-HOST/.default", res[0])
	}
	canon, ok := VaultResource(base, hosts)
	if !ok {
		return "", oauthErr("invalid_scope", 500011,
			"the resource %q is not this vault: ask for https://VAULT-HOST/.default (a name the vault is reached by) or %s/.default", base, KeyVaultResource)
	}
	return canon, nil
}

// tokenEndpointAudience reports whether aud names this vault's token
// endpoint for tenant (v2.0 or v1), at one of its hosts.
func tokenEndpointAudience(aud, tenant string, hosts VaultHosts) bool {
	u, err := url.Parse(aud)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || hosts == nil || !hosts(u.Host) || u.RawQuery != "" {
		return false
	}
	p := strings.ToLower(strings.TrimSuffix(u.Path, "/"))
	t := strings.ToLower(tenant)
	return p == "/"+t+"/oauth2/v2.0/token" || p == "/"+t+"/oauth2/token"
}

// clientAssertion is a parsed (not yet verified) client assertion.
type clientAssertion struct {
	alg      string
	x5t      []byte // SHA-1 thumbprint named by the header, if any
	x5tS256  []byte // SHA-256 thumbprint named by the header, if any
	input    []byte // header.payload, what the signature covers
	sig      []byte
	claims   assertionClaims
	audience []string
}

type assertionClaims struct {
	Aud json.RawMessage `json:"aud"`
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Exp *int64          `json:"exp"`
	Nbf *int64          `json:"nbf"`
}

// maxAssertionBytes bounds a client assertion (a few KiB with an x5c
// chain; Entra ID's own limit is about this).
const maxAssertionBytes = 16 << 10

// parseClientAssertion decodes a client assertion's header, claims and
// signature.
func parseClientAssertion(s string) (*clientAssertion, error) {
	bad := func(format string, args ...any) error {
		return oauthErr("invalid_client", 700021, "client_assertion is not valid: "+format, args...)
	}
	if len(s) > maxAssertionBytes {
		return nil, bad("longer than %d bytes", maxAssertionBytes)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, bad("not a signed JWT (three base64url parts)")
	}
	head, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	body, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, bad("a part is not base64url")
	}
	var h struct {
		Alg     string `json:"alg"`
		X5t     string `json:"x5t"`
		X5tS256 string `json:"x5t#S256"`
		Crit    any    `json:"crit"`
	}
	if err := json.Unmarshal(head, &h); err != nil {
		return nil, bad("header: %v", err)
	}
	if h.Crit != nil {
		return nil, bad("header: crit extensions are not supported")
	}
	a := &clientAssertion{alg: h.Alg, input: []byte(parts[0] + "." + parts[1]), sig: sig}
	var ok1, ok2 bool
	a.x5t, ok1 = decodeThumbprint(h.X5t)
	a.x5tS256, ok2 = decodeThumbprint(h.X5tS256)
	if !ok1 || !ok2 {
		return nil, bad("header: x5t or x5t#S256 is not base64")
	}
	if len(a.x5t) == 0 && len(a.x5tS256) == 0 {
		return nil, bad("header: name the certificate with x5t#S256 (or x5t)")
	}
	if err := json.Unmarshal(body, &a.claims); err != nil {
		return nil, bad("claims: %v", err)
	}
	if a.audience, err1 = stringOrList(a.claims.Aud); err1 != nil {
		return nil, bad("claims: aud: %v", err1)
	}
	return a, nil
}

// decodeThumbprint decodes a certificate thumbprint from a JWT header,
// which RFC 7515 says is base64url and MSAL Go writes in standard base64
// (with padding): both are taken.
func decodeThumbprint(s string) ([]byte, bool) {
	if s == "" {
		return nil, true
	}
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// stringOrList decodes a JWT claim that is a string or a list of strings.
func stringOrList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errors.New("not a string or a list of strings")
	}
	return many, nil
}

// verify checks the assertion against rec's certificates: one of them is
// named by thumbprint, unexpired, and its key made the signature; the
// claims name clientID as issuer and subject and the token endpoint as
// audience, and the assertion is within its times.
func (a *clientAssertion) verify(rec ServicePrincipalRecord, clientID string, endpoint func(string) bool, now time.Time) error {
	refuse := func(aadsts int, format string, args ...any) error {
		return oauthErr("invalid_client", aadsts, "client_assertion for application '%s': "+format, append([]any{clientID}, args...)...)
	}
	if len(rec.Certificates) == 0 {
		return refuse(700027, "the service principal has no registered certificate; it authenticates with a client secret")
	}
	var cert *SPCert
	for i := range rec.Certificates {
		ct := &rec.Certificates[i]
		s1, e1 := base64.RawURLEncoding.DecodeString(ct.X5t)
		s2, e2 := base64.RawURLEncoding.DecodeString(ct.X5tS256)
		if e1 != nil || e2 != nil {
			continue
		}
		if (len(a.x5tS256) > 0 && bytes.Equal(a.x5tS256, s2)) || (len(a.x5tS256) == 0 && bytes.Equal(a.x5t, s1)) {
			cert = ct
			break
		}
	}
	if cert == nil {
		return refuse(700027, "no certificate registered to it has the thumbprint the assertion names; register it with 'certvault sp create --cert-file'")
	}
	if !now.Before(time.Unix(cert.NotAfter, 0)) {
		return refuse(700027, "the certificate %q it is signed with expired on %s", cert.Subject, time.Unix(cert.NotAfter, 0).UTC().Format(time.RFC3339))
	}
	parsed, err := x509.ParseCertificate(cert.DER)
	if err != nil {
		return fmt.Errorf("registered certificate of %s: %w", rec.Name, err)
	}
	if err := verifyJWS(a.alg, parsed.PublicKey, a.input, a.sig); err != nil {
		return refuse(700027, "signature validation failed: %v", err)
	}
	cl := a.claims
	if !strings.EqualFold(cl.Sub, clientID) || !strings.EqualFold(cl.Iss, clientID) || !strings.EqualFold(rec.ClientID, clientID) {
		return refuse(700021, "its iss and sub must both be the client id")
	}
	audOK := false
	for _, aud := range a.audience {
		audOK = audOK || endpoint(aud)
	}
	if !audOK {
		return refuse(700212, "its audience must be this vault's token endpoint (https://VAULT-HOST/TENANT/oauth2/v2.0/token), not %q", a.audience)
	}
	if cl.Exp == nil {
		return refuse(700021, "it has no expiry (exp)")
	}
	exp := time.Unix(*cl.Exp, 0)
	if !now.Before(exp.Add(clockSkew)) {
		return refuse(700024, "it expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if exp.After(now.Add(maxAssertionLifetime + clockSkew)) {
		return refuse(700024, "it expires more than %v from now; make assertions short-lived", maxAssertionLifetime)
	}
	if cl.Nbf != nil && time.Unix(*cl.Nbf, 0).After(now.Add(clockSkew)) {
		return refuse(700024, "it is not valid before %s", time.Unix(*cl.Nbf, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// verifyJWS checks a JWS signature of alg (RS256, PS256, ES256, ES384)
// over input with pub.
func verifyJWS(alg string, pub crypto.PublicKey, input, sig []byte) error {
	switch alg {
	case "RS256", "PS256":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an RSA certificate", alg)
		}
		sum := sha256.Sum256(input)
		if alg == "RS256" {
			return rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig)
		}
		return rsa.VerifyPSS(k, crypto.SHA256, sum[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case "ES256", "ES384":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%s needs an EC certificate", alg)
		}
		h := crypto.SHA256
		if alg == "ES384" {
			h = crypto.SHA384
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return fmt.Errorf("an %s signature has %d bytes, not %d", alg, 2*size, len(sig))
		}
		d := h.New()
		d.Write(input)
		r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
		if !ecdsa.Verify(k, d.Sum(nil), r, s) {
			return errors.New("the signature does not verify")
		}
		return nil
	}
	return fmt.Errorf("alg %q is not supported (use PS256, RS256 or ES256)", alg)
}
