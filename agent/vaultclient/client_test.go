package vaultclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// tokenVault answers POST /v1/agents/token with answer (a status and a
// body), recording the requests' bodies.
func tokenVault(t *testing.T, status int, body string, got *[]map[string]any) *Client {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/agents/token" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "unexpected request "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		var in map[string]any
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusTeapot)
			return
		}
		*got = append(*got, in)
		w.Header().Set("Content-Type", "application/json")
		if status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	c, err := New(srv.URL, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []map[string]any
	c := tokenVault(t, 200, `{"access_token":"at","token_type":"Bearer","expires_on":1800003600,"expires_in":3600,"resource":"https://v:8443"}`, &got)
	tok, err := c.Token(ctx, "billing", "https://v:8443")
	if err != nil {
		t.Fatal(err)
	}
	if *tok != (AccessToken{AccessToken: "at", TokenType: "Bearer", ExpiresOn: 1800003600, ExpiresIn: 3600, Resource: "https://v:8443"}) {
		t.Fatalf("got %+v", tok)
	}
	if _, err := c.Token(ctx, "", "https://v:8443"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["service_principal"] != "billing" || got[0]["resource"] != "https://v:8443" {
		t.Fatalf("the vault got %v", got)
	}
	if _, ok := got[1]["service_principal"]; ok {
		t.Fatalf("the agent's own identity sent service_principal: %v", got[1])
	}

	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"refused", 403, `{"error":{"code":"Forbidden","message":"agent may not act as sp:billing"}}`, "vault answered 403 Forbidden: agent may not act as sp:billing"},
		{"busy", 503, `{"error":{"code":"ServiceUnavailable","message":"no leader"}}`, "vault answered 503 ServiceUnavailable: no leader"},
		{"no token", 200, `{"token_type":"Bearer","expires_in":3600}`, "token answer: no access_token"},
		{"no expiry", 200, `{"access_token":"secret-at"}`, "token answer: neither expires_in nor expires_on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tokenVault(t, tc.status, tc.body, &got)
			_, err := c.Token(ctx, "billing", "https://v:8443")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-at") {
				t.Fatalf("the error holds the token: %v", err)
			}
			var ve *Error
			if tc.status != 200 && (!errors.As(err, &ve) || ve.Status != tc.status) {
				t.Fatalf("got %T %v, want an *Error with status %d", err, err, tc.status)
			}
			if tc.status == 503 && RetryAfter(err) != 7*time.Second {
				t.Fatalf("Retry-After %v, want 7s", RetryAfter(err))
			}
		})
	}
}
