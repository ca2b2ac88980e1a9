package client

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// newTestClient is a client of srv, trusting its certificate.
func newTestClient(t *testing.T, srv *httptest.Server) *Client {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Addr: srv.URL, Token: "t", CACert: ca, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReadRetriedOn503: a GET answered 503 with Retry-After is asked again
// and gets the answer that follows; a write is not repeated, and a 503
// without Retry-After is returned as it is.
func TestReadRetriedOn503(t *testing.T) {
	var gets, puts, plain atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/plain":
			plain.Add(1)
			http.Error(w, `{"error":{"code":"Unavailable","message":"no"}}`, http.StatusServiceUnavailable)
		case r.Method == http.MethodGet && gets.Add(1) <= 2:
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"error":{"code":"NoLeader","message":"electing"}}`, http.StatusServiceUnavailable)
		case r.Method == http.MethodGet:
			w.Write([]byte(`{"value":"v"}`))
		default:
			puts.Add(1)
			w.Header().Set("Retry-After", "0")
			http.Error(w, `{"error":{"code":"NoLeader","message":"electing"}}`, http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv)
	ctx := context.Background()

	var out struct{ Value string }
	if err := c.Do(ctx, http.MethodGet, "/v1/x", nil, &out); err != nil || out.Value != "v" {
		t.Fatalf("GET after two 503s: %v %q, want the value", err, out.Value)
	}
	if n := gets.Load(); n != 3 {
		t.Fatalf("GET asked %d times, want 3", n)
	}

	var ae *Error
	if err := c.Do(ctx, http.MethodPut, "/v1/x", map[string]string{"value": "w"}, nil); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
		t.Fatalf("PUT answered 503: got %v, want the 503", err)
	}
	if n := puts.Load(); n != 1 {
		t.Fatalf("PUT sent %d times, want once", n)
	}

	if err := c.Do(ctx, http.MethodGet, "/plain", nil, nil); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
		t.Fatalf("GET answered 503 without Retry-After: got %v, want the 503", err)
	}
	if n := plain.Load(); n != 1 {
		t.Fatalf("GET without Retry-After asked %d times, want once", n)
	}
}

// TestReadRetriesBounded: a vault that keeps answering 503 gets the read
// asked readRetries+1 times in all, then the 503 is returned.
func TestReadRetriesBounded(t *testing.T) {
	var gets atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"error":{"code":"NoLeader","message":"electing"}}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := newTestClient(t, srv)
	var ae *Error
	if err := c.Do(context.Background(), http.MethodGet, "/v1/x", nil, nil); !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != "NoLeader" {
		t.Fatalf("GET always answered 503: got %v, want the last 503", err)
	}
	if n := gets.Load(); n != readRetries+1 {
		t.Fatalf("GET asked %d times, want %d", n, readRetries+1)
	}
}

func TestRetryAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "1": time.Second, "120": maxRetryWait, "soon": time.Second, "-3": time.Second} {
		if got := retryAfter(http.Header{"Retry-After": {in}}); got != want {
			t.Errorf("Retry-After %q: got %v, want %v", in, got, want)
		}
	}
}
