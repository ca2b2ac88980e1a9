package vault

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
)

// keyAssignments holds every role assignment in one record, so that a
// check ("an administrator remains") and a change commit together with a
// compare-and-set on one index.
const keyAssignments = "access/assignments"

// rootPrincipal is the bootstrap token's principal; the name is reserved.
const rootPrincipal = "root"

// accessRoutes registers tokens, roles and assignments.
func (n *Node) accessRoutes(vault func(string, string, http.HandlerFunc, ...access.Action)) {
	vault("POST", "/v1/tokens", n.handleCreateToken, access.AccessManage)
	vault("GET", "/v1/tokens", n.handleListTokens, access.AccessManage, access.AuditRead)
	vault("DELETE", "/v1/tokens/{id}", n.handleRevokeToken, access.AccessManage)
	vault("GET", "/v1/auth/self", n.handleSelf)
	vault("GET", "/v1/roles", n.handleListRoles)
	vault("GET", "/v1/roles/assignments", n.handleListAssignments, access.AccessManage, access.AuditRead)
	vault("POST", "/v1/roles/assignments", n.handleAssign, access.AccessManage)
	vault("DELETE", "/v1/roles/assignments/{id}", n.handleUnassign, access.AccessManage)
}

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

func tokenInfo(id string, rec tokenRecord, now time.Time) TokenInfo {
	ti := TokenInfo{ID: id, Name: rec.Name, Created: time.Unix(rec.Created, 0).UTC(), CreatedBy: rec.CreatedBy, Expired: rec.expired(now)}
	if rec.Expires != 0 {
		t := time.Unix(rec.Expires, 0).UTC()
		ti.Expires = &t
	}
	return ti
}

