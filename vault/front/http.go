package front

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/strictjson"
	"github.com/certvault/certvault/vault/access"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
)

// WriteJSON answers status with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// WriteError answers with Key Vault's error shape.
func WriteError(w http.ResponseWriter, err error) {
	var ae *APIError
	var ce *core.Error
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &ce):
		ae = CoreToAPI(ce)
	default:
		ae = InternalError(err)
	}
	switch {
	case ae.RetryAfter > 0 && (ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusInsufficientStorage):
		w.Header().Set("Retry-After", strconv.Itoa(int(max(time.Second, ae.RetryAfter).Seconds())))
	case ae.Status == http.StatusServiceUnavailable:
		// Elections and catch-up take about a second; agents back off
		// at least this long.
		w.Header().Set("Retry-After", "1")
	case ae.Status == http.StatusInsufficientStorage:
		// A full disk heals when someone frees space.
		w.Header().Set("Retry-After", "5")
	}
	WriteJSON(w, ae.Status, map[string]any{"error": map[string]string{"code": ae.Code, "message": ae.Message}})
}

// DecodeBody reads a JSON body into v strictly (body.go): the body must
// be declared application/json, and a member given twice, invalid UTF-8,
// trailing data, tags over Key Vault's limits or an nbf/exp out of range
// are refused with 400 before anything is stored.
func DecodeBody(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(data))) == 0 {
		return BadParameter("the request body is empty; a JSON object is required")
	}
	if err := checkJSONContentType(r); err != nil {
		return err
	}
	if err := strictjson.Unmarshal(data, v); err != nil {
		return bodyJSONError(err)
	}
	return checkObjectFields(v)
}

func IsWrite(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// RouteLabelKey holds a *string that the data-plane router fills with the
// route's pattern, for the metrics the middleware records.
type RouteLabelKey struct{}

// Endpoint is one API route and the permissions it needs: the source of
// the access matrix (docs/access.md) and of its test.
type Endpoint struct {
	Method  string
	Pattern string
	// Actions: the caller needs one of them. Empty with Public false: any
	// authenticated caller.
	Actions []access.Action
	// Public endpoints take no token: health, metrics, the CRL, node
	// joins and agent enrollment (which check their own join tokens).
	Public bool
	// Agent endpoints need an agent's client certificate.
	Agent bool
	// Node endpoints are node-to-node traffic: a cluster node's
	// certificate, nothing else.
	Node bool
	// Tenant endpoints are the identity platform's, under /{tenant}/: a
	// mux of their own, tried when no other route matches (their
	// patterns would conflict with the data plane's).
	Tenant bool
}

// StatusClientClosed is the status of a request whose client went away
// before it was answered (nginx's 499): not the vault's fault, so not a
// 500 and not logged as an error.
const StatusClientClosed = 499

// MaxBodyBytes bounds every request body (Key Vault's own limit is about
// this size); a larger one gets 413.
const MaxBodyBytes = 1 << 20

// ReqInfo follows a request through the middleware, authentication,
// authorization and the handler, and becomes its audit record.
type ReqInfo struct {
	// Skip: health probes, metrics and node-to-node traffic (whose
	// client-facing request is recorded where it came in).
	Skip bool
	// Hold: the answer waits until the audit record is durable
	// (mutating and secret-reading requests).
	Hold      bool
	Caller    core.Caller
	Action    access.Action
	Object    string
	Version   string
	Denied    bool
	Operation string
}

type ReqInfoKey struct{}

// InfoOf returns the request's info; a request that did not come through
// the middleware (never in production) gets a throwaway one.
func InfoOf(r *http.Request) *ReqInfo {
	if ri, ok := r.Context().Value(ReqInfoKey{}).(*ReqInfo); ok {
		return ri
	}
	return &ReqInfo{}
}

// principalOf returns the principal of the request a context belongs
// to, or "" for work the vault does by itself.
func principalOf(ctx context.Context) string {
	if ri, ok := ctx.Value(ReqInfoKey{}).(*ReqInfo); ok {
		return ri.Caller.Name
	}
	return ""
}

// CallerOf returns the authenticated caller of a request.
func CallerOf(r *http.Request) core.Caller { return InfoOf(r).Caller }

// ErrUnauthenticated means the request has no valid credential.
var ErrUnauthenticated = errors.New("vault: no valid credential")

// ObjectResource is the resource of a request on /KIND/{name}.
func ObjectResource(kind string) func(*http.Request) access.Resource {
	return func(r *http.Request) access.Resource {
		return access.Resource{Kind: kind, Name: r.PathValue("name")}
	}
}

// IsAgentChain reports whether a verified chain ends in an agent
// certificate: leaf OU certvault-agent issued by the agent CA.
func IsAgentChain(chain []*x509.Certificate) bool {
	return len(chain) >= 2 && slices.Contains(chain[0].Subject.OrganizationalUnit, fleet.AgentOU)
}

// ParseSince reads an RFC 3339 time or an age before now (90m, 24h, 7d).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := core.ParseTTL(s)
	if err != nil {
		return time.Time{}, err
	}
	return now.Add(-d), nil
}

func BaseURL(r *http.Request) string { return "https://" + r.Host }

// SetIndexHeader reports the raft index of a write as X-Certvault-Index
// (no header when nothing was written: index 0).
func SetIndexHeader(w http.ResponseWriter, idx uint64) {
	if idx != 0 {
		w.Header().Set("X-Certvault-Index", Itoa(idx))
	}
}

func Itoa(i uint64) string { return strconv.FormatUint(i, 10) }

// InfoSource is the caller's address without the port.
func InfoSource(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}
