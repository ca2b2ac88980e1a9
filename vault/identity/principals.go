package identity

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
)

// Tokens and role assignments: bearer tokens (sys/tokens/ID, sealed) and
// role assignments (one record, core.KeyAssignments). Every change that
// could take the vault's last administrator away is refused
// (AdminRemains), checked with a compare-and-set on the assignments record
// so that two changes cannot both pass.

// TokenInfo is a token as listed: never its secret.
type TokenInfo struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Created   time.Time  `json:"created"`
	Expires   *time.Time `json:"expires,omitempty"`
	Expired   bool       `json:"expired"`
	CreatedBy string     `json:"created_by,omitempty"`
}

// CreatedToken answers a token creation: the token is shown this once.
type CreatedToken struct {
	TokenInfo
	Token      string             `json:"token"`
	Assignment *access.Assignment `json:"assignment,omitempty"`
}

func tokenInfo(id string, rec core.TokenRecord, now time.Time) TokenInfo {
	ti := TokenInfo{ID: id, Name: rec.Name, Created: time.Unix(rec.Created, 0).UTC(), CreatedBy: rec.CreatedBy, Expired: rec.Expired(now)}
	if rec.Expires != 0 {
		t := time.Unix(rec.Expires, 0).UTC()
		ti.Expires = &t
	}
	return ti
}

// CreateTokenRequest asks for a bearer token for a principal, and
// optionally a role assignment for it (Role and Scope).
type CreateTokenRequest struct {
	// Name is the principal the token authenticates.
	Name string
	// TTL is a duration such as 90m, 12h or 30d; "" never expires.
	TTL   string
	Role  string
	Scope string
}

// CreateTokenResult is the new token, shown this once, and the raft
// index that stored it.
type CreateTokenResult struct {
	Token CreatedToken
	Index uint64
}

// CreateToken makes a token for req.Name (and its assignment, in the same
// batch). The principal p is recorded as its creator.
func (c *Identity) CreateToken(ctx context.Context, p core.Caller, req CreateTokenRequest) (CreateTokenResult, error) {
	if err := access.ValidPrincipalName(req.Name); err != nil {
		return CreateTokenResult{}, core.BadParameter("name", "name: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	if req.Name == core.RootPrincipal {
		return CreateTokenResult{}, core.BadParameter("name", "name %q is reserved for the bootstrap token; pick another", req.Name)
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = core.ParseTTL(req.TTL); err != nil {
			return CreateTokenResult{}, err
		}
	}
	var asg *access.Assignment
	if req.Role != "" || req.Scope != "" {
		a, err := NewAssignment(req.Role, req.Name, req.Scope, p.Name)
		if err != nil {
			return CreateTokenResult{}, err
		}
		asg = &a
	}
	id, err := core.RandomID(8)
	if err != nil {
		return CreateTokenResult{}, err
	}
	now := time.Now()
	tok, rec, err := core.NewToken(id, req.Name, ttl, now)
	if err != nil {
		return CreateTokenResult{}, err
	}
	rec.CreatedBy = p.Name
	idx, err := c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		b := &raftstore.Batch{}
		if err := core.PutSealedJSON(b, c.Barrier.Load(), core.PrefixTokens+id, rec); err != nil {
			return nil, err
		}
		if asg != nil {
			as, idx := c.Assignments()
			as, added, err := addAssignment(as, *asg)
			if err != nil {
				return nil, err
			}
			*asg = added
			b.PutIf(core.KeyAssignments, core.MustJSON(as), idx)
		}
		return b, nil
	})
	if err != nil {
		return CreateTokenResult{}, err
	}
	return CreateTokenResult{Token: CreatedToken{TokenInfo: tokenInfo(id, rec, now), Token: tok, Assignment: asg}, Index: idx}, nil
}

