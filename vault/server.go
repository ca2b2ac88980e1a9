package vault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"time"

	"github.com/certvault/certvault/vault/front"
	"github.com/certvault/certvault/vault/front/console"
	"github.com/certvault/certvault/vault/front/entra"
	"github.com/certvault/certvault/vault/front/kvapi"
	"github.com/certvault/certvault/vault/front/v1api"

	"github.com/certvault/certvault/vault/core"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/access"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// apiMetrics are the HTTP layer's Prometheus collectors.
type apiMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newAPIMetrics() *apiMetrics {
	return &apiMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certvault_http_requests_total",
			Help: "API requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "certvault_http_request_seconds",
			Help:    "API request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
	}
}

// serve starts the HTTPS API on the listener opened at start.
func (n *Node) serve() error {
	if err := n.openAudit(); err != nil {
		return err
	}
	n.metrics = newAPIMetrics()
	n.registry = prometheus.NewRegistry()
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		n.metrics.requests, n.metrics.latency, n.Renewals)
	n.registry.MustRegister(n.Store.Collectors()...)
	n.registry.MustRegister(newCertCollector(n))
	n.publicRoutes = newPublicRoutes()
	n.unauthSlots = make(chan struct{}, n.opts.MaxUnauthenticatedRequests)

	tlsConf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if n.apiCert != nil {
				return n.apiCert, nil
			}
			return n.nodeCert.Load(), nil
		},
		// Nodes present their node certificate to each other; clients
		// authenticate with bearer tokens and need no certificate.
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  n.caPool.Load(),
	}
	n.server = &http.Server{
		Handler:           n.middleware(n.routes()),
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() {
		err := n.server.ServeTLS(n.listener, "", "")
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.die(fmt.Errorf("serve API: %w", err))
		}
	}()
	return nil
}

// Endpoints lists every route of the API with its permissions.
func Endpoints() []front.Endpoint {
	n := &Node{}
	var eps []front.Endpoint
	n.buildRoutes(func(e front.Endpoint) { eps = append(eps, e) })
	return eps
}

func (n *Node) routes() *routeSet {
	return n.buildRoutes(nil)
}

// routeSet is the API's two muxes: the vault's routes, and the identity
// platform's under /{tenant}/ (front.Endpoint.Tenant), which are tried
// when no route of the vault matches: a pattern such as
// /{tenant}/oauth2/v2.0/token would conflict with the data plane's
// /secrets/ subtree in one mux.
type routeSet struct {
	main, tenant *http.ServeMux
}

func newRouteSet() *routeSet {
	return &routeSet{main: http.NewServeMux(), tenant: http.NewServeMux()}
}

// handle registers h for e in the mux e belongs to.
func (s *routeSet) handle(e front.Endpoint, h http.Handler) {
	mux := s.main
	if e.Tenant {
		mux = s.tenant
	}
	mux.Handle(e.Method+" "+e.Pattern, h)
}

// Handler returns the handler and pattern that serve r ("" when none).
func (s *routeSet) Handler(r *http.Request) (http.Handler, string) {
	h, pattern := s.main.Handler(r)
	if pattern == "" {
		if th, tp := s.tenant.Handler(r); tp != "" {
			return th, tp
		}
	}
	return h, pattern
}

func (s *routeSet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.main.Handler(r); pattern == "" {
		if _, tp := s.tenant.Handler(r); tp != "" {
			s.tenant.ServeHTTP(w, r)
			return
		}
	}
	s.main.ServeHTTP(w, r)
}

