// Package access decides who may do what in a vault: the built-in roles
// (Key Vault's names plus Issuers Administrator), the actions each grants,
// scopes (the whole vault, a collection, one object or a name prefix) and
// role assignments to principals and agent groups. It is pure: it stores
// nothing and knows nothing of HTTP; the vault asks it one question per
// request, Allowed. Deny is the default: no assignment, no access.
package access

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/certvault/certvault/internal/objname"
)

// Errors returned by the parsers.
var (
	ErrUnknownRole  = errors.New("access: unknown role")
	ErrBadScope     = errors.New("access: scope is not valid")
	ErrBadPrincipal = errors.New("access: principal is not valid")
)

// Action is one thing a request does, named like Key Vault's data actions.
type Action string

// Object actions: checked against the object the request names.
const (
	CertificatesRead   Action = "certificates/read"
	CertificatesWrite  Action = "certificates/write"
	CertificatesDelete Action = "certificates/delete"
	CertificatesBackup Action = "certificates/backup"
	IssuersRead        Action = "issuers/read"
	IssuersWrite       Action = "issuers/write"
	SecretsMetadata    Action = "secrets/readMetadata"
	SecretsGet         Action = "secrets/getSecret"
	SecretsWrite       Action = "secrets/write"
	SecretsDelete      Action = "secrets/delete"
	SecretsBackup      Action = "secrets/backup"
	KeysRead           Action = "keys/read"
	KeysWrite          Action = "keys/write"
	KeysDelete         Action = "keys/delete"
	KeysBackup         Action = "keys/backup"
	KeysCrypto         Action = "keys/crypto"
)

// Vault actions: granted only by an assignment at the vault scope "/".
const (
	ContactsWrite Action = "contacts/write"
	RNG           Action = "rng"
	EventsRead    Action = "events/read"
	EventsWrite   Action = "events/write"
	SettingsRead  Action = "settings/read"
	SettingsWrite Action = "settings/write"
	ClusterRead   Action = "cluster/read"
	ClusterWrite  Action = "cluster/write"
	AccessManage  Action = "access/manage"
	AuditRead     Action = "audit/read"
	AgentsManage  Action = "agents/manage"
)

// vaultActions are the actions that only the vault scope grants.
var vaultActions = map[Action]bool{
	ContactsWrite: true, RNG: true, EventsRead: true, EventsWrite: true,
	SettingsRead: true, SettingsWrite: true, ClusterRead: true, ClusterWrite: true,
	AccessManage: true, AuditRead: true, AgentsManage: true,
}

// IsVaultAction reports whether a is granted only at the vault scope.
func IsVaultAction(a Action) bool { return vaultActions[a] }

// Role is a named set of actions.
type Role struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Actions     []Action `json:"actions"`
}

// Grants reports whether the role includes a.
func (r Role) Grants(a Action) bool { return slices.Contains(r.Actions, a) }

// Role names.
const (
	Administrator           = "Administrator"
	CertificatesOfficer     = "Certificates Officer"
	CertificateUser         = "Certificate User"
	SecretsOfficer          = "Secrets Officer"
	SecretsUser             = "Secrets User"
	CryptoOfficer           = "Crypto Officer"
	CryptoUser              = "Crypto User"
	Reader                  = "Reader"
	DataAccessAdministrator = "Data Access Administrator"
	IssuersAdministrator    = "Issuers Administrator"
)

// allActions lists every action, for the Administrator role.
var allActions = []Action{
	CertificatesRead, CertificatesWrite, CertificatesDelete, CertificatesBackup,
	IssuersRead, IssuersWrite,
	SecretsMetadata, SecretsGet, SecretsWrite, SecretsDelete, SecretsBackup,
	KeysRead, KeysWrite, KeysDelete, KeysBackup, KeysCrypto,
	ContactsWrite, RNG, EventsRead, EventsWrite, SettingsRead, SettingsWrite,
	ClusterRead, ClusterWrite, AccessManage, AuditRead, AgentsManage,
}

