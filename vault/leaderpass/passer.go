package leaderpass

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/front"
)

// Header marks a request a follower passed to the leader; its value is
// the follower's node id.
const Header = "X-Certvault-Proxied"

// Passer passes requests to the leader, keeping one reverse proxy per
// leader address.
type Passer struct {
	// NodeID is this node's id.
	NodeID string
	// Deadline bounds each wait for the leader (see Start).
	Deadline time.Duration
	// WaitLeader returns the leader's id once there is one.
	WaitLeader func(ctx context.Context) (string, error)
	// Resolve returns the API base URL of the node id.
	Resolve func(id string) (string, error)
	// Transport reaches the other nodes (with this node's certificate).
	Transport http.RoundTripper
	Log       *slog.Logger
	// Fail logs and answers an error.
	Fail func(w http.ResponseWriter, r *http.Request, err error)

	mu      sync.Mutex
	proxies map[string]*httputil.ReverseProxy
}

// Pass passes r to the leader's API unchanged (the Host header too, so
// that ids name the address the client used). A request that was already
// passed on once is not passed again: during an election the client gets
// 503 and retries. Unless stream is set (a snapshot upload, read as it
// goes), a bounded body is read here first (an oversized or slow one is
// answered here); the leader must be known, reached and answering within
// Deadline, else the client gets 503 with Retry-After, told whether the
// request may have been applied (see Failure).
func (ps *Passer) Pass(w http.ResponseWriter, r *http.Request, stream bool) {
	if r.Header.Get(Header) != "" {
		front.WriteError(w, front.Unavailable(raftstore.ErrNotLeader))
		return
	}
	if !stream {
		if err := BufferBody(r); err != nil {
			ps.Fail(w, r, err)
			return
		}
	}
	pass := Start(r.Context(), ps.Deadline)
	defer pass.Stop()
	leader, err := ps.WaitLeader(pass.ctx)
	if err == nil && leader == ps.NodeID {
		front.WriteError(w, front.Unavailable(raftstore.ErrNotLeader))
		return
	}
	base := ""
	if err == nil {
		base, err = ps.Resolve(leader)
	}
	if err != nil {
		front.WriteError(w, front.Unavailable(err))
		return
	}
	pass.Leader = leader
	proxy, err := ps.proxy(base)
	if err != nil {
		front.WriteError(w, front.InternalError(err))
		return
	}
	r.Header.Set(Header, ps.NodeID)
	// The leader logs the request under the ID this node answers with.
	r.Header.Set("x-ms-client-request-id", w.Header().Get("x-ms-request-id"))
	if stream && r.Body != nil && r.Body != http.NoBody {
		r.Body = StreamBody(r.Body, pass)
	}
	proxy.ServeHTTP(w, r.WithContext(pass.ctx))
}

// proxy returns the reverse proxy to the leader at base.
func (ps *Passer) proxy(base string) (*httputil.ReverseProxy, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p := ps.proxies[base]; p != nil {
		return p, nil
	}
	target, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	p := NewProxy(target, ps.Transport, ps.Log, func(w http.ResponseWriter, r *http.Request, err error) {
		ps.Fail(w, r, Failure(r, err))
	})
	if ps.proxies == nil {
		ps.proxies = map[string]*httputil.ReverseProxy{}
	}
	ps.proxies[base] = p
	return p, nil
}
