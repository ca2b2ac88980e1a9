package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
)

func itoa(i uint64) string { return strconv.FormatUint(i, 10) }

// managedKinds are the objects a certificate manages under its own name.
var managedKinds = []string{kindKeys, kindSecrets}

// deletedPath is the Key Vault path segment of deleted objects of a kind.
func deletedPath(kind string) string { return "deleted" + kind }

// recoveryID is the id of a deleted object.
func recoveryID(r *http.Request, kind, name string) string {
	return baseURL(r) + "/" + deletedPath(kind) + "/" + name
}

// objectBundle renders the current (or given) version of an object as Key
// Vault returns it from delete, recover and restore: without secret values.
func (n *Node) objectBundle(r *http.Request, kind, name, version string) (any, error) {
	m, _, ok, err := n.loadMeta(kind, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, objNotFound(kind, name, version)
	}
	if version == "" {
		version = m.Current
	}
	switch kind {
	case kindCertificates:
		var c keyvault.Certificate
		if version == "" {
			// Only a pending operation ever held the name: the bundle has
			// no certificate yet, as in Key Vault.
			c = keyvault.Certificate{ID: objectID(r, kind, name, ""), Attributes: n.live(m.Summary), Tags: m.Tags}
			if p, _, ok, _ := n.loadPolicy(name); ok {
				c.Policy = policyBundle(r, name, p)
			}
		} else if c, err = n.certBundle(r, name, version); err != nil {
			return nil, err
		}
		if m.Deleted != nil {
			c.RecoveryID, c.DeletedDate, c.ScheduledPurgeDate = recoveryID(r, kind, name), m.Deleted.Date, m.Deleted.ScheduledPurge
		}
		return c, nil
	case kindKeys:
		k, err := n.keyBundle(r, name, version)
		if err != nil {
			return nil, err
		}
		if m.Deleted != nil {
			k.RecoveryID, k.DeletedDate, k.ScheduledPurgeDate = recoveryID(r, kind, name), m.Deleted.Date, m.Deleted.ScheduledPurge
		}
		return k, nil
	default:
		s := keyvault.Secret{ID: objectID(r, kind, name, version), ContentType: m.Content, Attributes: n.live(m.Summary), Tags: m.Tags, Managed: m.ManagedBy != ""}
		if m.ManagedBy == kindCertificates {
			s.Kid = objectID(r, kindKeys, name, version)
		} else if v, _, ok, _ := n.loadVersion(kind, name, version); ok {
			s.ContentType, s.Attributes, s.Tags = v.ContentType, v.Attributes, v.Tags
		}
		if m.Deleted != nil {
			s.RecoveryID, s.DeletedDate, s.ScheduledPurgeDate = recoveryID(r, kind, name), m.Deleted.Date, m.Deleted.ScheduledPurge
		}
		return s, nil
	}
}

// deletedKeyItem is an entry of the deleted-keys list.
type deletedKeyItem struct {
	Kid                string              `json:"kid"`
	Attributes         keyvault.Attributes `json:"attributes"`
	Tags               map[string]string   `json:"tags,omitempty"`
	Managed            bool                `json:"managed,omitempty"`
	RecoveryID         string              `json:"recoveryId,omitempty"`
	ScheduledPurgeDate int64               `json:"scheduledPurgeDate,omitempty"`
	DeletedDate        int64               `json:"deletedDate,omitempty"`
}

// forbiddenManaged refuses lifecycle operations on a certificate's managed
// key or secret.
func forbiddenManaged(kind, name string) *APIError {
	return &APIError{Status: http.StatusForbidden, Code: "Forbidden",
		Message: fmt.Sprintf("%s %s is managed by the certificate of the same name; delete, recover or purge the certificate instead", singular(kind), name)}
}

