package kvapi

import (
	"net/http"
	"regexp"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/vault/access"
)

// The Key Vault front of secrets (core/secrets.go), and the data plane's
// api-version check.

// apiVersions are the Key Vault api-versions served; date-form versions
// (as the newer SDKs send) are accepted by pattern.
var (
	apiVersions     = map[string]bool{"7.4": true, "7.5": true, "7.6": true}
	dateAPIVersions = regexp.MustCompile(`^20[2-9][0-9]-[01][0-9]-[0-3][0-9](-preview)?$`)
)

// DataPlane wraps a Key Vault data-plane handler: authentication first
// (so an SDK's bodiless first request gets the challenge), then the
// api-version check.
func (f *Front) DataPlane(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.Authenticate(w, r); !ok {
			return
		}
		v := r.URL.Query().Get("api-version")
		if v == "" {
			front.WriteError(w, front.BadParameter("the api-version query parameter is required (for example api-version=7.6)"))
			return
		}
		if !apiVersions[v] && !dateAPIVersions.MatchString(v) {
			front.WriteError(w, front.BadParameter("api-version %q is not supported; use 7.4, 7.5, 7.6 or a date form such as 2025-07-01", v))
			return
		}
		h(w, r)
	}
}

func (f *Front) secretRoutes(rt *front.Router) {
	rt.Handle("PUT", "/secrets/{name}", access.SecretsWrite, f.handleSetSecret)
	rt.Handle("GET", "/secrets", access.SecretsMetadata, listHandler(f, core.KindSecrets, false, secretItems))
	rt.Handle("GET", "/secrets/{name}", access.SecretsGet, f.handleGetSecret)
	rt.Handle("GET", "/secrets/{name}/{version}", access.SecretsGet, f.handleGetSecret)
	rt.Handle("PATCH", "/secrets/{name}/{version}", access.SecretsWrite, f.handleUpdateSecret)
	rt.Handle("PATCH", "/secrets/{name}", access.SecretsWrite, f.handleUpdateSecret)
	rt.Handle("GET", "/secrets/{name}/versions", access.SecretsMetadata, listHandler(f, core.KindSecrets, true, secretItems))
	rt.Handle("DELETE", "/secrets/{name}", access.SecretsDelete, f.handleDeleteObject(core.KindSecrets))
	rt.Handle("GET", "/deletedsecrets", access.SecretsMetadata, f.handleListDeleted(core.KindSecrets))
	rt.Handle("GET", "/deletedsecrets/{name}", access.SecretsMetadata, f.handleGetDeleted(core.KindSecrets))
	rt.Handle("POST", "/deletedsecrets/{name}/recover", access.SecretsDelete, f.handleRecover(core.KindSecrets))
	rt.Handle("DELETE", "/deletedsecrets/{name}", access.SecretsDelete, f.handlePurge(core.KindSecrets))
	rt.Handle("POST", "/secrets/{name}/backup", access.SecretsBackup, f.handleBackup(core.KindSecrets))
	rt.Handle("POST", "/secrets/restore", access.SecretsBackup, f.handleRestore(core.KindSecrets))
}

func (f *Front) handleSetSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	// The name is checked before the body is read.
	if err := core.ValidName(core.KindSecrets, name); err != nil {
		f.Fail(w, r, err)
		return
	}
	var req keyvault.SetSecretRequest
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	s, err := f.SetSecret(r.Context(), front.CallerOf(r), core.SetSecretRequest{Name: name, Value: req.Value,
		ContentType: req.ContentType, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, s.Index)
	front.WriteJSON(w, http.StatusOK, secretBundle(r, s))
}

// secretBundle renders a secret version in Key Vault's shape; a
// certificate's secret names its key (kid).
func secretBundle(r *http.Request, s core.SecretVersion) keyvault.Secret {
	b := keyvault.Secret{
		Value: s.Value, ID: objectID(r, core.KindSecrets, s.Name, s.Version),
		ContentType: s.ContentType, Attributes: s.Attributes, Tags: s.Tags,
	}
	if s.ManagedBy == core.KindCertificates {
		b.Kid, b.Managed = objectID(r, core.KindKeys, s.Name, s.Version), true
	}
	return b
}

func (f *Front) handleGetSecret(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if !f.Linearized(w, r) {
		return
	}
	s, err := f.GetSecret(r.Context(), front.CallerOf(r), core.GetSecretRequest{Name: name, Version: version})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, s.Index)
	front.WriteJSON(w, http.StatusOK, secretBundle(r, s))
}

func (f *Front) handleUpdateSecret(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	var req keyvault.UpdateSecretRequest
	if err := front.DecodeBody(r, &req); err != nil {
		f.Fail(w, r, err)
		return
	}
	s, err := f.UpdateSecret(r.Context(), front.CallerOf(r), core.UpdateSecretRequest{Name: name, Version: version,
		ContentType: req.ContentType, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, s.Index)
	front.WriteJSON(w, http.StatusOK, secretBundle(r, s))
}

// secretItems renders list items of secrets or of a secret's versions.
func secretItems(r *http.Request, items []core.ObjectItem) []keyvault.SecretItem {
	var out []keyvault.SecretItem
	for _, it := range items {
		out = append(out, keyvault.SecretItem{ID: objectID(r, core.KindSecrets, it.Name, it.Version), ContentType: it.ContentType,
			Attributes: it.Attributes, Tags: it.Tags, Managed: it.Managed})
	}
	return out
}

// writePage answers a paged list.
func writePage[T any](w http.ResponseWriter, r *http.Request, items []T, last string, limit int) {
	if items == nil {
		items = []T{}
	}
	p := keyvault.Page[T]{Value: items}
	if last != "" {
		p.NextLink = NextLink(r, last, limit)
	}
	front.WriteJSON(w, http.StatusOK, p)
}
