package kvapi

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
)

// The Key Vault front's helpers for every kind of object: ids, paging
// parameters and links, read freshness, and the index header of writes.
// What objects are and how they are stored is in core/objects.go.

// apiError is err as the Key Vault front answers it: a core *Error
// becomes the *APIError of its kind; anything else is returned as it is.
func apiError(err error) error {
	var ce *core.Error
	if errors.As(err, &ce) {
		return front.CoreToAPI(ce)
	}
	return err
}

// objectID is the absolute id of a version: https://HOST/kind/name/version.
func objectID(r *http.Request, kind, name, version string) string {
	id := front.BaseURL(r) + "/" + kind + "/" + name
	if version != "" {
		id += "/" + version
	}
	return id
}

// PageParams reads maxresults (1-25, default 25) and $skiptoken.
func PageParams(r *http.Request) (int, string, error) {
	q := r.URL.Query()
	limit := 25
	if s := q.Get("maxresults"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 25 {
			return 0, "", front.BadParameter("maxresults %q: use 1 to 25", s)
		}
		limit = v
	}
	after := ""
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return 0, "", front.BadParameter("$skiptoken is not valid; use the nextLink as returned")
		}
		after = string(b)
	}
	return limit, after, nil
}

// NextLink builds the link to the page after key `last`.
func NextLink(r *http.Request, last string, limit int) *string {
	q := url.Values{}
	q.Set("api-version", r.URL.Query().Get("api-version"))
	q.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(last)))
	q.Set("maxresults", strconv.Itoa(limit))
	for _, k := range []string{"includePending"} {
		if v := r.URL.Query().Get(k); v != "" {
			q.Set(k, v)
		}
	}
	s := front.BaseURL(r) + r.URL.Path + "?" + q.Encode()
	return &s
}

// listHandler answers a page of a kind's objects (versions set: of the
// versions of the object {name}) as the items that items makes. For
// certificates, includePending=true lists those whose only version is
// still pending too.
func listHandler[T any](f *Front, kind string, versions bool, items func(*http.Request, []core.ObjectItem) []T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		limit, after, err := PageParams(r)
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		if !f.Linearized(w, r) {
			return
		}
		page := core.PageRequest{Limit: limit, After: after}
		var got []core.ObjectItem
		var next string
		if versions {
			list := f.ListVersions
			if kind == core.KindCertificates {
				list = f.ListCertificateVersions // with the version a pending operation will make
			}
			res, err := list(r.Context(), front.CallerOf(r), core.ListVersionsRequest{Kind: kind, Name: r.PathValue("name"), Page: page})
			if err != nil {
				f.Fail(w, r, err)
				return
			}
			got, next = res.Items, res.Next
		} else {
			includePending := kind == core.KindCertificates && strings.EqualFold(r.URL.Query().Get("includePending"), "true")
			res, err := f.ListObjects(r.Context(), front.CallerOf(r), core.ListObjectsRequest{Kind: kind, IncludePending: includePending, Page: page})
			if err != nil {
				f.Fail(w, r, err)
				return
			}
			got, next = res.Items, res.Next
		}
		writePage(w, r, items(r, got), next, limit)
	}
}
