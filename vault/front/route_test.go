package front

import (
	"net/http"
	"testing"

	"github.com/certvault/certvault/vault/access"
)

// TestRouterMatch: literal segments win over captures, the most literal
// earliest; a capture may be empty only as the last segment; only the
// chosen route's parameters come back; a path that fits another method
// only is told apart from no path at all.
func TestRouterMatch(t *testing.T) {
	var rt Router
	h := func(http.ResponseWriter, *http.Request) {}
	rt.Handle("GET", "/certificates/{name}/{version}", access.Action("r"), h)
	rt.Handle("GET", "/certificates/{name}/pending", access.Action("r"), h)
	rt.Handle("GET", "/certificates/issuers/{issuer}", access.Action("r"), h)
	rt.Handle("GET", "/certificates/contacts", access.Action("r"), h)
	rt.Handle("GET", "/certificates/{name}", access.Action("r"), h)
	rt.Handle("POST", "/certificates/{name}/create", access.Action("w"), h)
	for _, tc := range []struct {
		method, path, pattern string
		params                map[string]string
		pathMatched           bool
	}{
		{"GET", "/certificates/web/abc", "/certificates/{name}/{version}", map[string]string{"name": "web", "version": "abc"}, true},
		{"GET", "/certificates/web/", "/certificates/{name}/{version}", map[string]string{"name": "web", "version": ""}, true},
		{"GET", "/certificates/web/pending", "/certificates/{name}/pending", map[string]string{"name": "web"}, true},
		{"GET", "/certificates/issuers/pebble", "/certificates/issuers/{issuer}", map[string]string{"issuer": "pebble"}, true},
		{"GET", "/certificates/contacts", "/certificates/contacts", map[string]string{}, true},
		{"GET", "/certificates/web", "/certificates/{name}", map[string]string{"name": "web"}, true},
		{"GET", "/certificates//pending", "", nil, false}, // an empty name fits no shape
		{"GET", "/certificates/web/create", "/certificates/{name}/{version}", map[string]string{"name": "web", "version": "create"}, true},
		{"PUT", "/certificates/web/create", "", nil, true},
		{"GET", "/secrets/x", "", nil, false},
		{"GET", "/certificates/a/b/c", "", nil, false},
	} {
		rte, params, pathMatched := rt.match(tc.method, tc.path)
		got := ""
		if rte != nil {
			got = rte.Pattern
		}
		if got != tc.pattern || pathMatched != tc.pathMatched {
			t.Errorf("%s %s: route %q (path matched %v), want %q (%v)", tc.method, tc.path, got, pathMatched, tc.pattern, tc.pathMatched)
			continue
		}
		if rte == nil {
			continue
		}
		if len(params) != len(tc.params) {
			t.Errorf("%s %s: params %v, want %v", tc.method, tc.path, params, tc.params)
		}
		for k, v := range tc.params {
			if params[k] != v {
				t.Errorf("%s %s: params %v, want %v", tc.method, tc.path, params, tc.params)
			}
		}
	}
}
