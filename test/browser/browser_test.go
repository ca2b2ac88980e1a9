package browser

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"html/template"
	"image/png"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// site is the small web site the self-tests browse.
func site() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		// Taller than the window, so that a full-page screenshot shows.
		w.Write([]byte(`<!doctype html><html><head><title>Form</title>
<style>body { font-family: sans-serif; min-height: 2000px }</style></head>
<body><h1 id="title">Sign in</h1>
<form method="post" action="/submit">
<label>Name <input id="name" name="name"></label>
<label>Team <input id="team" name="team"></label>
<button id="send" type="submit">Send</button>
</form></body></html>`))
	})
	greeting := template.Must(template.New("").Parse(
		`<!doctype html><title>Hello</title><p id="greeting">Hello, {{.Name}} of {{.Team}}</p>`))
	// POST, then redirect, then GET: the shape of a form in the console.
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		q := url.Values{"name": {r.PostFormValue("name")}, "team": {r.PostFormValue("team")}}
		http.Redirect(w, r, "/hello?"+q.Encode(), http.StatusSeeOther)
	})
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		greeting.Execute(w, struct{ Name, Team string }{q.Get("name"), q.Get("team")})
	})
	mux.HandleFunc("GET /csp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "script-src 'none'")
		w.Write([]byte(`<!doctype html><title>CSP</title><p id="status">not run</p>
<script>document.getElementById("status").textContent = "ran"</script>`))
	})
	mux.HandleFunc("GET /csp-clean", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		w.Write([]byte(`<!doctype html><title>Clean</title><p id="status">clean</p>`))
	})
	mux.HandleFunc("GET /throw", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`<!doctype html><title>Throw</title><p id="status">thrown</p>
<script>throw new Error("boom from the page")</script>`))
	})
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s3cr3t", Path: "/",
			HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
		w.Write([]byte(`<!doctype html><title>In</title><p id="status">signed in</p>`))
	})
	return mux
}

// browse serves site() over TLS with httptest's certificate, starts a
// browser that trusts that certificate and opens a tab.
func browse(t *testing.T) (*httptest.Server, *Browser, context.Context) {
	srv := httptest.NewTLSServer(site())
	t.Cleanup(srv.Close)
	b := Start(t, TrustCA(writePEM(t, srv.Certificate())))
	return srv, b, b.NewTab(t)
}

