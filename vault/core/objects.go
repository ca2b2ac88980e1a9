package core

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/certs"
)

// What every kind of object (certificates, secrets, keys) shares in the
// domain core: storage keys and records, names, versions, the errors
// about them, and listing and paging over the store. The lifecycle that
// every kind shares (soft delete, recover, purge, backup, restore) is in
// lifecycle.go. No HTTP here: the fronts build ids and links from
// the names, versions and resume points these functions return.

// Object kinds, as they appear in Key Vault paths.
const (
	KindCertificates = "certificates"
	KindSecrets      = "secrets"
	KindKeys         = "keys"
)

// Storage layout of data-plane objects. Public parts are plain JSON so
// that listing never decrypts; secret parts (values, private keys) live
// only under val/ and only through the barrier.
//
//	meta/<kind>/<name>          objectMeta: current version, deletion state
//	ver/<kind>/<name>/<ver>     versionMeta: attributes, tags, public material
//	val/<kind>/<name>/<ver>     sealed: the secret value or private key
//	deleted/<kind>/<name>       index of soft-deleted names
//	policy/certificates/<name>  the certificate's policy
//	pending/certificates/<name> the certificate's pending operation
//	pendkey/certificates/<name> sealed: the pending operation's private key
//
// Names are case-insensitive (Key Vault's rule): every key is built from
// the canonical form (objname.Canonical), so "www" and "WWW" are one
// object; the spelling its creator used is kept in objectMeta.Name for
// display.
func MetaKey(kind, name string) string { return "meta/" + kind + "/" + objname.Canonical(name) }
func VerKey(kind, name, version string) string {
	return "ver/" + kind + "/" + objname.Canonical(name) + "/" + version
}
func ValKey(kind, name, version string) string {
	return "val/" + kind + "/" + objname.Canonical(name) + "/" + version
}
func VerPrefix(kind, name string) string  { return "ver/" + kind + "/" + objname.Canonical(name) + "/" }
func valPrefix(kind, name string) string  { return "val/" + kind + "/" + objname.Canonical(name) + "/" }
func DeletedKey(kind, name string) string { return "deleted/" + kind + "/" + objname.Canonical(name) }
func PolicyKey(name string) string        { return "policy/certificates/" + objname.Canonical(name) }
func PendingKey(name string) string       { return "pending/certificates/" + objname.Canonical(name) }
func PendKeyKey(name string) string       { return "pendkey/certificates/" + objname.Canonical(name) }

// ObjectMeta is the record of an object name.
type ObjectMeta struct {
	// Name is the spelling the object was created with, shown in ids and
	// lists; the storage key holds the canonical form. Records written
	// before names were case-insensitive have none (displayName).
	Name    string `json:"name,omitempty"`
	Current string `json:"current,omitempty"`
	// ManagedBy is "certificates" for the key and secret a certificate
	// manages; their versions are the certificate's.
	ManagedBy string              `json:"managed_by,omitempty"`
	Created   int64               `json:"created"`
	Deleted   *Deletion           `json:"deleted,omitempty"`
	Summary   keyvault.Attributes `json:"summary"`
	Tags      map[string]string   `json:"tags,omitempty"`
	Content   string              `json:"content_type,omitempty"`
	X5t       keyvault.B64URL     `json:"x5t,omitempty"`
	// Plan is the storage key of the current version's renewal plan
	// (certificates with an AutoRenew action).
	Plan string `json:"plan,omitempty"`
	// MailPlan is the storage key of the current version's EmailContacts
	// plan.
	MailPlan string `json:"mail_plan,omitempty"`
	// EventPlans are the storage keys of the current version's
	// NearExpiry and Expired events.
	EventPlans []string `json:"event_plans,omitempty"`
	// AutoRenewals are the Unix times of the certificate's last automatic
	// renewals (at most renewal.BrakeRenewals, oldest first), which the
	// renewal brake counts; a version a person makes clears them.
	AutoRenewals []int64 `json:"auto_renewals,omitempty"`
	// Halted, when set, is why and when the renewal brake stopped the
	// certificate's automatic renewal: it has no renewal plan until a
	// person makes a version or updates its policy.
	Halted *RenewalHalt `json:"renewal_halted,omitempty"`
}

