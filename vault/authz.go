package vault

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net/http"
	"strings"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/internal/objname"
	"github.com/certvault/certvault/vault/access"
)

// auditWriter passes the answer through, or holds it (status and body)
// while info.hold is set, until the audit record is durable. An interim
// answer (1xx, such as a 100 Continue passed on from the leader) goes
// straight to the client and is never taken for the final status, which
// the audit record carries.
type auditWriter struct {
	http.ResponseWriter
	info *front.ReqInfo
	code int
	buf  bytes.Buffer
	// reqID is the request's x-ms-request-id: the final answer carries it
	// exactly once, whatever a proxied answer brought along.
	reqID string
}

func (w *auditWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		if w.code == 0 {
			w.ResponseWriter.WriteHeader(code)
		}
		return
	}
	if w.code != 0 {
		return
	}
	w.code = code
	if w.reqID != "" {
		w.ResponseWriter.Header().Set("x-ms-request-id", w.reqID)
	}
	if !w.info.Hold {
		w.ResponseWriter.WriteHeader(code)
	}
}

// Unwrap gives http.ResponseController the server's writer (read and
// write deadlines).
func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *auditWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.info.Hold {
		return w.buf.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

func (w *auditWriter) Flush() {
	if w.info.Hold {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// release sends a held answer.
func (w *auditWriter) release() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	if w.reqID != "" {
		w.ResponseWriter.Header().Set("x-ms-request-id", w.reqID)
	}
	w.ResponseWriter.WriteHeader(w.code)
	w.ResponseWriter.Write(w.buf.Bytes())
}

// identify authenticates a request: a bearer token, else an agent's
// client certificate. It returns errUnauthenticated (with a message for
// the challenge) when neither is there or valid.
func (n *Node) identify(r *http.Request) (core.Caller, string, error) {
	if tok, ok := bearerToken(r.Header.Get("Authorization")); ok {
		c, err := n.authenticate(tok)
		if errors.Is(err, errNotCaughtUp) {
			return core.Caller{}, "", err
		}
		if err != nil {
			if !errors.Is(err, errBadToken) {
				n.Log.Error("authenticate", "err", err)
			}
			return core.Caller{}, "the bearer token is not valid, was revoked or has expired", front.ErrUnauthenticated
		}
		return c, "", nil
	}
	if id := r.Header.Get(AgentHeader); id != "" {
		// A follower authenticated this agent and handed the request over
		// (the middleware drops the header from anyone but a node).
		return n.agentByID(id)
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if c, why, err := n.agentCaller(r.TLS.VerifiedChains[0]); err != nil {
			return core.Caller{}, "", err
		} else if why != "" {
			return core.Caller{}, why, front.ErrUnauthenticated
		} else if c.AgentID != "" {
			return c, "", nil
		}
	}
	return core.Caller{}, "a bearer token (or an agent certificate) is required", front.ErrUnauthenticated
}

// bearerToken returns the token of an Authorization header of the Bearer
// scheme. The scheme name is case-insensitive (RFC 7235 section 2.1), so
// "bearer" and "BEARER" are the same; spaces and tabs around the token
// are ignored.
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimLeft(h, " \t"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.Trim(tok, " \t")
	return tok, tok != ""
}

// authorize checks that c may do any of actions on res. It answers 403
// itself and returns false when not.
func (n *Node) authorize(w http.ResponseWriter, r *http.Request, c core.Caller, res access.Resource, actions ...access.Action) bool {
	ri := front.InfoOf(r)
	if len(actions) > 0 {
		ri.Action = actions[0]
	}
	if res.Kind != "" {
		// The trail names objects in their canonical form, so that every
		// spelling of a name finds the same records.
		ri.Object = access.Resource{Kind: res.Kind, Name: objname.Canonical(res.Name)}.String()
	}
	if v := r.PathValue("version"); v != "" {
		ri.Version = v
	}
	if len(actions) == 0 {
		return true // any authenticated caller
	}
	allowed := func() bool {
		pol := n.Policy()
		for _, a := range actions {
			if pol.Allowed(c.Principal, a, res) {
				ri.Action = a
				if a == access.SecretsGet {
					ri.Hold = true
				}
				return true
			}
		}
		return false
	}
	// A follower may not have applied an assignment made a moment ago on
	// the leader: it catches up once before it denies.
	ok := allowed()
	if !ok {
		again, err := n.catchUp()
		if err != nil {
			front.WriteError(w, front.NotCaughtUp(err))
			return false
		}
		ok = again && allowed()
	}
	if ok {
		if ri.Hold && n.auditLog != nil {
			// A secret read needs a durable record: refuse it before
			// reading anything while the trail cannot be written.
			if err := n.auditLog.Err(); err != nil {
				ri.Hold = false
				front.WriteError(w, n.auditRefusal(err))
				return false
			}
		}
		return true
	}
	ri.Denied = true
	who := c.Name
	front.WriteError(w, &front.APIError{Status: http.StatusForbidden, Code: "Forbidden",
		Message: "principal " + who + " may not " + string(actions[0]) + " on " + res.String() + "; ask an administrator for a role assignment that grants it ('certvault role list')"})
	return false
}

// guard is the handler wrapper of the extension endpoints: authenticate,
// authorize one of actions (none: any authenticated caller) on the
// resource res gives (nil: the vault), hand writes on a follower to the
// leader, run h.
func (n *Node) guard(res func(*http.Request) access.Resource, h http.HandlerFunc, actions ...access.Action) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := n.authenticateRequest(w, r)
		if !ok {
			return
		}
		var rs access.Resource
		if res != nil {
			rs = res(r)
		}
		if !n.authorize(w, r, c, rs, actions...) {
			return
		}
		if id := r.PathValue("id"); id != "" {
			// Tokens, assignments, agents, members, subscriptions: the
			// record names the item (/tokens/ID).
			front.InfoOf(r).Object = strings.TrimPrefix(r.URL.Path, "/v1")
		}
		if front.IsWrite(r.Method) && !n.Store.IsLeader() {
			// Writes are built from the state they change; the leader's is
			// the freshest, so a follower hands the whole request over.
			n.proxyToLeader(w, r)
			return
		}
		h(w, r)
	})
}