// handleDeleteObject soft-deletes an object (and, for a certificate, its
// managed key and secret) and answers the deleted bundle.
func (n *Node) handleDeleteObject(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		m, prev, ok, err := n.loadMeta(kind, name)
		if err != nil {
			n.fail(w, r, err)
			return
		}
		if !ok || m.Deleted != nil {
			n.fail(w, r, objNotFound(kind, name, ""))
			return
		}
		if m.ManagedBy != "" {
			n.fail(w, r, forbiddenManaged(kind, name))
			return
		}
		now := time.Now()
		del := &deletion{Date: now.Unix(), ScheduledPurge: now.Add(time.Duration(n.settings().retention()) * 24 * time.Hour).Unix()}
		b := &raftstore.Batch{}
		m.Deleted = del
		putMeta(b, kind, name, m, prev)
		b.Put(deletedKey(kind, name), mustJSON(del))
		if kind == kindCertificates {
			for _, mk := range managedKinds {
				if mm, me, ok, _ := n.loadMeta(mk, name); ok && mm.ManagedBy == kindCertificates {
					mm.Deleted = del
					putMeta(b, mk, name, mm, me)
				}
			}
			b.Delete(pendingKey(name)).Delete(pendKeyKey(name))
		}
		if err := n.apply(r.Context(), w.Header(), b); err != nil {
			n.fail(w, r, err)
			return
		}
		bundle, err := n.objectBundle(r, kind, name, "")
		if err != nil {
			n.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, bundle)
	}
}

// loadDeleted returns the meta of a soft-deleted object, or a not-found
// error naming the deleted collection.
func (n *Node) loadDeleted(kind, name string) (objectMeta, raftstore.Entry, error) {
	m, e, ok, err := n.loadMeta(kind, name)
	if err != nil {
		return m, e, err
	}
	if !ok || m.Deleted == nil || m.ManagedBy != "" {
		return m, e, notFound("Deleted"+strings.Title(singular(kind))+"NotFound", "Deleted %s %s was not found in this key vault.", singular(kind), name)
	}
	return m, e, nil
}

func (n *Node) handleGetDeleted(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !n.linearized(w, r) {
			return
		}
		if _, _, err := n.loadDeleted(kind, name); err != nil {
			n.fail(w, r, err)
			return
		}
		bundle, err := n.objectBundle(r, kind, name, "")
		if err != nil {
			n.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, bundle)
	}
}

func (n *Node) handleListDeleted(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit, after, err := pageParams(r)
		if err != nil {
			n.fail(w, r, err)
			return
		}
		if !n.linearized(w, r) {
			return
		}
		prefix := "deleted/" + kind + "/"
		if after != "" {
			after = prefix + after
		}
		entries, last := n.listPage(prefix, after, limit, func(e raftstore.Entry) bool { return true })
		var items []any
		for _, e := range entries {
			name := n.displayName(kind, strings.TrimPrefix(e.Key, prefix))
			b, err := n.objectBundle(r, kind, name, "")
			if err != nil {
				continue
			}
			switch v := b.(type) {
			case keyvault.Certificate:
				items = append(items, keyvault.CertificateItem{ID: objectID(r, kind, name, ""), X5t: v.X5t, Attributes: n.live(v.Attributes), Tags: v.Tags,
					RecoveryID: v.RecoveryID, DeletedDate: v.DeletedDate, ScheduledPurgeDate: v.ScheduledPurgeDate})
			case keyvault.Secret:
				v.ID, v.Value = objectID(r, kind, name, ""), ""
				items = append(items, v)
			case keyvault.Key:
				items = append(items, deletedKeyItem{Kid: objectID(r, kind, name, ""), Attributes: v.Attributes, Tags: v.Tags,
					RecoveryID: v.RecoveryID, DeletedDate: v.DeletedDate, ScheduledPurgeDate: v.ScheduledPurgeDate, Managed: v.Managed})
			default:
				items = append(items, v)
			}
		}
		writePage(w, r, items, strings.TrimPrefix(last, prefix), limit)
	}
}

