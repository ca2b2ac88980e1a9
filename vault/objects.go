package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/raftstore"
)

// Object kinds, as they appear in Key Vault paths.
const (
	kindCertificates = "certificates"
	kindSecrets      = "secrets"
	kindKeys         = "keys"
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
func metaKey(kind, name string) string { return "meta/" + kind + "/" + objname.Canonical(name) }
func verKey(kind, name, version string) string {
	return "ver/" + kind + "/" + objname.Canonical(name) + "/" + version
}
func valKey(kind, name, version string) string {
	return "val/" + kind + "/" + objname.Canonical(name) + "/" + version
}
func verPrefix(kind, name string) string  { return "ver/" + kind + "/" + objname.Canonical(name) + "/" }
func valPrefix(kind, name string) string  { return "val/" + kind + "/" + objname.Canonical(name) + "/" }
func deletedKey(kind, name string) string { return "deleted/" + kind + "/" + objname.Canonical(name) }
func policyKey(name string) string        { return "policy/certificates/" + objname.Canonical(name) }
func pendingKey(name string) string       { return "pending/certificates/" + objname.Canonical(name) }
func pendKeyKey(name string) string       { return "pendkey/certificates/" + objname.Canonical(name) }

// objectMeta is the record of an object name.
type objectMeta struct {
	// Name is the spelling the object was created with, shown in ids and
	// lists; the storage key holds the canonical form. Records written
	// before names were case-insensitive have none (displayName).
	Name    string `json:"name,omitempty"`
	Current string `json:"current,omitempty"`
	// ManagedBy is "certificates" for the key and secret a certificate
	// manages; their versions are the certificate's.
	ManagedBy string              `json:"managed_by,omitempty"`
	Created   int64               `json:"created"`
	Deleted   *deletion           `json:"deleted,omitempty"`
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
	Halted *renewalHalt `json:"renewal_halted,omitempty"`
}

// deletion records a soft delete.
type deletion struct {
	Date           int64 `json:"date"`
	ScheduledPurge int64 `json:"scheduled_purge"`
}

// versionMeta is the public record of one version.
type versionMeta struct {
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
	RenewalInfo *renewalInfo `json:"renewal_info,omitempty"`
	// ACMEIssuer names the ACME issuer that issued the version; a renewal
	// through the same issuer tells the CA which certificate it replaces.
	ACMEIssuer string `json:"acme_issuer,omitempty"`
	// CreatedBy and How say who made a certificate version and how
	// (create, renewal, import, merge).
	CreatedBy string `json:"created_by,omitempty"`
	How       string `json:"how,omitempty"`
}

// renewalInfo is a CA's suggested renewal window, as Unix seconds.
type renewalInfo struct {
	Start          int64  `json:"start"`
	End            int64  `json:"end"`
	ExplanationURL string `json:"explanation_url,omitempty"`
	// Fetched is when the vault asked the CA.
	Fetched int64 `json:"fetched"`
}

// live returns attributes with the recovery fields of the vault's current
// settings: they describe what a delete would do now, not what it would
// have done when the version was written.
func (n *Node) live(a keyvault.Attributes) keyvault.Attributes {
	s := n.settings()
	a.RecoveryLevel, a.RecoverableDays = s.recoveryLevel(), s.retention()
	return a
}

// decorate fills the read-only recovery attributes from the vault's
// settings and defaults enabled to true.
func (n *Node) decorate(a *keyvault.Attributes) {
	s := n.settings()
	a.RecoveryLevel, a.RecoverableDays = s.recoveryLevel(), s.retention()
	if a.Enabled == nil {
		t := true
		a.Enabled = &t
	}
}

// loadMeta returns the meta record of an object and its entry (Index is
// the compare-and-set token); found is false when there is none.
func (n *Node) loadMeta(kind, name string) (objectMeta, raftstore.Entry, bool, error) {
	var m objectMeta
	e, ok := n.store.Get(metaKey(kind, name))
	if !ok {
		return m, e, false, nil
	}
	if err := json.Unmarshal(e.Value, &m); err != nil {
		return m, e, false, fmt.Errorf("decode %s: %w", e.Key, err)
	}
	return m, e, true, nil
}

func (n *Node) loadVersion(kind, name, version string) (versionMeta, raftstore.Entry, bool, error) {
	var v versionMeta
	e, ok := n.store.Get(verKey(kind, name, version))
	if !ok {
		return v, e, false, nil
	}
	if err := json.Unmarshal(e.Value, &v); err != nil {
		return v, e, false, fmt.Errorf("decode %s: %w", e.Key, err)
	}
	return v, e, true, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// putMeta adds a compare-and-set write of the meta record: the entry must
// still be at prev.Index (or absent when prev has no index).
// A record without a display name takes name as its spelling.
func putMeta(b *raftstore.Batch, kind, name string, m objectMeta, prev raftstore.Entry) {
	if m.Name == "" {
		m.Name = name
	}
	b.PutIf(metaKey(kind, name), mustJSON(m), prev.Index)
}

// displayName is the spelling to show for the object of kind stored
// under name (any spelling): the one it was created with.
func (n *Node) displayName(kind, name string) string {
	m, _, ok, err := n.loadMeta(kind, name)
	if err != nil || !ok {
		return name
	}
	return m.displayName(name)
}

// displayName is the spelling to show for the object whose meta record
// is m, stored under keyName.
func (m objectMeta) displayName(keyName string) string {
	if m.Name != "" {
		return m.Name
	}
	return keyName
}

// notFoundCode is Key Vault's error code for a missing object.
func notFoundCode(kind string) string {
	switch kind {
	case kindCertificates:
		return "CertificateNotFound"
	case kindKeys:
		return "KeyNotFound"
	default:
		return "SecretNotFound"
	}
}

func singular(kind string) string { return strings.TrimSuffix(kind, "s") }

func objNotFound(kind, name, version string) *APIError {
	id := name
	if version != "" {
		id += "/" + version
	}
	return notFound(notFoundCode(kind), "A %s with (name/id) %s was not found in this key vault. If you recently deleted it you may be able to recover it using the correct recovery command.", singular(kind), id)
}

func conflictDeleted(kind, name string) *APIError {
	return &APIError{Status: http.StatusConflict, Code: "Conflict",
		Message: fmt.Sprintf("%s %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the %s can only be recovered or purged.", strings.Title(singular(kind)), name, singular(kind))}
}

// resolveVersion returns the version to read: the given one, or the
// current one when version is empty. It refuses deleted objects.
func (n *Node) resolveVersion(kind, name, version string) (objectMeta, string, error) {
	m, _, ok, err := n.loadMeta(kind, name)
	if err != nil {
		return m, "", err
	}
	if !ok || m.Deleted != nil || (version == "" && m.Current == "") {
		return m, "", objNotFound(kind, name, version)
	}
	if version == "" {
		version = m.Current
	}
	return m, version, nil
}

// objectID is the absolute id of a version: https://HOST/kind/name/version.
func objectID(r *http.Request, kind, name, version string) string {
	id := baseURL(r) + "/" + kind + "/" + name
	if version != "" {
		id += "/" + version
	}
	return id
}

// pageParams reads maxresults (1-25, default 25) and $skiptoken.
func pageParams(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	limit := 25
	if s := q.Get("maxresults"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 25 {
			return 0, "", badParameter("maxresults %q: use 1 to 25", s)
		}
		limit = v
	}
	after := ""
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return 0, "", badParameter("$skiptoken is not valid; use the nextLink as returned")
		}
		after = string(b)
	}
	return limit, after, nil
}

