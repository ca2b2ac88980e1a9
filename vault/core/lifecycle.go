package core

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
)

// The lifecycle that certificates, secrets and keys share, written once:
// soft delete, the deleted listing, recover, purge, backup and restore.
// A certificate carries its managed key and secret through each step
// (they are deleted, recovered, purged, backed up and restored with it,
// and refused on their own: errManaged). The fronts render the object
// after a step; these functions return names and raft indexes.

// ManagedKinds are the objects a certificate manages under its own name.
var ManagedKinds = []string{KindKeys, KindSecrets}

// forManaged calls fn for each managed key or secret of the object
// kind/name: for a certificate, those of its name that it manages;
// nothing for other kinds.
func (c *Core) forManaged(kind, name string, fn func(mk string, mm ObjectMeta, me raftstore.Entry)) {
	if kind != KindCertificates {
		return
	}
	for _, mk := range ManagedKinds {
		if mm, me, ok, _ := c.LoadMeta(mk, name); ok && mm.ManagedBy == KindCertificates {
			fn(mk, mm, me)
		}
	}
}

// ObjectRequest names one object for a lifecycle step.
type ObjectRequest struct {
	// Kind is kindCertificates, kindSecrets or kindKeys.
	Kind string
	// Name is the object's name (any spelling).
	Name string
}

// WriteResult is what a write that returns no object tells its front:
// the raft index at which it was applied.
type WriteResult struct {
	Index uint64
}

// DeleteObject soft-deletes an object (a certificate with its managed
// key and secret, and without its pending operation) for the vault's
// retention period. A deleted, missing or managed object is refused.
func (c *Core) DeleteObject(ctx context.Context, p Caller, req ObjectRequest) (WriteResult, error) {
	kind, name := req.Kind, req.Name
	m, prev, err := c.LiveObject(kind, name)
	if err != nil {
		return WriteResult{}, err
	}
	if m.ManagedBy != "" {
		return WriteResult{}, errManaged(kind, name)
	}
	now := time.Now()
	del := &Deletion{Date: now.Unix(), ScheduledPurge: now.Add(time.Duration(c.settings().retention()) * 24 * time.Hour).Unix()}
	b := &raftstore.Batch{}
	m.Deleted = del
	PutMeta(b, kind, name, m, prev)
	b.Put(DeletedKey(kind, name), MustJSON(del))
	c.forManaged(kind, name, func(mk string, mm ObjectMeta, me raftstore.Entry) {
		mm.Deleted = del
		PutMeta(b, mk, name, mm, me)
	})
	if kind == KindCertificates {
		b.Delete(PendingKey(name)).Delete(PendKeyKey(name))
	}
	idx, err := c.Commit(ctx, b)
	return WriteResult{Index: idx}, err
}

// errDeletedNotFound is Key Vault's error for a name that is not a
// soft-deleted object of the kind.
func errDeletedNotFound(kind, name string) *Error {
	return NotFound("Deleted"+strings.Title(Singular(kind))+"NotFound", "Deleted %s %s was not found in this key vault.", Singular(kind), name)
}

// loadDeleted returns the meta of a soft-deleted object, or
// errDeletedNotFound (also for a managed key or secret, which is deleted
// only as part of its certificate).
func (c *Core) loadDeleted(kind, name string) (ObjectMeta, raftstore.Entry, error) {
	m, e, ok, err := c.LoadMeta(kind, name)
	if err != nil {
		return m, e, err
	}
	if !ok || m.Deleted == nil || m.ManagedBy != "" {
		return m, e, errDeletedNotFound(kind, name)
	}
	return m, e, nil
}

// DeletedObject describes a soft-deleted object.
type DeletedObject struct {
	// Name is the object's name as its creator spelt it.
	Name string
	// Version is its current version ("" for a certificate that only
	// ever had a pending operation).
	Version string
	// Date and ScheduledPurge are Unix times.
	Date, ScheduledPurge int64
}

// GetDeletedObject returns a soft-deleted object, or errDeletedNotFound.
func (c *Core) GetDeletedObject(ctx context.Context, p Caller, req ObjectRequest) (DeletedObject, error) {
	m, _, err := c.loadDeleted(req.Kind, req.Name)
	if err != nil {
		return DeletedObject{}, err
	}
	return DeletedObject{Name: m.DisplayName(req.Name), Version: m.Current, Date: m.Deleted.Date, ScheduledPurge: m.Deleted.ScheduledPurge}, nil
}