func (n *Node) handleRecover(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		m, prev, err := n.loadDeleted(kind, name)
		if err != nil {
			n.fail(w, r, err)
			return
		}
		b := &raftstore.Batch{}
		m.Deleted = nil
		// Plans were left alone while deleted (and may have moved or
		// fired): make them again for the current version.
		if v, _, ok, _ := n.loadVersion(kind, name, m.Current); ok && m.Current != "" && kind != kindKeys {
			if kind == kindCertificates {
				if p, _, ok, _ := n.loadPolicy(name); ok {
					planVersion(b, &m, name, m.Current, p, &v)
				}
			}
			n.planExpiryEvents(b, &m, kind, name, m.Current, v.Attributes.NotBefore, v.Attributes.Expires)
		}
		putMeta(b, kind, name, m, prev)
		b.Delete(deletedKey(kind, name))
		if kind == kindCertificates {
			for _, mk := range managedKinds {
				if mm, me, ok, _ := n.loadMeta(mk, name); ok && mm.ManagedBy == kindCertificates {
					mm.Deleted = nil
					putMeta(b, mk, name, mm, me)
				}
			}
		}
		if err := n.apply(r.Context(), w.Header(), b); err != nil {
			n.fail(w, r, err)
			return
		}
		bundle, err := n.objectBundle(r, kind, name, "")
		if err != nil {
			n.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, bundle)
	}
}

// purgeOps adds the removal of everything stored for an object.
func purgeOps(b *raftstore.Batch, kind, name string) {
	b.Delete(metaKey(kind, name)).Delete(deletedKey(kind, name))
	b.DeletePrefix(verPrefix(kind, name)).DeletePrefix(valPrefix(kind, name))
	switch kind {
	case kindCertificates:
		b.Delete(policyKey(name)).Delete(pendingKey(name)).Delete(pendKeyKey(name))
	case kindKeys:
		b.Delete(rotationPolicyKey(name))
	}
}

