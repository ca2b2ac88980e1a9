package kvapi

import (
	"net/http"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/keyvault"
)

// The Key Vault front of the lifecycle every kind shares (delete, the
// deleted listing, recover, purge, backup, restore): it reads the request,
// calls core/lifecycle.go and renders the object as Key Vault does.

// deletedPath is the Key Vault path segment of deleted objects of a kind.
func deletedPath(kind string) string { return "deleted" + kind }

// recoveryID is the id of a deleted object.
func recoveryID(r *http.Request, kind, name string) string {
	return front.BaseURL(r) + "/" + deletedPath(kind) + "/" + name
}

// objectBundle renders the current (or given) version of an object as Key
// Vault returns it from delete, recover and restore: without secret values.
func (n *Front) objectBundle(r *http.Request, kind, name, version string) (any, error) {
	o, err := n.ObjectState(kind, name, version)
	if err != nil {
		return nil, err
	}
	version = o.Version
	switch kind {
	case core.KindCertificates:
		var c keyvault.Certificate
		if version == "" {
			// Only a pending operation ever held the name: the bundle has
			// no certificate yet, as in Key Vault.
			c = keyvault.Certificate{ID: objectID(r, kind, name, ""), Attributes: o.Attributes, Tags: o.Tags}
			if p, _, ok, _ := n.LoadPolicy(name); ok {
				c.Policy = policyBundle(r, name, p)
			}
		} else if c, err = n.certBundle(r, name, version); err != nil {
			return nil, err
		}
		if o.Deleted != nil {
			c.RecoveryID, c.DeletedDate, c.ScheduledPurgeDate = recoveryID(r, kind, name), o.Deleted.Date, o.Deleted.ScheduledPurge
		}
		return c, nil
	case core.KindKeys:
		kv, err := n.KeyVersion(name, version)
		if err != nil {
			return nil, err
		}
		k := keyBundle(r, kv)
		if o.Deleted != nil {
			k.RecoveryID, k.DeletedDate, k.ScheduledPurgeDate = recoveryID(r, kind, name), o.Deleted.Date, o.Deleted.ScheduledPurge
		}
		return k, nil
	default:
		s := keyvault.Secret{ID: objectID(r, kind, name, version), ContentType: o.ContentType, Attributes: o.Attributes, Tags: o.Tags, Managed: o.ManagedBy != ""}
		if o.ManagedBy == core.KindCertificates {
			s.Kid = objectID(r, core.KindKeys, name, version)
		}
		if o.Deleted != nil {
			s.RecoveryID, s.DeletedDate, s.ScheduledPurgeDate = recoveryID(r, kind, name), o.Deleted.Date, o.Deleted.ScheduledPurge
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

// parseBackup is decodeBackup with the Key Vault front's errors.
func ParseBackup(kind string, pt []byte) (core.BackupBlob, error) {
	blob, err := core.DecodeBackup(kind, pt)
	return blob, apiError(err)
}

// answerObject answers the object kind/name after a lifecycle step, as
// Key Vault does: its current version without secret values, with the
// step's index in X-Certvault-Index when it wrote.
func (n *Front) answerObject(w http.ResponseWriter, r *http.Request, kind, name string, index uint64) {
	front.SetIndexHeader(w, index)
	bundle, err := n.objectBundle(r, kind, name, "")
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, bundle)
}

// handleDeleteObject soft-deletes an object (and, for a certificate, its
// managed key and secret) and answers the deleted bundle.
func (n *Front) handleDeleteObject(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		res, err := n.DeleteObject(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: name})
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		n.answerObject(w, r, kind, name, res.Index)
	}
}

func (n *Front) handleGetDeleted(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !n.Linearized(w, r) {
			return
		}
		if _, err := n.GetDeletedObject(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: name}); err != nil {
			n.Fail(w, r, err)
			return
		}
		n.answerObject(w, r, kind, name, 0)
	}
}

func (n *Front) handleListDeleted(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit, after, err := PageParams(r)
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		if !n.Linearized(w, r) {
			return
		}
		res, err := n.ListDeletedObjects(r.Context(), front.CallerOf(r), core.ListDeletedRequest{Kind: kind, Page: core.PageRequest{Limit: limit, After: after}})
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		var items []any
		for _, name := range res.Names {
			b, err := n.objectBundle(r, kind, name, "")
			if err != nil {
				continue
			}
			switch v := b.(type) {
			case keyvault.Certificate:
				items = append(items, keyvault.CertificateItem{ID: objectID(r, kind, name, ""), X5t: v.X5t, Attributes: n.Live(v.Attributes), Tags: v.Tags,
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
		writePage(w, r, items, res.Next, limit)
	}
}

func (n *Front) handleRecover(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		res, err := n.RecoverObject(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: name})
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		n.answerObject(w, r, kind, name, res.Index)
	}
}

func (n *Front) handlePurge(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res, err := n.PurgeObject(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: r.PathValue("name")})
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		front.SetIndexHeader(w, res.Index)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (n *Front) handleBackup(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !n.Linearized(w, r) {
			return
		}
		res, err := n.BackupObject(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: r.PathValue("name")})
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		front.WriteJSON(w, http.StatusOK, keyvault.Backup{Value: res.Blob})
	}
}

func (n *Front) handleRestore(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req keyvault.Backup
		if err := front.DecodeBody(r, &req); err != nil {
			n.Fail(w, r, err)
			return
		}
		res, err := n.RestoreObject(r.Context(), front.CallerOf(r), core.RestoreRequest{Kind: kind, Blob: req.Value})
		if err != nil {
			n.Fail(w, r, err)
			return
		}
		n.answerObject(w, r, kind, res.Name, res.Index)
	}
}