// ObjectState is an object as a lifecycle step shows it afterwards: a
// version (the current one unless asked), the summary, and the deletion
// when the object is deleted.
type ObjectState struct {
	Kind string
	// Name is the name as the caller gave it.
	Name    string
	Version string
	// ManagedBy is kindCertificates for a certificate's key or secret.
	ManagedBy string
	// ContentType, Attributes (with the vault's current recovery
	// settings) and Tags are the object's summary; for a secret of its
	// own, those of the version as stored.
	ContentType string
	Attributes  keyvault.Attributes
	Tags        map[string]string
	// Deleted is set for a soft-deleted object (Name and Version are
	// not filled in it).
	Deleted *DeletedObject
}

// ObjectState returns the object kind/name at version ("": its current
// one, which is "" for a certificate that only ever had a pending
// operation), deleted or not.
func (c *Core) ObjectState(kind, name, version string) (ObjectState, error) {
	m, _, ok, err := c.LoadMeta(kind, name)
	if err != nil {
		return ObjectState{}, err
	}
	if !ok {
		return ObjectState{}, ObjectNotFound(kind, name, version)
	}
	if version == "" {
		version = m.Current
	}
	s := ObjectState{Kind: kind, Name: name, Version: version, ManagedBy: m.ManagedBy,
		ContentType: m.Content, Attributes: c.Live(m.Summary), Tags: m.Tags}
	if kind == KindSecrets && m.ManagedBy == "" {
		if v, _, ok, _ := c.LoadVersion(kind, name, version); ok {
			s.ContentType, s.Attributes, s.Tags = v.ContentType, v.Attributes, v.Tags
		}
	}
	if m.Deleted != nil {
		s.Deleted = &DeletedObject{Date: m.Deleted.Date, ScheduledPurge: m.Deleted.ScheduledPurge}
	}
	return s, nil
}

// ListDeletedRequest lists the soft-deleted objects of a kind.
type ListDeletedRequest struct {
	Kind string
	Page PageRequest
}

// ListDeletedResult is a page of soft-deleted objects.
type ListDeletedResult struct {
	// Names are the objects' names as their creators spelt them.
	Names []string
	// Next resumes the listing (PageRequest.After); empty at its end.
	Next string
}

// ListDeletedObjects lists the soft-deleted objects of a kind by name
// (canonical order).
func (c *Core) ListDeletedObjects(ctx context.Context, p Caller, req ListDeletedRequest) (ListDeletedResult, error) {
	entries, next := c.ListUnder("deleted/"+req.Kind+"/", req.Page, func(raftstore.Entry) bool { return true })
	res := ListDeletedResult{Next: next}
	for _, e := range entries {
		res.Names = append(res.Names, c.displayName(req.Kind, strings.TrimPrefix(e.Key, "deleted/"+req.Kind+"/")))
	}
	return res, nil
}

// RecoverObject brings a soft-deleted object (and a certificate's
// managed key and secret) back, with the renewal and expiry plans of its
// current version made again.
func (c *Core) RecoverObject(ctx context.Context, p Caller, req ObjectRequest) (WriteResult, error) {
	kind, name := req.Kind, req.Name
	m, prev, err := c.loadDeleted(kind, name)
	if err != nil {
		return WriteResult{}, err
	}
	b := &raftstore.Batch{}
	m.Deleted = nil
	// Plans were left alone while deleted (and may have moved or
	// fired): make them again for the current version.
	if v, _, ok, _ := c.LoadVersion(kind, name, m.Current); ok && m.Current != "" && kind != KindKeys {
		if kind == KindCertificates {
			if pol, _, ok, _ := c.LoadPolicy(name); ok {
				PlanVersion(b, &m, name, m.Current, pol, &v)
			}
		}
		c.PlanExpiryEvents(b, &m, kind, name, m.Current, v.Attributes.NotBefore, v.Attributes.Expires)
	}
	PutMeta(b, kind, name, m, prev)
	b.Delete(DeletedKey(kind, name))
	c.forManaged(kind, name, func(mk string, mm ObjectMeta, me raftstore.Entry) {
		mm.Deleted = nil
		PutMeta(b, mk, name, mm, me)
	})
	idx, err := c.Commit(ctx, b)
	return WriteResult{Index: idx}, err
}

