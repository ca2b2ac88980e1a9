package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestConnectionMessages checks the two failures a newcomer meets first:
// nothing listening at the address, and a vault whose CA the CLI was not
// given. Each message says what to do and names the address once.
func TestConnectionMessages(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		addr := "https://" + ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatalf("close listener: %v", err)
		}
		code, _, stderr := runCLI(t, "cert", "get", "web", "--addr", addr, "--token", "x")
		want := "certvault: nothing answers at " + addr + ": is certvaultd running?\n"
		if code != 1 || stderr != want {
			t.Errorf("cert get with nothing listening: exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			t.Errorf("the request reached the server over an untrusted connection: %s %s", r.Method, r.URL)
		}))
		defer srv.Close()
		t.Setenv("CERTVAULT_CACERT", "")
		code, _, stderr := runCLI(t, "cert", "get", "web", "--addr", srv.URL, "--token", "x")
		want := "certvault: the vault's certificate is not trusted: set CERTVAULT_CACERT to its ca.pem (" + srv.URL + ": certificate signed by unknown authority"
		if code != 1 || !strings.HasPrefix(stderr, want) || strings.Count(stderr, srv.URL) != 1 || strings.Count(stderr, "\n") != 1 {
			t.Errorf("cert get against an untrusted vault: exit %d, stderr %q; want exit 1 and one line starting %q that names the address once", code, stderr, want)
		}
	})
}
