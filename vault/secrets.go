package vault

import (
	"encoding/json"
	"github.com/certvault/certvault/vault/access"
	"net/http"
	"regexp"
	"strings"

	"github.com/certvault/certvault/internal/keyvault"
	"github.com/certvault/certvault/raftstore"
)

// objectName is Key Vault's rule for object names.
var objectName = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)

// apiVersions are the Key Vault api-versions served; date-form versions
// (as the newer SDKs send) are accepted by pattern.
var (
	apiVersions     = map[string]bool{"7.4": true, "7.5": true, "7.6": true}
	dateAPIVersions = regexp.MustCompile(`^20[2-9][0-9]-[01][0-9]-[0-3][0-9](-preview)?$`)
)

// dataPlane wraps a Key Vault data-plane handler: authentication first
// (so an SDK's bodiless first request gets the challenge), then the
// api-version check.
func (n *Node) dataPlane(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, ok := n.authenticateRequest(w, r); !ok {
			return
		}
		v := r.URL.Query().Get("api-version")
		if v == "" {
			writeError(w, badParameter("the api-version query parameter is required (for example api-version=7.6)"))
			return
		}
		if !apiVersions[v] && !dateAPIVersions.MatchString(v) {
			writeError(w, badParameter("api-version %q is not supported; use 7.4, 7.5, 7.6 or a date form such as 2025-07-01", v))
			return
		}
		h(w, r)
	}
}

func baseURL(r *http.Request) string { return "https://" + r.Host }

func (n *Node) secretRoutes(rt *router) {
	rt.handle("PUT", "/secrets/{name}", access.SecretsWrite, n.handleSetSecret)
	rt.handle("GET", "/secrets", access.SecretsMetadata, n.handleListSecrets)
	rt.handle("GET", "/secrets/{name}", access.SecretsGet, n.handleGetSecret)
	rt.handle("GET", "/secrets/{name}/{version}", access.SecretsGet, n.handleGetSecret)
	rt.handle("PATCH", "/secrets/{name}/{version}", access.SecretsWrite, n.handleUpdateSecret)
	rt.handle("PATCH", "/secrets/{name}", access.SecretsWrite, n.handleUpdateSecret)
	rt.handle("GET", "/secrets/{name}/versions", access.SecretsMetadata, n.handleSecretVersions)
	rt.handle("DELETE", "/secrets/{name}", access.SecretsDelete, n.handleDeleteObject(kindSecrets))
	rt.handle("GET", "/deletedsecrets", access.SecretsMetadata, n.handleListDeleted(kindSecrets))
	rt.handle("GET", "/deletedsecrets/{name}", access.SecretsMetadata, n.handleGetDeleted(kindSecrets))
	rt.handle("POST", "/deletedsecrets/{name}/recover", access.SecretsDelete, n.handleRecover(kindSecrets))
	rt.handle("DELETE", "/deletedsecrets/{name}", access.SecretsDelete, n.handlePurge(kindSecrets))
	rt.handle("POST", "/secrets/{name}/backup", access.SecretsBackup, n.handleBackup(kindSecrets))
	rt.handle("POST", "/secrets/restore", access.SecretsBackup, n.handleRestore(kindSecrets))
}

func (n *Node) handleSetSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := validName(kindSecrets, name); err != nil {
		n.fail(w, r, err)
		return
	}
	var req keyvault.SetSecretRequest
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if req.Value == nil {
		n.fail(w, r, badParameter("value is required"))
		return
	}
	version, err := newVersionID()
	if err != nil {
		n.fail(w, r, err)
		return
	}
	now := nowUnix()
	v := versionMeta{ContentType: req.ContentType, Tags: req.Tags, Sealed: true}
	applyAttributes(&v.Attributes, req.Attributes)
	v.Attributes.Created, v.Attributes.Updated = now, now
	n.decorate(&v.Attributes)
	// Concurrent sets of one secret all succeed, each as a version, as in
	// Key Vault: they queue on the name, and a lost race on the meta record
	// (with a writer on another node) is retried.
	unlock := n.lockObject(kindSecrets, name)
	defer unlock()
	err = n.applyCAS(r.Context(), w.Header(), func() (*raftstore.Batch, error) {
		m, prev, found, err := n.loadMeta(kindSecrets, name)
		if err != nil {
			return nil, err
		}
		if found && m.Deleted != nil {
			return nil, conflictDeleted(kindSecrets, name)
		}
		if found && m.ManagedBy != "" {
			return nil, &APIError{Status: http.StatusForbidden, Code: "Forbidden",
				Message: "secret " + name + " is managed by the certificate of the same name and cannot be set; update the certificate instead"}
		}
		if !found {
			m = objectMeta{Created: now}
		}
		m.Current, m.Summary, m.Tags, m.Content = version, v.Attributes, v.Tags, v.ContentType
		b := &raftstore.Batch{}
		if v.Attributes.Expires != nil || len(m.EventPlans) > 0 {
			n.planExpiryEvents(b, &m, kindSecrets, name, version, v.Attributes.NotBefore, v.Attributes.Expires)
		}
		putMeta(b, kindSecrets, name, m, prev)
		b.Put(verKey(kindSecrets, name, version), mustJSON(v))
		if err := putSealed(b, n.barrier.Load(), valKey(kindSecrets, name, version), []byte(*req.Value)); err != nil {
			return nil, err
		}
		if err := n.emitEvent(b, EventSecretNewVersionCreated, kindSecrets, name, version, v.Attributes.NotBefore, v.Attributes.Expires, ""); err != nil {
			return nil, err
		}
		return b, nil
	})
	if err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n.secretBundle(r, name, version, v, *req.Value))
}

