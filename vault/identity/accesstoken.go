package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Access tokens (issue 18) are what the token endpoint, which speaks the
// Microsoft identity platform's client-credentials flow, and the agents'
// managed-identity endpoint hand out: a JWT for one resource (the vault)
// naming a service principal by its client id, or an agent by its id,
// signed with HMAC-SHA256 under the barrier's active data key. Every node
// holds that key, so every node accepts a token any node made, and none
// is stored. A token is refused once its principal is gone: the service
// principal's client id is looked up on every request, so deleting the
// principal (or revoking the agent) ends its tokens at once; otherwise a
// token lives AccessTokenLifetime, as Entra ID's do.

// AccessTokenLifetime is how long an access token is accepted.
const AccessTokenLifetime = time.Hour

// KeyVaultResource is Azure Key Vault's resource name, which clients
// written for Key Vault may ask a token for; the vault accepts it as
// naming itself.
const KeyVaultResource = "https://vault.azure.net"

// accessTokenPurpose separates the tokens' MAC from every other MAC made
// under the data key.
const accessTokenPurpose = "certvault access token v1"

// accessTokenHeader is the JOSE header of every access token, encoded; a
// token with another header was not made here.
var accessTokenHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// ErrBadAccessToken means an access token is malformed, not made by this
// vault, expired, or for another tenant or audience.
var ErrBadAccessToken = errors.New("identity: the access token is not valid")

// AccessClaims are the claims of an access token.
type AccessClaims struct {
	// Aud is the resource the token is for.
	Aud string `json:"aud"`
	// Iss is the issuer: the authority the token came from.
	Iss string `json:"iss"`
	// Sub is the service principal's client id, or "agent:ID".
	Sub string `json:"sub"`
	// Tid is the vault's tenant id.
	Tid string `json:"tid"`
	// AppID is the service principal's client id ("" for an agent).
	AppID string `json:"appid,omitempty"`
	// Agent is the agent's id for a token of the agent's own identity.
	Agent string `json:"agent,omitempty"`
	Iat   int64  `json:"iat"`
	Nbf   int64  `json:"nbf"`
	Exp   int64  `json:"exp"`
	// Jti names the token in audit records.
	Jti string `json:"jti"`
	Ver string `json:"ver"`
}

// IsAccessToken reports whether a bearer token has the form of an access
// token (a JWT) rather than a certvault token (cvt.ID.SECRET).
func IsAccessToken(tok string) bool {
	return strings.HasPrefix(tok, "eyJ") && strings.Count(tok, ".") == 2
}

// IssuedToken is an access token and what a client is told about it.
type IssuedToken struct {
	AccessToken string
	ExpiresOn   time.Time
	// Resource is the resource the token is for, as the client named it.
	Resource string
	// Principal names the token's holder in audit records.
	Principal string
}

// ExpiresIn is the token's remaining life in whole seconds.
func (t IssuedToken) ExpiresIn(now time.Time) int64 {
	return int64(t.ExpiresOn.Sub(now) / time.Second)
}

// mintAccessToken signs cl, completing its times, id, tenant and version.
func (c *Identity) mintAccessToken(cl AccessClaims, now time.Time) (IssuedToken, error) {
	b := c.Barrier.Load()
	if b == nil {
		return IssuedToken{}, fmt.Errorf("mint an access token: the vault is not initialized")
	}
	tenant, err := c.loadTenant()
	if err != nil {
		return IssuedToken{}, err
	}
	if tenant == "" {
		return IssuedToken{}, fmt.Errorf("mint an access token: the vault has no tenant yet (it is made with the first service principal)")
	}
	var jti [8]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return IssuedToken{}, fmt.Errorf("access token id: %w", err)
	}
	exp := now.Add(AccessTokenLifetime)
	cl.Tid, cl.Ver, cl.Jti = tenant, "2.0", hex.EncodeToString(jti[:])
	cl.Iat, cl.Nbf, cl.Exp = now.Unix(), now.Unix(), exp.Unix()
	if cl.Iss == "" {
		cl.Iss = "certvault:" + tenant
	}
	tok, err := signAccessToken(cl, func(input []byte) []byte { return b.Mac(accessTokenPurpose, input) })
	return IssuedToken{AccessToken: tok, ExpiresOn: time.Unix(cl.Exp, 0), Resource: cl.Aud}, err
}