// PurgeOps adds the removal of everything stored for an object.
func PurgeOps(b *raftstore.Batch, kind, name string) {
	b.Delete(MetaKey(kind, name)).Delete(DeletedKey(kind, name))
	b.DeletePrefix(VerPrefix(kind, name)).DeletePrefix(valPrefix(kind, name))
	// Its retention and the history of versions retention purged go
	// with it, as its versions' records do.
	b.Delete(RetainKey(kind, name)).DeletePrefix(HistoryPrefix(kind, name))
	switch kind {
	case KindCertificates:
		b.Delete(PolicyKey(name)).Delete(PendingKey(name)).Delete(PendKeyKey(name))
	case KindKeys:
		b.Delete(RotationPolicyKey(name))
	}
}

// purgeBatch is the batch that purges the object kind/name (with a
// certificate's managed key and secret) if its meta record is still at
// prev: what a purge request and the retention janitor both commit.
func (c *Core) purgeBatch(kind, name string, prev raftstore.Entry) *raftstore.Batch {
	b := &raftstore.Batch{}
	b.Check(MetaKey(kind, name), prev.Index)
	PurgeOps(b, kind, name)
	c.forManaged(kind, name, func(mk string, _ ObjectMeta, _ raftstore.Entry) { PurgeOps(b, mk, name) })
	return b
}

// purgeProtected reports the vault's purge-protection switch.
func (c *Core) purgeProtected() bool { return c.settings().PurgeProtection }

// PurgeObject removes a soft-deleted object for good, unless purge
// protection is on.
func (c *Core) PurgeObject(ctx context.Context, p Caller, req ObjectRequest) (WriteResult, error) {
	_, prev, err := c.loadDeleted(req.Kind, req.Name)
	if err != nil {
		return WriteResult{}, err
	}
	if c.purgeProtected() {
		return WriteResult{}, Forbidden("purge protection is on: deleted objects are purged only when their retention period ends")
	}
	idx, err := c.Commit(ctx, c.purgeBatch(req.Kind, req.Name, prev))
	return WriteResult{Index: idx}, err
}

// BackupBlob is the plaintext of a backup: every stored entry of one
// object, secret parts still sealed under their own storage keys.
type BackupBlob struct {
	Kind    string            `json:"kind"`
	Name    string            `json:"name"`
	Entries map[string][]byte `json:"entries"`
}

const BackupAAD = "certvault backup v1"

// DecodeBackup reads the plaintext of a backup for a restore of kind: a
// blob of that kind, for a valid name, holding the object's record and
// nothing but the entries objectEntries collects for it.
func DecodeBackup(kind string, pt []byte) (BackupBlob, error) {
	var blob BackupBlob
	if err := json.Unmarshal(pt, &blob); err != nil || blob.Kind != kind {
		return BackupBlob{}, BadParameter("value", "the backup blob is not a %s backup", Singular(kind))
	}
	if ValidName(kind, blob.Name) != nil {
		return BackupBlob{}, BadParameter("value", "the backup blob is damaged")
	}
	// Keys are compared in canonical form: a blob made before names were
	// case-insensitive holds the spelling of its time.
	hasMeta := false
	for k := range blob.Entries {
		ck := CanonicalStorageKey(k)
		if !inBackup(kind, blob.Name, ck) {
			return BackupBlob{}, BadParameter("value", "the backup blob is damaged")
		}
		hasMeta = hasMeta || ck == MetaKey(kind, blob.Name)
	}
	if !hasMeta {
		return BackupBlob{}, BadParameter("value", "the backup blob is damaged")
	}
	return blob, nil
}

// inBackup reports whether key is one of the entries objectEntries
// collects for the object kind/name.
func inBackup(kind, name, key string) bool {
	kinds := []string{kind}
	if kind == KindCertificates {
		if key == PolicyKey(name) {
			return true
		}
		kinds = append(kinds, ManagedKinds...)
	}
	for _, k := range kinds {
		if key == MetaKey(k, name) || strings.HasPrefix(key, VerPrefix(k, name)) || strings.HasPrefix(key, valPrefix(k, name)) {
			return true
		}
	}
	return false
}

