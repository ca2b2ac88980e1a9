// Package midentity is the managed-identity endpoint of certvault-agent:
// applications on the agent's machine get vault access tokens the way
// an Azure App Service app gets Entra tokens, through IDENTITY_ENDPOINT
// and IDENTITY_HEADER (api-version 2019-08-01), so that azidentity's and
// @azure/identity's ManagedIdentityCredential work unchanged and no
// application keeps a credential of its own.
//
// It owns the protocol (GET /msi/token, the X-IDENTITY-HEADER check, the
// answers and refusals the libraries parse), the header secrets and the
// env files that carry them to applications, the cache of tokens, and
// the listeners: a loopback TCP port and a Unix socket on which the
// caller's uid is checked too (SO_PEERCRED). It does not talk to the
// vault itself (a TokenSource does), read the agent's configuration or
// decide who may act as which service principal (the vault does).
package midentity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/certvault/certvault/agent/vaultclient"
	"github.com/certvault/certvault/internal/objname"
)

// Errors of the package.
var (
	// ErrBadEnvFile is an env file that does not hold a valid secret, or
	// is not a regular file of the identity's user with mode 0400.
	ErrBadEnvFile = errors.New("midentity: not a valid env file")
	// ErrUnsafeDir is a directory for an env file or the socket that
	// users other than root can change.
	ErrUnsafeDir = errors.New("midentity: unsafe directory")
	// ErrNotLoopback is a listen address that is not a loopback address.
	ErrNotLoopback = errors.New("midentity: not a loopback address")
	// ErrSocketInUse is a socket path another process serves on.
	ErrSocketInUse = errors.New("midentity: socket in use by another process")
	// ErrNoPeerCred means the caller's uid on the Unix socket cannot be
	// known on this system.
	ErrNoPeerCred = errors.New("midentity: peer credentials not available")
	// errExpired is a token the vault answered already expired (the
	// clocks disagree, or the vault is wrong).
	errExpired = errors.New("midentity: the vault answered a token that has already expired")
)

// Path is the path of the token endpoint: IDENTITY_ENDPOINT is
// http://LISTEN/msi/token.
const Path = "/msi/token"

// HeaderName is the header that carries the secret.
const HeaderName = "X-IDENTITY-HEADER"

// Defaults of Options.
const (
	DefaultMaxResources = 8
	DefaultVaultTimeout = 30 * time.Second
	DefaultFailureHold  = 5 * time.Second
)

// TokenSource gets access tokens from the vault. *vaultclient.Client is
// one.
type TokenSource interface {
	// Token returns an access token for resource on behalf of the
	// service principal named servicePrincipal, or of the agent itself
	// when that is empty. A refusal by the vault is a *vaultclient.Error
	// with its status (400 a resource that is not the vault, 403 not
	// allowed, 404 no such service principal). It must be safe for
	// concurrent use and return when ctx is done.
	Token(ctx context.Context, servicePrincipal, resource string) (*vaultclient.AccessToken, error)
}

// Identity is one identity served: the tokens of a vault service
// principal (or of the agent) for the applications of one Unix user.
type Identity struct {
	// User names the Unix user in messages; UID is the user, who owns
	// the env file and is the only caller on the Unix socket.
	User string
	UID  int
	// ServicePrincipal is the vault service principal's name, empty for
	// the agent's own identity.
	ServicePrincipal string
	// ClientID is the service principal's client id, optional: a request
	// that names a user-assigned identity must name this one, or the
	// service principal's name.
	ClientID string
	// EnvFile is where the header secret is written, as
	// IDENTITY_HEADER=SECRET, mode 0400, owned by UID.
	EnvFile string
}

// Options configure a Server. Only Source is required.
type Options struct {
	// Source gets the tokens.
	Source TokenSource
	// Logger defaults to slog.Default(). Secrets are never logged.
	Logger *slog.Logger
	// Now is the clock, default time.Now.
	Now func() time.Time
	// MaxResources bounds the tokens cached per identity: one per
	// resource, the least recently used dropped first (default 8; an
	// application asks for one, the vault).
	MaxResources int
	// VaultTimeout bounds one call of Source (default 30 s).
	VaultTimeout time.Duration
	// FailureHold is how long a failed call is answered from memory
	// before the vault is asked again for the same token (default 5 s):
	// a client retrying in a loop does not become a storm on the vault.
	FailureHold time.Duration
}