// parseTTL reads a duration such as 90m, 12h or 30d.
func parseTTL(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(d)
		if err != nil || days <= 0 {
			return 0, badParameter("ttl %q: give a duration such as 90m, 12h or 30d", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	ttl, err := time.ParseDuration(s)
	if err != nil || ttl <= 0 {
		return 0, badParameter("ttl %q: give a duration such as 90m, 12h or 30d", s)
	}
	return ttl, nil
}

func (n *Node) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name  string `json:"name"`
		TTL   string `json:"ttl"`
		Role  string `json:"role"`
		Scope string `json:"scope"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if err := access.ValidPrincipalName(req.Name); err != nil {
		n.fail(w, r, badParameter("name: %s", strings.TrimPrefix(err.Error(), "access: ")))
		return
	}
	if req.Name == rootPrincipal {
		n.fail(w, r, badParameter("name %q is reserved for the bootstrap token; pick another", req.Name))
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = parseTTL(req.TTL); err != nil {
			n.fail(w, r, err)
			return
		}
	}
	var asg *access.Assignment
	if req.Role != "" || req.Scope != "" {
		a, err := newAssignment(req.Role, req.Name, req.Scope, callerOf(r).Name)
		if err != nil {
			n.fail(w, r, err)
			return
		}
		asg = &a
	}
	id, err := randomID(8)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	now := time.Now()
	tok, rec, err := newToken(id, req.Name, ttl, now)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	rec.CreatedBy = callerOf(r).Name
	err = n.applyCAS(r.Context(), w.Header(), func() (*raftstore.Batch, error) {
		b := &raftstore.Batch{}
		if err := putSealedJSON(b, n.barrier.Load(), prefixTokens+id, rec); err != nil {
			return nil, err
		}
		if asg != nil {
			as, idx := n.assignments()
			as, added := addAssignment(as, *asg)
			*asg = added
			b.PutIf(keyAssignments, mustJSON(as), idx)
		}
		return b, nil
	})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	infoOf(r).object = "/tokens/" + id
	writeJSON(w, http.StatusCreated, CreatedToken{TokenInfo: tokenInfo(id, rec, now), Token: tok, Assignment: asg})
}

// tokens returns every token record by ID.
func (n *Node) allTokens() (map[string]tokenRecord, error) {
	es, _ := n.store.List(prefixTokens, "", 0)
	out := make(map[string]tokenRecord, len(es))
	for _, e := range es {
		var rec tokenRecord
		if err := n.getSealedJSON(e, &rec); err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(e.Key, prefixTokens)] = rec
	}
	return out, nil
}

func (n *Node) handleListTokens(w http.ResponseWriter, r *http.Request) {
	if !n.linearized(w, r) {
		return
	}
	toks, err := n.allTokens()
	if err != nil {
		n.fail(w, r, err)
		return
	}
	now := time.Now()
	out := []TokenInfo{}
	for id, rec := range toks {
		if name := r.URL.Query().Get("name"); name != "" && rec.Name != name {
			continue
		}
		out = append(out, tokenInfo(id, rec, now))
	}
	slices.SortFunc(out, func(a, b TokenInfo) int { return strings.Compare(a.Name+"/"+a.ID, b.Name+"/"+b.ID) })
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (n *Node) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := n.applyCAS(r.Context(), w.Header(), func() (*raftstore.Batch, error) {
		e, ok := n.store.Get(prefixTokens + id)
		if !ok {
			return nil, notFound("TokenNotFound", "no token has ID %q ('certvault token list' shows them)", id)
		}
		toks, err := n.allTokens()
		if err != nil {
			return nil, err
		}
		delete(toks, id)
		as, idx := n.assignments()
		if err := adminRemains(as, toks); err != nil {
			return nil, err
		}
		b := &raftstore.Batch{}
		b.DeleteIf(e.Key, e.Index)
		b.Check(keyAssignments, idx)
		return b, nil
	})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// adminRemains refuses a change that would leave no principal with a
// valid token and Administrator at the vault scope: nobody could manage
// the vault any more.
func adminRemains(as []access.Assignment, toks map[string]tokenRecord) error {
	now := time.Now()
	alive := func(assignee string) bool {
		for _, t := range toks {
			if t.Name == assignee && !t.expired(now) {
				return true
			}
		}
		return false
	}
	if access.NewPolicy(as).HasAdministrator("", alive) {
		return nil
	}
	return &APIError{Status: http.StatusConflict, Code: "LastAdministrator",
		Message: "this would leave no principal with a valid token and Administrator at the vault scope; " +
			"first create one: certvault token create --name NAME --role Administrator --scope /"}
}

// assignments returns the role assignments and the index of their record
// (raftstore.NotExist when there is none).
func (n *Node) assignments() ([]access.Assignment, uint64) {
	e, ok := n.store.Get(keyAssignments)
	if !ok {
		return nil, raftstore.NotExist
	}
	var as []access.Assignment
	if err := json.Unmarshal(e.Value, &as); err != nil {
		n.log.Error("role assignments do not decode", "err", err)
	}
	return as, e.Index
}

// newAssignment checks and builds an assignment (its ID is set when it
// is added).
func newAssignment(role, assignee, scope, by string) (access.Assignment, error) {
	ro, err := access.LookupRole(role)
	if err != nil {
		return access.Assignment{}, badParameter("role: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	who, err := access.ParseAssignee(assignee)
	if err != nil {
		return access.Assignment{}, badParameter("assignee: %s", strings.TrimPrefix(err.Error(), "access: "))
	}
	if scope == "" {
		return access.Assignment{}, badParameter("scope is required: / for the whole vault, /certificates for every certificate, /certificates/www for one, /certificates/web-* for a name prefix")
	}
	sc, err := access.ParseScope(scope)
	if err != nil {
		return access.Assignment{}, badParameter("scope: %s", strings.TrimPrefix(err.Error(), "access: "))
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
		a.ID, _ = randomID(4)
		if !slices.ContainsFunc(as, func(x access.Assignment) bool { return x.ID == a.ID }) {
			break
		}
	}
	return append(slices.Clone(as), a), a
}

func (n *Node) handleListRoles(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"value": access.Roles()})
}

func (n *Node) handleListAssignments(w http.ResponseWriter, r *http.Request) {
	if !n.linearized(w, r) {
		return
	}
	as, _ := n.assignments()
	out := []access.Assignment{}
	q := r.URL.Query()
	for _, a := range as {
		if v := q.Get("assignee"); v != "" && a.Assignee != v {
			continue
		}
		if v := q.Get("role"); v != "" && !strings.EqualFold(a.Role, v) {
			continue
		}
		out = append(out, a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (n *Node) handleAssign(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Role     string `json:"role"`
		Assignee string `json:"assignee"`
		Scope    string `json:"scope"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	a, err := newAssignment(req.Role, req.Assignee, req.Scope, callerOf(r).Name)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	err = n.applyCAS(r.Context(), w.Header(), func() (*raftstore.Batch, error) {
		as, idx := n.assignments()
		as, a = addAssignment(as, a)
		return (&raftstore.Batch{}).PutIf(keyAssignments, mustJSON(as), idx), nil
	})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	infoOf(r).object = "/roles/assignments/" + a.ID
	writeJSON(w, http.StatusCreated, a)
}

func (n *Node) handleUnassign(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := n.applyCAS(r.Context(), w.Header(), func() (*raftstore.Batch, error) {
		as, idx := n.assignments()
		i := slices.IndexFunc(as, func(a access.Assignment) bool { return a.ID == id })
		if i < 0 {
			return nil, notFound("AssignmentNotFound", "no role assignment has ID %q ('certvault role assignments' shows them)", id)
		}
		as = slices.Delete(slices.Clone(as), i, i+1)
		toks, err := n.allTokens()
		if err != nil {
			return nil, err
		}
		if err := adminRemains(as, toks); err != nil {
			return nil, err
		}
		return (&raftstore.Batch{}).PutIf(keyAssignments, mustJSON(as), idx), nil
	})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Self is who the caller is and what is assigned to it.
type Self struct {
	Principal   string              `json:"principal"`
	TokenID     string              `json:"token_id,omitempty"`
	AgentID     string              `json:"agent_id,omitempty"`
	Groups      []string            `json:"groups,omitempty"`
	Assignments []access.Assignment `json:"assignments"`
}

func (n *Node) handleSelf(w http.ResponseWriter, r *http.Request) {
	c := callerOf(r)
	s := Self{Principal: c.Name, TokenID: c.TokenID, AgentID: c.AgentID, Groups: c.Groups, Assignments: []access.Assignment{}}
	as, _ := n.assignments()
	for _, a := range as {
		if a.Assignee == c.Name || slices.ContainsFunc(c.Groups, func(g string) bool { return a.Assignee == access.GroupPrefix+g }) {
			s.Assignments = append(s.Assignments, a)
		}
	}
	writeJSON(w, http.StatusOK, s)
}

// bootstrapAssignments is the first assignment: the root token's
// principal is an Administrator of the whole vault.
func bootstrapAssignments(now time.Time) []byte {
	return mustJSON([]access.Assignment{{ID: "1", Role: access.Administrator, Assignee: rootPrincipal, Scope: "/", Created: now.Unix(), CreatedBy: "bootstrap"}})
}