// buildRoutes registers every route, reporting each to seen when set.
func (n *Node) buildRoutes(seen func(front.Endpoint)) *routeSet {
	routes := newRouteSet()
	mux := routes.main
	add := func(e front.Endpoint, h http.Handler) {
		if seen != nil {
			seen(e)
		}
		routes.handle(e, h)
	}
	public := func(method, pattern string, h http.HandlerFunc) {
		add(front.Endpoint{Method: method, Pattern: pattern, Public: true}, h)
	}
	node := func(method, pattern string, h http.HandlerFunc) {
		add(front.Endpoint{Method: method, Pattern: pattern, Node: true}, h)
	}
	vault := func(method, pattern string, h http.HandlerFunc, actions ...access.Action) {
		add(front.Endpoint{Method: method, Pattern: pattern, Actions: actions}, n.guard(nil, h, actions...))
	}
	public("GET", "/healthz", n.handleHealthz)
	public("GET", "/readyz", n.handleReadyz)
	public("GET", "/metrics", func(w http.ResponseWriter, r *http.Request) {
		promhttp.HandlerFor(n.registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	})
	node("POST", raftstore.ForwardPath, func(w http.ResponseWriter, r *http.Request) {
		raftstore.ForwardHandler(n.Store, n.isNodeRequest).ServeHTTP(w, r)
	})
	public("POST", "/v1/sys/cluster/join/prepare", n.handleJoinPrepare)
	public("POST", "/v1/sys/cluster/join", n.handleJoin)
	node("POST", "/v1/sys/cluster/members", n.handleAddMember)

	vault("GET", "/v1/sys/cluster/status", n.handleClusterStatus, access.ClusterRead)
	vault("POST", "/v1/sys/cluster/join-tokens", n.handleCreateJoinToken, access.ClusterWrite)
	vault("DELETE", "/v1/sys/cluster/members/{id}", n.handleRemoveMember, access.ClusterWrite)
	vault("GET", "/v1/sys/cluster/snapshot", n.handleSnapshotSave, access.ClusterWrite)
	vault("PUT", "/v1/sys/cluster/snapshot", n.handleSnapshotRestore, access.ClusterWrite)

	// The fronts: each declares its routes with the permissions they
	// need, and the node's gate (guard, authorizeRoute, the middleware's
	// audit record) enforces them.
	env := n.env()
	(&v1api.Front{Env: env}).Routes(vault, public, add)
	(&entra.Front{Env: env}).Routes(add)
	n.auditRoutes(vault, node)

	// The Key Vault data plane has its own router (see route.go).
	rt := &front.Router{Before: n.authorizeRoute}
	kv := &kvapi.Front{Env: env}
	kv.Routes(rt)
	if seen != nil {
		for _, r := range rt.Routes {
			seen(front.Endpoint{Method: r.Method, Pattern: r.Pattern, Actions: r.Actions})
		}
	}
	if n.opts.UI {
		// The web console: its own pages, sessions and CSRF, the same
		// policy and audit record (vault/front/console).
		ui, err := console.New(env)
		if err != nil {
			panic(err) // embedded templates that do not parse: a build error
		}
		mux.Handle("/ui/", ui)
		mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusSeeOther))
	}
	dp := kv.DataPlane(rt.ServeHTTP)
	for _, p := range []string{"/secrets", "/certificates", "/keys", "/deletedsecrets", "/deletedcertificates", "/deletedkeys", "/rng"} {
		mux.HandleFunc(p, dp)
		mux.HandleFunc(p+"/", dp)
	}
	return routes
}

// authorizeRoute authorizes a data-plane request once its route is known,
// and hands writes on a follower to the leader.
func (n *Node) authorizeRoute(w http.ResponseWriter, r *http.Request, rte *front.Route) bool {
	front.InfoOf(r).Operation = rte.Method + " " + rte.Pattern
	n.resolveDisplayName(rte, r)
	if !n.authorize(w, r, front.CallerOf(r), n.dataPlaneResource(rte, r), rte.Actions...) {
		return false
	}
	if front.IsWrite(r.Method) && !rte.AnyNode && !n.Store.IsLeader() {
		n.proxyToLeader(w, r)
		return false
	}
	return true
}

// middleware adds the request ID, the body limits (size, read time),
// the bound on unauthenticated requests in flight, panic recovery,
// metrics and the audit record to every request.
func (n *Node) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		reqID := r.Header.Get("x-ms-client-request-id")
		if reqID == "" {
			reqID, _ = core.RandomID(16)
		}
		w.Header().Set("x-ms-request-id", reqID)
		// A snapshot upload is the whole vault: handleSnapshotRestore
		// sets its own limit.
		if !isSnapshotUpload(r) {
			r.Body = http.MaxBytesReader(w, r.Body, front.MaxBodyBytes)
		}
		n.timeBody(w, r)
		if r.Header.Get(AgentHeader) != "" && !n.isNodeRequest(r) {
			r.Header.Del(AgentHeader) // only a node hands over an agent's request
		}
		label := new(string)
		info := &front.ReqInfo{Hold: front.IsWrite(r.Method), Skip: n.unaudited(r)}
		ctx := context.WithValue(r.Context(), front.RouteLabelKey{}, label)
		r = r.WithContext(context.WithValue(ctx, front.ReqInfoKey{}, info))
		aw := &auditWriter{ResponseWriter: w, info: info, reqID: reqID}
		if info.Skip {
			info.Hold = false
		}
		defer func() {
			if p := recover(); p != nil {
				n.Log.Error("panic in handler", "panic", p, "path", r.URL.Path, "request_id", reqID)
				if aw.code == 0 {
					front.WriteError(aw, front.InternalError(fmt.Errorf("panic: %v", p)))
				}
			}
			route := *label
			if route == "" {
				route = r.Pattern
			}
			if route == "" {
				route = "unmatched"
			}
			if !info.Skip {
				n.record(aw, r, info, route, reqID, start)
			}
			n.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(aw.code)).Inc()
			n.metrics.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		release, ok := n.admit(aw, r)
		if !ok {
			return
		}
		defer release()
		if info.Hold && n.auditLog != nil {
			if err := n.auditLog.Err(); err != nil {
				info.Hold = false // nothing to hold: nothing is done
				front.WriteError(aw, n.auditRefusal(err))
				return
			}
		}
		if n.refuseWritesWithoutHSM(aw, r) {
			return
		}
		next.ServeHTTP(aw, r)
	})
}