// Server serves the token endpoint. It is safe for concurrent use.
type Server struct {
	log   *slog.Logger
	opts  Options
	cache *cache

	mu  sync.RWMutex
	ids []*served
}

// served is an identity with its secret.
type served struct {
	Identity
	secret string
	sum    [sha256.Size]byte
}

// New returns a server with no identities (every request is refused
// until SetIdentities). Vault calls are made under ctx: they end when it
// is done.
func New(ctx context.Context, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxResources <= 0 {
		opts.MaxResources = DefaultMaxResources
	}
	if opts.VaultTimeout <= 0 {
		opts.VaultTimeout = DefaultVaultTimeout
	}
	if opts.FailureHold <= 0 {
		opts.FailureHold = DefaultFailureHold
	}
	return &Server{log: opts.Logger, opts: opts, cache: &cache{
		src: opts.Source, now: opts.Now, log: opts.Logger, timeout: opts.VaultTimeout,
		hold: opts.FailureHold, max: opts.MaxResources, base: ctx, entries: map[cacheKey]*entry{},
	}}
}

// SetIdentities makes ids the identities served. Each identity's env
// file is made to hold its secret: an identity served already keeps its
// secret (a changed or deleted file is put back); a new one takes the
// secret of a valid file there (one the agent wrote before it
// restarted), or a new secret. An identity whose file cannot be written
// is not served and its error is in the returned one; the others are.
// Tokens cached for identities no longer served are dropped.
func (s *Server) SetIdentities(ids []Identity) error {
	s.mu.RLock()
	old := map[string]*served{}
	for _, o := range s.ids {
		old[o.EnvFile] = o
	}
	s.mu.RUnlock()
	var next []*served
	var errs []error
	keep := map[string]bool{}
	for _, id := range ids {
		prev := ""
		if o := old[id.EnvFile]; o != nil && o.UID == id.UID {
			prev = o.secret
		}
		secret, why, err := ensureEnvFile(id.EnvFile, id.UID, prev)
		if err != nil {
			errs = append(errs, fmt.Errorf("identity of user %s: %s: %w", id.User, id.EnvFile, err))
			continue
		}
		switch why {
		case "":
		case whyCreated:
			s.log.Info("managed identity: env file written", "user", id.User, "env_file", id.EnvFile, "why", why)
		default:
			s.log.Warn("managed identity: env file written", "user", id.User, "env_file", id.EnvFile, "why", why)
		}
		next = append(next, &served{Identity: id, secret: secret, sum: sha256.Sum256([]byte(secret))})
		keep[objname.Canonical(id.ServicePrincipal)] = true
	}
	s.mu.Lock()
	s.ids = next
	s.mu.Unlock()
	s.cache.forget(keep)
	return errors.Join(errs...)
}

// Error is a refusal, as the managed-identity libraries read one: an
// HTTP status and a body {"error": Code, "error_description": Message}.
// Messages say what to fix and never hold a secret.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when not 0, is sent as Retry-After.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("midentity: %d %s: %s", e.Status, e.Code, e.Message)
}

// peerKey is the context key of a connection's peer.
type peerKey struct{}

// peer is who is at the other end of a Unix socket connection.
type peer struct {
	uid int
	err error
}

// tokenAnswer is the body of a token answer, as App Service writes it:
// expires_on is a string of Unix seconds, which both MSAL for Go and
// msal-node read.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresOn   string `json:"expires_on"`
	Resource    string `json:"resource"`
	TokenType   string `json:"token_type"`
	ClientID    string `json:"client_id,omitempty"`
}

// ServeHTTP answers GET /msi/token.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, req, e := s.check(r)
	if e != nil {
		s.refuse(w, r, id, e)
		return
	}
	t, err := s.cache.get(r.Context(), id.ServicePrincipal, req.Resource)
	if err != nil {
		s.refuse(w, r, id, vaultRefusal(err, id, req.Resource))
		return
	}
	s.log.Debug("managed identity: token handed out", "user", id.User, "service_principal", id.ServicePrincipal, "resource", req.Resource, "expires", t.expires)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := json.NewEncoder(w).Encode(tokenAnswer{AccessToken: t.value, ExpiresOn: strconv.FormatInt(t.expires.Unix(), 10),
		Resource: req.Resource, TokenType: t.tokenType, ClientID: id.ClientID}); err != nil {
		s.log.Debug("managed identity: write answer", "err", err)
	}
}