// Deletion records a soft delete.
type Deletion struct {
	Date           int64 `json:"date"`
	ScheduledPurge int64 `json:"scheduled_purge"`
}

// VersionMeta is the public record of one version.
type VersionMeta struct {
	Attributes  keyvault.Attributes `json:"attributes"`
	Tags        map[string]string   `json:"tags,omitempty"`
	ContentType string              `json:"content_type,omitempty"`
	// Certificates: the chain, leaf first, DER.
	Chain [][]byte `json:"chain,omitempty"`
	// Keys: the public key (PKIX DER) and the permitted operations.
	PublicKey []byte   `json:"public_key,omitempty"`
	KeyOps    []string `json:"key_ops,omitempty"`
	// Sealed says whether val/ holds a secret part for this version.
	Sealed bool `json:"sealed,omitempty"`
	// HSM says the private key lives in the HSM (val/ holds a reference).
	HSM bool `json:"hsm,omitempty"`
	// RenewalInfo is the ACME CA's suggested renewal window (RFC 9773).
	RenewalInfo *RenewalInfo `json:"renewal_info,omitempty"`
	// ACMEIssuer names the ACME issuer that issued the version; a renewal
	// through the same issuer tells the CA which certificate it replaces.
	ACMEIssuer string `json:"acme_issuer,omitempty"`
	// CreatedBy and How say who made a certificate version and how
	// (create, renewal, import, merge).
	CreatedBy string `json:"created_by,omitempty"`
	How       string `json:"how,omitempty"`
}

// RenewalInfo is a CA's suggested renewal window, as Unix seconds.
type RenewalInfo struct {
	Start          int64  `json:"start"`
	End            int64  `json:"end"`
	ExplanationURL string `json:"explanation_url,omitempty"`
	// Fetched is when the vault asked the CA.
	Fetched int64 `json:"fetched"`
}

// Live returns attributes with the recovery fields of the vault's current
// settings: they describe what a delete would do now, not what it would
// have done when the version was written.
func (c *Core) Live(a keyvault.Attributes) keyvault.Attributes {
	s := c.settings()
	a.RecoveryLevel, a.RecoverableDays = s.recoveryLevel(), s.retention()
	return a
}

// decorate fills the read-only recovery attributes from the vault's
// settings and defaults enabled to true.
func (c *Core) decorate(a *keyvault.Attributes) {
	s := c.settings()
	a.RecoveryLevel, a.RecoverableDays = s.recoveryLevel(), s.retention()
	if a.Enabled == nil {
		t := true
		a.Enabled = &t
	}
}

// LoadMeta returns the meta record of an object and its entry (Index is
// the compare-and-set token); found is false when there is none.
func (c *Core) LoadMeta(kind, name string) (ObjectMeta, raftstore.Entry, bool, error) {
	var m ObjectMeta
	e, ok := c.Store.Get(MetaKey(kind, name))
	if !ok {
		return m, e, false, nil
	}
	if err := json.Unmarshal(e.Value, &m); err != nil {
		return m, e, false, fmt.Errorf("decode %s: %w", e.Key, err)
	}
	return m, e, true, nil
}

func (c *Core) LoadVersion(kind, name, version string) (VersionMeta, raftstore.Entry, bool, error) {
	var v VersionMeta
	e, ok := c.Store.Get(VerKey(kind, name, version))
	if !ok {
		return v, e, false, nil
	}
	if err := json.Unmarshal(e.Value, &v); err != nil {
		return v, e, false, fmt.Errorf("decode %s: %w", e.Key, err)
	}
	return v, e, true, nil
}

func MustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// PutMeta adds a compare-and-set write of the meta record: the entry must
// still be at prev.Index (or absent when prev has no index).
// A record without a display name takes name as its spelling.
func PutMeta(b *raftstore.Batch, kind, name string, m ObjectMeta, prev raftstore.Entry) {
	if m.Name == "" {
		m.Name = name
	}
	b.PutIf(MetaKey(kind, name), MustJSON(m), prev.Index)
}

