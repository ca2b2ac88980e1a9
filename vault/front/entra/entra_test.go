package entra

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzTokenForm: no token request body makes the form reader panic; what
// it returns is the known parameters, each given exactly once.
func FuzzTokenForm(f *testing.F) {
	f.Add("grant_type=client_credentials&client_id=a&client_secret=b&scope=https%3A%2F%2Fv%2F.default")
	f.Add("client_id=a&client_id=b")
	f.Add("%zz=1")
	f.Add("")
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/t/oauth2/v2.0/token", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		params, oerr := readTokenForm(r)
		if oerr != nil {
			if oerr.Code != "invalid_request" {
				t.Fatalf("refused %q as %s, want invalid_request", body, oerr.Code)
			}
			return
		}
		parsed, err := url.ParseQuery(body)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", body, err)
		}
		for k, v := range params {
			if len(parsed[k]) != 1 || parsed[k][0] != v {
				t.Fatalf("%q: %s=%q, but the body gives %q", body, k, v, parsed[k])
			}
		}
	})
}

// TestTokenFormContentType: a token request that is not a form is refused
// before anything is read.
func TestTokenFormContentType(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/t/oauth2/v2.0/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
	r.Header.Set("Content-Type", "application/json")
	if _, oerr := readTokenForm(r); oerr == nil || oerr.Code != "invalid_request" || !strings.Contains(oerr.Description, "x-www-form-urlencoded") {
		t.Fatalf("a JSON body: %v, want invalid_request naming the form type", oerr)
	}
}
