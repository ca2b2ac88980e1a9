// Package client is the HTTP client the certvault CLI (and the tests and
// benchmarks) use to talk to a certvaultd API: TLS with the vault's CA,
// the bearer token, the api-version on data-plane paths, and Key Vault's
// error shape turned into Go errors. It holds no business logic.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// APIVersion is the Key Vault api-version sent on data-plane requests.
const APIVersion = "7.6"

// Config says where the vault is and how to authenticate. The zero value
// of each field falls back to its environment variable.
type Config struct {
	// Addr is the vault's URL. Default $CERTVAULT_ADDR, else
	// https://127.0.0.1:8443.
	Addr string
	// Token is the bearer token. Default $CERTVAULT_TOKEN.
	Token string
	// CACert is a PEM file of CAs to trust. Default $CERTVAULT_CACERT, else
	// the system roots.
	CACert string
	// Timeout bounds each request. Default 60s.
	Timeout time.Duration
}

// Client talks to one vault. It is safe for concurrent use.
type Client struct {
	addr  string
	token string
	http  *http.Client
}

// Error is an error answered by the vault.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("the vault answered %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, e.Code)
}

// ErrNoToken means no token was configured.
var ErrNoToken = errors.New("client: no token: set CERTVAULT_TOKEN or pass --token")

// New builds a client from cfg and the environment.
func New(cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		cfg.Addr = os.Getenv("CERTVAULT_ADDR")
	}
	if cfg.Addr == "" {
		cfg.Addr = "https://127.0.0.1:8443"
	}
	if cfg.Token == "" {
		cfg.Token = os.Getenv("CERTVAULT_TOKEN")
	}
	if cfg.CACert == "" {
		cfg.CACert = os.Getenv("CERTVAULT_CACERT")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	if !strings.HasPrefix(cfg.Addr, "https://") {
		return nil, fmt.Errorf("vault address %q: must start with https://", cfg.Addr)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", cfg.CACert)
		}
		tlsConf.RootCAs = pool
	}
	return &Client{
		addr:  strings.TrimSuffix(cfg.Addr, "/"),
		token: strings.TrimSpace(cfg.Token),
		http: &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			TLSClientConfig: tlsConf, MaxIdleConnsPerHost: 256, ForceAttemptHTTP2: true,
		}},
	}, nil
}

// Addr returns the vault URL.
func (c *Client) Addr() string { return c.addr }

// Raw sends a request and returns the response whatever its status; the
// caller closes the body. path may carry a query. Data-plane paths (not
// under /v1/ or the health paths) get the api-version.
func (c *Client) Raw(ctx context.Context, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	if c.token == "" {
		return nil, ErrNoToken
	}
	u := c.addr + path
	if !strings.HasPrefix(path, "/v1/") && !strings.Contains(path, "api-version=") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u += sep + "api-version=" + APIVersion
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	// A read the vault cannot answer for a moment (503 with Retry-After:
	// no leader during an election, a follower catching up) is asked
	// again a few times; a read changes nothing, so asking again is safe.
	// Writes are never repeated here: the caller decides.
	for try := 0; err == nil && try < readRetries && retryableRead(req, resp); try++ {
		resp.Body.Close()
		select {
		case <-time.After(retryAfter(resp.Header)):
		case <-ctx.Done():
			return nil, fmt.Errorf("%s %s: %w", method, c.addr, ctx.Err())
		}
		resp, err = c.http.Do(req.Clone(ctx))
	}
	if err != nil {
		return nil, c.connError(method, err)
	}
	return resp, nil
}

// readRetries is how many times a read answered 503 with Retry-After is
// asked again; with maxRetryWait that is at most 10 s more.
const (
	readRetries  = 5
	maxRetryWait = 2 * time.Second
)

// retryableRead reports whether resp is the vault saying "not now" to a
// request without a body that changes nothing.
func retryableRead(req *http.Request, resp *http.Response) bool {
	return (req.Method == http.MethodGet || req.Method == http.MethodHead) && req.Body == nil &&
		resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != ""
}

// retryAfter is how long to wait before asking again: the answer's
// Retry-After in seconds, bounded by maxRetryWait (the vault's hint is
// for clients that give up less easily), 1 s when it is not a number.
func retryAfter(h http.Header) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After")))
	if err != nil || secs < 0 {
		return time.Second
	}
	return min(time.Duration(secs)*time.Second, maxRetryWait)
}

// ConnError is a request that got no answer from the vault because the
// connection failed: nothing listens at the address, or the vault's TLS
// certificate is not trusted. Its message says what to do; Err is the
// cause.
type ConnError struct {
	// Addr is the vault URL the client was pointed at.
	Addr string
	// Hint says what the failure means and what to do about it.
	Hint string
	// Err is the underlying error, without the URL (the url.Error that
	// net/http returns is unwrapped).
	Err error
}

func (e *ConnError) Error() string { return e.Hint }

func (e *ConnError) Unwrap() error { return e.Err }

// connError turns the error of an HTTP round trip into one that names the
// vault's address once and, for the failures a newcomer meets first (a
// vault that is not running, a CA that is not configured), says what to
// do.
func (c *Client) connError(method string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // net/http's wrapper repeats the whole URL
	}
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var op *net.OpError
	switch {
	case errors.As(err, &unknownCA):
		reason := "certificate signed by unknown authority"
		if unknownCA.Cert != nil {
			reason += fmt.Sprintf(" %q", unknownCA.Cert.Issuer.String())
		}
		return &ConnError{Addr: c.addr, Err: err, Hint: fmt.Sprintf(
			"the vault's certificate is not trusted: set CERTVAULT_CACERT to its ca.pem (%s: %s)", c.addr, reason)}
	case errors.As(err, &badHost):
		return &ConnError{Addr: c.addr, Err: err, Hint: fmt.Sprintf(
			"the vault's certificate is not valid for %s: use an address it names (%s)",
			c.addr, strings.TrimPrefix(badHost.Error(), "x509: "))}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &ConnError{Addr: c.addr, Err: err, Hint: fmt.Sprintf("nothing answers at %s: is certvaultd running?", c.addr)}
	case errors.As(err, &op) && op.Op == "dial":
		return &ConnError{Addr: c.addr, Err: err, Hint: fmt.Sprintf("cannot reach %s: %v", c.addr, op.Err)}
	}
	return fmt.Errorf("%s %s: %w", method, c.addr, err)
}

// Do sends in (if not nil) as JSON and decodes a 2xx answer into out (if
// not nil). Any other status is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.DoResponse(ctx, method, path, in, out)
	if resp != nil {
		resp.Body.Close()
	}
	return err
}

// DoResponse is Do that also returns the response (body already read and
// closed) for its headers.
func (c *Client) DoResponse(ctx context.Context, method, path string, in, out any) (*http.Response, error) {
	var body io.Reader
	h := http.Header{}
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(data)
		h.Set("Content-Type", "application/json")
	}
	resp, err := c.Raw(ctx, method, path, body, h)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp, ParseError(resp.StatusCode, data)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp, fmt.Errorf("decode answer: %w", err)
		}
	}
	return resp, nil
}

// ParseError turns a non-2xx body into *Error.
func ParseError(status int, body []byte) error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return &Error{Status: status, Code: e.Error.Code, Message: e.Error.Message}
	}
	return &Error{Status: status, Message: strings.TrimSpace(string(body))}
}