// allTokens returns every token record by ID.
func (c *Identity) allTokens() (map[string]core.TokenRecord, error) {
	es, _ := c.Store.List(core.PrefixTokens, "", 0)
	out := make(map[string]core.TokenRecord, len(es))
	for _, e := range es {
		var rec core.TokenRecord
		if err := c.GetSealedJSON(e, &rec); err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(e.Key, core.PrefixTokens)] = rec
	}
	return out, nil
}

// ListTokensRequest filters the tokens listed.
type ListTokensRequest struct {
	// Name, when set, lists only the tokens of this principal.
	Name string
}

// ListTokens lists the tokens (never their secrets), by principal and ID.
func (c *Identity) ListTokens(ctx context.Context, p core.Caller, req ListTokensRequest) ([]TokenInfo, error) {
	toks, err := c.allTokens()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := []TokenInfo{}
	for id, rec := range toks {
		if req.Name != "" && rec.Name != req.Name {
			continue
		}
		out = append(out, tokenInfo(id, rec, now))
	}
	slices.SortFunc(out, func(a, b TokenInfo) int { return strings.Compare(a.Name+"/"+a.ID, b.Name+"/"+b.ID) })
	return out, nil
}

// RevokeToken deletes token id, unless that leaves no administrator; it
// returns the raft index of the deletion.
func (c *Identity) RevokeToken(ctx context.Context, p core.Caller, id string) (uint64, error) {
	return c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		e, ok := c.Store.Get(core.PrefixTokens + id)
		if !ok {
			return nil, core.NotFound("TokenNotFound", "no token has ID %q ('certvault token list' shows them)", id)
		}
		toks, err := c.allTokens()
		if err != nil {
			return nil, err
		}
		delete(toks, id)
		as, idx := c.Assignments()
		if err := AdminRemains(as, toks); err != nil {
			return nil, err
		}
		b := &raftstore.Batch{}
		b.DeleteIf(e.Key, e.Index)
		b.Check(core.KeyAssignments, idx)
		return b, nil
	})
}

// AdminRemains refuses a change that would leave no principal with a
// valid token and Administrator at the vault scope: nobody could manage
// the vault any more.
func AdminRemains(as []access.Assignment, toks map[string]core.TokenRecord) error {
	now := time.Now()
	alive := func(assignee string) bool {
		for _, t := range toks {
			if t.Name == assignee && !t.Expired(now) {
				return true
			}
		}
		return false
	}
	if access.NewPolicy(as).HasAdministrator("", alive) {
		return nil
	}
	return core.Conflict("LastAdministrator",
		"this would leave no principal with a valid token and Administrator at the vault scope; "+
			"first create one: certvault token create --name NAME --role Administrator --scope /")
}

