package vault

import (
	"net/http"
	"strings"

	"github.com/certvault/certvault/vault/access"
)

// route is a data-plane endpoint: a method, a path shape and a handler.
// Shapes are segment lists where "{x}" captures a segment (which may be
// empty, so that /secrets/NAME/ reads the current version) and any other
// segment is literal. Literal segments win over captures, as Key Vault
// clients expect (/certificates/contacts is not a certificate named
// "contacts").
type route struct {
	method  string
	pattern string
	segs    []string
	// actions are the permissions of which the caller needs one.
	actions []access.Action
	handler http.HandlerFunc
}

// router dispatches the Key Vault data plane. net/http's ServeMux cannot
// express it: /certificates/issuers/{issuer} and
// /certificates/{name}/pending overlap without either being more specific.
type router struct {
	routes []route
	// before runs once the route is known, before its handler; it answers
	// the request itself and returns false to stop it (authorization).
	before func(w http.ResponseWriter, r *http.Request, rte *route) bool
}

// handle adds a route whose caller needs action.
func (rt *router) handle(method, pattern string, action access.Action, h http.HandlerFunc) {
	rt.routes = append(rt.routes, route{method: method, pattern: pattern, segs: strings.Split(strings.Trim(pattern, "/"), "/"), actions: []access.Action{action}, handler: h})
}

// match finds the most specific route for the path: among the routes whose
// shape matches, the one with the most literal segments, earliest
// literal first.
func (rt *router) match(method, path string) (*route, map[string]string, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var best *route
	var bestParams map[string]string
	bestScore := -1
	pathMatched := false
	for i := range rt.routes {
		r := &rt.routes[i]
		if len(r.segs) != len(segs) {
			continue
		}
		params := map[string]string{}
		score := 0
		ok := true
		for j, s := range r.segs {
			if strings.HasPrefix(s, "{") {
				if segs[j] == "" && j != len(segs)-1 {
					ok = false
					break
				}
				params[strings.Trim(s, "{}")] = segs[j]
				continue
			}
			if s != segs[j] {
				ok = false
				break
			}
			score += 1 << (len(r.segs) - j)
		}
		if !ok {
			continue
		}
		pathMatched = true
		if r.method != method {
			continue
		}
		if score > bestScore {
			best, bestParams, bestScore = r, params, score
		}
	}
	return best, bestParams, pathMatched
}

// ServeHTTP implements http.Handler.
func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rte, params, pathMatched := rt.match(r.Method, r.URL.Path)
	if rte == nil {
		if pathMatched {
			writeError(w, &APIError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: r.Method + " is not supported on " + r.URL.Path})
			return
		}
		writeError(w, &APIError{Status: http.StatusNotFound, Code: "NotFound", Message: "no such endpoint: " + r.URL.Path})
		return
	}
	for k, v := range params {
		r.SetPathValue(k, v)
	}
	r.Pattern = rte.method + " " + rte.pattern
	if label, ok := r.Context().Value(routeLabelKey{}).(*string); ok {
		*label = r.Pattern
	}
	if rt.before != nil && !rt.before(w, r, rte) {
		return
	}
	rte.handler(w, r)
}
