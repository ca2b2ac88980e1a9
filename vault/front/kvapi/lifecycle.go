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
func (f *Front) objectBundle(r *http.Request, kind, name, version string) (any, error) {
	o, err := f.ObjectState(kind, name, version)
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
			if p, _, ok, _ := f.LoadPolicy(name); ok {
				c.Policy = policyBundle(r, name, p)
			}
		} else if c, err = f.certBundle(r, name, version); err != nil {
			return nil, err
		}
		if o.Deleted != nil {
			c.RecoveryID, c.DeletedDate, c.ScheduledPurgeDate = recoveryID(r, kind, name), o.Deleted.Date, o.Deleted.ScheduledPurge
		}
		return c, nil
	case core.KindKeys:
		kv, err := f.KeyVersion(name, version)
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

// ParseBackup is decodeBackup with the Key Vault front's errors.
func ParseBackup(kind string, pt []byte) (core.BackupBlob, error) {
	blob, err := core.DecodeBackup(kind, pt)
	return blob, apiError(err)
}

// answerObject answers the object kind/name after a lifecycle step, as
// Key Vault does: its current version without secret values, with the
// step's index in X-Certvault-Index when it wrote.
func (f *Front) answerObject(w http.ResponseWriter, r *http.Request, kind, name string, index uint64) {
	front.SetIndexHeader(w, index)
	bundle, err := f.objectBundle(r, kind, name, "")
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.WriteJSON(w, http.StatusOK, bundle)
}

// handleDeleteObject soft-deletes an object (and, for a certificate, its
// managed key and secret) and answers the deleted bundle.
func (f *Front) handleDeleteObject(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		res, err := f.DeleteObject(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: name})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		f.answerObject(w, r, kind, name, res.Index)
	}
}

func (f *Front) handleGetDeleted(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if !f.Linearized(w, r) {
			return
		}
		if _, err := f.GetDeletedObject(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: name}); err != nil {
			f.Fail(w, r, err)
			return
		}
		f.answerObject(w, r, kind, name, 0)
	}
}

func (f *Front) handleListDeleted(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit, after, err := PageParams(r)
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		if !f.Linearized(w, r) {
			return
		}
		res, err := f.ListDeletedObjects(r.Context(), front.CallerOf(r), core.ListDeletedRequest{Kind: kind, Page: core.PageRequest{Limit: limit, After: after}})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		var items []any
		for _, name := range res.Names {
			b, err := f.objectBundle(r, kind, name, "")
			if err != nil {
				continue
			}
			switch v := b.(type) {
			case keyvault.Certificate:
				items = append(items, keyvault.CertificateItem{ID: objectID(r, kind, name, ""), X5t: v.X5t, Attributes: f.Live(v.Attributes), Tags: v.Tags,
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

func (f *Front) handleRecover(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		res, err := f.RecoverObject(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: name})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		f.answerObject(w, r, kind, name, res.Index)
	}
}

func (f *Front) handlePurge(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		res, err := f.PurgeObject(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: r.PathValue("name")})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		front.SetIndexHeader(w, res.Index)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *Front) handleBackup(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !f.Linearized(w, r) {
			return
		}
		res, err := f.BackupObject(r.Context(), front.CallerOf(r), core.ObjectRequest{Kind: kind, Name: r.PathValue("name")})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		front.WriteJSON(w, http.StatusOK, keyvault.Backup{Value: res.Blob})
	}
}

func (f *Front) handleRestore(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req keyvault.Backup
		if err := front.DecodeBody(r, &req); err != nil {
			f.Fail(w, r, err)
			return
		}
		res, err := f.RestoreObject(r.Context(), front.CallerOf(r), core.RestoreRequest{Kind: kind, Blob: req.Value})
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		f.answerObject(w, r, kind, res.Name, res.Index)
	}
}
