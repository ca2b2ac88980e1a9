package vault

import (
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/vault/front"

	"github.com/certvault/certvault/vault/core"
)

// layers ranks the packages of the vault (issue 17, DESIGN.md): a
// package imports only packages of a lower rank, so the domain never
// imports a front or the node, and no front imports another.
var layers = map[string]int{
	"raftstore": 0, "vault/access": 0, "vault/audit": 0, "vault/certs": 0, "vault/acme": 0,
	"vault/acme/solver": 0, "vault/renewal": 0, "vault/notify": 0, "vault/hsm": 0,
	"vault/barrier":  1,
	"vault/core":     2,
	"vault/issuance": 3, "vault/fleet": 3, "vault/identity": 3, "vault/catalog": 3,
	"vault/front":       4,
	"vault/front/kvapi": 5, "vault/front/v1api": 5, "vault/front/entra": 5, "vault/front/console": 5, "vault/leaderpass": 5,
	"vault": 6,
}

// Layer kinds: the domain knows no wire, the fronts no raft.
var (
	domainPackages = []string{"vault/barrier", "vault/core", "vault/issuance", "vault/fleet", "vault/identity", "vault/catalog"}
	frontPackages  = []string{"vault/front", "vault/front/kvapi", "vault/front/v1api", "vault/front/entra", "vault/front/console"}
)

// maxPackageLines is "about 4,000" lines of non-test Go per package.
const maxPackageLines = 4300

const modulePath = "github.com/certvault/certvault/"

// vaultPackage is one package's imports and size, read from its files.
type vaultPackage struct {
	imports map[string]bool
	lines   int
	doc     bool
}

// readPackage parses the non-test Go files of dir (relative to the
// module root).
func readPackage(t *testing.T, dir string) (vaultPackage, bool) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", dir, "*.go"))
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	vp := vaultPackage{imports: map[string]bool{}}
	found := false
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		found = true
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		vp.lines += strings.Count(string(src), "\n")
		parsed, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		if parsed.Doc != nil && strings.HasPrefix(parsed.Doc.Text(), "Package "+parsed.Name.Name+" ") {
			vp.doc = true
		}
		for _, imp := range parsed.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				t.Fatalf("%s: import %s: %v", f, imp.Path.Value, err)
			}
			vp.imports[p] = true
		}
	}
	return vp, found
}

// TestLayers: every package under vault/ has its place in layers, imports
// only downward, says in a doc comment what it is for, and holds at most
// about 4,000 lines; the domain imports no net/http and the fronts no
// raftstore.
func TestLayers(t *testing.T) {
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			dirs = append(dirs, filepath.ToSlash(filepath.Join("vault", path)))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk vault/: %v", err)
	}
	pkgs := map[string]vaultPackage{}
	for _, dir := range append(dirs, "raftstore") {
		if dir == "vault/." {
			dir = "vault"
		}
		vp, ok := readPackage(t, dir)
		if !ok {
			continue
		}
		pkgs[dir] = vp
		rank, placed := layers[dir]
		if !placed {
			t.Errorf("%s is not in layers: give the new package its rank (and DESIGN.md its place in the picture)", dir)
			continue
		}
		if !vp.doc {
			t.Errorf("%s has no package doc comment saying what it is for", dir)
		}
		if vp.lines > maxPackageLines && strings.HasPrefix(dir, "vault") {
			t.Errorf("%s holds %d lines of non-test Go, more than about 4,000: split it", dir, vp.lines)
		}
		for imp := range vp.imports {
			local, ok := strings.CutPrefix(imp, modulePath)
			if !ok {
				continue
			}
			r, known := layers[local]
			if known && r >= rank {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go one way, from the node through the fronts to the domain and raftstore", dir, rank, local, r)
			}
		}
	}
	for _, dir := range domainPackages {
		for imp := range pkgs[dir].imports {
			if imp == "net/http" || strings.HasPrefix(imp, "net/http/") {
				t.Errorf("%s imports %s: the domain knows no wire; the HTTP part belongs to a front", dir, imp)
			}
		}
	}
	for _, dir := range frontPackages {
		if pkgs[dir].imports[modulePath+"raftstore"] {
			t.Errorf("%s imports raftstore: a front reaches state only through the domain (front.Env)", dir)
		}
	}
	for _, dir := range append(domainPackages, frontPackages...) {
		if _, ok := pkgs[dir]; !ok {
			t.Errorf("%s has no Go files: the test looks in the wrong place", dir)
		}
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
		front.WriteError(rec, tc.err)
		body := rec.Body.String()
		if rec.Code != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) || rec.Header().Get("Retry-After") != tc.retryAfter {
			t.Errorf("%v: got %d %s Retry-After %q, want %d code %s Retry-After %q", tc.err, rec.Code, body, rec.Header().Get("Retry-After"), tc.status, tc.code, tc.retryAfter)
		}
		if strings.Contains(body, "boom") {
			t.Errorf("%v: the answer shows the cause: %s", tc.err, body)
		}
	}
}