// roles are the built-in roles, in the order `certvault role list` shows.
var roles = []Role{
	{Administrator, "Everything: all objects and their secrets, issuers, settings, cluster, tokens, roles, agents and the audit trail.", allActions},
	{CertificatesOfficer, "Creates and manages certificates and their policies (naming any issuer), contacts and event subscriptions; cannot read private keys or secrets, and cannot read or change issuers.",
		[]Action{CertificatesRead, CertificatesWrite, CertificatesDelete, CertificatesBackup, KeysRead, SecretsMetadata, ContactsWrite, EventsRead, EventsWrite, SettingsRead}},
	{CertificateUser, "Reads whole certificates, private key included (through the managed secret).",
		[]Action{CertificatesRead, SecretsMetadata, SecretsGet, KeysRead}},
	{SecretsOfficer, "Manages secrets, values included.",
		[]Action{SecretsMetadata, SecretsGet, SecretsWrite, SecretsDelete, SecretsBackup}},
	{SecretsUser, "Reads secret values.",
		[]Action{SecretsMetadata, SecretsGet}},
	{CryptoOfficer, "Manages keys and uses them for cryptographic operations.",
		[]Action{KeysRead, KeysWrite, KeysDelete, KeysBackup, KeysCrypto, RNG}},
	{CryptoUser, "Reads public keys and uses keys for cryptographic operations.",
		[]Action{KeysRead, KeysCrypto, RNG}},
	{Reader, "Reads metadata of certificates, keys and secrets (never secret values); at the vault scope also settings, cluster status, event subscriptions, the audit trail and the evidence report: the auditor's role.",
		[]Action{CertificatesRead, KeysRead, SecretsMetadata, EventsRead, SettingsRead, ClusterRead, AuditRead}},
	{DataAccessAdministrator, "Manages access: tokens, role assignments, agent join tokens and agents. Reads no object.",
		[]Action{AccessManage, AgentsManage}},
	{IssuersAdministrator, "The CA-account team: creates, reads, changes, checks and deletes issuers (CA accounts, EAB and DNS credentials, which stay write-only).",
		[]Action{IssuersRead, IssuersWrite}},
}

// Roles returns the built-in roles.
func Roles() []Role { return slices.Clone(roles) }

// LookupRole finds a role by name, ignoring case, spaces and dashes
// ("certificates-officer" finds Certificates Officer).
func LookupRole(name string) (Role, error) {
	key := normRole(name)
	for _, r := range roles {
		if normRole(r.Name) == key {
			return r, nil
		}
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = r.Name
	}
	return Role{}, fmt.Errorf("%w %q: use one of %s", ErrUnknownRole, name, strings.Join(names, ", "))
}

func normRole(s string) string {
	s = strings.ToLower(s)
	return strings.NewReplacer(" ", "", "-", "", "_", "").Replace(s)
}

// Kinds of objects a scope can name.
var kinds = []string{"certificates", "keys", "secrets", "issuers"}

var scopeName = regexp.MustCompile(`^[0-9A-Za-z-]{0,127}$`)

// Scope is where an assignment applies: the vault ("/"), a collection
// ("/certificates"), one object ("/certificates/www") or the objects whose
// name starts with a prefix ("/certificates/web-*"; a trailing dash
// also makes a prefix, since no object name ends with one).
type Scope struct {
	Kind   string // "" for the vault
	Name   string // "" for the vault or a collection
	Prefix bool
}

// ParseScope parses a scope string.
func ParseScope(s string) (Scope, error) {
	if s == "" || s == "/" {
		return Scope{}, nil
	}
	rest, ok := strings.CutPrefix(s, "/")
	if !ok {
		return Scope{}, fmt.Errorf("%w: %q must start with /, e.g. /, /certificates, /certificates/www or /certificates/web-*", ErrBadScope, s)
	}
	kind, name, _ := strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	if !slices.Contains(kinds, kind) {
		return Scope{}, fmt.Errorf("%w: %q: the first segment must be one of %s", ErrBadScope, s, strings.Join(kinds, ", "))
	}
	sc := Scope{Kind: kind}
	if name == "" {
		return sc, nil
	}
	if p, ok := strings.CutSuffix(name, "*"); ok {
		name, sc.Prefix = p, true
	} else if strings.HasSuffix(name, "-") {
		sc.Prefix = true
	}
	if !scopeName.MatchString(name) || (name == "" && !sc.Prefix) {
		return Scope{}, fmt.Errorf("%w: %q: an object name has letters, digits and dashes", ErrBadScope, s)
	}
	if name == "" {
		// "/certificates/*" is the collection.
		return Scope{Kind: kind}, nil
	}
	// Names are case-insensitive: the scope keeps the canonical form, so
	// that its String, its comparisons and the stored assignment agree.
	sc.Name = objname.Canonical(name)
	return sc, nil
}

