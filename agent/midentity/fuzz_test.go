package midentity

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		want        Request
		err         string
	}{
		{"azidentity", "api-version=2019-08-01&resource=https%3A%2F%2Fv%3A8443", Request{Resource: "https://v:8443"}, ""},
		{"msal-node extras", "api-version=2019-08-01&resource=https://v&xms_cc=cp1&token_sha256_to_refresh=ab", Request{Resource: "https://v"}, ""},
		{"scope", "api-version=2019-08-01&scope=https://v/.default", Request{Resource: "https://v"}, ""},
		{"resource with /.default", "api-version=2019-08-01&resource=https://v/.default", Request{Resource: "https://v"}, ""},
		{"both agree", "api-version=2019-08-01&resource=https://v&scope=https://v/.default", Request{Resource: "https://v"}, ""},
		{"client_id", "api-version=2019-08-01&resource=https://v&client_id=abc", Request{Resource: "https://v", SelectorParam: "client_id", Selector: "abc"}, ""},
		{"msi_res_id", "api-version=2019-08-01&resource=https://v&msi_res_id=/x/y", Request{Resource: "https://v", SelectorParam: "msi_res_id", Selector: "/x/y"}, ""},
		{"both disagree", "api-version=2019-08-01&resource=https://v&scope=https://w/.default", Request{}, `resource "https://v" and scope "https://w" disagree`},
		{"two scopes", "api-version=2019-08-01&scope=https://v/.default%20https://w/.default", Request{}, "scope holds several scopes"},
		{"twice", "api-version=2019-08-01&resource=a&resource=b", Request{}, `"resource" is given 2 times`},
		{"two selectors", "api-version=2019-08-01&resource=a&client_id=x&object_id=y", Request{}, "both client_id and object_id name an identity"},
		{"empty selector", "api-version=2019-08-01&resource=a&client_id=", Request{}, "client_id is empty"},
		{"control", "api-version=2019-08-01&resource=a%0Ab", Request{}, "resource holds control characters"},
		{"bad escape", "api-version=2019-08-01&resource=%zz", Request{}, "the query does not parse"},
		{"long", "api-version=2019-08-01&resource=" + strings.Repeat("a", 1025), Request{}, "resource is longer than 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseQuery(tc.query)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 || !strings.Contains(e.Message, tc.err) {
				t.Fatalf("got %+v, %v; want a 400 saying %q", got, err, tc.err)
			}
		})
	}
}

// FuzzParseQuery: ParseQuery never panics and answers the same twice; a
// refusal is a 400 *Error; an accepted query had api-version 2019-08-01,
// and its resource is non-empty, bounded, without control characters or
// a "/.default" suffix, and was in the query as resource or scope.
func FuzzParseQuery(f *testing.F) {
	f.Add("api-version=2019-08-01&resource=https%3A%2F%2Fvault.example%3A8443")
	f.Add("api-version=2019-08-01&scope=https://v/.default&client_id=c")
	f.Add("api-version=2019-08-01&resource=a&mi_res_id=%2Fsub%2Fx&xms_cc=cp1")
	f.Add("api-version=2018-02-01&resource=a&resource=b")
	f.Add("resource=/.default/.default&api-version=2019-08-01")
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := ParseQuery(raw)
		r2, err2 := ParseQuery(raw)
		if r != r2 || (err == nil) != (err2 == nil) || err != nil && err.Error() != err2.Error() {
			t.Fatalf("two parses differ: %+v %v / %+v %v", r, err, r2, err2)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 || e.Code == "" || e.Message == "" {
				t.Fatalf("refused with %v (%T), want a 400 *Error", err, err)
			}
			return
		}
		q, perr := url.ParseQuery(raw)
		if perr != nil || q.Get("api-version") != APIVersion {
			t.Fatalf("accepted %q: %v, api-version %q", raw, perr, q.Get("api-version"))
		}
		if r.Resource == "" || len(r.Resource) > maxResource || hasControl(r.Resource) || strings.HasSuffix(r.Resource, defaultScopeSuffix) {
			t.Fatalf("accepted resource %q", r.Resource)
		}
		if r.Resource != strings.TrimSuffix(q.Get("resource"), defaultScopeSuffix) && r.Resource != strings.TrimSuffix(q.Get("scope"), defaultScopeSuffix) {
			t.Fatalf("resource %q is neither the query's resource nor its scope", r.Resource)
		}
		if (r.SelectorParam == "") != (r.Selector == "") || r.SelectorParam != "" && q.Get(r.SelectorParam) != r.Selector {
			t.Fatalf("selector %q=%q", r.SelectorParam, r.Selector)
		}
	})
}

// FuzzParseEnvFile: an accepted file's secret is one NewSecret could
// have made, and formatting it again parses back to it; a refusal wraps
// ErrBadEnvFile and never quotes the file.
func FuzzParseEnvFile(f *testing.F) {
	f.Add([]byte(FormatEnvFile("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")))
	f.Add([]byte("; c\r\nIDENTITY_HEADER=0123456789abcdefghijklmnopqrstuvwxyzABCDEFG\r\n"))
	f.Add([]byte("IDENTITY_HEADER=x\nIDENTITY_HEADER=y\n"))
	f.Add([]byte("\n\n#\nPATH=/bin"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseEnvFile(data)
		if err != nil {
			if !errors.Is(err, ErrBadEnvFile) {
				t.Fatalf("refused with %v, want ErrBadEnvFile", err)
			}
			return
		}
		if !validSecret(s) {
			t.Fatalf("accepted secret %q", s)
		}
		if back, err := ParseEnvFile(FormatEnvFile(s)); err != nil || back != s {
			t.Fatalf("formatting %q again parses to %q, %v", s, back, err)
		}
	})
}

// FuzzTimes: whatever the vault answers, the times of a token are in
// order (fetched ≤ refreshAt ≤ usableUntil ≤ expires), its life is at
// most a day, and less than a third of it is left at refreshAt.
func FuzzTimes(f *testing.F) {
	f.Add(int64(1_800_000_000), int64(3600), int64(0))
	f.Add(int64(1_800_000_000), int64(0), int64(1_800_003_600))
	f.Add(int64(0), int64(1), int64(-1))
	f.Add(int64(-1<<62), int64(1<<62), int64(1<<62))
	f.Fuzz(func(t *testing.T, fetchedUnix, expiresIn, expiresOn int64) {
		fetched := time.Unix(fetchedUnix%(1<<40), 0)
		exp, ref, use, ok := Times(fetched, expiresIn, expiresOn)
		if !ok {
			if expiresIn > 0 {
				t.Fatalf("expires_in %d refused", expiresIn)
			}
			return
		}
		life := exp.Sub(fetched)
		if life <= 0 || life > maxLife {
			t.Fatalf("life %v", life)
		}
		if ref.Before(fetched) || use.Before(ref) || exp.Before(use) {
			t.Fatalf("out of order: fetched %v refresh %v usable %v expires %v", fetched, ref, use, exp)
		}
		if left := exp.Sub(ref); left*3 > life+time.Second {
			t.Fatalf("at refresh %v of %v is left, more than a third", left, life)
		}
	})
}