// authenticateRequest identifies the caller and records it, or answers
// 401 (or 503 before the vault is ready) and returns false.
func (n *Node) authenticateRequest(w http.ResponseWriter, r *http.Request) (core.Caller, bool) {
	if r.Header.Get("Authorization") == "" && r.Header.Get(AgentHeader) == "" && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0) {
		n.challenge(w, r, "a bearer token is required")
		return core.Caller{}, false
	}
	if n.Barrier.Load() == nil {
		front.WriteError(w, front.Unavailable(core.ErrNotInitialized))
		return core.Caller{}, false
	}
	c, why, err := n.identify(r)
	if errors.Is(err, errNotCaughtUp) {
		front.WriteError(w, front.NotCaughtUp(err))
		return core.Caller{}, false
	}
	if err != nil {
		n.challenge(w, r, why)
		return core.Caller{}, false
	}
	front.InfoOf(r).Caller = c
	return c, true
}

// routeKind is the object kind a Key Vault route's {name} names: the
// first path segment without its "deleted" prefix ("" for routes that
// name no object).
func routeKind(rte *front.Route) string {
	switch k := strings.TrimPrefix(rte.Segs[0], "deleted"); k {
	case core.KindCertificates, core.KindSecrets, core.KindKeys:
		if k == core.KindCertificates && len(rte.Segs) > 1 && (rte.Segs[1] == "issuers" || rte.Segs[1] == "contacts") {
			return ""
		}
		return k
	}
	return ""
}

// resolveDisplayName replaces the {name} of a Key Vault route by the
// spelling the object was created with, when it exists: names are
// case-insensitive, so GET /secrets/CASEY reads "casey" and answers with
// ids that say "casey", as Key Vault does. A name that does not exist yet
// keeps the caller's spelling, which a create then records.
func (n *Node) resolveDisplayName(rte *front.Route, r *http.Request) {
	name := r.PathValue("name")
	kind := routeKind(rte)
	if name == "" || kind == "" {
		return
	}
	m, _, ok, err := n.LoadMeta(kind, name)
	if err != nil || !ok || m.Name == "" || m.Name == name {
		return
	}
	r.SetPathValue("name", m.Name)
}

