package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
)

// The core of principals: bearer tokens (sys/tokens/ID, sealed) and role
// assignments (one record, keyAssignments). Every change that could take
// the vault's last administrator away is refused (adminRemains), checked
// with a compare-and-set on the assignments record so that two changes
// cannot both pass.

// KeyAssignments holds every role assignment in one record, so that a
// check ("an administrator remains") and a change commit together with a
// compare-and-set on one index.
const KeyAssignments = "access/assignments"

// rootPrincipal is the bootstrap token's principal; the name is reserved.
const rootPrincipal = "root"

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

func tokenInfo(id string, rec TokenRecord, now time.Time) TokenInfo {
	ti := TokenInfo{ID: id, Name: rec.Name, Created: time.Unix(rec.Created, 0).UTC(), CreatedBy: rec.CreatedBy, Expired: rec.Expired(now)}
	if rec.Expires != 0 {
		t := time.Unix(rec.Expires, 0).UTC()
		ti.Expires = &t
	}
	return ti
}

// ParseTTL reads a duration such as 90m, 12h or 30d. Its error is a
// KindBadParameter about "ttl".
func ParseTTL(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(d)
		if err != nil || days <= 0 {
			return 0, BadParameter("ttl", "ttl %q: give a duration such as 90m, 12h or 30d", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	ttl, err := time.ParseDuration(s)
	if err != nil || ttl <= 0 {
		return 0, BadParameter("ttl", "ttl %q: give a duration such as 90m, 12h or 30d", s)
	}
	return ttl, nil
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
func (c *Core) CreateToken(ctx context.Context, p Caller, req CreateTokenRequest) (CreateTokenResult, error) {
	if err := access.ValidPrincipalName(req.Name); err != nil {
		return CreateTokenResult{}, BadParameter("name", "name: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	if req.Name == rootPrincipal {
		return CreateTokenResult{}, BadParameter("name", "name %q is reserved for the bootstrap token; pick another", req.Name)
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = ParseTTL(req.TTL); err != nil {
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
	id, err := RandomID(8)
	if err != nil {
		return CreateTokenResult{}, err
	}
	now := time.Now()
	tok, rec, err := NewToken(id, req.Name, ttl, now)
	if err != nil {
		return CreateTokenResult{}, err
	}
	rec.CreatedBy = p.Name
	idx, err := c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		b := &raftstore.Batch{}
		if err := PutSealedJSON(b, c.Barrier.Load(), PrefixTokens+id, rec); err != nil {
			return nil, err
		}
		if asg != nil {
			as, idx := c.Assignments()
			as, added := addAssignment(as, *asg)
			*asg = added
			b.PutIf(KeyAssignments, MustJSON(as), idx)
		}
		return b, nil
	})
	if err != nil {
		return CreateTokenResult{}, err
	}
	return CreateTokenResult{Token: CreatedToken{TokenInfo: tokenInfo(id, rec, now), Token: tok, Assignment: asg}, Index: idx}, nil
}

// allTokens returns every token record by ID.
func (c *Core) allTokens() (map[string]TokenRecord, error) {
	es, _ := c.Store.List(PrefixTokens, "", 0)
	out := make(map[string]TokenRecord, len(es))
	for _, e := range es {
		var rec TokenRecord
		if err := c.GetSealedJSON(e, &rec); err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(e.Key, PrefixTokens)] = rec
	}
	return out, nil
}

// ListTokensRequest filters the tokens listed.
type ListTokensRequest struct {
	// Name, when set, lists only the tokens of this principal.
	Name string
}

// ListTokens lists the tokens (never their secrets), by principal and ID.
func (c *Core) ListTokens(ctx context.Context, p Caller, req ListTokensRequest) ([]TokenInfo, error) {
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
func (c *Core) RevokeToken(ctx context.Context, p Caller, id string) (uint64, error) {
	return c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		e, ok := c.Store.Get(PrefixTokens + id)
		if !ok {
			return nil, NotFound("TokenNotFound", "no token has ID %q ('certvault token list' shows them)", id)
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
		b.Check(KeyAssignments, idx)
		return b, nil
	})
}

// AdminRemains refuses a change that would leave no principal with a
// valid token and Administrator at the vault scope: nobody could manage
// the vault any more.
func AdminRemains(as []access.Assignment, toks map[string]TokenRecord) error {
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
	return Conflict("LastAdministrator",
		"this would leave no principal with a valid token and Administrator at the vault scope; "+
			"first create one: certvault token create --name NAME --role Administrator --scope /")
}

// Assignments returns the role assignments and the index of their record
// (raftstore.NotExist when there is none).
func (c *Core) Assignments() ([]access.Assignment, uint64) {
	e, ok := c.Store.Get(KeyAssignments)
	if !ok {
		return nil, raftstore.NotExist
	}
	var as []access.Assignment
	if err := json.Unmarshal(e.Value, &as); err != nil {
		c.Log.Error("role assignments do not decode", "err", err)
	}
	return as, e.Index
}

// NewAssignment checks and builds an assignment (its ID is set when it
// is added).
func NewAssignment(role, assignee, scope, by string) (access.Assignment, error) {
	ro, err := access.LookupRole(role)
	if err != nil {
		return access.Assignment{}, BadParameter("role", "role: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	who, err := access.ParseAssignee(assignee)
	if err != nil {
		return access.Assignment{}, BadParameter("assignee", "assignee: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	if scope == "" {
		return access.Assignment{}, BadParameter("scope", "scope is required: / for the whole vault, /certificates for every certificate, /certificates/www for one, /certificates/web-* for a name prefix")
	}
	sc, err := access.ParseScope(scope)
	if err != nil {
		return access.Assignment{}, BadParameter("scope", "scope: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	return access.Assignment{Role: ro.Name, Assignee: who, Scope: sc.String(), Created: time.Now().Unix(), CreatedBy: by}, nil
}

// addAssignment adds a unless the same role, assignee and scope is
// already assigned; it returns the list and the stored assignment.
func addAssignment(as []access.Assignment, a access.Assignment) ([]access.Assignment, access.Assignment) {
	for _, x := range as {
		if x.Role == a.Role && x.Assignee == a.Assignee && x.Scope == a.Scope {
			return as, x
		}
	}
	// A random ID is never reused, so an audit record that names an
	// assignment names only that one.
	for {
		a.ID, _ = RandomID(4)
		if !slices.ContainsFunc(as, func(x access.Assignment) bool { return x.ID == a.ID }) {
			break
		}
	}
	return append(slices.Clone(as), a), a
}

// ListRoles lists the built-in roles.
func (c *Core) ListRoles(ctx context.Context, p Caller) ([]access.Role, error) {
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
func (c *Core) ListAssignments(ctx context.Context, p Caller, req ListAssignmentsRequest) ([]access.Assignment, error) {
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
func (c *Core) Assign(ctx context.Context, p Caller, req AssignRequest) (AssignResult, error) {
	a, err := NewAssignment(req.Role, req.Assignee, req.Scope, p.Name)
	if err != nil {
		return AssignResult{}, err
	}
	idx, err := c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		as, idx := c.Assignments()
		as, a = addAssignment(as, a)
		return (&raftstore.Batch{}).PutIf(KeyAssignments, MustJSON(as), idx), nil
	})
	if err != nil {
		return AssignResult{}, err
	}
	return AssignResult{Assignment: a, Index: idx}, nil
}

// Unassign removes assignment id, unless that leaves no administrator; it
// returns the raft index of the write.
func (c *Core) Unassign(ctx context.Context, p Caller, id string) (uint64, error) {
	return c.CommitCAS(ctx, func() (*raftstore.Batch, error) {
		as, idx := c.Assignments()
		i := slices.IndexFunc(as, func(a access.Assignment) bool { return a.ID == id })
		if i < 0 {
			return nil, NotFound("AssignmentNotFound", "no role assignment has ID %q ('certvault role assignments' shows them)", id)
		}
		as = slices.Delete(slices.Clone(as), i, i+1)
		toks, err := c.allTokens()
		if err != nil {
			return nil, err
		}
		if err := AdminRemains(as, toks); err != nil {
			return nil, err
		}
		return (&raftstore.Batch{}).PutIf(KeyAssignments, MustJSON(as), idx), nil
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
func (c *Core) Self(ctx context.Context, p Caller) (Self, error) {
	s := Self{Principal: p.Name, TokenID: p.TokenID, AgentID: p.AgentID, Groups: p.Groups, Assignments: []access.Assignment{}}
	as, _ := c.Assignments()
	for _, a := range as {
		if a.Assignee == p.Name || slices.ContainsFunc(p.Groups, func(g string) bool { return a.Assignee == access.GroupPrefix+g }) {
			s.Assignments = append(s.Assignments, a)
		}
	}
	return s, nil
}

// BootstrapAssignments is the first assignment: the root token's
// principal is an Administrator of the whole vault.
func BootstrapAssignments(now time.Time) []byte {
	return MustJSON([]access.Assignment{{ID: "1", Role: access.Administrator, Assignee: rootPrincipal, Scope: "/", Created: now.Unix(), CreatedBy: "bootstrap"}})
}

// TokenRecord is a bearer token as stored (through the barrier): only the
// SHA-256 of its secret part.
type TokenRecord struct {
	// Name is the principal the token authenticates.
	Name    string `json:"name"`
	Hash    []byte `json:"hash"`
	Created int64  `json:"created"`
	Expires int64  `json:"expires,omitempty"`
	// CreatedBy is the principal that created the token.
	CreatedBy string `json:"created_by,omitempty"`
}

func (t TokenRecord) Expired(now time.Time) bool {
	return t.Expires != 0 && now.Unix() >= t.Expires
}

// TokenPrefix starts every bearer token: "cvt.<id>.<secret>".
const TokenPrefix = "cvt."

// NewToken makes a token with the given ID; ttl 0 means no expiry.
func NewToken(id, name string, ttl time.Duration, now time.Time) (string, TokenRecord, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", TokenRecord{}, fmt.Errorf("generate token: %w", err)
	}
	s := base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256([]byte(s))
	rec := TokenRecord{Name: name, Hash: sum[:], Created: now.Unix()}
	if ttl > 0 {
		rec.Expires = now.Add(ttl).Unix()
	}
	return TokenPrefix + id + "." + s, rec, nil
}

// RandomID returns n random bytes as hex.
func RandomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return hex.EncodeToString(b), nil
}