// NewAssignment checks and builds an assignment (its ID is set when it
// is added).
func NewAssignment(role, assignee, scope, by string) (access.Assignment, error) {
	ro, err := access.LookupRole(role)
	if err != nil {
		return access.Assignment{}, core.BadParameter("role", "role: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	who, err := access.ParseAssignee(assignee)
	if err != nil {
		return access.Assignment{}, core.BadParameter("assignee", "assignee: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	if scope == "" {
		return access.Assignment{}, core.BadParameter("scope", "scope is required: / for the whole vault, /certificates for every certificate, /certificates/www for one, /certificates/web-* for a name prefix")
	}
	sc, err := access.ParseScope(scope)
	if err != nil {
		return access.Assignment{}, core.BadParameter("scope", "scope: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	return access.Assignment{Role: ro.Name, Assignee: who, Scope: sc.String(), Created: time.Now().Unix(), CreatedBy: by}, nil
}

// addAssignment adds a unless the same role, assignee and scope is
// already assigned; it returns the list and the stored assignment.
func addAssignment(as []access.Assignment, a access.Assignment) ([]access.Assignment, access.Assignment, error) {
	for _, x := range as {
		if x.Role == a.Role && x.Assignee == a.Assignee && x.Scope == a.Scope {
			return as, x, nil
		}
	}
	// A random ID is never reused, so an audit record that names an
	// assignment names only that one.
	for {
		var err error
		if a.ID, err = core.RandomID(4); err != nil {
			return nil, a, err
		}
		if !slices.ContainsFunc(as, func(x access.Assignment) bool { return x.ID == a.ID }) {
			break
		}
	}
	return append(slices.Clone(as), a), a, nil
}

// ListRoles lists the built-in roles.
func (c *Identity) ListRoles(ctx context.Context, p core.Caller) ([]access.Role, error) {
	return access.Roles(), nil
}

// ListAssignmentsRequest filters the assignments listed.
type ListAssignmentsRequest struct {
	// Assignee, when set, matches exactly (a principal or group:NAME).
	Assignee string
	// Role, when set, matches regardless of case.
	Role string
}

// ListAssignments lists the role assignments, in stored order.
func (c *Identity) ListAssignments(ctx context.Context, p core.Caller, req ListAssignmentsRequest) ([]access.Assignment, error) {
	as, _ := c.Assignments()
	out := []access.Assignment{}
	for _, a := range as {
		if req.Assignee != "" && a.Assignee != req.Assignee {
			continue
		}
		if req.Role != "" && !strings.EqualFold(a.Role, req.Role) {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

// AssignRequest assigns a role to a principal or group at a scope.
type AssignRequest struct {
	Role     string
	Assignee string
	Scope    string
}

// AssignResult is the stored assignment (the existing one when the same
// was assigned before) and the raft index of the write.
type AssignResult struct {
	Assignment access.Assignment
	Index      uint64
}

// Assign adds a role assignment, made by p.
func (c *Identity) Assign(ctx context.Context, p core.Caller, req AssignRequest) (AssignResult, error) {
	a, err := NewAssignment(req.Role, req.Assignee, req.Scope, p.Name)
	if err != nil {
		return AssignResult{}, err
	}
	idx, err := c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		as, idx := c.Assignments()
		var err error
		if as, a, err = addAssignment(as, a); err != nil {
			return nil, err
		}
		return (&raftstore.Batch{}).PutIf(core.KeyAssignments, core.MustJSON(as), idx), nil
	})
	if err != nil {
		return AssignResult{}, err
	}
	return AssignResult{Assignment: a, Index: idx}, nil
}

// Unassign removes assignment id, unless that leaves no administrator; it
// returns the raft index of the write.
func (c *Identity) Unassign(ctx context.Context, p core.Caller, id string) (uint64, error) {
	return c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		as, idx := c.Assignments()
		i := slices.IndexFunc(as, func(a access.Assignment) bool { return a.ID == id })
		if i < 0 {
			return nil, core.NotFound("AssignmentNotFound", "no role assignment has ID %q ('certvault role assignments' shows them)", id)
		}
		as = slices.Delete(slices.Clone(as), i, i+1)
		toks, err := c.allTokens()
		if err != nil {
			return nil, err
		}
		if err := AdminRemains(as, toks); err != nil {
			return nil, err
		}
		return (&raftstore.Batch{}).PutIf(core.KeyAssignments, core.MustJSON(as), idx), nil
	})
}

// Self is who the caller is and what is assigned to it.
type Self struct {
	Principal   string              `json:"principal"`
	TokenID     string              `json:"token_id,omitempty"`
	AgentID     string              `json:"agent_id,omitempty"`
	Groups      []string            `json:"groups,omitempty"`
	Assignments []access.Assignment `json:"assignments"`
}

// Self describes p: its identity and the assignments to it or its groups.
func (c *Identity) Self(ctx context.Context, p core.Caller) (Self, error) {
	s := Self{Principal: p.Name, TokenID: p.TokenID, AgentID: p.AgentID, Groups: p.Groups, Assignments: []access.Assignment{}}
	as, _ := c.Assignments()
	for _, a := range as {
		if a.Assignee == p.Name || slices.ContainsFunc(p.Groups, func(g string) bool { return a.Assignee == access.GroupPrefix+g }) {
			s.Assignments = append(s.Assignments, a)
		}
	}
	return s, nil
}
