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

// dataPlane wraps a Key Vault data-plane handler: authentication first
// (so an SDK's bodiless first request gets the challenge), then the
// api-version check.
func (n *Front) DataPlane(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := n.Authenticate(w, r); !ok {
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

func (n *Front) secretRoutes(rt *front.Router) {
	rt.Handle("PUT", "/secrets/{name}", access.SecretsWrite, n.handleSetSecret)
	rt.Handle("GET", "/secrets", access.SecretsMetadata, n.handleListSecrets)
	rt.Handle("GET", "/secrets/{name}", access.SecretsGet, n.handleGetSecret)
	rt.Handle("GET", "/secrets/{name}/{version}", access.SecretsGet, n.handleGetSecret)
	rt.Handle("PATCH", "/secrets/{name}/{version}", access.SecretsWrite, n.handleUpdateSecret)
	rt.Handle("PATCH", "/secrets/{name}", access.SecretsWrite, n.handleUpdateSecret)
	rt.Handle("GET", "/secrets/{name}/versions", access.SecretsMetadata, n.handleSecretVersions)
	rt.Handle("DELETE", "/secrets/{name}", access.SecretsDelete, n.handleDeleteObject(core.KindSecrets))
	rt.Handle("GET", "/deletedsecrets", access.SecretsMetadata, n.handleListDeleted(core.KindSecrets))
	rt.Handle("GET", "/deletedsecrets/{name}", access.SecretsMetadata, n.handleGetDeleted(core.KindSecrets))
	rt.Handle("POST", "/deletedsecrets/{name}/recover", access.SecretsDelete, n.handleRecover(core.KindSecrets))
	rt.Handle("DELETE", "/deletedsecrets/{name}", access.SecretsDelete, n.handlePurge(core.KindSecrets))
	rt.Handle("POST", "/secrets/{name}/backup", access.SecretsBackup, n.handleBackup(core.KindSecrets))
	rt.Handle("POST", "/secrets/restore", access.SecretsBackup, n.handleRestore(core.KindSecrets))
}

func (n *Front) handleSetSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	// The name is checked before the body is read.
	if err := core.ValidName(core.KindSecrets, name); err != nil {
		n.Fail(w, r, err)
		return
	}
	var req keyvault.SetSecretRequest
	if err := front.DecodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	s, err := n.SetSecret(r.Context(), front.CallerOf(r), core.SetSecretRequest{Name: name, Value: req.Value,
		ContentType: req.ContentType, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		n.Fail(w, r, err)
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

func (n *Front) handleGetSecret(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if !n.Linearized(w, r) {
		return
	}
	s, err := n.GetSecret(r.Context(), front.CallerOf(r), core.GetSecretRequest{Name: name, Version: version})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, s.Index)
	front.WriteJSON(w, http.StatusOK, secretBundle(r, s))
}

func (n *Front) handleUpdateSecret(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	var req keyvault.UpdateSecretRequest
	if err := front.DecodeBody(r, &req); err != nil {
		n.Fail(w, r, err)
		return
	}
	s, err := n.UpdateSecret(r.Context(), front.CallerOf(r), core.UpdateSecretRequest{Name: name, Version: version,
		ContentType: req.ContentType, Attributes: req.Attributes, Tags: req.Tags})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	front.SetIndexHeader(w, s.Index)
	front.WriteJSON(w, http.StatusOK, secretBundle(r, s))
}

func (n *Front) handleListSecrets(w http.ResponseWriter, r *http.Request) {
	limit, after, err := PageParams(r)
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	if !n.Linearized(w, r) {
		return
	}
	res, err := n.ListObjects(r.Context(), front.CallerOf(r), core.ListObjectsRequest{Kind: core.KindSecrets, Page: core.PageRequest{Limit: limit, After: after}})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writePage(w, r, secretItems(r, res.Items), res.Next, limit)
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

func (n *Front) handleSecretVersions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, after, err := PageParams(r)
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	if !n.Linearized(w, r) {
		return
	}
	res, err := n.ListVersions(r.Context(), front.CallerOf(r), core.ListVersionsRequest{Kind: core.KindSecrets, Name: name, Page: core.PageRequest{Limit: limit, After: after}})
	if err != nil {
		n.Fail(w, r, err)
		return
	}
	writePage(w, r, secretItems(r, res.Items), res.Next, limit)
}
