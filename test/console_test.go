package test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/certvault/certvault/test/testcluster"
)

// consoleClient is a browser-like client of the console: a cookie jar,
// redirects not followed, the vault's CA trusted.
type consoleClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newConsoleClient(t *testing.T, c *testcluster.Cluster, n *testcluster.Node) *consoleClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := c.HTTPClient()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &consoleClient{t: t, base: n.URL(), hc: hc}
}

// do sends a request as the console's own page would (same origin) unless
// origin says otherwise, and returns the status, Location and body.
func (cc *consoleClient) do(method, path string, form url.Values, origin string) (int, string, string, http.Header) {
	cc.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, cc.base+path, body)
	if err != nil {
		cc.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == http.MethodPost {
		if origin == "" {
			origin = cc.base
		}
		req.Header.Set("Origin", origin)
	}
	resp, err := cc.hc.Do(req)
	if err != nil {
		cc.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		cc.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Location"), string(b), resp.Header
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF value of the page's forms.
func csrf(t *testing.T, page string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf field in the page:\n%s", page)
	}
	return m[1]
}

// signIn signs cc in with tok and returns the CSRF value of its session.
func (cc *consoleClient) signIn(tok string) string {
	cc.t.Helper()
	_, _, page, _ := cc.do(http.MethodGet, "/ui/login", nil, "")
	status, loc, body, h := cc.do(http.MethodPost, "/ui/login", url.Values{"token": {tok}, "csrf": {csrf(cc.t, page)}}, "")
	if status != http.StatusSeeOther || loc != "/ui/certificates" {
		cc.t.Fatalf("sign in: %d %q\n%s", status, loc, body)
	}
	ck := h.Get("Set-Cookie")
	for _, want := range []string{"cv_session=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/ui/"} {
		if !strings.Contains(strings.Join(h.Values("Set-Cookie"), "\n"), want) {
			cc.t.Errorf("session cookie %q lacks %s", ck, want)
		}
	}
	_, _, page, _ = cc.do(http.MethodGet, "/ui/certificates", nil, "")
	return csrf(cc.t, page)
}

// TestConsoleHTTP (issue 19): the console's sessions, access and defences
// over plain HTTP (the browser tests drive the same in chromium): sign-in
// with a token makes a session cookie; pages carry a strict CSP; a scoped
// principal sees only its certificates and gets 403 for the others;
// forms without the session's CSRF token or from another origin are
// refused; sign-out and revoking the token end the session; a bad token
// does not sign in.
func TestConsoleHTTP(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	dir := t.TempDir()
	for _, name := range []string{"web-shop", "web-blog", "payroll"} {
		pol := filepath.Join(dir, name+".json")
		mustCLI(t, c, "cert", "policy", "new", "--subject", "CN="+name+".example.com", "--issuer", "Self", "--out", pol)
		mustCLI(t, c, "cert", "create", name, "--policy", pol, "--wait")
	}
	officer, officerID := createToken(t, c, "--name", "web-team", "--ttl", "1h", "--role", "Certificates Officer", "--scope", "/certificates/web-")

	anon := newConsoleClient(t, c, n)
	if status, loc, _, _ := anon.do(http.MethodGet, "/ui/certificates", nil, ""); status != http.StatusSeeOther || loc != "/ui/login" {
		t.Errorf("the inventory without a session: %d %q, want a redirect to /ui/login", status, loc)
	}
	_, _, page, h := anon.do(http.MethodGet, "/ui/login", nil, "")
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q, want script-src 'self', frame-ancestors 'none' and nothing inline", csp)
	}
	if status, _, body, _ := anon.do(http.MethodPost, "/ui/login", url.Values{"token": {"cvt.nope.nope"}, "csrf": {csrf(t, page)}}, ""); status != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Errorf("sign in with a bad token: %d, want 401 saying it is not valid", status)
	}
	_, _, page, _ = anon.do(http.MethodGet, "/ui/login", nil, "")
	if status, _, _, _ := anon.do(http.MethodPost, "/ui/login", url.Values{"token": {officer}, "csrf": {csrf(t, page)}}, "https://evil.example"); status != http.StatusForbidden {
		t.Errorf("a cross-site sign-in: %d, want 403", status)
	}

	web := newConsoleClient(t, c, n)
	webCSRF := web.signIn(officer)
	status, _, body, _ := web.do(http.MethodGet, "/ui/certificates", nil, "")
	if status != http.StatusOK || !strings.Contains(body, "web-shop") || !strings.Contains(body, "web-blog") || strings.Contains(body, "payroll") {
		t.Errorf("the officer's inventory: %d, want web-shop and web-blog, not payroll:\n%s", status, body)
	}
	if status, _, body, _ := web.do(http.MethodGet, "/ui/certificates?q=blog", nil, ""); status != http.StatusOK || !strings.Contains(body, "web-blog") || strings.Contains(body, "web-shop") {
		t.Errorf("search q=blog: %d, want web-blog only", status)
	}
	if status, _, body, _ := web.do(http.MethodGet, "/ui/certificates/web-shop", nil, ""); status != http.StatusOK || !strings.Contains(body, "CN=web-shop.example.com") {
		t.Errorf("web-shop's page: %d\n%s", status, body)
	}
	if status, _, _, _ := web.do(http.MethodGet, "/ui/certificates/payroll", nil, ""); status != http.StatusForbidden {
		t.Errorf("payroll's page for the web officer: %d, want 403", status)
	}
	if status, _, _, _ := web.do(http.MethodGet, "/ui/timeline", nil, ""); status != http.StatusOK {
		t.Errorf("the timeline: %d, want 200", status)
	}
	if status, _, _, _ := web.do(http.MethodPost, "/ui/logout", url.Values{"csrf": {"forged"}}, ""); status != http.StatusForbidden {
		t.Errorf("sign-out without the session's CSRF token: %d, want 403", status)
	}
	if status, _, _, _ := web.do(http.MethodPost, "/ui/logout", url.Values{"csrf": {webCSRF}}, "https://evil.example"); status != http.StatusForbidden {
		t.Errorf("sign-out from another origin: %d, want 403", status)
	}
	if status, loc, _, _ := web.do(http.MethodPost, "/ui/logout", url.Values{"csrf": {webCSRF}}, ""); status != http.StatusSeeOther || loc != "/ui/login" {
		t.Errorf("sign-out: %d %q", status, loc)
	}
	if status, loc, _, _ := web.do(http.MethodGet, "/ui/certificates", nil, ""); status != http.StatusSeeOther || loc != "/ui/login" {
		t.Errorf("the inventory after sign-out: %d %q, want the sign-in page", status, loc)
	}

	// Revoking the token ends its sessions.
	again := newConsoleClient(t, c, n)
	again.signIn(officer)
	mustCLI(t, c, "token", "revoke", officerID)
	if status, loc, _, _ := again.do(http.MethodGet, "/ui/certificates", nil, ""); status != http.StatusSeeOther || loc != "/ui/login" {
		t.Errorf("the inventory after the token was revoked: %d %q, want the sign-in page", status, loc)
	}
	// A service principal signs in with its client id and secret, and
	// its session ends when the principal is deleted.
	sp := spJSON(t, mustCLI(t, c, "sp", "create", "web-app", "--role", "Certificates Officer", "--scope", "/certificates/web-", "-o", "json"))
	spc := newConsoleClient(t, c, n)
	_, _, page, _ = spc.do(http.MethodGet, "/ui/login", nil, "")
	if status, _, _, _ := spc.do(http.MethodPost, "/ui/login", url.Values{"client_id": {sp.ClientID}, "client_secret": {"x" + sp.ClientSecret}, "csrf": {csrf(t, page)}}, ""); status != http.StatusUnauthorized {
		t.Errorf("sign in with a wrong client secret: %d, want 401", status)
	}
	_, _, page, _ = spc.do(http.MethodGet, "/ui/login", nil, "")
	if status, loc, _, _ := spc.do(http.MethodPost, "/ui/login", url.Values{"client_id": {sp.ClientID}, "client_secret": {sp.ClientSecret}, "csrf": {csrf(t, page)}}, ""); status != http.StatusSeeOther || loc != "/ui/certificates" {
		t.Errorf("sign in as a service principal: %d %q", status, loc)
	}
	if status, _, body, _ := spc.do(http.MethodGet, "/ui/certificates", nil, ""); status != http.StatusOK || !strings.Contains(body, "sp:web-app") || !strings.Contains(body, "web-shop") || strings.Contains(body, "payroll") {
		t.Errorf("the service principal's inventory: %d\n%s", status, body)
	}
	mustCLI(t, c, "sp", "delete", "web-app")
	if status, loc, _, _ := spc.do(http.MethodGet, "/ui/certificates", nil, ""); status != http.StatusSeeOther || loc != "/ui/login" {
		t.Errorf("the inventory after the service principal was deleted: %d %q, want the sign-in page", status, loc)
	}

	// The audit trail names the session's principal.
	if out := mustCLI(t, c, "audit", "list", "--principal", "web-team"); !strings.Contains(out, "/certificates/payroll") || !strings.Contains(out, "denied") {
		t.Errorf("audit records of the console do not show web-team's denied read of payroll:\n%s", out)
	}
}

