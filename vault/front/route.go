package front

import (
	"net/http"
	"strings"

	"github.com/certvault/certvault/vault/access"
)

// Route is a data-plane endpoint: a method, a path shape and a handler.
// Shapes are segment lists where "{x}" captures a segment (which may be
// empty, so that /secrets/NAME/ reads the current version) and any other
// segment is literal. Literal segments win over captures, as Key Vault
// clients expect (/certificates/contacts is not a certificate named
// "contacts").
type Route struct {
	Method  string
	Pattern string
	Segs    []string
	// Actions are the permissions of which the caller needs one.
	Actions []access.Action
	// AnyNode marks a write whose handler may build its raft command on
	// a follower (which forwards only the command to the leader, where
	// its compare-and-set preconditions decide): the gate does not pass
	// the request to the leader, the handler does when it must
	// (Env.ProxyToLeader). Certificate creates (vault/DESIGN.md, "Creates
	// built on any node").
	AnyNode bool
	handler http.HandlerFunc
}

// Router dispatches the Key Vault data plane. net/http's ServeMux cannot
// express it: /certificates/issuers/{issuer} and
// /certificates/{name}/pending overlap without either being more specific.
type Router struct {
	Routes []Route
	// Before runs once the route is known, before its handler; it answers
	// the request itself and returns false to stop it (authorization).
	Before func(w http.ResponseWriter, r *http.Request, rte *Route) bool
}

// Handle adds a route whose caller needs action.
func (rt *Router) Handle(method, pattern string, action access.Action, h http.HandlerFunc) {
	rt.Routes = append(rt.Routes, Route{Method: method, Pattern: pattern, Segs: strings.Split(strings.Trim(pattern, "/"), "/"), Actions: []access.Action{action}, handler: h})
}

// HandleAnyNode adds a write route whose handler may build its command on
// a follower (Route.AnyNode).
func (rt *Router) HandleAnyNode(method, pattern string, action access.Action, h http.HandlerFunc) {
	rt.Handle(method, pattern, action, h)
	rt.Routes[len(rt.Routes)-1].AnyNode = true
}

// match finds the most specific route for the path: among the routes whose
// shape matches, the one with the most literal segments, earliest
// literal first. Only the chosen route's parameters are collected: a
// request is checked against dozens of shapes.
func (rt *Router) match(method, path string) (*Route, map[string]string, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var best *Route
	bestScore := -1
	pathMatched := false
	for i := range rt.Routes {
		r := &rt.Routes[i]
		score, ok := r.score(segs)
		if !ok {
			continue
		}
		pathMatched = true
		if r.Method == method && score > bestScore {
			best, bestScore = r, score
		}
	}
	if best == nil {
		return nil, nil, pathMatched
	}
	params := make(map[string]string, 2)
	for j, s := range best.Segs {
		if strings.HasPrefix(s, "{") {
			params[strings.Trim(s, "{}")] = segs[j]
		}
	}
	return best, params, pathMatched
}

// score tells whether the path's segments fit r's shape and, if so, how
// specific the fit is: each literal segment counts, earlier ones more. A
// capture may be empty only as the last segment.
func (r *Route) score(segs []string) (int, bool) {
	if len(r.Segs) != len(segs) {
		return 0, false
	}
	score := 0
	for j, s := range r.Segs {
		if strings.HasPrefix(s, "{") {
			if segs[j] == "" && j != len(segs)-1 {
				return 0, false
			}
			continue
		}
		if s != segs[j] {
			return 0, false
		}
		score += 1 << (len(r.Segs) - j)
	}
	return score, true
}

// ServeHTTP implements http.Handler.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rte, params, pathMatched := rt.match(r.Method, r.URL.Path)
	if rte == nil {
		if pathMatched {
			WriteError(w, &APIError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: r.Method + " is not supported on " + r.URL.Path})
			return
		}
		WriteError(w, &APIError{Status: http.StatusNotFound, Code: "NotFound", Message: "no such endpoint: " + r.URL.Path})
		return
	}
	for k, v := range params {
		r.SetPathValue(k, v)
	}
	r.Pattern = rte.Method + " " + rte.Pattern
	if label, ok := r.Context().Value(RouteLabelKey{}).(*string); ok {
		*label = r.Pattern
	}
	if rt.Before != nil && !rt.Before(w, r, rte) {
		return
	}
	rte.handler(w, r)
}