// dataPlaneResource is the resource of a Key Vault route.
func (n *Node) dataPlaneResource(rte *front.Route, r *http.Request) access.Resource {
	name := r.PathValue("name")
	switch rte.Segs[0] {
	case "certificates", "deletedcertificates":
		if len(rte.Segs) > 1 && rte.Segs[1] == "issuers" {
			return access.Resource{Kind: "issuers", Name: r.PathValue("issuer")}
		}
		return access.Resource{Kind: core.KindCertificates, Name: name}
	case "secrets", "deletedsecrets":
		return access.Resource{Kind: core.KindSecrets, Name: name, Certificate: name != "" && n.IsCertificate(name)}
	case "keys", "deletedkeys":
		return access.Resource{Kind: core.KindKeys, Name: name, Certificate: name != "" && n.IsCertificate(name)}
	}
	return access.Resource{}
}

// agentCaller identifies an agent from a verified client chain. It
// returns an empty caller and no reason for a chain that is not an
// agent's, and a reason when it is one but may not be used.
// It fails with errNotCaughtUp when it cannot tell.
func (n *Node) agentCaller(chain []*x509.Certificate) (core.Caller, string, error) {
	if !front.IsAgentChain(chain) {
		return core.Caller{}, "", nil
	}
	ca, err := n.AgentCA()
	if err != nil || !bytes.Equal(chain[1].Raw, ca.Raw) {
		return core.Caller{}, "the client certificate is not from this vault's agent CA", nil
	}
	leaf := chain[0]
	return n.agentRecordCaller(leaf.Subject.CommonName, leaf.SerialNumber.Text(16))
}

// agentByID is identify for a request a follower handed over.
func (n *Node) agentByID(id string) (core.Caller, string, error) {
	c, why, err := n.agentRecordCaller(id, "")
	if err != nil {
		return core.Caller{}, "", err
	}
	if why != "" {
		return core.Caller{}, why, front.ErrUnauthenticated
	}
	return c, "", nil
}

// agentRecordCaller checks an agent's record: known, not revoked, and
// (when serial is set) presenting its current or previous certificate.
// It fails with errNotCaughtUp when a follower that does not know the
// agent cannot catch up to find out.
func (n *Node) agentRecordCaller(id, serial string) (core.Caller, string, error) {
	rec, _, ok := n.Agent(id)
	if !ok {
		if again, err := n.catchUp(); err != nil {
			return core.Caller{}, "", err
		} else if again {
			rec, _, ok = n.Agent(id) // enrolled a moment ago through the leader
		}
	}
	if !ok {
		return core.Caller{}, "agent " + id + " is not known to this vault", nil
	}
	if rec.Revoked {
		return core.Caller{}, "agent " + id + " was revoked; enroll it again with a new join token", nil
	}
	if serial != "" && serial != rec.Serial && serial != rec.PrevSerial {
		return core.Caller{}, "agent " + id + " presented a superseded certificate; use the latest one", nil
	}
	return core.Caller{Principal: access.Principal{Name: "agent:" + id, Groups: []string{rec.Group}}, AgentID: id}, "", nil
}

// leaderOnly hands a public write to the leader.
func (n *Node) leaderOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !n.Store.IsLeader() {
			n.proxyToLeader(w, r)
			return
		}
		h(w, r)
	}
}

// agentOnly admits only agents presenting a valid, unrevoked identity;
// writes go to the leader.
func (n *Node) agentOnly(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := n.authenticateRequest(w, r)
		if !ok {
			return
		}
		if c.AgentID == "" {
			front.InfoOf(r).Denied = true
			front.WriteError(w, &front.APIError{Status: http.StatusForbidden, Code: "Forbidden", Message: "only an agent, with its client certificate, may call this"})
			return
		}
		front.InfoOf(r).Object = "/agents/" + c.AgentID
		if front.IsWrite(r.Method) && !n.Store.IsLeader() {
			n.proxyToLeader(w, r)
			return
		}
		h(w, r)
	})
}

// AgentHeader carries, from a follower to the leader, the ID of the agent
// whose request the follower hands over (its client certificate does not
// cross the proxy). Only a node may send it.
const AgentHeader = "X-Certvault-Agent"
