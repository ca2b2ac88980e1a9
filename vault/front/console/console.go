// Package console is the web console (issue 19): one more front over the
// domain, served by certvaultd at /ui/ on its API listener. Pages are
// rendered on the server (html/template) from files embedded in the
// binary; the little JavaScript there is, is ours and only enhances.
//
// Signing in with a certvault token makes a session (vault/identity) kept
// in raft: every node knows it, sign-out ends it everywhere, and revoking
// the token ends it too. The browser holds the session's secret in a
// cookie (HttpOnly, Secure, SameSite=Strict, path /ui/) that also carries
// when it was last used, signed with the barrier's key, so that the idle
// timeout needs no write per page. Every form carries a CSRF token bound
// to the session, and a cross-site POST is refused on its Origin and
// Sec-Fetch-Site headers as well. Every answer carries a strict
// Content-Security-Policy (no inline script or style, nothing from
// elsewhere, no framing).
//
// Every page decides access with the same policy and actions as the API
// (a Certificates Officer at /certificates/web-* sees those certificates
// and gets 403 for the others), and the node's middleware writes the same
// audit record for every request, naming the session's principal.
// Secret values and private keys are never rendered.
package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/front"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy is sent with every console answer: scripts,
// styles and images from the console itself only, no inline script or
// style, forms post only to it, no framing, no plugins.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// DefaultIdleTimeout ends a session left unused this long.
const DefaultIdleTimeout = 30 * time.Minute

// Front serves the console over the domain.
type Front struct {
	*front.Env
	// IdleTimeout ends a session not used for this long (0: the
	// default).
	IdleTimeout time.Duration

	pages map[string]*template.Template
	mux   *http.ServeMux
	// events bounds the live pages' event streams (events.go).
	events eventStreams
}

// New parses the console's templates and registers its pages.
func New(env *front.Env) (*Front, error) {
	f := &Front{Env: env, pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	for _, page := range []string{"login", "error", "certificates", "certificate", "timeline", "newcertificate", "contacts"} {
		t, err := template.New(page).ParseFS(templateFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", page, err)
		}
		f.pages[page] = t
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	files := http.StripPrefix("/ui/static/", http.FileServer(http.FS(static)))
	f.mux.HandleFunc("GET /ui/static/", func(w http.ResponseWriter, r *http.Request) {
		front.InfoOf(r).Skip = true // the console's own files: no audit record
		w.Header().Set("Cache-Control", "max-age=3600")
		files.ServeHTTP(w, r)
	})
	f.mux.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/certificates", http.StatusSeeOther)
	})
	f.mux.HandleFunc("GET /ui/login", f.handleLoginPage)
	f.mux.HandleFunc("POST /ui/login", f.LeaderOnly(f.handleLogin))
	f.mux.HandleFunc("POST /ui/logout", f.signedIn(f.handleLogout))
	f.mux.HandleFunc("GET /ui/certificates", f.signedIn(f.handleCertificates))
	if err := f.fleetRoutes(); err != nil {
		return nil, err
	}
	f.mux.HandleFunc("GET /ui/certificates/{name}", f.signedIn(f.handleCertificate))
	f.mux.HandleFunc("GET /ui/timeline", f.signedIn(f.handleTimeline))
	if err := f.auditorRoutes(); err != nil {
		return nil, err
	}
	f.actionRoutes()
	f.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		f.renderError(w, r, http.StatusNotFound, "Not found", "There is no such page in the console.")
	})
	return f, nil
}

// ServeHTTP serves /ui/… with the console's security headers.
func (f *Front) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin, not no-referrer: under no-referrer a browser sends
	// "Origin: null" with a POST, and sameOrigin could not tell the
	// console's own forms from another site's.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	f.mux.ServeHTTP(w, r)
}

// page is what every page's layout needs.
type page struct {
	Title, Nav, Principal, CSRF string
	// CanAudit shows the audit and report links to those who may use
	// them (the pages decide again).
	CanAudit bool
	// CanFleet shows the fleet link likewise (fleet.go).
	CanFleet bool
}

// pageFor is the layout's data for a page of session s.
func (f *Front) pageFor(s session, title, nav string) page {
	return page{Title: title, Nav: nav, Principal: s.caller.Name, CSRF: s.csrf,
		CanAudit: f.Policy().Allowed(s.caller.Principal, access.AuditRead, access.Resource{}),
		CanFleet: f.mayFleet(s.caller)}
}

// render answers a page.
func (f *Front) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := f.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		f.Log.Error("console: render", "page", name, "err", err)
		http.Error(w, "the console could not render this page; the vault's log says why", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorPage is the error page's data.
type errorPage struct {
	page
	Error string
}

// renderError answers an error page (the layout shows the navigation
// when the request has a session).
func (f *Front) renderError(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	p := page{Title: title}
	if s, ok := sessionOf(r); ok {
		p = f.pageFor(s, title, "")
	}
	f.render(w, status, "error", errorPage{page: p, Error: msg})
}

// allowed decides whether the session's caller may do action on res, as
// the API's gate does (a follower catches up once before it denies), and
// records the decision for the audit record.
func (f *Front) allowed(r *http.Request, c core.Caller, res access.Resource, action access.Action) bool {
	ri := front.InfoOf(r)
	ri.Action = action
	if res.Kind != "" {
		ri.Object = access.Resource{Kind: res.Kind, Name: objname.Canonical(res.Name)}.String()
	}
	ok := f.Policy().Allowed(c.Principal, action, res)
	if !ok {
		if again, err := f.CatchUp(); err == nil && again {
			ok = f.Policy().Allowed(c.Principal, action, res)
		}
	}
	ri.Denied = !ok
	return ok
}

// permit is allowed, answering the 403 page itself when the caller may
// not.
func (f *Front) permit(w http.ResponseWriter, r *http.Request, c core.Caller, res access.Resource, action access.Action) bool {
	if f.allowed(r, c, res, action) {
		return true
	}
	f.forbid(w, r, c, res, action)
	return false
}

// forbid answers 403 for action on res.
func (f *Front) forbid(w http.ResponseWriter, r *http.Request, c core.Caller, res access.Resource, action access.Action) {
	f.renderError(w, r, http.StatusForbidden, "Not allowed",
		fmt.Sprintf("%s may not %s on %s; ask an administrator for a role assignment that grants it.", c.Name, action, res))
}

// sameOrigin reports whether a POST comes from the console itself: a
// browser says so in Sec-Fetch-Site, and in Origin (the host the client
// used, over https).
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(o, "https://"+r.Host) {
		return false
	}
	return true
}