func (n *Node) handlePurge(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		_, prev, err := n.loadDeleted(kind, name)
		if err != nil {
			n.fail(w, r, err)
			return
		}
		if n.purgeProtected() {
			n.fail(w, r, &APIError{Status: http.StatusForbidden, Code: "Forbidden",
				Message: "purge protection is on: deleted objects are purged only when their retention period ends"})
			return
		}
		b := &raftstore.Batch{}
		b.Check(metaKey(kind, name), prev.Index)
		purgeOps(b, kind, name)
		if kind == kindCertificates {
			for _, mk := range managedKinds {
				if mm, _, ok, _ := n.loadMeta(mk, name); ok && mm.ManagedBy == kindCertificates {
					purgeOps(b, mk, name)
				}
			}
		}
		if err := n.apply(r.Context(), w.Header(), b); err != nil {
			n.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// purgeProtected reports the vault's purge-protection switch.
func (n *Node) purgeProtected() bool { return n.settings().PurgeProtection }

// backupBlob is the plaintext of a backup: every stored entry of one
// object, secret parts still sealed under their own storage keys.
type backupBlob struct {
	Kind    string            `json:"kind"`
	Name    string            `json:"name"`
	Entries map[string][]byte `json:"entries"`
}

const backupAAD = "certvault backup v1"

// parseBackup reads the plaintext of a backup for a restore of kind: a
// blob of that kind, for a valid name, holding the object's record and
// nothing but the entries objectEntries collects for it.
func parseBackup(kind string, pt []byte) (backupBlob, error) {
	var blob backupBlob
	if err := json.Unmarshal(pt, &blob); err != nil || blob.Kind != kind {
		return backupBlob{}, badParameter("the backup blob is not a %s backup", singular(kind))
	}
	if validName(kind, blob.Name) != nil {
		return backupBlob{}, badParameter("the backup blob is damaged")
	}
	// Keys are compared in canonical form: a blob made before names were
	// case-insensitive holds the spelling of its time.
	hasMeta := false
	for k := range blob.Entries {
		ck := canonicalStorageKey(k)
		if !inBackup(kind, blob.Name, ck) {
			return backupBlob{}, badParameter("the backup blob is damaged")
		}
		hasMeta = hasMeta || ck == metaKey(kind, blob.Name)
	}
	if !hasMeta {
		return backupBlob{}, badParameter("the backup blob is damaged")
	}
	return blob, nil
}

// inBackup reports whether key is one of the entries objectEntries
// collects for the object kind/name.
func inBackup(kind, name, key string) bool {
	kinds := []string{kind}
	if kind == kindCertificates {
		if key == policyKey(name) {
			return true
		}
		kinds = append(kinds, managedKinds...)
	}
	for _, k := range kinds {
		if key == metaKey(k, name) || strings.HasPrefix(key, verPrefix(k, name)) || strings.HasPrefix(key, valPrefix(k, name)) {
			return true
		}
	}
	return false
}

// objectEntries collects every stored entry of an object.
func (n *Node) objectEntries(kind, name string) map[string][]byte {
	out := map[string][]byte{}
	add := func(prefix string, exact bool) {
		if exact {
			if e, ok := n.store.Get(prefix); ok {
				out[e.Key] = e.Value
			}
			return
		}
		es, _ := n.store.List(prefix, "", 0)
		for _, e := range es {
			out[e.Key] = e.Value
		}
	}
	kinds := []string{kind}
	if kind == kindCertificates {
		kinds = append(kinds, managedKinds...)
		add(policyKey(name), true)
	}
	for _, k := range kinds {
		if k != kind {
			if mm, _, ok, _ := n.loadMeta(k, name); !ok || mm.ManagedBy != kind {
				continue
			}
		}
		add(metaKey(k, name), true)
		add(verPrefix(k, name), false)
		add(valPrefix(k, name), false)
	}
	return out
}

func (n *Node) handleBackup(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !n.linearized(w, r) {
			return
		}
		m, _, err := n.resolveVersion(kind, name, "")
		if err != nil {
			n.fail(w, r, err)
			return
		}
		if m.ManagedBy != "" {
			n.fail(w, r, forbiddenManaged(kind, name))
			return
		}
		blob := backupBlob{Kind: kind, Name: name, Entries: n.objectEntries(kind, name)}
		ct, err := n.barrier.Load().Encrypt(backupAAD, mustJSON(blob))
		if err != nil {
			n.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, keyvault.Backup{Value: ct})
	}
}

func (n *Node) handleRestore(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req keyvault.Backup
		if err := decodeBody(r, &req); err != nil {
			n.fail(w, r, err)
			return
		}
		pt, err := n.barrier.Load().Decrypt(backupAAD, req.Value)
		if err != nil {
			n.fail(w, r, badParameter("the backup blob is damaged or was made by a vault with another seal key; it restores only into a vault with the same seal"))
			return
		}
		blob, err := parseBackup(kind, pt)
		if err != nil {
			n.fail(w, r, err)
			return
		}
		b := &raftstore.Batch{}
		for k, v := range blob.Entries {
			// parseBackup checked that every entry is the object's own; an
			// entry stored under another spelling (a blob made before names
			// were case-insensitive) goes to its canonical key.
			k, v, err = n.rekeyEntry(k, v)
			if err != nil {
				n.fail(w, r, err)
				return
			}
			if strings.HasPrefix(k, "meta/") {
				var m objectMeta
				if json.Unmarshal(v, &m) == nil && m.Deleted != nil {
					m.Deleted = nil
					v = mustJSON(m)
				}
				b.PutIf(k, v, raftstore.NotExist)
			} else {
				b.Put(k, v)
			}
		}
		if err := n.apply(r.Context(), w.Header(), b); err != nil {
			if errors.Is(err, raftstore.ErrConflict) {
				n.fail(w, r, &APIError{Status: http.StatusConflict, Code: "Conflict",
					Message: fmt.Sprintf("%s %s already exists (or is deleted but not purged); delete and purge it before restoring", singular(kind), blob.Name)})
				return
			}
			n.fail(w, r, err)
			return
		}
		bundle, err := n.objectBundle(r, kind, blob.Name, "")
		if err != nil {
			n.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, bundle)
	}
}