// displayName is the spelling to show for the object of kind stored
// under name (any spelling): the one it was created with.
func (c *Core) displayName(kind, name string) string {
	m, _, ok, err := c.LoadMeta(kind, name)
	if err != nil || !ok {
		return name
	}
	return m.DisplayName(name)
}

// DisplayName is the spelling to show for the object whose meta record
// is m, stored under keyName.
func (m ObjectMeta) DisplayName(keyName string) string {
	if m.Name != "" {
		return m.Name
	}
	return keyName
}

// NotFoundCode is Key Vault's error code for a missing object.
func NotFoundCode(kind string) string {
	switch kind {
	case KindCertificates:
		return "CertificateNotFound"
	case KindKeys:
		return "KeyNotFound"
	default:
		return "SecretNotFound"
	}
}

func Singular(kind string) string { return strings.TrimSuffix(kind, "s") }

// errObjectNotFound is Key Vault's not-found error for an object (or
// one of its versions).
func ObjectNotFound(kind, name, version string) *Error {
	id := name
	if version != "" {
		id += "/" + version
	}
	return NotFound(NotFoundCode(kind), "A %s with (name/id) %s was not found in this key vault. If you recently deleted it you may be able to recover it using the correct recovery command.", Singular(kind), id)
}

// errObjectDeleted refuses a write to a name held by a soft-deleted
// object.
func errObjectDeleted(kind, name string) *Error {
	return Conflict("Conflict", "%s %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the %s can only be recovered or purged.", strings.Title(Singular(kind)), name, Singular(kind))
}

// errManaged refuses an operation on a certificate's managed key or
// secret that only the certificate may do.
func errManaged(kind, name string) *Error {
	return Forbidden("%s %s is managed by the certificate of the same name; delete, recover or purge the certificate instead", Singular(kind), name)
}

// OrObjectNotFound returns err, or when it is nil the not-found error of
// the object version.
func OrObjectNotFound(err error, kind, name, version string) error {
	if err != nil {
		return err
	}
	return ObjectNotFound(kind, name, version)
}

// LiveObject returns the meta record of an object that exists and is not
// deleted, and its entry; otherwise errObjectNotFound (or the store's
// error).
func (c *Core) LiveObject(kind, name string) (ObjectMeta, raftstore.Entry, error) {
	m, e, ok, err := c.LoadMeta(kind, name)
	if err != nil {
		return m, e, err
	}
	if !ok || m.Deleted != nil {
		return m, e, ObjectNotFound(kind, name, "")
	}
	return m, e, nil
}

// MetaForNewVersion returns the meta record of the object a new version
// is to be written to (found is false while the name is free), refusing a
// name held by a soft-deleted object (errObjectDeleted).
func (c *Core) MetaForNewVersion(kind, name string) (ObjectMeta, raftstore.Entry, bool, error) {
	m, e, found, err := c.LoadMeta(kind, name)
	if err != nil {
		return m, e, found, err
	}
	if found && m.Deleted != nil {
		return m, e, found, errObjectDeleted(kind, name)
	}
	return m, e, found, nil
}

// ResolveVersion returns the version to read: the given one, or the
// current one when version is empty. It refuses deleted objects with
// errObjectNotFound.
func (c *Core) ResolveVersion(kind, name, version string) (ObjectMeta, string, error) {
	m, _, ok, err := c.LoadMeta(kind, name)
	if err != nil {
		return m, "", err
	}
	if !ok || m.Deleted != nil || (version == "" && m.Current == "") {
		return m, "", ObjectNotFound(kind, name, version)
	}
	if version == "" {
		version = m.Current
	}
	return m, version, nil
}

// listPage walks entries under prefix from the skip token, keeps those
// accepted by keep, and returns up to limit of them plus the key to resume
// after (empty when the listing is complete).
func (c *Core) listPage(prefix, after string, limit int, keep func(raftstore.Entry) bool) ([]raftstore.Entry, string) {
	var out []raftstore.Entry
	cursor := after
	for len(out) < limit {
		batch, _ := c.Store.List(prefix, cursor, 64)
		if len(batch) == 0 {
			return out, ""
		}
		for _, e := range batch {
			cursor = e.Key
			if keep(e) {
				out = append(out, e)
				if len(out) == limit {
					break
				}
			}
		}
	}
	// Is there anything after the cursor at all?
	more, _ := c.Store.List(prefix, cursor, 1)
	if len(more) == 0 {
		return out, ""
	}
	return out, cursor
}