func (n *Node) secretBundle(r *http.Request, name, version string, v versionMeta, value string) keyvault.Secret {
	return keyvault.Secret{
		Value: value, ID: objectID(r, kindSecrets, name, version),
		ContentType: v.ContentType, Attributes: n.live(v.Attributes), Tags: v.Tags,
	}
}

func (n *Node) handleGetSecret(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if !n.linearized(w, r) {
		return
	}
	m, version, err := n.resolveVersion(kindSecrets, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if m.ManagedBy == kindCertificates {
		n.getManagedSecret(w, r, name, version)
		return
	}
	v, e, ok, err := n.loadVersion(kindSecrets, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if !ok {
		n.fail(w, r, objNotFound(kindSecrets, name, version))
		return
	}
	if !v.Attributes.IsEnabled() {
		n.fail(w, r, &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "operation get is not allowed on a disabled secret"})
		return
	}
	ve, ok := n.store.Get(valKey(kindSecrets, name, version))
	if !ok {
		n.fail(w, r, objNotFound(kindSecrets, name, version))
		return
	}
	value, err := n.openSealed(ve)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	w.Header().Set("X-Certvault-Index", itoa(e.Index))
	writeJSON(w, http.StatusOK, n.secretBundle(r, name, version, v, string(value)))
}

func (n *Node) handleUpdateSecret(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	var req keyvault.UpdateSecretRequest
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	m, version, err := n.resolveVersion(kindSecrets, name, version)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if m.ManagedBy != "" {
		n.fail(w, r, &APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "secret " + name + " is managed by its certificate; update the certificate instead"})
		return
	}
	v, e, ok, err := n.loadVersion(kindSecrets, name, version)
	if err != nil || !ok {
		n.fail(w, r, orNotFound(err, kindSecrets, name, version))
		return
	}
	applyAttributes(&v.Attributes, req.Attributes)
	if req.Tags != nil {
		v.Tags = req.Tags
	}
	if req.ContentType != nil {
		v.ContentType = *req.ContentType
	}
	v.Attributes.Updated = nowUnix()
	b := &raftstore.Batch{}
	b.PutIf(e.Key, mustJSON(v), e.Index)
	if version == m.Current {
		mm, me, _, _ := n.loadMeta(kindSecrets, name)
		mm.Summary, mm.Tags, mm.Content = v.Attributes, v.Tags, v.ContentType
		putMeta(b, kindSecrets, name, mm, me)
	}
	if err := n.apply(r.Context(), w.Header(), b); err != nil {
		n.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, n.secretBundle(r, name, version, v, ""))
}

func orNotFound(err error, kind, name, version string) error {
	if err != nil {
		return err
	}
	return objNotFound(kind, name, version)
}

func (n *Node) handleListSecrets(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if !n.linearized(w, r) {
		return
	}
	prefix := "meta/" + kindSecrets + "/"
	if after != "" {
		after = prefix + after
	}
	var out []keyvault.SecretItem
	entries, last := n.listPage(prefix, after, limit, func(e raftstore.Entry) bool {
		var m objectMeta
		return json.Unmarshal(e.Value, &m) == nil && m.Deleted == nil && m.Current != ""
	})
	for _, e := range entries {
		var m objectMeta
		json.Unmarshal(e.Value, &m)
		name := m.displayName(strings.TrimPrefix(e.Key, prefix))
		out = append(out, keyvault.SecretItem{ID: objectID(r, kindSecrets, name, ""), ContentType: m.Content,
			Attributes: n.live(m.Summary), Tags: m.Tags, Managed: m.ManagedBy != ""})
	}
	writePage(w, r, out, strings.TrimPrefix(last, prefix), limit)
}

// writePage answers a paged list.
func writePage[T any](w http.ResponseWriter, r *http.Request, items []T, last string, limit int) {
	if items == nil {
		items = []T{}
	}
	p := keyvault.Page[T]{Value: items}
	if last != "" {
		p.NextLink = nextLink(r, last, limit)
	}
	writeJSON(w, http.StatusOK, p)
}

func (n *Node) handleSecretVersions(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	limit, after, err := pageParams(r)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	if !n.linearized(w, r) {
		return
	}
	m, _, err := n.resolveVersion(kindSecrets, name, "")
	if err != nil {
		n.fail(w, r, err)
		return
	}
	kind := kindSecrets
	if m.ManagedBy != "" {
		kind = m.ManagedBy
	}
	prefix := verPrefix(kind, name)
	if after != "" {
		after = prefix + after
	}
	entries, last := n.listPage(prefix, after, limit, func(raftstore.Entry) bool { return true })
	var out []keyvault.SecretItem
	for _, e := range entries {
		var v versionMeta
		json.Unmarshal(e.Value, &v)
		ct := v.ContentType
		if m.ManagedBy != "" {
			ct = m.Content
		}
		out = append(out, keyvault.SecretItem{ID: objectID(r, kindSecrets, name, strings.TrimPrefix(e.Key, prefix)),
			ContentType: ct, Attributes: n.live(v.Attributes), Tags: v.Tags, Managed: m.ManagedBy != ""})
	}
	writePage(w, r, out, strings.TrimPrefix(last, prefix), limit)
}
