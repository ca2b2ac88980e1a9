package front

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/catalog"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
	"github.com/certvault/certvault/vault/identity"
	"github.com/certvault/certvault/vault/issuance"
)

// Env is what the node gives every front: the domain (core, issuance,
// fleet, identity), and the node's shared services — answering an error, a
// linearized read, the gate's authentication and authorization, passing a
// request to the leader. A front only translates between its wire and the
// domain; it reaches raft and the node through Env alone.
type Env struct {
	*core.Core
	*issuance.Issuance
	*fleet.Fleet
	*identity.Identity
	// Fail logs an error's internal cause and answers it.
	Fail func(w http.ResponseWriter, r *http.Request, err error)
	// Linearized brings the node's state up to date for a read, or
	// answers the error and returns false.
	Linearized func(w http.ResponseWriter, r *http.Request) bool
	// AuthenticateToken checks a bearer token (a certvault token or an
	// access token) as the gate does; ErrUnauthenticated when it is not
	// valid.
	AuthenticateToken func(tok string) (core.Caller, error)
	// Authenticate identifies the caller, or answers 401 (with the
	// challenge) and returns false.
	Authenticate func(w http.ResponseWriter, r *http.Request) (core.Caller, bool)
	// Authorize checks that c may do one of actions on res, records the
	// decision for the audit trail, and answers 403 when it may not.
	Authorize func(w http.ResponseWriter, r *http.Request, c core.Caller, res access.Resource, actions ...access.Action) bool
	// Guard wraps h so that the gate authorizes it first.
	Guard func(res func(*http.Request) access.Resource, h http.HandlerFunc, actions ...access.Action) http.Handler
	// CatchUp waits, within the request deadline, until this node has
	// applied what the leader had committed.
	CatchUp func() (bool, error)
	// IsNodeRequest reports whether a request carries a cluster node's
	// certificate.
	IsNodeRequest func(r *http.Request) bool
	// ProxyToLeader passes a request to the leader and answers with its
	// answer.
	ProxyToLeader func(w http.ResponseWriter, r *http.Request)
	// IsLeader reports whether this node leads the cluster now (an
	// AnyNode route's handler builds its write here, or passes it on).
	IsLeader func() bool
	// LeaderOnly wraps a public write so that a follower passes it to
	// the leader.
	LeaderOnly func(h http.HandlerFunc) http.HandlerFunc
	// AgentOnly wraps h so that the gate admits only agents presenting a
	// valid, unrevoked identity; writes go to the leader.
	AgentOnly func(h http.HandlerFunc) http.Handler
	// RequestDeadline bounds what a request waits for the leader.
	RequestDeadline time.Duration
	// VaultHosts tells whether a host names this vault (its nodes'
	// addresses and API certificates), for the audiences of access
	// tokens.
	VaultHosts identity.VaultHosts
	// QueryAudit returns the records of every node's audit trail that
	// match q, oldest first, the newest q.Limit of them, and names the
	// nodes that could not be asked (what GET /v1/audit/records
	// answers). Access is the caller's to check (audit/read at /).
	QueryAudit func(ctx context.Context, c core.Caller, q core.AuditQuery) (core.AuditRecords, error)
	// Catalog is the in-memory view of the objects the inventories
	// search (names, attributes, tags, a certificate's subject, names
	// and issuer), current with this node's applied state on every read.
	Catalog *catalog.Catalog
}

// Authority is the identity-platform authority of the vault's tenant as
// the client reached it (https://HOST/TENANT), which names the issuer of
// the tokens it is given.
func Authority(r *http.Request, tenant string) string {
	return "https://" + strings.ToLower(r.Host) + "/" + tenant
}