// objectEntries collects every stored entry of an object.
func (c *Core) objectEntries(kind, name string) map[string][]byte {
	out := map[string][]byte{}
	add := func(prefix string, exact bool) {
		if exact {
			if e, ok := c.Store.Get(prefix); ok {
				out[e.Key] = e.Value
			}
			return
		}
		es, _ := c.Store.List(prefix, "", 0)
		for _, e := range es {
			out[e.Key] = e.Value
		}
	}
	kinds := []string{kind}
	if kind == KindCertificates {
		kinds = append(kinds, ManagedKinds...)
		add(PolicyKey(name), true)
	}
	for _, k := range kinds {
		if k != kind {
			if mm, _, ok, _ := c.LoadMeta(k, name); !ok || mm.ManagedBy != kind {
				continue
			}
		}
		add(MetaKey(k, name), true)
		add(VerPrefix(k, name), false)
		add(valPrefix(k, name), false)
	}
	return out
}

// BackupResult is an object's backup: every stored entry of it (secret
// parts still sealed) encrypted under the vault's data key, so that it
// restores only into a vault with the same seal.
type BackupResult struct {
	Blob []byte
}

// BackupObject backs up an object that is not deleted (a certificate
// with its policy, managed key and secret); a managed object is refused.
func (c *Core) BackupObject(ctx context.Context, p Caller, req ObjectRequest) (BackupResult, error) {
	m, _, err := c.ResolveVersion(req.Kind, req.Name, "")
	if err != nil {
		return BackupResult{}, err
	}
	if m.ManagedBy != "" {
		return BackupResult{}, errManaged(req.Kind, req.Name)
	}
	// The blob keeps the name as the request spells it, which the Key
	// Vault front's router has made the creator's spelling.
	blob := BackupBlob{Kind: req.Kind, Name: req.Name, Entries: c.objectEntries(req.Kind, req.Name)}
	ct, err := c.Barrier.Load().Encrypt(BackupAAD, MustJSON(blob))
	if err != nil {
		return BackupResult{}, err
	}
	return BackupResult{Blob: ct}, nil
}

// RestoreRequest restores a backup into an object of Kind.
type RestoreRequest struct {
	Kind string
	// Blob is a BackupResult's Blob.
	Blob []byte
}

// RestoreResult names the restored object.
type RestoreResult struct {
	// Name is the object's name as the backup holds it.
	Name  string
	Index uint64
}

// RestoreObject restores a backup of the kind as a live object (a
// deleted one's deletion is dropped). The name must be free: an object
// that exists or is deleted but not purged is a conflict.
func (c *Core) RestoreObject(ctx context.Context, p Caller, req RestoreRequest) (RestoreResult, error) {
	kind := req.Kind
	pt, err := c.Barrier.Load().Decrypt(BackupAAD, req.Blob)
	if err != nil {
		return RestoreResult{}, BadParameter("value", "the backup blob is damaged or was made by a vault with another seal key; it restores only into a vault with the same seal")
	}
	blob, err := DecodeBackup(kind, pt)
	if err != nil {
		return RestoreResult{}, err
	}
	b := &raftstore.Batch{}
	for k, v := range blob.Entries {
		// decodeBackup checked that every entry is the object's own; an
		// entry stored under another spelling (a blob made before names
		// were case-insensitive) goes to its canonical key.
		k, v, err = c.RekeyEntry(k, v, nil)
		if err != nil {
			return RestoreResult{}, err
		}
		if strings.HasPrefix(k, "meta/") {
			var m ObjectMeta
			if json.Unmarshal(v, &m) == nil && m.Deleted != nil {
				m.Deleted = nil
				v = MustJSON(m)
			}
			b.PutIf(k, v, raftstore.NotExist)
		} else {
			b.Put(k, v)
		}
	}
	idx, err := c.Commit(ctx, b)
	if err != nil {
		if errors.Is(err, raftstore.ErrConflict) {
			return RestoreResult{}, Conflict("Conflict", "%s %s already exists (or is deleted but not purged); delete and purge it before restoring", Singular(kind), blob.Name)
		}
		return RestoreResult{}, err
	}
	return RestoreResult{Name: blob.Name, Index: idx}, nil
}
