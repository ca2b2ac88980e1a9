package vault

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

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
func (n *Node) dataPlane(h http.HandlerFunc) http.Handler {
	return n.authed(func(w http.ResponseWriter, r *http.Request) {
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
	})
}

// Attributes are Key Vault's object attributes; times are Unix seconds.
type Attributes struct {
	Enabled         *bool  `json:"enabled,omitempty"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created,omitempty"`
	Updated         int64  `json:"updated,omitempty"`
	RecoveryLevel   string `json:"recoveryLevel,omitempty"`
	RecoverableDays int    `json:"recoverableDays,omitempty"`
}

// SecretBundle is Key Vault's secret representation.
type SecretBundle struct {
	Value       string            `json:"value,omitempty"`
	ID          string            `json:"id"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  Attributes        `json:"attributes"`
	Tags        map[string]string `json:"tags,omitempty"`
	Kid         string            `json:"kid,omitempty"`
	Managed     bool              `json:"managed,omitempty"`
}

// storedSecret is one secret version as stored through the barrier.
type storedSecret struct {
	Value       string            `json:"value"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  Attributes        `json:"attributes"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// secretCurrent points at a secret's current version.
type secretCurrent struct {
	Version string `json:"version"`
}

func secretVersionKey(name, version string) string { return "secrets/" + name + "/v/" + version }
func secretCurrentKey(name string) string          { return "secrets/" + name + "/current" }

func baseURL(r *http.Request) string { return "https://" + r.Host }

func (n *Node) handleSetSecret(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !objectName.MatchString(name) {
		n.fail(w, r, badParameter("secret name %q: use 1-127 letters, digits and dashes", name))
		return
	}
	var req struct {
		Value       *string           `json:"value"`
		ContentType string            `json:"contentType"`
		Tags        map[string]string `json:"tags"`
		Attributes  *Attributes       `json:"attributes"`
	}
	if err := decodeBody(r, &req); err != nil {
		n.fail(w, r, err)
		return
	}
	if req.Value == nil {
		n.fail(w, r, badParameter("value is required"))
		return
	}
	version, err := randomID(16)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	now := time.Now().Unix()
	attrs := Attributes{}
	if req.Attributes != nil {
		attrs.Enabled, attrs.NotBefore, attrs.Expires = req.Attributes.Enabled, req.Attributes.NotBefore, req.Attributes.Expires
	}
	if attrs.Enabled == nil {
		t := true
		attrs.Enabled = &t
	}
	attrs.Created, attrs.Updated = now, now
	attrs.RecoveryLevel, attrs.RecoverableDays = "Recoverable+Purgeable", 90
	s := storedSecret{Value: *req.Value, ContentType: req.ContentType, Attributes: attrs, Tags: req.Tags}
	b := &raftstore.Batch{}
	if err := putSealedJSON(b, n.barrier.Load(), secretVersionKey(name, version), s); err != nil {
		n.fail(w, r, err)
		return
	}
	cur, _ := json.Marshal(secretCurrent{Version: version})
	b.Put(secretCurrentKey(name), cur)
	idx, err := n.store.Apply(r.Context(), b)
	if err != nil {
		n.fail(w, r, err)
		return
	}
	w.Header().Set("X-Certvault-Index", strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, secretBundle(r, name, version, s))
}

func secretBundle(r *http.Request, name, version string, s storedSecret) SecretBundle {
	return SecretBundle{
		Value: s.Value, ID: fmt.Sprintf("%s/secrets/%s/%s", baseURL(r), name, version),
		ContentType: s.ContentType, Attributes: s.Attributes, Tags: s.Tags,
	}
}

func (n *Node) handleGetSecret(w http.ResponseWriter, r *http.Request) {
	name, version := r.PathValue("name"), r.PathValue("version")
	if err := n.store.Linearize(r.Context()); err != nil {
		n.fail(w, r, err)
		return
	}
	if version == "" {
		e, ok := n.store.Get(secretCurrentKey(name))
		if !ok {
			n.fail(w, r, notFound("SecretNotFound", "A secret with (name/id) %s was not found in this key vault.", name))
			return
		}
		var cur secretCurrent
		if err := decodeJSONEntry(e, &cur); err != nil {
			n.fail(w, r, err)
			return
		}
		version = cur.Version
	}
	e, ok := n.store.Get(secretVersionKey(name, version))
	if !ok {
		n.fail(w, r, notFound("SecretNotFound", "A secret with (name/id) %s/%s was not found in this key vault.", name, version))
		return
	}
	var s storedSecret
	if err := n.getSealedJSON(e, &s); err != nil {
		n.fail(w, r, err)
		return
	}
	w.Header().Set("X-Certvault-Index", strconv.FormatUint(e.Index, 10))
	writeJSON(w, http.StatusOK, secretBundle(r, name, version, s))
}
