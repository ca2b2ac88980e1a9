package vault

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxBodyBytes bounds every request body (Key Vault's own limit is about
// this size); a larger one gets 413.
const maxBodyBytes = 1 << 20

// apiMetrics are the HTTP layer's Prometheus collectors.
type apiMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	renewals *prometheus.CounterVec
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
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certvault_renewals_total",
			Help: "Automatic renewals by this node as leader: done or failed.",
		}, []string{"result"}),
	}
}

// serve starts the HTTPS API on the listener opened at start.
func (n *Node) serve() error {
	n.metrics = newAPIMetrics()
	n.registry = prometheus.NewRegistry()
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		n.metrics.requests, n.metrics.latency, n.metrics.renewals)
	n.registry.MustRegister(n.store.Collectors()...)
	n.registry.MustRegister(newCertCollector(n))

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

func (n *Node) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", n.handleHealthz)
	mux.HandleFunc("GET /readyz", n.handleReadyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.registry, promhttp.HandlerOpts{}))

	mux.Handle("POST "+raftstore.ForwardPath, raftstore.ForwardHandler(n.store, n.isNodeRequest))
	mux.HandleFunc("POST /v1/sys/cluster/join/prepare", n.handleJoinPrepare)
	mux.HandleFunc("POST /v1/sys/cluster/join", n.handleJoin)
	mux.HandleFunc("POST /v1/sys/cluster/members", n.handleAddMember)

	mux.Handle("GET /v1/sys/cluster/status", n.authed(n.handleClusterStatus))
	mux.Handle("POST /v1/sys/cluster/join-tokens", n.authed(n.handleCreateJoinToken))
	mux.Handle("DELETE /v1/sys/cluster/members/{id}", n.authed(n.handleRemoveMember))
	mux.Handle("GET /v1/sys/cluster/snapshot", n.authed(n.handleSnapshotSave))
	mux.Handle("PUT /v1/sys/cluster/snapshot", n.authed(n.handleSnapshotRestore))

	mux.Handle("POST /v1/events/subscriptions", n.authed(n.handleSubscribe))
	mux.Handle("GET /v1/events/subscriptions", n.authed(n.handleListSubscriptions))
	mux.Handle("DELETE /v1/events/subscriptions/{id}", n.authed(n.handleUnsubscribe))
	mux.Handle("GET /v1/events/deliveries", n.authed(n.handleDeliveries))

	mux.Handle("GET /v1/sys/settings", n.authed(n.handleGetSettings))
	mux.Handle("PATCH /v1/sys/settings", n.authed(n.handleSetSettings))
	mux.HandleFunc("GET /v1/pki/{issuer}/crl", n.handleCRL)
	mux.Handle("POST /v1/certificates/{name}/revoke", n.authed(n.handleRevoke))

	// The Key Vault data plane has its own router (see route.go).
	rt := &router{}
	n.secretRoutes(rt)
	n.certificateRoutes(rt)
	n.issuerRoutes(rt)
	n.keyRoutes(rt)
	n.keyRotationRoutes(rt)
	dp := n.dataPlane(rt.ServeHTTP)
	for _, p := range []string{"/secrets", "/certificates", "/keys", "/deletedsecrets", "/deletedcertificates", "/deletedkeys", "/rng"} {
		mux.HandleFunc(p, dp)
		mux.HandleFunc(p+"/", dp)
	}
	return mux
}

// statusWriter records the status code for metrics and logs.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// middleware adds the request ID, the body limit, panic recovery and
// metrics to every request.
func (n *Node) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		reqID := r.Header.Get("x-ms-client-request-id")
		if reqID == "" {
			reqID, _ = randomID(16)
		}
		w.Header().Set("x-ms-request-id", reqID)
		// A snapshot upload is the whole vault: handleSnapshotRestore
		// sets its own limit.
		if r.Method != http.MethodPut || r.URL.Path != "/v1/sys/cluster/snapshot" {
			r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		}
		label := new(string)
		r = r.WithContext(context.WithValue(r.Context(), routeLabelKey{}, label))
		sw := &statusWriter{ResponseWriter: w}
		if n.refuseWritesWithoutHSM(sw, r) {
			return
		}
		defer func() {
			if p := recover(); p != nil {
				n.log.Error("panic in handler", "panic", p, "path", r.URL.Path, "request_id", reqID)
				if sw.code == 0 {
					writeError(sw, internalError(fmt.Errorf("panic: %v", p)))
				}
			}
			route := *label
			if route == "" {
				route = r.Pattern
			}
			if route == "" {
				route = "unmatched"
			}
			n.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.code)).Inc()
			n.metrics.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

type principalKey struct{}

// routeLabelKey holds a *string that the data-plane router fills with the
// route's pattern, for the metrics the middleware records.
type routeLabelKey struct{}

// authed requires a valid bearer token. Without one the answer is Key
// Vault's 401 challenge, before the body is looked at.
func (n *Node) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			n.challenge(w, r, "a bearer token is required")
			return
		}
		if n.barrier.Load() == nil {
			writeError(w, unavailable(ErrNotInitialized))
			return
		}
		principal, err := n.authenticate(strings.TrimSpace(tok))
		if err != nil {
			if !errors.Is(err, errBadToken) {
				n.log.Error("authenticate", "err", err)
			}
			n.challenge(w, r, "the bearer token is not valid or has expired")
			return
		}
		if isWrite(r.Method) && !n.store.IsLeader() {
			// Writes are built from the state they change; the leader's is
			// the freshest, so a follower hands the whole request over.
			n.proxyToLeader(w, r)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principal)))
	})
}

func isWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// proxyToLeader passes a request to the leader's API unchanged (the Host
// header too, so that ids name the address the client used). A request
// that was already passed on once is not passed again: during an election
// the client gets 503 and retries.
func (n *Node) proxyToLeader(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(proxiedHeader) != "" {
		writeError(w, unavailable(raftstore.ErrNotLeader))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	leader, err := n.store.WaitLeader(ctx)
	cancel()
	if err == nil && leader == n.opts.NodeID {
		writeError(w, unavailable(raftstore.ErrNotLeader))
		return
	}
	base := ""
	if err == nil {
		base, err = n.resolveNode(leader)
	}
	if err != nil {
		writeError(w, unavailable(err))
		return
	}
	n.proxyMu.Lock()
	proxy := n.proxies[base]
	if proxy == nil {
		target, perr := url.Parse(base)
		if perr != nil {
			n.proxyMu.Unlock()
			writeError(w, internalError(perr))
			return
		}
		proxy = httputil.NewSingleHostReverseProxy(target)
		proxy.Transport = n.client.Transport
		proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, &APIError{Status: http.StatusBadGateway, Code: "ServiceUnavailable",
				Message: "the leader could not be reached; the request may or may not have been applied: read before retrying", Cause: err})
		}
		if n.proxies == nil {
			n.proxies = map[string]*httputil.ReverseProxy{}
		}
		n.proxies[base] = proxy
	}
	n.proxyMu.Unlock()
	r.Header.Set(proxiedHeader, n.opts.NodeID)
	proxy.ServeHTTP(w, r)
}

// proxiedHeader marks a request a follower passed to the leader.
const proxiedHeader = "X-Certvault-Proxied"

// challenge answers 401 with the WWW-Authenticate header Key Vault SDKs
// expect: they then request a token for resource and retry.
func (n *Node) challenge(w http.ResponseWriter, r *http.Request, msg string) {
	base := "https://" + r.Host
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="%s/certvault", resource="%s"`, base, base))
	writeError(w, &APIError{Status: http.StatusUnauthorized, Code: "Unauthorized", Message: msg})
}

// isNodeRequest reports whether the caller presented a cluster node
// certificate (verified against the CA by the TLS layer).
func (n *Node) isNodeRequest(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return false
	}
	return isNodeCert(r.TLS.VerifiedChains[0][0])
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// writeError answers with Key Vault's error shape.
func writeError(w http.ResponseWriter, err error) {
	var ae *APIError
	if !errors.As(err, &ae) {
		ae = internalError(err)
	}
	writeJSON(w, ae.Status, map[string]any{"error": map[string]string{"code": ae.Code, "message": ae.Message}})
}

// fail logs the internal cause of err and answers it.
func (n *Node) fail(w http.ResponseWriter, r *http.Request, err error) {
	err = n.classify(err)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status >= 500 {
		n.log.Error("request failed", "path", r.URL.Path, "method", r.Method, "err", err,
			"request_id", w.Header().Get("x-ms-request-id"))
	}
	writeError(w, err)
}

// classify maps store errors to API errors.
func (n *Node) classify(err error) error {
	var ae *APIError
	switch {
	case errors.As(err, &ae):
		return err
	case errors.Is(err, raftstore.ErrAmbiguous):
		// Before the retryable cases: an ambiguous write may also wrap a
		// deadline, and the caller must not retry it blindly.
		return &APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
			Message: "leadership changed while the write was in flight; it may or may not have been applied: read before retrying", Cause: err}
	case errors.Is(err, raftstore.ErrNoLeader), errors.Is(err, raftstore.ErrTooManyHops),
		errors.Is(err, raftstore.ErrClosed), errors.Is(err, ErrNotInitialized),
		errors.Is(err, raftstore.ErrUnreachable), errors.Is(err, context.DeadlineExceeded):
		return unavailable(err)
	case errors.Is(err, raftstore.ErrConflict):
		return &APIError{Status: http.StatusConflict, Code: "Conflict", Message: "the object was changed concurrently; retry", Cause: err}
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &APIError{Status: http.StatusRequestEntityTooLarge, Code: "RequestTooLarge",
				Message: fmt.Sprintf("the request body is larger than %d bytes", maxBodyBytes)}
		}
		return internalError(err)
	}
}

// decodeBody reads a JSON body into v, refusing unknown trailing data.
func decodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return badParameter("the request body is empty; a JSON object is required")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return badParameter("the request body is not valid JSON: %v", err)
	}
	return nil
}

func (n *Node) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"alive": true, "node_id": n.opts.NodeID})
}

// readiness returns "" when the node can serve consistent requests, or why
// not.
func (n *Node) readiness() string {
	if why := n.hsmLost(); why != "" {
		return why
	}
	if n.barrier.Load() == nil {
		return "sealed: the keyring has not been opened yet"
	}
	leader, _ := n.store.Leader()
	if leader == "" {
		return "no leader"
	}
	st, err := n.store.Status()
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
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": why, "node_id": n.opts.NodeID})
		return
	}
	leader, _ := n.store.Leader()
	writeJSON(w, http.StatusOK, map[string]any{"ready": true, "node_id": n.opts.NodeID, "leader": leader})
}
