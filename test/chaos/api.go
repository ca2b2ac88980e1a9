package chaos

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/certvault/certvault/internal/client"
)

// Request is one HTTP request a client of the harness made, as it saw
// it. Every request is recorded, whatever it was for, so that the
// deadline and error-shape checks cover them all.
type Request struct {
	What   string // e.g. "secret-write", "secret-read", "cert-create"
	Node   string
	Method string
	Path   string
	Start  time.Time
	End    time.Time
	// Status is the HTTP status, 0 when no answer came (connection
	// refused or reset, timeout).
	Status int
	// Code and Message are the Key Vault error of a refusal.
	Code, Message string
	// Err is the transport error when Status is 0.
	Err string
	// Shape, when not empty, says how a refusal broke the documented
	// error shape ({"error":{"code","message"}}, Retry-After on 503).
	Shape string
	// Index is the X-Certvault-Index of a successful answer (0 when it
	// carried none).
	Index uint64
}

// Took is how long the client waited.
func (r Request) Took() time.Duration { return r.End.Sub(r.Start) }

func (r Request) String() string {
	s := fmt.Sprintf("%s %s %s via %s [%s .. %s, %s]", r.What, r.Method, r.Path, r.Node,
		r.Start.Format("15:04:05.000"), r.End.Format("15:04:05.000"), r.Took().Round(time.Millisecond))
	if r.Status == 0 {
		return s + ": no answer: " + r.Err
	}
	s += fmt.Sprintf(": %d", r.Status)
	if r.Code != "" {
		s += " " + r.Code + " " + strconv.Quote(r.Message)
	}
	return s
}

// API sends requests to the nodes with the root token and records them.
// It is safe for concurrent use.
type API struct {
	token string
	hc    *http.Client
	urls  map[string]string // node ID -> https://addr

	mu   sync.Mutex
	reqs []Request
	// slow, when set, is called for every recorded request that took
	// longer than slowAfter.
	slow      func(Request)
	slowAfter time.Duration
}

// OnSlow has f called for every request recorded from now on that takes
// longer than d.
func (a *API) OnSlow(d time.Duration, f func(Request)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.slow, a.slowAfter = f, d
}

// NewAPI builds an API for nodes (ID -> host:port) that trusts caFile.
func NewAPI(caFile, token string, nodes map[string]string) (*API, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("read CA: %s holds no certificate", caFile)
	}
	a := &API{token: token, urls: map[string]string{}, hc: &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: 64,
		// A connection to a node that was killed or paused must not be
		// reused for long: dial anew.
		IdleConnTimeout: 10 * time.Second,
	}}}
	for id, addr := range nodes {
		a.urls[id] = "https://" + addr
	}
	return a, nil
}

// Requests returns a copy of every request recorded so far.
func (a *API) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Request(nil), a.reqs...)
}

// Do sends one request to node and decodes a 2xx JSON answer into out
// (when not nil). It never retries. A refusal is returned as *client.Error
// (with the Key Vault code and message), a request without an answer as
// the transport error. timeout bounds the whole request. A request with
// an empty what is not recorded.
func (a *API) Do(ctx context.Context, what, node, method, path string, body, out any, timeout time.Duration) (Request, error) {
	r := Request{What: what, Node: node, Method: method, Path: path}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return r, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := a.urls[node] + path
	if !strings.HasPrefix(path, "/v1/") {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u += sep + "api-version=" + client.APIVersion
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return r, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	r.Start = time.Now()
	resp, err := a.hc.Do(req)
	var data []byte
	if err == nil {
		data, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	r.End = time.Now()
	if err != nil {
		r.Err = err.Error()
		a.record(r)
		return r, fmt.Errorf("%s %s via %s: %w", method, path, node, err)
	}
	r.Status = resp.StatusCode
	if idx := resp.Header.Get("X-Certvault-Index"); idx != "" {
		r.Index, _ = strconv.ParseUint(idx, 10, 64) // a bad one stays 0, which the checks report
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		switch err := json.Unmarshal(data, &e); {
		case err != nil:
			r.Shape = fmt.Sprintf("the body is not JSON (%v): %.80q", err, data)
		case e.Error == nil || e.Error.Code == "" || e.Error.Message == "":
			r.Shape = fmt.Sprintf("the body lacks error.code or error.message: %.120q", data)
		default:
			r.Code, r.Message = e.Error.Code, e.Error.Message
		}
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			r.Shape = strings.TrimPrefix(r.Shape+"; 503 without Retry-After", "; ")
		}
		a.record(r)
		return r, &client.Error{Status: r.Status, Code: r.Code, Message: r.Message}
	}
	a.record(r)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return r, fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return r, nil
}

func (a *API) record(r Request) {
	if r.What == "" {
		return // the monitor's own requests
	}
	a.mu.Lock()
	a.reqs = append(a.reqs, r)
	slow, after := a.slow, a.slowAfter
	a.mu.Unlock()
	if slow != nil && r.Took() > after {
		slow(r)
	}
}

// refusedForSure reports whether err is an answer that says the request
// certainly changed nothing: a connection refused, a 4xx, a 507 InsufficientStorage ("nothing
// was done"), or a 503 that says the write "was not applied".
func refusedForSure(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true // nothing listened: the request never reached a node
	}
	var ae *client.Error
	if !errors.As(err, &ae) {
		return false
	}
	switch {
	case ae.Status >= 400 && ae.Status < 500:
		return true
	case ae.Status == http.StatusInsufficientStorage && ae.Code == "InsufficientStorage":
		return true
	case ae.Status == http.StatusServiceUnavailable && strings.Contains(ae.Message, "was not applied"):
		return true
	}
	return false
}