// TestConsoleActions (issue 19): the everyday actions through the
// console's forms, at a follower (the leader serves them): create from
// the policy form, renew now, disable, set the contacts; refused outside
// the principal's scope and without the CSRF token.
func TestConsoleActions(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	var follower *testcluster.Node
	for _, n := range c.Nodes {
		if n != c.Leader() {
			follower = n
		}
	}
	officer, _ := createToken(t, c, "--name", "web-team", "--ttl", "1h", "--role", "Certificates Officer", "--scope", "/certificates/web-")
	web := newConsoleClient(t, c, follower)
	tok := web.signIn(officer)

	form := url.Values{"csrf": {tok}, "name": {"web-new"}, "subject": {"CN=new.example.com"}, "dns": {"new.example.com www.new.example.com"},
		"issuer": {"Self"}, "key": {"EC-P256"}, "months": {"3"}, "renew_pct": {"70"}}
	if status, loc, body, _ := web.do(http.MethodPost, "/ui/certificates/new", form, ""); status != http.StatusSeeOther || loc != "/ui/certificates/web-new" {
		t.Fatalf("create web-new from the form: %d %q\n%s", status, loc, body)
	}
	_, _, page, _ := web.do(http.MethodGet, "/ui/certificates/web-new", nil, "")
	if !strings.Contains(page, "CN=new.example.com") || !strings.Contains(page, "www.new.example.com") || !strings.Contains(page, "AutoRenew at 70% of its life") {
		t.Errorf("web-new's page does not show its subject, names and lifetime action:\n%s", page)
	}
	form.Set("name", "payroll-new")
	if status, _, _, _ := web.do(http.MethodPost, "/ui/certificates/new", form, ""); status != http.StatusForbidden {
		t.Errorf("create payroll-new as the web officer: %d, want 403", status)
	}
	form.Set("name", "web-bad")
	form.Set("months", "0")
	if status, _, body, _ := web.do(http.MethodPost, "/ui/certificates/new", form, ""); status != http.StatusBadRequest || !strings.Contains(body, "months from 1 to 120") {
		t.Errorf("a bad validity: %d, want 400 saying what to fix", status)
	}

	if status, _, _, _ := web.do(http.MethodPost, "/ui/certificates/web-new/renew", url.Values{"csrf": {"forged"}}, ""); status != http.StatusForbidden {
		t.Errorf("renew without the CSRF token: %d, want 403", status)
	}
	if status, _, _, _ := web.do(http.MethodPost, "/ui/certificates/web-new/renew", url.Values{"csrf": {tok}}, ""); status != http.StatusSeeOther {
		t.Errorf("renew web-new: %d, want 303", status)
	}
	_, _, page, _ = web.do(http.MethodGet, "/ui/certificates/web-new", nil, "")
	if n := strings.Count(page, `<th scope="row"><code>`); n != 2 {
		t.Errorf("web-new has %d versions after renew now, want 2", n)
	}
	if status, _, _, _ := web.do(http.MethodPost, "/ui/certificates/web-new/enabled", url.Values{"csrf": {tok}, "enabled": {"false"}}, ""); status != http.StatusSeeOther {
		t.Errorf("disable web-new: %d, want 303", status)
	}
	if out := mustCLI(t, c, "cert", "get", "web-new", "-o", "json"); !strings.Contains(out, `"enabled": false`) {
		t.Errorf("web-new after disable:\n%s", out)
	}

	// Contacts: the officer may read them but not set them; root may.
	if status, _, _, _ := web.do(http.MethodPost, "/ui/contacts", url.Values{"csrf": {tok}, "contacts": {"pki@example.com PKI team"}}, ""); status != http.StatusForbidden {
		t.Errorf("set contacts as the web officer: %d, want 403", status)
	}
	admin := newConsoleClient(t, c, follower)
	atok := admin.signIn(c.Token)
	if status, _, _, _ := admin.do(http.MethodPost, "/ui/contacts", url.Values{"csrf": {atok}, "contacts": {"pki@example.com PKI team\noncall@example.com"}}, ""); status != http.StatusSeeOther {
		t.Errorf("set contacts as root: %d, want 303", status)
	}
	if out := mustCLI(t, c, "contacts", "list", "-o", "json"); !strings.Contains(out, "pki@example.com") || !strings.Contains(out, "oncall@example.com") {
		t.Errorf("contacts after the form:\n%s", out)
	}
}