// PageRequest asks for one page of a listing. The zero value asks for the
// first page of Key Vault's default size.
type PageRequest struct {
	// Limit is the most items to return, 1 to 25 (0: 25).
	Limit int
	// After is where the previous page ended: the Next of its result
	// (empty for the first page).
	After string
}

func (p PageRequest) limit() int {
	if p.Limit <= 0 {
		return 25
	}
	return p.Limit
}

// ListUnder walks the entries under prefix for one page: keep chooses
// entries, and next is where the following page starts (the last
// entry's key without the prefix), empty when the listing is complete.
func (c *Core) ListUnder(prefix string, page PageRequest, keep func(raftstore.Entry) bool) (entries []raftstore.Entry, next string) {
	after := page.After
	if after != "" {
		after = prefix + after
	}
	entries, last := c.listPage(prefix, after, page.limit(), keep)
	return entries, strings.TrimPrefix(last, prefix)
}

// ObjectItem is one entry of a listing of objects or of an object's
// versions: what Key Vault's list items show, without ids (the front
// makes them from Name and Version).
type ObjectItem struct {
	// Name is the object's name as its creator spelt it.
	Name string
	// Version is set in version listings.
	Version string
	// Attributes carry the vault's current recovery settings.
	Attributes keyvault.Attributes
	Tags       map[string]string
	// ContentType is a secret's content type.
	ContentType string
	// X5t is a certificate (version's) thumbprint.
	X5t keyvault.B64URL
	// Managed says the key or secret is a certificate's.
	Managed bool
}

// ListObjectsRequest lists the live objects of a kind.
type ListObjectsRequest struct {
	Kind string
	// IncludePending also lists certificates that have only a pending
	// operation and no version yet.
	IncludePending bool
	Page           PageRequest
}

// ListObjectsResult is a page of objects.
type ListObjectsResult struct {
	Items []ObjectItem
	// Next resumes the listing (PageRequest.After); empty at its end.
	Next string
}

// ListObjects lists objects of a kind that are not deleted, by name
// (canonical order), with their current version's summary.
func (c *Core) ListObjects(ctx context.Context, p Caller, req ListObjectsRequest) (ListObjectsResult, error) {
	prefix := "meta/" + req.Kind + "/"
	entries, next := c.ListUnder(prefix, req.Page, func(e raftstore.Entry) bool {
		var m ObjectMeta
		return json.Unmarshal(e.Value, &m) == nil && m.Deleted == nil && (m.Current != "" || req.IncludePending)
	})
	res := ListObjectsResult{Next: next}
	for _, e := range entries {
		var m ObjectMeta
		json.Unmarshal(e.Value, &m)
		res.Items = append(res.Items, ObjectItem{Name: m.DisplayName(strings.TrimPrefix(e.Key, prefix)),
			Attributes: c.Live(m.Summary), Tags: m.Tags, ContentType: m.Content, X5t: m.X5t, Managed: m.ManagedBy != ""})
	}
	return res, nil
}

// ListVersionsRequest lists the versions of one object.
type ListVersionsRequest struct {
	Kind string
	// Name is the object's name as it is to be shown (the front's
	// spelling).
	Name string
	Page PageRequest
}

// ListVersionsResult is a page of versions.
type ListVersionsResult struct {
	Items []ObjectItem
	// Next resumes the listing (PageRequest.After); empty at its end.
	Next string
}