// nextLink builds the link to the page after key `last`.
func nextLink(r *http.Request, last string, limit int) *string {
	q := url.Values{}
	q.Set("api-version", r.URL.Query().Get("api-version"))
	q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(last)))
	q.Set("maxresults", strconv.Itoa(limit))
	for _, k := range []string{"includePending"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	s := baseURL(r) + r.URL.Path + "?" + q.Encode()
	return &s
}

// listPage walks entries under prefix from the skip token, keeps those
// accepted by keep, and returns up to limit of them plus the key to resume
// after (empty when the listing is complete).
func (n *Node) listPage(prefix, after string, limit int, keep func(raftstore.Entry) bool) ([]raftstore.Entry, string) {
	var out []raftstore.Entry
	cursor := after
	for len(out) < limit {
		batch, _ := n.store.List(prefix, cursor, 64)
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
	more, _ := n.store.List(prefix, cursor, 1)
	if len(more) == 0 {
		return out, ""
	}
	return out, cursor
}

// linearized runs Linearize and answers an error when it fails: 503
// when the leader could not confirm the read within the request deadline.
func (n *Node) linearized(w http.ResponseWriter, r *http.Request) bool {
	if err := n.store.Linearize(r.Context()); err != nil {
		if errors.Is(err, raftstore.ErrNoLeader) || errors.Is(err, raftstore.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) {
			err = &APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
				Message: fmt.Sprintf("no leader confirmed within %v that this node's state is current (an election, or the leader unreachable); retry", n.opts.RequestDeadline),
				Cause:   err}
		}
		n.fail(w, r, err)
		return false
	}
	return true
}

// apply commits b and records its index as X-Certvault-Index in h (the
// front's side of commit).
func (n *Node) apply(ctx context.Context, h http.Header, b *raftstore.Batch) error {
	idx, err := n.commit(ctx, b)
	if err != nil {
		return err
	}
	h.Set("X-Certvault-Index", strconv.FormatUint(idx, 10))
	return nil
}

// applyCAS is commitCAS that records the index as X-Certvault-Index in h.
func (n *Node) applyCAS(ctx context.Context, h http.Header, build func() (*raftstore.Batch, error)) error {
	idx, err := n.commitCAS(ctx, build)
	if err != nil {
		return err
	}
	h.Set("X-Certvault-Index", strconv.FormatUint(idx, 10))
	return nil
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

func validName(kind, name string) error {
	if !objectName.MatchString(name) {
		return badParameter("%s name %q is not valid: use 1 to 127 letters, digits and dashes", singular(kind), name)
	}
	return nil
}
