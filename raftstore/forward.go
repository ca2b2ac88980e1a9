package raftstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
)

// Forward request kinds.
const (
	ForwardApply        = "apply"
	ForwardReadIndex    = "read_index"
	ForwardAddVoter     = "add_voter"
	ForwardRemoveServer = "remove_server"
)

// ForwardRequest is what a follower sends the leader. It crosses the wire
// as JSON.
type ForwardRequest struct {
	Kind    string `json:"kind"`
	Data    []byte `json:"data,omitempty"`
	ID      string `json:"id,omitempty"`
	Address string `json:"address,omitempty"`
	// Hops counts how many nodes have forwarded the request so far.
	Hops int `json:"hops"`
}

// ForwardResponse carries the result back. Errors cross the wire as a code
// and a message, never as Go error values.
type ForwardResponse struct {
	Index   uint64 `json:"index,omitempty"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Error codes of a ForwardResponse, one per sentinel error.
var codeErrors = map[string]error{
	"conflict":       ErrConflict,
	"no_leader":      ErrNoLeader,
	"not_leader":     ErrNotLeader,
	"too_many_hops":  ErrTooManyHops,
	"bad_command":    ErrBadCommand,
	"closed":         ErrClosed,
	"ambiguous":      ErrAmbiguous,
	"unreachable":    ErrUnreachable,
	"unknown_server": ErrUnknownServer,
	"disk_full":      ErrDiskFull,
}

func responseFor(index uint64, err error) *ForwardResponse {
	resp := &ForwardResponse{Index: index}
	if err == nil {
		return resp
	}
	resp.Code, resp.Message = "error", err.Error()
	for code, sentinel := range codeErrors {
		if errors.Is(err, sentinel) {
			resp.Code = code
			break
		}
	}
	return resp
}

// err turns a response back into an error wrapping the matching sentinel.
func (r *ForwardResponse) err() error {
	if r.Code == "" {
		return nil
	}
	if r.Code == "disk_full" {
		// The leader's own words: which node, which directory.
		_, detail, ok := strings.Cut(r.Message, ErrDiskFull.Error()+": ")
		if !ok {
			detail = r.Message
		}
		return &DiskFullError{Detail: detail}
	}
	if sentinel, ok := codeErrors[r.Code]; ok {
		msg := strings.TrimSuffix(r.Message, ": "+sentinel.Error())
		if msg == sentinel.Error() {
			return sentinel
		}
		return fmt.Errorf("leader: %s: %w", msg, sentinel)
	}
	return fmt.Errorf("leader: %s", r.Message)
}

// Forwarder sends a request to another node of the cluster, which passes it
// to its Store's HandleForward. Implementations must be safe for concurrent
// use and honour ctx cancellation (the Store gives every forward a
// deadline, Config.RequestTimeout). A transport failure is returned as an
// error, wrapping ErrUnreachable when the request certainly never left
// this node (no connection could be made), so that a write is known not
// to have been applied; the remote outcome comes back in the response.
type Forwarder interface {
	Forward(ctx context.Context, nodeID string, req *ForwardRequest) (*ForwardResponse, error)
}

// HandleForward executes a request that another node forwarded here. If
// this node is no longer the leader it forwards the request again, up to
// MaxHops.
func (s *Store) HandleForward(ctx context.Context, req *ForwardRequest) *ForwardResponse {
	if req.Hops > MaxHops {
		return responseFor(0, ErrTooManyHops)
	}
	switch req.Kind {
	case ForwardApply:
		idx, err := s.applyData(ctx, req.Data, req.Hops)
		return responseFor(idx, err)
	case ForwardReadIndex:
		idx, err := s.readIndex(ctx, req.Hops)
		return responseFor(idx, err)
	case ForwardAddVoter, ForwardRemoveServer:
		return responseFor(0, s.membership(ctx, req))
	default:
		return responseFor(0, fmt.Errorf("forward kind %q: %w", req.Kind, ErrBadCommand))
	}
}

// ForwardPath is where HTTPForwarder posts and ForwardHandler is mounted.
const ForwardPath = "/v1/sys/raft/forward"

// HTTPForwarder forwards over HTTPS to the node's API listener.
type HTTPForwarder struct {
	// Client carries the requests; it must trust the cluster's CA.
	Client *http.Client
	// Resolve returns the base URL (https://host:port) of a node's API.
	Resolve func(nodeID string) (string, error)
	// Authorize sets the credential that proves the sender is a cluster
	// member.
	Authorize func(*http.Request)
}

// Forward implements Forwarder.
func (h *HTTPForwarder) Forward(ctx context.Context, nodeID string, req *ForwardRequest) (*ForwardResponse, error) {
	base, err := h.Resolve(nodeID)
	if err != nil {
		return nil, fmt.Errorf("resolve node %s: %w", nodeID, err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode forward request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base+ForwardPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build forward request: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("X-Certvault-Hops", strconv.Itoa(req.Hops))
	if h.Authorize != nil {
		h.Authorize(hr)
	}
	var wrote atomic.Bool
	hr = hr.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaders: func() { wrote.Store(true) },
	}))
	resp, err := h.Client.Do(hr)
	if err != nil {
		if !wrote.Load() {
			// Nothing was written to a connection: the node never saw it.
			return nil, fmt.Errorf("post to %s: %w: %w", nodeID, err, ErrUnreachable)
		}
		return nil, fmt.Errorf("post to %s: %w", nodeID, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read forward response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("node %s answered %s: %s", nodeID, resp.Status, bytes.TrimSpace(data))
	}
	var out ForwardResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("decode forward response: %w", err)
	}
	return &out, nil
}

// ForwardHandler serves forwarded requests for s. authorized decides
// whether the caller is a cluster member; others get 403.
func ForwardHandler(s *Store, authorized func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(status int, code, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
		}
		if r.Method != http.MethodPost {
			fail(http.StatusMethodNotAllowed, "MethodNotAllowed", "POST only")
			return
		}
		if !authorized(r) {
			fail(http.StatusForbidden, "Forbidden", "only cluster nodes (with a node certificate from the cluster CA) may forward")
			return
		}
		var req ForwardRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, maxCommandSize)).Decode(&req); err != nil {
			fail(http.StatusBadRequest, "BadParameter", "the forward request is not valid JSON")
			return
		}
		resp := s.HandleForward(r.Context(), &req)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
}
