package kvapi

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"

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