// check authenticates a request and parses it: the identity its header
// selects (nil when none does) and the request, or a refusal.
func (s *Server) check(r *http.Request) (*served, Request, *Error) {
	if r.URL.Path != Path {
		return nil, Request{}, &Error{Status: http.StatusNotFound, Code: "invalid_request", Message: fmt.Sprintf("no such endpoint %q: IDENTITY_ENDPOINT is http://ADDRESS%s", short(r.URL.Path), Path)}
	}
	if r.Method != http.MethodGet {
		return nil, Request{}, &Error{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Message: fmt.Sprintf("method %s: the token endpoint answers GET", short(r.Method))}
	}
	hs := r.Header.Values(HeaderName)
	switch {
	case len(hs) == 0 || hs[0] == "":
		return nil, Request{}, &Error{Status: http.StatusUnauthorized, Code: "unauthorized_client",
			Message: "the " + HeaderName + " header is missing: set IDENTITY_HEADER from the identity's env_file (systemd: EnvironmentFile=)"}
	case len(hs) > 1:
		return nil, Request{}, badRequest("invalid_request", "%s is given %d times: give it once", HeaderName, len(hs))
	}
	id := s.lookup(hs[0])
	if id == nil {
		return nil, Request{}, &Error{Status: http.StatusUnauthorized, Code: "unauthorized_client",
			Message: "the " + HeaderName + " header matches no identity of this agent: set IDENTITY_HEADER from the identity's current env_file, and restart the application after the file was replaced"}
	}
	if p, ok := r.Context().Value(peerKey{}).(peer); ok {
		switch {
		case p.err != nil:
			return id, Request{}, &Error{Status: http.StatusForbidden, Code: "unauthorized_client",
				Message: "the agent cannot tell which user is calling on its socket: use the loopback port instead"}
		case p.uid != id.UID:
			return id, Request{}, &Error{Status: http.StatusForbidden, Code: "unauthorized_client",
				Message: fmt.Sprintf("the identity of this header is for user %s (uid %d), and the caller runs as uid %d: run the application as %s", id.User, id.UID, p.uid, id.User)}
		}
	}
	req, err := ParseQuery(r.URL.RawQuery)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return id, Request{}, e
		}
		return id, Request{}, badRequest("invalid_request", "%v", err)
	}
	if req.SelectorParam != "" && !id.answersTo(req.Selector) {
		return id, Request{}, badRequest("invalid_request", "%s %q is not the identity of this header (%s): configure the credential without a user-assigned identity, or with %s",
			req.SelectorParam, short(req.Selector), id.describe(), id.names())
	}
	return id, req, nil
}

// lookup returns the identity whose secret is header, comparing the
// SHA-256 of each in constant time, and every identity's.
func (s *Server) lookup(header string) *served {
	sum := sha256.Sum256([]byte(header))
	s.mu.RLock()
	defer s.mu.RUnlock()
	var found *served
	for _, id := range s.ids {
		if subtle.ConstantTimeCompare(sum[:], id.sum[:]) == 1 {
			found = id
		}
	}
	return found
}

// answersTo reports whether a request naming a user-assigned identity
// by v names this one: its client id or its service principal's name
// (with or without "sp:"), in any letter case.
func (id *served) answersTo(v string) bool {
	for _, n := range id.nameList() {
		if strings.EqualFold(v, n) {
			return true
		}
	}
	return false
}

// nameList lists the names a request may name this identity by.
func (id *served) nameList() []string {
	var out []string
	if id.ClientID != "" {
		out = append(out, id.ClientID)
	}
	if id.ServicePrincipal != "" {
		out = append(out, id.ServicePrincipal, "sp:"+id.ServicePrincipal)
	}
	return out
}

// names says, for a message, what a request may name this identity by.
func (id *served) names() string {
	l := id.nameList()
	if len(l) == 0 {
		return "a client_id set on the identity in the agent's configuration"
	}
	q := make([]string, len(l))
	for i, n := range l {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, " or ")
}

// describe names the identity for a message.
func (id *served) describe() string {
	if id.ServicePrincipal == "" {
		return "user " + id.User + "'s identity, the agent's own"
	}
	return "user " + id.User + "'s identity, service principal " + id.ServicePrincipal
}