// String is the canonical form: "/", "/certificates", "/certificates/www"
// or "/certificates/web-*".
func (s Scope) String() string {
	switch {
	case s.Kind == "":
		return "/"
	case s.Name == "":
		return "/" + s.Kind
	case s.Prefix:
		return "/" + s.Kind + "/" + s.Name + "*"
	}
	return "/" + s.Kind + "/" + s.Name
}

// Covers reports whether the scope includes the resource.
func (s Scope) Covers(r Resource) bool {
	if s.Kind == "" {
		return true
	}
	if r.Kind == "" {
		return false
	}
	for _, p := range r.paths() {
		if p.kind != s.Kind {
			continue
		}
		switch {
		case s.Name == "":
			return true
		case p.name == "":
			// A collection-wide request needs a collection-wide scope.
		case s.Prefix:
			// Exact and prefix scopes compare on one canonical form
			// (objname): "WEB-CERT" is under "/certificates/web-*".
			if objname.HasPrefix(p.name, s.Name) {
				return true
			}
		case objname.Equal(p.name, s.Name):
			return true
		}
	}
	return false
}

// Resource is what a request acts on: nothing in particular (Kind ""),
// a collection (Name "") or one object. Certificate is set for a key or
// secret that is a certificate's managed key or secret, so that a scope
// on the certificate covers it too.
type Resource struct {
	Kind        string
	Name        string
	Certificate bool
}

type resPath struct{ kind, name string }

func (r Resource) paths() []resPath {
	ps := []resPath{{r.Kind, r.Name}}
	if r.Certificate && (r.Kind == "keys" || r.Kind == "secrets") {
		ps = append(ps, resPath{"certificates", r.Name})
	}
	return ps
}

// String names the resource like a scope.
func (r Resource) String() string {
	if r.Kind == "" {
		return "/"
	}
	if r.Name == "" {
		return "/" + r.Kind
	}
	return "/" + r.Kind + "/" + r.Name
}

// Principal is who makes a request: a token's principal name, or an
// agent ("agent:ID") with its group.
type Principal struct {
	Name   string
	Groups []string
}

var principalName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

// ValidPrincipalName checks a name given to a token: letters, digits and
// ". _ @ -", up to 128, not starting with a punctuation mark.
func ValidPrincipalName(name string) error {
	if !principalName.MatchString(name) {
		return fmt.Errorf("%w: %q: use up to 128 letters, digits and . _ @ -, starting with a letter or digit", ErrBadPrincipal, name)
	}
	return nil
}

// GroupPrefix marks an assignee that is an agent group.
const GroupPrefix = "group:"

// SPPrefix marks a service principal's principal name (sp:NAME); no
// token name can take that form.
const SPPrefix = "sp:"

// ParseAssignee checks an assignee: a principal name, group:NAME or
// sp:NAME.
func ParseAssignee(s string) (string, error) {
	if g, ok := strings.CutPrefix(s, GroupPrefix); ok {
		if err := ValidPrincipalName(g); err != nil {
			return "", fmt.Errorf("group %q: %w", g, err)
		}
		return s, nil
	}
	if sp, ok := strings.CutPrefix(s, SPPrefix); ok {
		if err := ValidPrincipalName(sp); err != nil {
			return "", fmt.Errorf("service principal %q: %w", sp, err)
		}
		// Service principal names are case-insensitive, as object
		// names are: the assignee is their one canonical form.
		return SPPrefix + objname.Canonical(sp), nil
	}
	if strings.HasPrefix(s, "agent:") {
		return "", fmt.Errorf("%w: %q: assign roles to agents through their group (group:NAME)", ErrBadPrincipal, s)
	}
	return s, ValidPrincipalName(s)
}