// TestConsoleTimeline (issue 19): the expiry timeline draws one mark per
// lane and day, names the first few certificates of a mark and links to
// the inventory's search for the rest, and folds the lanes past its
// limit into "(others)", so that its page stays small however many
// certificates expire.
func TestConsoleTimeline(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	cl := c.Client(n)
	const certs = 45 // more than the timeline's 40 lanes, one tag value each
	for i := range certs {
		name := fmt.Sprintf("tl-%02d", i)
		st, resp := dpDo(t, cl, http.MethodPost, "/certificates/"+name+"/create?api-version=7.5", map[string]any{
			"policy": map[string]any{"x509_props": map[string]any{"subject": "CN=" + name + ".example.com", "validity_months": 1},
				"issuer": map[string]any{"name": "Self"}},
			"tags": map[string]string{"lane": fmt.Sprintf("l%02d", i)}})
		if st != http.StatusAccepted {
			t.Fatalf("create %s: %d %v", name, st, resp)
		}
	}
	web := newConsoleClient(t, c, n)
	web.signIn(c.Token)

	status, _, body, _ := web.do(http.MethodGet, "/ui/timeline", nil, "")
	if status != http.StatusOK || !strings.Contains(body, fmt.Sprintf("by issuer: %d certificates", certs)) {
		t.Fatalf("the timeline by issuer: %d\n%s", status, body)
	}
	// The certificates were made within a minute: one day, or two when
	// midnight (UTC) fell between the first and the last.
	marks := strings.Count(body, "<circle ")
	if marks < 1 || marks > 2 {
		t.Errorf("by issuer: %d marks for one lane of certificates made within a minute, want 1 or 2", marks)
	}
	// A mark names its first five certificates by name.
	if !strings.Contains(body, `href="/ui/certificates/tl-00"`) || (marks == 1 && strings.Contains(body, `href="/ui/certificates/tl-44"`)) {
		t.Errorf("by issuer: the mark does not name tl-00, or names tl-44 (past its first five):\n%s", body)
	}
	more := regexp.MustCompile(`<a href="(/ui/certificates\?[^"]+)">and (\d+) more</a>`).FindStringSubmatch(body)
	if more == nil {
		t.Fatalf("by issuer: no \"and N more\" link to the inventory:\n%s", body)
	}
	link := html.UnescapeString(more[1])
	if !strings.Contains(link, "issuer=Self") || !strings.Contains(link, "expiring=") {
		t.Errorf("the \"more\" link %q, want a search by issuer Self and expiry", link)
	}
	if status, _, inv, _ := web.do(http.MethodGet, link, nil, ""); status != http.StatusOK || !strings.Contains(inv, `href="/ui/certificates/tl-44"`) {
		t.Errorf("the \"more\" link's inventory (%s): %d, want it to list tl-44", link, status)
	}

	status, _, body, _ = web.do(http.MethodGet, "/ui/timeline?by=tag", nil, "")
	if status != http.StatusOK {
		t.Fatalf("the timeline by tag: %d", status)
	}
	lanes := strings.Count(body, `<text x="4" `)
	if lanes != 40 || !strings.Contains(body, ">(others)</text>") {
		t.Errorf("by tag: %d lanes, want 40 with one of them (others)", lanes)
	}
}