// vaultRefusal turns the failure of a vault call into a refusal.
func vaultRefusal(err error, id *served, resource string) *Error {
	who := "the agent itself"
	if id.ServicePrincipal != "" {
		who = "service principal " + id.ServicePrincipal
	}
	var ve *vaultclient.Error
	switch {
	case errors.As(err, &ve) && ve.Status == http.StatusBadRequest:
		return &Error{Status: http.StatusBadRequest, Code: "invalid_resource",
			Message: fmt.Sprintf("the vault refused resource %q: %s (ask for the vault's own URL, as the Key Vault client's challenge names it)", short(resource), ve.Message)}
	case errors.As(err, &ve) && ve.Status == http.StatusForbidden:
		return &Error{Status: http.StatusForbidden, Code: "unauthorized_client",
			Message: fmt.Sprintf("the vault does not let this agent get tokens for %s: %s", who, ve.Message)}
	case errors.As(err, &ve) && ve.Status == http.StatusNotFound:
		// 404 would make the libraries retry for seconds: it is a
		// configuration error, not a passing one.
		return &Error{Status: http.StatusBadRequest, Code: "invalid_request",
			Message: fmt.Sprintf("the vault does not know %s: %s (fix service_principal in the agent's configuration)", who, ve.Message)}
	case errors.As(err, &ve) && (ve.Status == http.StatusTooManyRequests || ve.Status >= 500):
		return &Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", RetryAfter: max(ve.RetryAfter, time.Second),
			Message: fmt.Sprintf("the vault is not answering tokens now (%d: %s): try again", ve.Status, ve.Message)}
	case errors.As(err, &ve):
		return &Error{Status: http.StatusBadGateway, Code: "temporarily_unavailable",
			Message: fmt.Sprintf("the vault refused the agent (%d %s: %s): see the agent's log and status", ve.Status, ve.Code, ve.Message)}
	case errors.Is(err, errExpired):
		return &Error{Status: http.StatusBadGateway, Code: "temporarily_unavailable", Message: "the vault answered an expired token: check that the clocks of this machine and the vault agree"}
	}
	return &Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", RetryAfter: time.Second,
		Message: fmt.Sprintf("the agent cannot reach the vault: %v", err)}
}

// refuse writes a refusal and logs it.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, id *served, e *Error) {
	attrs := []any{"status", e.Status, "why", e.Message, "remote", r.RemoteAddr}
	if id != nil {
		attrs = append(attrs, "user", id.User)
	}
	s.log.Info("managed identity: request refused", attrs...)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	if e.Status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodGet)
	}
	w.WriteHeader(e.Status)
	if err := json.NewEncoder(w).Encode(map[string]string{"error": e.Code, "error_description": e.Message}); err != nil {
		s.log.Debug("managed identity: write refusal", "err", err)
	}
}

// Serve serves on the listeners until ctx is done, then shuts down
// (waiting at most 5 s for requests in progress). Connections on a Unix
// socket listener carry the caller's uid, which must be the identity's
// user. It returns nil after ctx is done, or the first listener's error.
func (s *Server) Serve(ctx context.Context, ls ...net.Listener) error {
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.opts.VaultTimeout + 15*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if uc, ok := c.(*net.UnixConn); ok {
				uid, err := peerUID(uc)
				return context.WithValue(ctx, peerKey{}, peer{uid: uid, err: err})
			}
			return ctx
		},
	}
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- hs.Serve(l) }()
	}
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
		return nil
	case err := <-errc:
		hs.Close()
		return fmt.Errorf("managed identity: serve: %w", err)
	}
}

// ListenTCP listens on addr, which must be a loopback IP address and a
// port.
func ListenTCP(addr string) (net.Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("managed identity: listen %q: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("managed identity: listen %s: %w", addr, ErrNotLoopback)
	}
	l, err := net.Listen("tcp", ap.String())
	if err != nil {
		return nil, fmt.Errorf("managed identity: %w", err)
	}
	return l, nil
}

// ListenUnix listens on a Unix socket at path that every user may
// connect to (mode 0666: the header and the caller's uid decide). Its
// directory is made (0755) when missing and must be safe (see
// ErrUnsafeDir). A socket left at path by an agent that stopped is
// replaced; one another process answers on is ErrSocketInUse, and
// anything else at path is refused. The socket is removed when the
// listener is closed.
func ListenUnix(path string) (net.Listener, error) {
	if err := safeDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("managed identity: socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("managed identity: socket %s: something else is there (%v): remove it or choose another path", path, fi.Mode().Type())
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("managed identity: socket %s: %w", path, ErrSocketInUse)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("managed identity: remove stale socket: %w", err)
		}
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("managed identity: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("managed identity: chmod socket: %w", err)
	}
	return l, nil
}
