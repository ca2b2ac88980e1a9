package identity

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
)

// Agents hand access tokens to the applications on their machines through
// the managed-identity protocol (issue 18): a token of the agent's own
// identity (its principal agent:ID, with its group's roles), or of a
// service principal whose record lists the agent's group. The agent asks
// over its mutual-TLS identity; the application never holds a credential.

// maxAgentGroups bounds the agent groups one service principal lists.
const maxAgentGroups = 32

// checkAgentGroups checks and de-duplicates agent group names.
func checkAgentGroups(groups []string) ([]string, error) {
	var out []string
	for _, g := range groups {
		g = strings.TrimSpace(g)
		if err := access.ValidPrincipalName(g); err != nil {
			return nil, core.BadParameter("agent_groups", "agent group %q: use the group name agents joined with (letters, digits and . _ @ -)", g)
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	if len(out) > maxAgentGroups {
		return nil, core.BadParameter("agent_groups", "%d agent groups given, at most %d", len(out), maxAgentGroups)
	}
	return out, nil
}

// SetServicePrincipalAgentGroups replaces the agent groups whose agents
// may get tokens of the service principal name (none: no agent may).
func (c *Identity) SetServicePrincipalAgentGroups(ctx context.Context, p core.Caller, name string, groups []string) (ServicePrincipal, uint64, error) {
	groups, err := checkAgentGroups(groups)
	if err != nil {
		return ServicePrincipal{}, 0, err
	}
	rec, idx, err := c.updateServicePrincipal(ctx, name, func(rec *ServicePrincipalRecord) error {
		rec.AgentGroups = groups
		return nil
	})
	if err != nil {
		return ServicePrincipal{}, 0, err
	}
	return c.servicePrincipalView(rec, c.TenantID()), idx, nil
}

// AgentTokenRequest is an agent's request for an access token.
type AgentTokenRequest struct {
	// ServicePrincipal names the principal the token is for; empty: the
	// agent's own identity.
	ServicePrincipal string
	// Resource is the resource the token is for: this vault.
	Resource string
	// Hosts tells whether a host names this vault.
	Hosts VaultHosts
	// Issuer is the authority named in the token.
	Issuer string
}

// AgentToken makes an access token for the agent p: of its own identity,
// or of a service principal that lists p's group.
func (c *Identity) AgentToken(ctx context.Context, p core.Caller, req AgentTokenRequest) (IssuedToken, error) {
	if p.AgentID == "" {
		return IssuedToken{}, core.Forbidden("only an agent, over its own certificate, gets tokens for the applications on its machine")
	}
	resource, ok := VaultResource(req.Resource, req.Hosts)
	if !ok {
		return IssuedToken{}, core.BadParameter("resource", "resource %q is not this vault: the managed-identity endpoint gives tokens for https://VAULT-HOST or %s only", req.Resource, KeyVaultResource)
	}
	now := time.Now()
	if req.ServicePrincipal == "" {
		tok, err := c.mintAccessToken(AccessClaims{Aud: resource, Iss: req.Issuer, Sub: "agent:" + p.AgentID, Agent: p.AgentID}, now)
		tok.Principal = p.Name
		return tok, err
	}
	rec, _, err := c.loadServicePrincipal(req.ServicePrincipal)
	if err != nil {
		return IssuedToken{}, err
	}
	if !slices.ContainsFunc(p.Groups, func(g string) bool { return slices.Contains(rec.AgentGroups, g) }) {
		return IssuedToken{}, core.Forbidden("agent %s (group %s) may not get tokens of service principal %s; allow its group with 'certvault sp update %s --agent-group GROUP'",
			p.AgentID, strings.Join(p.Groups, ","), rec.Name, rec.Name)
	}
	tok, err := c.mintAccessToken(AccessClaims{Aud: resource, Iss: req.Issuer, Sub: rec.ClientID, AppID: rec.ClientID}, now)
	tok.Principal = SPPrincipal(rec.Name)
	return tok, err
}
