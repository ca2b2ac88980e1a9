// Package leaderpass passes a request that a follower cannot serve (a
// write) to the raft leader's API as it came, and bounds and explains
// that pass: the leader must be known, reached and answering within the
// request deadline (a streamed body or answer restarts it as it moves),
// else the client gets 503 with Retry-After, told whether the request may
// have been applied.
package leaderpass

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/certvault/certvault/vault/front"
)

// errLeaderDeadline is the cause of a pass cancelled because the leader
// made no progress within Options.RequestDeadline.
var errLeaderDeadline = errors.New("vault: the leader did not answer within the request deadline")

// Pass follows one request on its way to the leader and back.
type Pass struct {
	ctx      context.Context
	cancel   context.CancelCauseFunc
	deadline time.Duration
	timer    *time.Timer
	// Leader is the leader the request goes to, for the answer when it
	// fails.
	Leader string
	// sent is set once the request's headers went out on a connection
	// to the leader: from then on the leader may have applied it.
	sent atomic.Bool
	// bodyErr is the error reading a streamed body from the client
	// (nil for a buffered body, or io.EOF once it was read whole).
	bodyErr atomic.Pointer[error]
}

type passKey struct{}

// Start starts the deadline of a request passed to the leader: if
// the leader is not known, not reached, or does not answer within
// deadline, the pass is cancelled. Each chunk of a streamed body or
// answer that moves restarts the deadline, so a large snapshot upload is
// bounded by stalls, not by its size. stop must be called; Context is the context to send the request with.
func Start(parent context.Context, deadline time.Duration) *Pass {
	p := &Pass{deadline: deadline}
	p.ctx, p.cancel = context.WithCancelCause(parent)
	p.timer = time.AfterFunc(deadline, func() { p.cancel(errLeaderDeadline) })
	p.ctx = context.WithValue(p.ctx, passKey{}, p)
	p.ctx = httptrace.WithClientTrace(p.ctx, &httptrace.ClientTrace{
		WroteHeaders:         func() { p.sent.Store(true) },
		GotFirstResponseByte: p.progress,
	})
	return p
}

// progress restarts the deadline.
func (p *Pass) progress() {
	if p.ctx.Err() == nil {
		p.timer.Reset(p.deadline)
	}
}

// Context is the pass's context: the request goes to the leader with it.
func (p *Pass) Context() context.Context { return p.ctx }

// Stop ends the pass and its deadline.
func (p *Pass) Stop() {
	p.timer.Stop()
	p.cancel(nil)
}

// passOf returns the pass a proxied request belongs to.
func passOf(ctx context.Context) *Pass {
	p, _ := ctx.Value(passKey{}).(*Pass)
	return p
}

// BufferBody reads a bounded request body whole, so that an oversized or
// slow body is answered by this node (413, 408) before the leader is
// involved, and the leader never gets half a request. The body can be
// sent again (GetBody) when a pooled connection turns out to be closed
// before anything was written.
func BufferBody(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return nil
}

// StreamBody returns body as a streamed request body of p (see passBody).
func StreamBody(body io.ReadCloser, p *Pass) io.ReadCloser { return &passBody{ReadCloser: body, p: p} }

// passBody is a streamed request body (a snapshot upload) on its way to
// the leader: each chunk restarts the deadline; a read error is kept so
// that the answer blames the client, not the leader.
type passBody struct {
	io.ReadCloser
	p *Pass
}

func (b *passBody) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		b.p.progress()
	}
	if err != nil {
		b.p.bodyErr.CompareAndSwap(nil, &err)
	}
	return n, err
}

// passAnswer is the leader's answer body on its way to the client.
type passAnswer struct {
	io.ReadCloser
	p *Pass
}

func (b *passAnswer) Read(buf []byte) (int, error) {
	n, err := b.ReadCloser.Read(buf)
	if n > 0 {
		b.p.progress()
	}
	return n, err
}

// NewProxy returns the reverse proxy to the leader at target. It
// keeps the client's Host header (ids name the address the client used)
// and handles Expect: 100-continue itself (this node already read or is
// streaming the body), so the leader sends no interim answer. fail
// answers a pass that failed.
func NewProxy(target *url.URL, transport http.RoundTripper, log *slog.Logger, fail func(http.ResponseWriter, *http.Request, error)) *httputil.ReverseProxy {
	proxy := httputil.NewSingleHostReverseProxy(target)
	direct := proxy.Director
	proxy.Director = func(r *http.Request) {
		direct(r)
		r.Header.Del("Expect")
	}
	proxy.Transport = transport
	proxy.ModifyResponse = func(resp *http.Response) error {
		if p := passOf(resp.Request.Context()); p != nil && resp.Body != nil {
			resp.Body = &passAnswer{ReadCloser: resp.Body, p: p}
		}
		return nil
	}
	proxy.ErrorHandler = fail
	proxy.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	return proxy
}

// Failure is the answer to a request the leader could not be asked,
// or did not answer: 503 with Retry-After, saying whether the request
// may have been applied, which is only so once it went out.
func Failure(r *http.Request, err error) error {
	p := passOf(r.Context())
	if p == nil {
		return front.InternalError(err)
	}
	if bp := p.bodyErr.Load(); bp != nil && *bp != io.EOF {
		// The client's body failed (too slow, too large, cut): the
		// client's fault, answered as such (408, 413, 400).
		return *bp
	}
	timedOut := errors.Is(context.Cause(p.ctx), errLeaderDeadline)
	switch {
	case !p.sent.Load():
		msg := fmt.Sprintf("the leader (%s) could not be reached; the request was not applied: retry", p.Leader)
		if timedOut {
			msg = fmt.Sprintf("the leader (%s) could not be reached within %v; the request was not applied: retry", p.Leader, p.deadline)
		}
		return &front.APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: msg, Cause: err}
	case timedOut:
		return &front.APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
			Message: fmt.Sprintf("the leader (%s) did not answer within %v; the request may or may not have been applied: read before retrying", p.Leader, p.deadline),
			Cause:   err}
	default:
		return &front.APIError{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable",
			Message: fmt.Sprintf("the connection to the leader (%s) broke before it answered; the request may or may not have been applied: read before retrying", p.Leader),
			Cause:   err}
	}
}