// ListVersions lists the versions of an object that is not deleted, in
// version id order. A certificate's managed key and secret list the
// certificate's versions; a managed secret's content type is the
// certificate's.
func (c *Core) ListVersions(ctx context.Context, p Caller, req ListVersionsRequest) (ListVersionsResult, error) {
	m, _, err := c.ResolveVersion(req.Kind, req.Name, "")
	if err != nil {
		return ListVersionsResult{}, err
	}
	source := req.Kind
	if m.ManagedBy != "" {
		source = m.ManagedBy
	}
	prefix := VerPrefix(source, req.Name)
	entries, next := c.ListUnder(prefix, req.Page, func(raftstore.Entry) bool { return true })
	res := ListVersionsResult{Next: next}
	for _, e := range entries {
		var v VersionMeta
		if err := json.Unmarshal(e.Value, &v); err != nil {
			return ListVersionsResult{}, Internal(fmt.Errorf("decode %s: %w", e.Key, err))
		}
		it := ObjectItem{Name: req.Name, Version: strings.TrimPrefix(e.Key, prefix),
			Attributes: c.Live(v.Attributes), Tags: v.Tags, ContentType: v.ContentType, Managed: m.ManagedBy != ""}
		if m.ManagedBy != "" {
			it.ContentType = m.Content
		}
		if req.Kind == KindCertificates && len(v.Chain) > 0 {
			it.X5t = certs.Thumbprint(v.Chain[0])
		}
		res.Items = append(res.Items, it)
	}
	return res, nil
}

// NewVersionAttributes are the attributes of a version made at now: the
// caller-settable ones from in, the times, the recovery settings, and
// enabled unless in says otherwise.
func (c *Core) NewVersionAttributes(in *keyvault.Attributes, now int64) keyvault.Attributes {
	var a keyvault.Attributes
	applyAttributes(&a, in)
	a.Created, a.Updated = now, now
	c.decorate(&a)
	return a
}

// PutVersionRecord adds to b the record of a new version v and, when
// secret is not nil, its secret part (value or private key) through the
// barrier.
func (c *Core) PutVersionRecord(b *raftstore.Batch, kind, name, version string, v VersionMeta, secret []byte) error {
	b.Put(VerKey(kind, name, version), MustJSON(v))
	if secret == nil {
		return nil
	}
	return PutSealed(b, c.Barrier.Load(), ValKey(kind, name, version), secret)
}

// PutVersionUpdate adds to b the rewrite of version v (stored as e) of
// an object, compare-and-set, and, when it is the object's current
// version, the new summary and tags in the meta records of summaryKinds
// that exist (and, for a secret, its content type). Updates of
// certificates, secrets and keys all end here: a certificate passes its
// own kind and its managed kinds.
func (c *Core) PutVersionUpdate(b *raftstore.Batch, kind, name, version, current string, v VersionMeta, e raftstore.Entry, summaryKinds ...string) {
	b.PutIf(e.Key, MustJSON(v), e.Index)
	if version != current {
		return
	}
	for _, k := range summaryKinds {
		mm, me, ok, _ := c.LoadMeta(k, name)
		if !ok {
			continue
		}
		mm.Summary, mm.Tags = v.Attributes, v.Tags
		if kind == KindSecrets {
			mm.Content = v.ContentType
		}
		PutMeta(b, k, name, mm, me)
	}
}

// ApplyUpdate applies an update's attributes and tags (nil: unchanged)
// to version v and stamps it updated now.
func (v *VersionMeta) ApplyUpdate(attrs *keyvault.Attributes, tags map[string]string) {
	applyAttributes(&v.Attributes, attrs)
	if tags != nil {
		v.Tags = tags
	}
	v.Attributes.Updated = nowUnix()
}

// applyAttributes copies the caller-settable attributes onto a.
func applyAttributes(a *keyvault.Attributes, in *keyvault.Attributes) {
	if in == nil {
		return
	}
	if in.Enabled != nil {
		a.Enabled = in.Enabled
	}
	if in.NotBefore != nil {
		a.NotBefore = in.NotBefore
	}
	if in.Expires != nil {
		a.Expires = in.Expires
	}
}

// ObjectName is Key Vault's rule for object names.
var ObjectName = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// ValidName checks an object name against Key Vault's rule (objectName).
func ValidName(kind, name string) error {
	if !ObjectName.MatchString(name) {
		return BadParameter("name", "%s name %q is not valid: use 1 to 127 letters, digits and dashes", Singular(kind), name)
	}
	return nil
}
