package leaderpass

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/front"
)

// TestLeaderPassFailures: the answer to a request the leader could not be
// asked or did not answer is 503 with Retry-After, and says "may or may
// not have been applied" only when the request went out.
func TestLeaderPassFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + l.Addr().String()
	l.Close()

	release := make(chan struct{})
	expects := make(chan string, 4)
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		expects <- r.Header.Get("Expect")
		io.ReadAll(r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hanging.Close() })

	const deadline = 300 * time.Millisecond
	frontOf := func(target string) *httptest.Server {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		proxy := NewProxy(u, http.DefaultTransport, slog.New(slog.NewTextHandler(io.Discard, nil)), func(w http.ResponseWriter, r *http.Request, err error) {
			front.WriteError(w, Failure(r, err))
		})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := BufferBody(r); err != nil {
				front.WriteError(w, err)
				return
			}
			p := Start(r.Context(), deadline)
			defer p.Stop()
			p.Leader = "leader1"
			proxy.ServeHTTP(w, r.WithContext(p.Context()))
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	for _, tc := range []struct {
		name, target, want, notWant string
	}{
		{"connection refused", closedURL, "was not applied", "may or may not"},
		{"no answer", hanging.URL, "did not answer within 300ms; the request may or may not have been applied", "was not applied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := frontOf(tc.target)
			req, err := http.NewRequest(http.MethodPut, srv.URL+"/secrets/x", strings.NewReader(`{"value":"v"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Expect", "100-continue")
			start := time.Now()
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("decode the answer: %v", err)
			}
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || e.Error.Code != "ServiceUnavailable" {
				t.Errorf("got %d %s Retry-After %q, want 503 ServiceUnavailable with Retry-After", resp.StatusCode, e.Error.Code, resp.Header.Get("Retry-After"))
			}
			if !strings.Contains(e.Error.Message, tc.want) || strings.Contains(e.Error.Message, tc.notWant) {
				t.Errorf("message %q: want it to say %q and not %q", e.Error.Message, tc.want, tc.notWant)
			}
			if took := time.Since(start); took > 20*deadline+5*time.Second {
				t.Errorf("answered after %v; the deadline is %v", took, deadline)
			}
		})
	}
	select {
	case e := <-expects:
		if e != "" {
			t.Errorf("the leader got Expect: %q; the follower answers 100-continue itself", e)
		}
	default:
		t.Error("the hanging leader never got the request")
	}
}