// isLeader reports whether this node leads the cluster now.
func (n *Node) isLeader() bool { return n.Store.IsLeader() }

// proxyToLeader passes a request to the leader (see leaderpass.Passer),
// naming the agent it authenticated, if any, for the leader.
func (n *Node) proxyToLeader(w http.ResponseWriter, r *http.Request) {
	if c := front.CallerOf(r); c.AgentID != "" {
		r.Header.Set(AgentHeader, c.AgentID)
	}
	n.passer.Pass(w, r, isSnapshotUpload(r) && hasBody(r))
}

// challenge answers 401 with the WWW-Authenticate header Key Vault SDKs
// expect: they then request a token for resource and retry.
func (n *Node) challenge(w http.ResponseWriter, r *http.Request, msg string) {
	base := "https://" + r.Host
	// The SDKs take the tenant from the authority's path and ask their
	// credential for a token there: the vault's tenant once it has one
	// (the first service principal makes it).
	tenant := n.TenantID()
	if tenant == "" {
		tenant = "certvault"
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/%s", resource="%s"`, base, tenant, base))
	front.WriteError(w, &front.APIError{Status: http.StatusUnauthorized, Code: "Unauthorized", Message: msg})
}

// isNodeRequest reports whether the caller presented a cluster node
// certificate (verified against the CA by the TLS layer).
func (n *Node) isNodeRequest(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return false
	}
	// A node certificate is issued by the vault CA itself; the agent CA
	// is an intermediate, so an agent's chain is longer.
	chain := r.TLS.VerifiedChains[0]
	return len(chain) == 2 && isNodeCert(chain[0])
}

// fail logs the internal cause of err and answers it.
func (n *Node) fail(w http.ResponseWriter, r *http.Request, err error) {
	err = n.classify(err)
	var ae *front.APIError
	if errors.As(err, &ae) && ae.Status == front.StatusClientClosed {
		// Nobody reads this answer, and nothing is wrong with the vault.
		n.Log.Info("request abandoned by its client", "path", r.URL.Path, "method", r.Method, "err", err,
			"request_id", w.Header().Get("x-ms-request-id"))
	} else if errors.As(err, &ae) && ae.Status >= 500 {
		n.Log.Error("request failed", "path", r.URL.Path, "method", r.Method, "err", err,
			"request_id", w.Header().Get("x-ms-request-id"))
	}
	front.WriteError(w, err)
}

