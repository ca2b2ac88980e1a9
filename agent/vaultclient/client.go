// Package vaultclient is the agent's side of the vault protocol over
// mutual TLS: the long poll for target versions, fetching a version's
// value, reporting outcomes, and access tokens for the managed-identity
// endpoint. It knows nothing of files, hooks or caching, and it imports
// nothing from the vault (the agent stays a static binary).
package vaultclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/internal/client"
)

// Error is an answer other than success from the vault.
type Error struct {
	Status int
	Code   string
	// Message is the vault's explanation.
	Message string
	// RetryAfter is the vault's Retry-After, 0 when it gave none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("vault answered %d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("vault answered %d: %s", e.Status, e.Message)
}

// Client talks to one vault URL. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client for vaultURL using tlsConf (the agent identity's
// configuration: client certificate and the vault CA).
func New(vaultURL string, tlsConf *tls.Config) (*Client, error) {
	u, err := url.Parse(vaultURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("vault URL %q: want https://HOST:PORT", vaultURL)
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 0, ForceAttemptHTTP2: true}
	return &Client{base: strings.TrimSuffix(vaultURL, "/"), hc: &http.Client{Transport: tr}}, nil
}

// Object is a bound object and the version the agent holds ("" none).
type Object struct {
	Kind, Name, Held string
}

// Target is the version the vault wants the agent to hold.
type Target struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Error   string `json:"error,omitempty"`
}

// WatchResult is the answer of a long poll.
type WatchResult struct {
	Objects []Target `json:"objects"`
	Index   uint64   `json:"index"`
	Changed bool     `json:"changed"`
}

// Watch holds a request open until a target differs from what the agent
// holds, or wait runs out (the answer then has Changed false). index is
// the Index of the previous answer (0 at first).
func (c *Client) Watch(ctx context.Context, objs []Object, index uint64, wait time.Duration) (*WatchResult, error) {
	q := url.Values{}
	for _, o := range objs {
		q.Add("o", o.Kind+"/"+o.Name+"@"+o.Held)
	}
	q.Set("wait", wait.Round(time.Second).String())
	q.Set("index", strconv.FormatUint(index, 10))
	ctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	defer cancel()
	var res WatchResult
	if err := c.do(ctx, http.MethodGet, "/v1/agents/watch?"+q.Encode(), nil, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Value is a secret version's value as the data plane gives it; for a
// certificate's managed secret, the key and chain (PEM or base64 PKCS#12
// per ContentType).
type Value struct {
	Value       string `json:"value"`
	ContentType string `json:"contentType"`
	ID          string `json:"id"`
}

// Fetch reads the secret NAME at version (the managed secret of a
// certificate of that name).
func (c *Client) Fetch(ctx context.Context, name, version string) (*Value, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var v Value
	if err := c.do(ctx, http.MethodGet, "/secrets/"+url.PathEscape(name)+"/"+url.PathEscape(version)+"?api-version=7.6", nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Report is an outcome the agent sends; see the vault's API docs.
type Report struct {
	Object   string           `json:"object"`
	Binding  string           `json:"binding,omitempty"`
	Version  string           `json:"version"`
	Result   string           `json:"result"`
	Detail   string           `json:"detail,omitempty"`
	Serial   string           `json:"serial,omitempty"`
	Previous string           `json:"previous,omitempty"`
	Hook     *HookReport      `json:"hook,omitempty"`
	Check    *CheckReport     `json:"check,omitempty"`
	Timings  map[string]int64 `json:"timings,omitempty"`
	Drift    []string         `json:"drift,omitempty"`
}

// HookReport is a reload command's outcome.
type HookReport struct {
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// CheckReport is a health check's outcome.
type CheckReport struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// SendReport posts an outcome.
func (c *Client) SendReport(ctx context.Context, r Report) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return c.do(ctx, http.MethodPost, "/v1/agents/report", r, nil)
}

// TokenTimeout bounds one token request.
const TokenTimeout = 30 * time.Second

// AccessToken is the vault's answer to a token request. AccessToken is a
// secret: it must never be logged or put in an error.
type AccessToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	// ExpiresOn is when the token expires, in Unix seconds by the vault's
	// clock.
	ExpiresOn int64 `json:"expires_on"`
	// ExpiresIn is the token's lifetime in seconds when the vault
	// answered; the agent's clock may differ from the vault's, so this is
	// what to count from.
	ExpiresIn int64 `json:"expires_in"`
	// Resource is the resource as the request gave it.
	Resource string `json:"resource"`
}

// tokenRequest is the body of POST /v1/agents/token.
type tokenRequest struct {
	Resource         string `json:"resource"`
	ServicePrincipal string `json:"service_principal,omitempty"`
}

// Token asks the vault for an access token for resource (the vault's own
// URL; the vault answers 400 for any other) on behalf of the service
// principal named servicePrincipal, or of the agent itself when that is
// empty. The vault answers 403 when the agent may not act as that
// service principal and 404 when there is none; those come back as an
// *Error. The request is bounded by TokenTimeout.
func (c *Client) Token(ctx context.Context, servicePrincipal, resource string) (*AccessToken, error) {
	ctx, cancel := context.WithTimeout(ctx, TokenTimeout)
	defer cancel()
	var tok AccessToken
	if err := c.do(ctx, http.MethodPost, "/v1/agents/token", tokenRequest{Resource: resource, ServicePrincipal: servicePrincipal}, &tok); err != nil {
		return nil, err
	}
	switch {
	case tok.AccessToken == "":
		return nil, errors.New("token answer: no access_token")
	case tok.ExpiresIn <= 0 && tok.ExpiresOn <= 0:
		return nil, errors.New("token answer: neither expires_in nor expires_on")
	}
	return &tok, nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, strings.SplitN(path, "?", 2)[0], err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var ce *client.Error
		errors.As(client.ParseError(resp.StatusCode, data), &ce)
		e := &Error{Status: resp.StatusCode, Code: ce.Code, Message: ce.Message}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}

// RetryAfter returns the delay an error asks for (0 when none).
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
