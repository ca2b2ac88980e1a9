package vault

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"time"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/identity"
)

// authenticateAccessToken checks an access token from the token endpoint
// or an agent's managed-identity endpoint (see vault/identity): made by
// this vault, unexpired, for this vault (not another audience), and its
// principal still there —
// a service principal by its client id, an agent unrevoked. A follower
// that does not know the principal catches up once before it refuses.
func (n *Node) authenticateAccessToken(tok string) (core.Caller, error) {
	cl, err := n.VerifyAccessToken(tok, n.vaultHost, time.Now())
	if errors.Is(err, identity.ErrBadAccessToken) {
		return core.Caller{}, errBadToken
	}
	if err != nil {
		return core.Caller{}, err
	}
	if cl.Agent != "" {
		c, why, err := n.agentRecordCaller(cl.Agent, "")
		if err != nil {
			return core.Caller{}, err
		}
		if why != "" {
			return core.Caller{}, errBadToken
		}
		// The application holds the agent's roles, not its identity: it
		// may not call the agents' own endpoints (renewal, reports).
		c.AgentID = ""
		c.TokenID = cl.Jti
		return c, nil
	}
	name, ok := n.SPPrincipalByClientID(cl.AppID)
	if !ok {
		if again, err := n.catchUp(); err != nil {
			return core.Caller{}, err
		} else if again {
			name, ok = n.SPPrincipalByClientID(cl.AppID)
		}
	}
	if !ok {
		return core.Caller{}, errBadToken // the service principal was deleted
	}
	return core.Caller{Principal: access.Principal{Name: name}, TokenID: cl.Jti}, nil
}

// vaultHost reports whether host (name or name:port) is a name this
// vault is reached by: a name or address in this node's API certificate,
// or the host of a node's API address. Ports are not compared.
func (n *Node) vaultHost(host string) bool {
	name := identity.HostName(host)
	if name == "" {
		return false
	}
	for _, c := range []*tls.Certificate{n.apiCert, n.nodeCert.Load()} {
		if c != nil && certNames(c, name) {
			return true
		}
	}
	es, _ := n.Store.List(prefixNodes, "", 0)
	for _, e := range es {
		var rec nodeRecord
		if json.Unmarshal(e.Value, &rec) != nil {
			continue
		}
		if u, err := url.Parse(rec.APIAddr); err == nil && identity.HostName(u.Host) == name {
			return true
		}
	}
	return false
}

// certNames reports whether the leaf of c names name (a DNS name or an IP
// address in its SANs).
func certNames(c *tls.Certificate, name string) bool {
	leaf := c.Leaf
	if leaf == nil && len(c.Certificate) > 0 {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return false
		}
	}
	if leaf == nil {
		return false
	}
	for _, ip := range leaf.IPAddresses {
		if ip.String() == name {
			return true
		}
	}
	return slices.ContainsFunc(leaf.DNSNames, func(d string) bool { return identity.HostName(d) == name })
}