// signAccessToken encodes cl and signs it with mac.
func signAccessToken(cl AccessClaims, mac func([]byte) []byte) (string, error) {
	body, err := json.Marshal(cl)
	if err != nil {
		return "", fmt.Errorf("encode access token: %w", err)
	}
	input := accessTokenHeader + "." + base64.RawURLEncoding.EncodeToString(body)
	return input + "." + base64.RawURLEncoding.EncodeToString(mac([]byte(input))), nil
}

// VerifyAccessToken checks an access token's signature, times, tenant
// and audience (this vault, by hosts), and returns its claims. It does
// not check that its principal still exists: the caller does.
func (c *Identity) VerifyAccessToken(tok string, hosts VaultHosts, now time.Time) (AccessClaims, error) {
	var cl AccessClaims
	b := c.Barrier.Load()
	if b == nil {
		return cl, fmt.Errorf("verify an access token: the vault is not initialized")
	}
	tenant, err := c.loadTenant()
	if err != nil {
		return cl, err
	}
	return parseAccessToken(tok, func(input []byte) []byte { return b.Mac(accessTokenPurpose, input) }, tenant, hosts, now)
}

// parseAccessToken checks tok's header, its signature with mac, its
// times, its tenant and its audience, and returns its claims.
func parseAccessToken(tok string, mac func([]byte) []byte, tenant string, hosts VaultHosts, now time.Time) (AccessClaims, error) {
	var cl AccessClaims
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return cl, ErrBadAccessToken
	}
	input, sigText := tok[:i], tok[i+1:]
	head, payload, ok := strings.Cut(input, ".")
	if !ok || head != accessTokenHeader {
		return cl, ErrBadAccessToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigText)
	if err != nil || !hmac.Equal(sig, mac([]byte(input))) {
		return cl, ErrBadAccessToken
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(body, &cl) != nil {
		return AccessClaims{}, ErrBadAccessToken
	}
	if cl.Exp <= now.Unix() || cl.Nbf > now.Add(clockSkew).Unix() || cl.Ver != "2.0" {
		return AccessClaims{}, fmt.Errorf("%w: expired or not yet valid", ErrBadAccessToken)
	}
	if tenant == "" || cl.Tid != tenant {
		return AccessClaims{}, fmt.Errorf("%w: for another tenant", ErrBadAccessToken)
	}
	if (cl.AppID == "") == (cl.Agent == "") {
		return AccessClaims{}, fmt.Errorf("%w: names no principal", ErrBadAccessToken)
	}
	if _, ok := VaultResource(cl.Aud, hosts); !ok {
		return AccessClaims{}, fmt.Errorf("%w: for another audience", ErrBadAccessToken)
	}
	return cl, nil
}

// clockSkew is how far the clocks of a client and the vault may differ
// for the times in tokens and client assertions.
const clockSkew = 5 * time.Minute

// VaultHosts tells whether a host ("name" or "name:port") is one of the
// names this vault is reached by: its API certificates' names and the
// addresses of its nodes. The port is not compared: every node of a
// cluster is the same vault.
type VaultHosts func(host string) bool

// VaultResource checks that resource names this vault: Key Vault's
// resource name, or https://HOST[:PORT] for one of the vault's hosts. It
// returns the resource in its canonical form (lower case, no trailing
// slash), which tokens carry as their audience.
func VaultResource(resource string, hosts VaultHosts) (string, bool) {
	u, err := url.Parse(strings.TrimSuffix(resource, "/"))
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", false
	}
	canon := "https://" + strings.ToLower(u.Host)
	if canon == KeyVaultResource || (hosts != nil && hosts(u.Host)) {
		return canon, true
	}
	return "", false
}

// HostName returns the name part of a host ("name", "name:port",
// "[::1]:port"), in lower case.
func HostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
}

// SPPrincipalByClientID returns the principal name of the service
// principal with the client id, and whether there is one.
func (c *Identity) SPPrincipalByClientID(clientID string) (string, bool) {
	name, ok := c.spNameByClientID(clientID)
	if !ok {
		return "", false
	}
	return SPPrincipal(name), true
}
