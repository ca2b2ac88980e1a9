package vault

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/certvault/certvault/vault/front"
	"github.com/certvault/certvault/vault/front/console"
	"github.com/certvault/certvault/vault/leaderpass"
)

// Edge limits of the API listener: how long a request body may take to
// arrive, and how many requests without a credential a node serves at
// once. Together with maxBodyBytes they bound what a client that is not
// (yet) known can cost a node: a slow or endless body is cut, a flood of
// them is refused before its bodies are read.

// Defaults of the edge limits (Options documents each).
const (
	defaultRequestDeadline    = 5 * time.Second
	defaultBodyReadTimeout    = 30 * time.Second
	defaultMaxUnauthenticated = 64
)

// snapshotPath is the endpoint of snapshot save (GET) and restore (PUT).
const snapshotPath = "/v1/sys/cluster/snapshot"

// isSnapshotUpload reports whether r uploads a snapshot: the whole vault,
// so its body is not held to maxBodyBytes (handleSnapshotRestore sets its
// own limit) and is read as a stream.
func isSnapshotUpload(r *http.Request) bool {
	return r.Method == http.MethodPut && r.URL.Path == snapshotPath
}

// hasBody reports whether r carries a request body at all.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// timeBody puts a read deadline on r's body: the whole body must arrive
// within Options.BodyReadTimeout of the request's start, or, for a
// snapshot upload, no read may wait longer than that for its next bytes.
// Past it the read fails with 408 (errBodyTimeout) and the connection is
// closed. The deadline is lifted once the body has been read, so a long
// poll that follows is not cut. It must be called before the handler
// runs, on the writer the server gave.
func (n *Node) timeBody(w http.ResponseWriter, r *http.Request) {
	if !hasBody(r) {
		return
	}
	d := n.opts.BodyReadTimeout
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
		return // a writer without deadlines (never the real server)
	}
	r.Body = &timedBody{ReadCloser: r.Body, rc: rc, d: d, stream: isSnapshotUpload(r)}
}

// timedBody is a request body under a read deadline (see timeBody).
type timedBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	d      time.Duration
	stream bool
	done   bool
}

func (b *timedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case b.done:
	case err == io.EOF:
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	case err != nil && isTimeout(err):
		b.done = true
		return n, &front.APIError{Status: http.StatusRequestTimeout, Code: "RequestTimeout",
			Message: fmt.Sprintf("the request body did not arrive within %v; send it without pauses", b.d),
			Cause:   fmt.Errorf("read request body: %w: %w", errBodyTimeout, err)}
	case n > 0 && b.stream:
		b.rc.SetReadDeadline(time.Now().Add(b.d))
	}
	return n, err
}

// errBodyTimeout means a request body did not arrive in time.
var errBodyTimeout = errors.New("vault: request body read timed out")

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// unauthenticated reports whether r counts against
// Options.MaxUnauthenticatedRequests: it presents no credential at all (no
// Authorization header, no client certificate), or it goes to a public
// endpoint that reads its body before it checks anything (node joins,
// agent enrollment, which check their own tokens). Health probes and
// metrics never count: a load balancer must see a busy node as alive.
// Nor does a request a follower passed on: the follower counted it and
// already holds its whole body.
func (n *Node) unauthenticated(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return false
	}
	if r.Header.Get(leaderpass.Header) != "" && n.isNodeRequest(r) {
		return false
	}
	if console.IsEventStream(r) {
		// A console page's live stream holds its request for minutes;
		// the console checks its session first and bounds the streams.
		return false
	}
	if _, pattern := n.publicRoutes.Handler(r); pattern != "" {
		return true
	}
	return r.Header.Get("Authorization") == "" && (r.TLS == nil || len(r.TLS.PeerCertificates) == 0)
}

// newPublicRoutes returns muxes that match the public endpoints, for
// unauthenticated.
func newPublicRoutes() *routeSet {
	rs := newRouteSet()
	for _, e := range Endpoints() {
		if e.Public {
			rs.handle(e, http.NotFoundHandler())
		}
	}
	return rs
}

// admit takes one of the node's slots for unauthenticated requests, or
// answers 503 with Retry-After at once, before the body is read, when all
// are taken. release gives the slot back; ok false means r was answered.
func (n *Node) admit(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if !n.unauthenticated(r) {
		return func() {}, true
	}
	select {
	case n.unauthSlots <- struct{}{}:
		return func() { <-n.unauthSlots }, true
	default:
	}
	// Do not spend a moment reading the body of a refused request: the
	// server would otherwise drain up to 256 KiB of it, at the client's
	// pace, before it lets the connection go.
	if r.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	http.NewResponseController(w).SetReadDeadline(time.Now())
	front.WriteError(w, &front.APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
		Message: fmt.Sprintf("this node is already serving %d requests without a credential (its limit); retry shortly", cap(n.unauthSlots))})
	return nil, false
}