// classify maps store errors to API errors.
func (n *Node) classify(err error) error {
	var ae *front.APIError
	var ce *core.Error
	switch {
	case errors.As(err, &ae):
		return err
	case errors.As(err, &ce):
		return front.CoreToAPI(ce)
	case errors.Is(err, context.Canceled):
		// The request's context ends only when its client disconnects
		// (the node's own deadlines are DeadlineExceeded).
		return &front.APIError{Status: front.StatusClientClosed, Code: "ClientClosedRequest",
			Message: "the client closed the connection before the request was answered", Cause: err}
	case errors.Is(err, raftstore.ErrAmbiguous):
		// Before the retryable cases: an ambiguous write may also wrap a
		// deadline, and the caller must not retry it blindly.
		return &front.APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
			Message: "leadership changed while the write was in flight; it may or may not have been applied: read before retrying", Cause: err}
	case errors.Is(err, raftstore.ErrNoLeader), errors.Is(err, raftstore.ErrNotLeader), errors.Is(err, raftstore.ErrTooManyHops),
		errors.Is(err, raftstore.ErrClosed), errors.Is(err, core.ErrNotInitialized),
		errors.Is(err, raftstore.ErrUnreachable), errors.Is(err, context.DeadlineExceeded):
		return front.Unavailable(err)
	case errors.Is(err, raftstore.ErrDiskFull):
		detail := "the leader's disk is full"
		var dfe *raftstore.DiskFullError
		if errors.As(err, &dfe) {
			detail = dfe.Detail
		}
		// Refused before it was proposed (or its append reached no log),
		// or a read on a node that cannot catch up: nothing was done.
		return &front.APIError{Status: http.StatusInsufficientStorage, Code: "InsufficientStorage",
			Message: "the disk is full: " + detail + "; nothing was done. Writes resume by themselves once space is freed there", Cause: err}
	case isDiskFull(err):
		return &front.APIError{Status: http.StatusInsufficientStorage, Code: "InsufficientStorage",
			Message: fmt.Sprintf("the disk of node %s is full (%s), so the request failed; free space there and retry", n.opts.NodeID, n.opts.DataDir), Cause: err}
	case errors.Is(err, raftstore.ErrConflict):
		return &front.APIError{Status: http.StatusConflict, Code: "Conflict", Message: "the object was changed concurrently; retry", Cause: err}
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &front.APIError{Status: http.StatusRequestEntityTooLarge, Code: "RequestTooLarge",
				Message: fmt.Sprintf("the request body is larger than %d bytes", front.MaxBodyBytes)}
		}
		return front.InternalError(err)
	}
}

func (n *Node) handleHealthz(w http.ResponseWriter, r *http.Request) {
	front.WriteJSON(w, http.StatusOK, map[string]any{"alive": true, "node_id": n.opts.NodeID})
}

// readiness returns "" when the node can serve consistent requests, or why
// not.
func (n *Node) readiness() string {
	if why := n.hsmLost(); why != "" {
		return why
	}
	// Writes and secret reads are refused; other reads still work here.
	var dfe *raftstore.DiskFullError
	if errors.As(n.Store.DiskFull(), &dfe) {
		return "disk full: " + dfe.Detail
	}
	if n.auditLog != nil && n.auditLog.Err() != nil {
		return "the audit trail cannot be written: writes and secret reads are refused"
	}
	if n.Barrier.Load() == nil {
		return "sealed: the keyring has not been opened yet"
	}
	leader, _ := n.Store.Leader()
	if leader == "" {
		return "no leader"
	}
	st, err := n.Store.Status()
	if err != nil {
		return err.Error()
	}
	// Applied counts commands only, so a few no-op or configuration
	// entries may separate it from the commit index.
	if st.CommitIndex > st.AppliedIndex+64 {
		return fmt.Sprintf("catching up: applied %d of %d", st.AppliedIndex, st.CommitIndex)
	}
	return ""
}

func (n *Node) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if why := n.readiness(); why != "" {
		front.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": why, "node_id": n.opts.NodeID})
		return
	}
	leader, _ := n.Store.Leader()
	front.WriteJSON(w, http.StatusOK, map[string]any{"ready": true, "node_id": n.opts.NodeID, "leader": leader})
}

// linearized runs Linearize and answers an error when it fails: 503
// when the leader could not confirm the read within the request deadline.
func (n *Node) linearized(w http.ResponseWriter, r *http.Request) bool {
	if err := n.Store.Linearize(r.Context()); err != nil {
		if errors.Is(err, raftstore.ErrNoLeader) || errors.Is(err, raftstore.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) {
			err = &front.APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
				Message: fmt.Sprintf("no leader confirmed within %v that this node's state is current (an election, or the leader unreachable); retry", n.opts.RequestDeadline),
				Cause:   err}
		}
		n.fail(w, r, err)
		return false
	}
	return true
}

// env returns the Env that the node gives its fronts.
func (n *Node) env() *front.Env {
	return &front.Env{Core: n.Core, Issuance: n.Issuance, Fleet: n.Fleet, Identity: n.Identity,
		Fail: n.fail, Linearized: n.linearized, Authenticate: n.authenticateRequest, AuthenticateToken: n.authenticateToken, Authorize: n.authorize,
		Guard: n.guard, CatchUp: n.catchUp, IsNodeRequest: n.isNodeRequest, ProxyToLeader: n.proxyToLeader, IsLeader: n.isLeader, LeaderOnly: n.leaderOnly, AgentOnly: n.agentOnly,
		RequestDeadline: n.opts.RequestDeadline, VaultHosts: n.vaultHost,
		QueryAudit: n.QueryAudit, Catalog: n.catalog}
}