// Assignment gives a role to an assignee at a scope.
type Assignment struct {
	ID string `json:"id"`
	// Role is the role's name.
	Role string `json:"role"`
	// Assignee is a principal name, group:NAME or sp:NAME.
	Assignee string `json:"assignee"`
	// Scope is the canonical scope string.
	Scope string `json:"scope"`
	// Created is a Unix time; CreatedBy the principal that assigned it.
	Created   int64  `json:"created"`
	CreatedBy string `json:"created_by,omitempty"`
}

// applies reports whether the assignment is to p.
func (a Assignment) applies(p Principal) bool {
	if g, ok := strings.CutPrefix(a.Assignee, GroupPrefix); ok {
		return slices.Contains(p.Groups, g)
	}
	return a.Assignee == p.Name
}

// Policy is a set of assignments, indexed for fast checks. It is
// immutable once built and safe for concurrent use.
type Policy struct {
	byAssignee map[string][]compiled
	all        []compiled // ordered by assignment ID
}

type compiled struct {
	a     Assignment
	role  Role
	scope Scope
}

// NewPolicy indexes assignments. Assignments with an unknown role or a
// bad scope (which the API never stores) are skipped.
func NewPolicy(as []Assignment) *Policy {
	p := &Policy{byAssignee: map[string][]compiled{}}
	for _, a := range as {
		role, err := LookupRole(a.Role)
		if err != nil {
			continue
		}
		sc, err := ParseScope(a.Scope)
		if err != nil {
			continue
		}
		c := compiled{a, role, sc}
		p.byAssignee[a.Assignee] = append(p.byAssignee[a.Assignee], c)
		p.all = append(p.all, c)
	}
	sort.Slice(p.all, func(i, j int) bool { return p.all[i].a.ID < p.all[j].a.ID })
	return p
}

// Assignments returns the assignments, ordered by ID.
func (p *Policy) Assignments() []Assignment {
	out := make([]Assignment, len(p.all))
	for i, c := range p.all {
		out[i] = c.a
	}
	return out
}

// Allowed reports whether pr may perform a on r.
func (p *Policy) Allowed(pr Principal, a Action, r Resource) bool {
	return p.check(pr.Name, a, r) || slices.ContainsFunc(pr.Groups, func(g string) bool { return p.check(GroupPrefix+g, a, r) })
}

func (p *Policy) check(assignee string, a Action, r Resource) bool {
	for _, c := range p.byAssignee[assignee] {
		if !c.role.Grants(a) {
			continue
		}
		if vaultActions[a] {
			if c.scope.Kind == "" {
				return true
			}
			continue
		}
		if c.scope.Covers(r) {
			return true
		}
	}
	return false
}

// Grant is one assignment that lets its assignee act on a resource.
type Grant struct {
	Assignment Assignment
	Role       Role
}

// Grants lists the assignments whose role gives any action of r's kind
// on r: "who has access to this object".
func (p *Policy) Grants(r Resource) []Grant {
	var out []Grant
	for _, c := range p.all {
		if !c.scope.Covers(r) {
			continue
		}
		if slices.ContainsFunc(c.role.Actions, func(a Action) bool { return !vaultActions[a] && actionKind(a) == r.Kind }) {
			out = append(out, Grant{c.a, c.role})
		}
	}
	return out
}

func actionKind(a Action) string {
	k, _, _ := strings.Cut(string(a), "/")
	return k
}

// HasAdministrator reports whether some assignee other than except holds
// Administrator at the vault scope; alive filters assignees (for
// example, those with a valid token).
func (p *Policy) HasAdministrator(except string, alive func(assignee string) bool) bool {
	for assignee, cs := range p.byAssignee {
		if assignee == except {
			continue
		}
		for _, c := range cs {
			if c.role.Name == Administrator && c.scope.Kind == "" && alive(assignee) {
				return true
			}
		}
	}
	return false
}
