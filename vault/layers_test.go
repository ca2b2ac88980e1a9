package vault

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/core"
)

// TestCoreFilesHaveNoHTTP: core code (files named core_*.go, issue 17)
// imports no net/http: it decides what may happen to objects and
// returns *Error, and the fronts translate requests and answers.
func TestCoreFilesHaveNoHTTP(t *testing.T) {
	files, err := filepath.Glob("core_*.go")
	if err != nil {
		t.Fatalf("list core files: %v", err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		n++
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, imp := range parsed.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatalf("%s: import %s: %v", f, imp.Path.Value, err)
			}
			if p == "net/http" || strings.HasPrefix(p, "net/http/") {
				t.Errorf("%s imports %s: core code must not know HTTP; move the HTTP part to the front (the handler)", f, p)
			}
		}
	}
	if n == 0 {
		t.Fatal("no core_*.go files: the test looks in the wrong directory")
	}
}

// TestCoreErrorAnswers: each kind of core error is answered with its HTTP
// status, its code and message unchanged, in the Key Vault error shape,
// with Retry-After on 503 and 507; a wrapped one too.
func TestCoreErrorAnswers(t *testing.T) {
	for _, tc := range []struct {
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{core.BadParameter("policy.issuer.name", "issuer name is required"), http.StatusBadRequest, "BadParameter", ""},
		{core.NotFound("SecretNotFound", "secret x not found"), http.StatusNotFound, "SecretNotFound", ""},
		{fmt.Errorf("set secret: %w", core.Conflict("Conflict", "secret x is deleted")), http.StatusConflict, "Conflict", ""},
		{core.Forbidden("managed by a certificate"), http.StatusForbidden, "Forbidden", ""},
		{&core.Error{Kind: core.KindUnavailable, Code: "ServiceUnavailable", Message: "no leader"}, http.StatusServiceUnavailable, "ServiceUnavailable", "1"},
		{&core.Error{Kind: core.KindUnavailable, Code: "AuditUnavailable", Message: "trail", RetryAfter: 3 * time.Second}, http.StatusServiceUnavailable, "AuditUnavailable", "3"},
		{&core.Error{Kind: core.KindInsufficientStorage, Code: "InsufficientStorage", Message: "full"}, http.StatusInsufficientStorage, "InsufficientStorage", "5"},
		{core.Internal(errors.New("boom")), http.StatusInternalServerError, "InternalError", ""},
		{&core.Error{Kind: core.ErrorKind(99), Code: "Odd", Message: "unknown kind"}, http.StatusInternalServerError, "Odd", ""},
	} {
		rec := httptest.NewRecorder()
		writeError(rec, tc.err)
		body := rec.Body.String()
		if rec.Code != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) || rec.Header().Get("Retry-After") != tc.retryAfter {
			t.Errorf("%v: got %d %s Retry-After %q, want %d code %s Retry-After %q", tc.err, rec.Code, body, rec.Header().Get("Retry-After"), tc.status, tc.code, tc.retryAfter)
		}
		if strings.Contains(body, "boom") {
			t.Errorf("%v: the answer shows the cause: %s", tc.err, body)
		}
	}
}