// visit loads url and waits until the console messages of its page are
// recorded.
func visit(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if _, err := Navigate(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := SyncConsole(ctx); err != nil {
		t.Fatal(err)
	}
}

func writePEM(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFormAndScreenshot(t *testing.T) {
	srv, b, ctx := browse(t)

	if status, err := Navigate(ctx, srv.URL+"/"); err != nil || status != http.StatusOK {
		t.Fatalf("Navigate: got status %d, err %v; want 200", status, err)
	}
	if got, err := Text(ctx, "#title"); err != nil || got != "Sign in" {
		t.Fatalf("Text(#title) = %q, %v; want %q", got, err, "Sign in")
	}
	if err := SendKeys(ctx, "#name", "Ada"); err != nil {
		t.Fatal(err)
	}
	if err := SetValue(ctx, "#team", "Raft & co"); err != nil {
		t.Fatal(err)
	}

	shot := filepath.Join(t.TempDir(), "shots", "form.png")
	if err := Screenshot(ctx, shot); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the screenshot is not a valid PNG: %v", err)
	}
	if size := img.Bounds().Size(); size.X != WindowWidth || size.Y < 2000 {
		t.Errorf("screenshot is %dx%d; want %d wide and the whole 2000px page high", size.X, size.Y, WindowWidth)
	}

	if status, err := ClickAndWait(ctx, "#send"); err != nil || status != http.StatusOK {
		t.Fatalf("ClickAndWait(#send): got status %d, err %v; want 200", status, err)
	}
	if err := WaitVisible(ctx, "#greeting"); err != nil {
		t.Fatal(err)
	}
	if got, err := Text(ctx, "#greeting"); err != nil || got != "Hello, Ada of Raft & co" {
		t.Fatalf("Text(#greeting) = %q, %v; want %q", got, err, "Hello, Ada of Raft & co")
	}
	if err := SyncConsole(ctx); err != nil {
		t.Fatal(err)
	}
	if errs := b.ConsoleErrors(); len(errs) != 0 {
		t.Errorf("console errors on plain pages: %q", errs)
	}
}

func TestConsoleAndCSP(t *testing.T) {
	srv, b, ctx := browse(t)

	// A page that keeps to its policy reports nothing.
	visit(t, ctx, srv.URL+"/csp-clean")
	if v, errs := b.CSPViolations(), b.ConsoleErrors(); len(v) != 0 || len(errs) != 0 {
		t.Fatalf("a page within its policy: got violations %q and errors %q; want none", v, errs)
	}

	// An inline script under script-src 'none' is blocked and reported.
	visit(t, ctx, srv.URL+"/csp")
	v := b.CSPViolations()
	if len(v) != 1 || !strings.Contains(v[0], "script-src 'none'") {
		t.Fatalf("CSPViolations() = %q; want one naming script-src 'none'", v)
	}
	if errs := b.ConsoleErrors(); len(errs) != 1 || errs[0] != v[0] {
		t.Errorf("ConsoleErrors() = %q; want the violation %q alone", errs, v[0])
	}
	if got, err := Text(ctx, "#status"); err != nil || got != "not run" {
		t.Errorf("Text(#status) = %q, %v; want the blocked script not to have run", got, err)
	}

	// An uncaught exception is an error too, and it is not a violation.
	visit(t, ctx, srv.URL+"/throw")
	errs := b.ConsoleErrors()
	if len(errs) != 2 || !strings.Contains(errs[1], "boom from the page") {
		t.Errorf("ConsoleErrors() = %q; want the violation, then the exception", errs)
	}
	if v := b.CSPViolations(); len(v) != 1 {
		t.Errorf("CSPViolations() = %q; want still one", v)
	}
}

func TestCookiesAndTabs(t *testing.T) {
	srv, b, ctx := browse(t)

	if _, err := Navigate(ctx, srv.URL+"/login"); err != nil {
		t.Fatal(err)
	}
	cookies, err := Cookies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range cookies {
		if c.Name == "session" {
			session = c
		}
	}
	switch {
	case session == nil:
		t.Fatalf("no session cookie among %d cookies", len(cookies))
	case session.Value != "s3cr3t" || !session.HTTPOnly || !session.Secure || session.SameSite != network.CookieSameSiteStrict:
		t.Errorf("session cookie: value %q HttpOnly %v Secure %v SameSite %q; want s3cr3t, true, true, Strict",
			session.Value, session.HTTPOnly, session.Secure, session.SameSite)
	}

	// Another tab is another browser context: it has no session.
	other := b.NewTab(t)
	if _, err := Navigate(other, srv.URL+"/"); err != nil {
		t.Fatal(err)
	}
	cookies, err = Cookies(other)
	if err != nil {
		t.Fatal(err)
	}
	if len(cookies) != 0 {
		t.Errorf("a new tab sees cookies %v; want none", cookies)
	}
}

func TestWaitNamesSelector(t *testing.T) {
	srv, _, ctx := browse(t)
	if _, err := Navigate(ctx, srv.URL+"/"); err != nil {
		t.Fatal(err)
	}
	err := WaitVisible(WithStepTimeout(ctx, 2*time.Second), "#missing")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"#missing"`) ||
		!strings.Contains(err.Error(), "not done within 2s") {
		t.Fatalf("WaitVisible(#missing) = %v; want a step timeout naming the selector", err)
	}
	// The tab goes on with its own step timeout.
	if got, err := Text(ctx, "#title"); err != nil || got != "Sign in" {
		t.Fatalf("Text(#title) after a failed wait = %q, %v; want %q", got, err, "Sign in")
	}
	if _, err := Text(context.Background(), "#title"); !errors.Is(err, ErrNotTab) {
		t.Errorf("Text on a context that is no tab = %v; want ErrNotTab", err)
	}
}

// TestTrustCA checks that TrustCA trusts a CA and nothing more: a leaf the
// CA issued for the server's address loads; one it issued for another name,
// an expired one and one from another CA are refused with the browser's
// usual errors.
func TestTrustCA(t *testing.T) {
	ca, caKey := newCA(t, "trusted test CA")
	other, otherKey := newCA(t, "untrusted test CA")
	b := Start(t, TrustCA(writePEM(t, ca)))

	// The leaves are issued after the browser started.
	tomorrow, localhost := time.Now().Add(24*time.Hour), net.IPv4(127, 0, 0, 1)
	for _, tc := range []struct {
		name  string
		cert  tls.Certificate
		error string // the browser's net error; "" for a page that loads
	}{
		{"issued by the CA", newLeaf(t, ca, caKey, tomorrow, nil, localhost), ""},
		{"issued for another name", newLeaf(t, ca, caKey, tomorrow, []string{"wrong.example"}), "net::ERR_CERT_COMMON_NAME_INVALID"},
		{"expired", newLeaf(t, ca, caKey, time.Now().Add(-time.Minute), nil, localhost), "net::ERR_CERT_DATE_INVALID"},
		{"issued by another CA", newLeaf(t, other, otherKey, tomorrow, nil, localhost), "net::ERR_CERT_AUTHORITY_INVALID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(site())
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{tc.cert}}
			// The browser's refusals would be logged as handshake errors.
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.StartTLS()
			t.Cleanup(srv.Close)

			ctx := b.NewTab(t)
			status, err := Navigate(ctx, srv.URL+"/")
			if tc.error == "" {
				if err != nil || status != http.StatusOK {
					t.Fatalf("Navigate: got status %d, err %v; want 200", status, err)
				}
				return
			}
			var le *chromedp.LoadError
			if !errors.As(err, &le) || le.ErrorText != tc.error {
				t.Fatalf("Navigate: got err %v; want a page load error %s", err, tc.error)
			}
		})
	}
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func newLeaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, notAfter time.Time, names []string, ips ...net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		DNSNames: names, IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
