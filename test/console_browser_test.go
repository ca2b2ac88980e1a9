package test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/certvault/certvault/test/browser"
	"github.com/certvault/certvault/test/testcluster"
	vaultfleet "github.com/certvault/certvault/vault/fleet"
)

// screenshotDir is where the browser tests write their screenshots: a
// temporary directory, or docs/console/ with UPDATE_DOCS=1 (the ones
// docs/console.md shows).
func screenshotDir(t *testing.T) string {
	if os.Getenv("UPDATE_DOCS") == "1" {
		return filepath.Join("..", "docs", "console")
	}
	return t.TempDir()
}

// must returns a function that returns a browser step's value, failing
// the test on its error: must[int](t)(browser.Navigate(ctx, url)).
func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// noErr fails the test on a browser step's error.
func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestConsoleBrowser (issue 19, item 5) drives the console in a real
// headless Chromium: sign in with the keyboard; search the inventory;
// open a certificate and see the agent that holds it; a scoped principal
// sees only its certificates and gets 403 for another's page; the
// session cookie's flags; the CSP blocks a script injected into the page;
// a cross-site form post neither acts nor signs the person out;
// sign-out ends the session on the server. Screenshots of the pages are
// written (docs/console/ with UPDATE_DOCS=1).
func TestConsoleBrowser(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	dir := t.TempDir()
	// Lifetimes within the timeline's 90 days (web-blog's within its red
	// 14), so that its screenshot shows something.
	for _, cert := range []struct{ name, tag, validity string }{{"web-shop", "team=shop", "60d"}, {"web-blog", "team=blog", "10d"}, {"payroll", "team=hr", "30d"}} {
		pol := filepath.Join(dir, cert.name+".json")
		mustCLI(t, c, "cert", "policy", "new", "--subject", "CN="+cert.name+".example.com", "--san", cert.name+".example.com", "--issuer", "Self",
			"--validity", cert.validity, "--out", pol)
		mustCLI(t, c, "cert", "create", cert.name, "--policy", pol, "--tag", cert.tag, "--wait")
	}
	officer, _ := createToken(t, c, "--name", "web-team", "--ttl", "1h", "--role", "Certificates Officer", "--scope", "/certificates/web-")

	// A real agent installs web-shop, so that its page names a holder.
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:web", "--scope", "/certificates/web-shop")
	agentBin := testcluster.AgentBinary(t)
	tok, fp, _ := agentJoinToken(t, c, "--group", "web")
	state := filepath.Join(dir, "state")
	joinAgent(t, agentBin, n.URL(), tok, fp, state, "--name", "shop-vm-1")
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("vault: %s\nca_file: %s\nstate_dir: %s\ncertificates:\n  - name: web-shop\n    dir: %s\n    files: {cert: cert.pem, key: key.pem}\n",
		n.URL(), c.CACert, state, filepath.Join(dir, "tls"))), 0o644); err != nil {
		t.Fatal(err)
	}
	startAgent(t, agentBin, cfg)
	probe := newConsoleClient(t, c, n)
	probe.signIn(c.Token)
	waitUntil(t, 60*time.Second, "web-shop's page names the agent holding it", func() (bool, string) {
		_, _, page, _ := probe.do(http.MethodGet, "/ui/certificates/web-shop", nil, "")
		return strings.Contains(page, "shop-vm-1"), "not yet"
	})

	shots := screenshotDir(t)
	b := browser.Start(t, browser.TrustCA(c.CACert))
	ctx := b.NewTab(t)

	// Sign in with the keyboard only: type the token, press Enter.
	if status := must[int](t)(browser.Navigate(ctx, n.URL()+"/ui/")); status != http.StatusOK {
		t.Fatalf("/ui/ without a session: %d, want the sign-in page", status)
	}
	noErr(t, browser.WaitVisible(ctx, "#token"))
	noErr(t, browser.Screenshot(ctx, filepath.Join(shots, "sign-in.png")))
	noErr(t, browser.SendKeys(ctx, "#token", officer+"\r"))
	if err := browser.WaitVisible(ctx, "#inventory"); err != nil {
		body, terr := browser.Text(ctx, "body")
		t.Fatalf("after signing in: %v\nthe page says (%v):\n%s", err, terr, body)
	}
	inv := must[string](t)(browser.Text(ctx, "#inventory"))
	if !strings.Contains(inv, "web-shop") || !strings.Contains(inv, "web-blog") || strings.Contains(inv, "payroll") {
		t.Errorf("the officer's inventory:\n%s\nwant web-shop and web-blog, not payroll", inv)
	}
	noErr(t, browser.Screenshot(ctx, filepath.Join(shots, "inventory.png")))

	// The session cookie's flags, as the browser keeps them.
	cookies := must[[]*network.Cookie](t)(browser.Cookies(ctx))
	var session string
	for _, ck := range cookies {
		if ck.Name == "cv_session" {
			session = ck.Value
			if !ck.HTTPOnly || !ck.Secure || ck.SameSite != "Strict" {
				t.Errorf("cv_session: HttpOnly %v Secure %v SameSite %q, want true, true, Strict", ck.HTTPOnly, ck.Secure, ck.SameSite)
			}
		}
	}
	if session == "" {
		t.Fatalf("no cv_session cookie after sign-in: %v", cookies)
	}

	// Search.
	noErr(t, browser.SetValue(ctx, "#q", "blog"))
	if status := must[int](t)(browser.ClickAndWait(ctx, "form.search button")); status != http.StatusOK {
		t.Fatalf("search: %d", status)
	}
	if inv := must[string](t)(browser.Text(ctx, "#inventory")); !strings.Contains(inv, "web-blog") || strings.Contains(inv, "web-shop") {
		t.Errorf("search q=blog:\n%s\nwant web-blog only", inv)
	}

	// A certificate and the agent holding it.
	must[int](t)(browser.Navigate(ctx, n.URL()+"/ui/certificates/web-shop"))
	if holders := must[string](t)(browser.Text(ctx, "#versions")); !strings.Contains(holders, "shop-vm-1") {
		t.Errorf("web-shop's versions:\n%s\nwant the agent shop-vm-1 holding the current one", holders)
	}
	noErr(t, browser.Screenshot(ctx, filepath.Join(shots, "certificate.png")))

	// Another's certificate: 403.
	if status := must[int](t)(browser.Navigate(ctx, n.URL()+"/ui/certificates/payroll")); status != http.StatusForbidden {
		t.Errorf("payroll's page for the web officer: %d, want 403", status)
	}
	if msg := must[string](t)(browser.Text(ctx, "#error-message")); !strings.Contains(msg, "may not") {
		t.Errorf("the 403 page says %q", msg)
	}

	must[int](t)(browser.Navigate(ctx, n.URL()+"/ui/timeline"))
	noErr(t, browser.WaitVisible(ctx, "#timeline"))
	if tl := must[string](t)(browser.Text(ctx, "#timeline-table")); !strings.Contains(tl, "web-shop") || !strings.Contains(tl, "web-blog") || strings.Contains(tl, "payroll") {
		t.Errorf("the timeline's table:\n%s\nwant web-shop and web-blog, not payroll", tl)
	}
	noErr(t, browser.Screenshot(ctx, filepath.Join(shots, "timeline.png")))

	// The console's own pages raise no error and no CSP violation; a
	// script injected into one is blocked by the CSP.
	noErr(t, browser.SyncConsole(ctx))
	if v := b.CSPViolations(); len(v) != 0 {
		t.Errorf("the console's pages violate their own CSP: %v", v)
	}
	for _, e := range b.ConsoleErrors() {
		// The 403 page for payroll is an answer this test asked for.
		if !strings.Contains(e, "status of 403") || !strings.Contains(e, "/ui/certificates/payroll") {
			t.Errorf("the console's pages logged an error: %s", e)
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](
		`(() => { const s = document.createElement("script"); s.textContent = "window.pwned = 1"; document.body.appendChild(s); })()`)); err != nil {
		t.Fatal(err)
	}
	noErr(t, browser.SyncConsole(ctx))
	ran, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.pwned === 1`))
	if err != nil {
		t.Fatal(err)
	}
	if ran || len(b.CSPViolations()) == 0 {
		t.Errorf("an injected inline script ran=%v, CSP violations %v: want it blocked and reported", ran, b.CSPViolations())
	}

	// A cross-site page posts the sign-out form: refused, and the person
	// stays signed in.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!DOCTYPE html><form id="f" method="post" action="%s/ui/logout"><input name="csrf" value="forged"></form>
<script>document.getElementById("f").submit()</script>`, n.URL())
	}))
	t.Cleanup(evil.Close)
	must[int](t)(browser.Navigate(ctx, evil.URL))
	noErr(t, browser.WaitVisible(ctx, "#error-message"))
	must[int](t)(browser.Navigate(ctx, n.URL()+"/ui/certificates"))
	if err := browser.WaitVisible(ctx, "#inventory"); err != nil {
		t.Errorf("after a cross-site post of the sign-out form, the person is no longer signed in: %v", err)
	}

	// Sign-out ends the session on the server, not only in the browser.
	if status := must[int](t)(browser.ClickAndWait(ctx, "form.signout button")); status != http.StatusOK {
		t.Errorf("sign-out: %d", status)
	}
	noErr(t, browser.WaitVisible(ctx, "#token"))
	replay := newConsoleClient(t, c, n)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, n.URL()+"/ui/certificates", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "cv_session", Value: session})
	resp, err := replay.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Errorf("the signed-out session's cookie, replayed: %d %q, want a redirect to the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestConsoleBrowserRollout (issue 19, item 5): in Chromium, the rollouts
// page follows a rollout as agents report, without a reload (the page's
// own script, fed by the server-sent events); the fleet page shows the
// agents. Screenshots of both are written.
func TestConsoleBrowserRollout(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	agentBin := testcluster.AgentBinary(t)
	dir := t.TempDir()
	pol := filepath.Join(dir, "www.json")
	mustCLI(t, c, "cert", "policy", "new", "--subject", "CN=www.example.com", "--issuer", "Self", "--out", pol)
	mustCLI(t, c, "cert", "create", "www", "--policy", pol, "--wait")
	v1 := currentSerial(t, c, "www")
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:fleet", "--scope", "/certificates/www")
	tok, fp, _ := agentJoinToken(t, c, "--group", "fleet", "--uses", "2")
	var agents [2]*fleetAgent
	var cfgs [2]string
	var procs [2]*agentProc
	for i := range agents {
		base := filepath.Join(dir, fmt.Sprintf("vm-%d", i))
		fa := &fleetAgent{dir: filepath.Join(base, "tls")}
		state := filepath.Join(base, "state")
		fa.id = joinAgent(t, agentBin, n.URL(), tok, fp, state, "--name", fmt.Sprintf("web-vm-%d", i))
		cfgs[i] = consoleAgent(t, c, state, fa.dir, "www", "true")
		procs[i] = startAgent(t, agentBin, cfgs[i])
		agents[i] = fa
	}
	for i, fa := range agents {
		waitFor(t, 60*time.Second, fmt.Sprintf("web-vm-%d installs www", i), func() bool { return fa.serial() == v1 })
	}
	// A rollout in two waves whose first wave's agent is down: it waits.
	mustCLI(t, c, "rollout", "set", "www", "--waves", "1,100%")
	waveOf, sizes := vaultfleet.AssignWaves("certificates/www", []string{agents[0].id, agents[1].id}, []string{"1", "100%"})
	if len(sizes) != 2 {
		t.Fatalf("waves %v, want two", sizes)
	}
	first := 0
	if waveOf[agents[0].id] != 0 {
		first = 1
	}
	procs[first].kill()
	mustCLI(t, c, "cert", "create", "www", "--policy", pol, "--wait")
	waitFor(t, 30*time.Second, "the rollout of www runs", func() bool {
		return strings.Contains(mustCLI(t, c, "rollout", "status", "www"), "running")
	})

	shots := screenshotDir(t)
	b := browser.Start(t, browser.TrustCA(c.CACert))
	ctx := b.NewTab(t)
	must[int](t)(browser.Navigate(ctx, n.URL()+"/ui/login"))
	noErr(t, browser.SendKeys(ctx, "#token", c.Token+"\r"))
	noErr(t, browser.WaitVisible(ctx, "#inventory"))

	must[int](t)(browser.Navigate(ctx, n.URL()+"/ui/fleet"))
	noErr(t, browser.WaitVisible(ctx, "#fleet"))
	if fleet := must[string](t)(browser.Text(ctx, "#fleet")); !strings.Contains(fleet, "web-vm-0") || !strings.Contains(fleet, "web-vm-1") {
		t.Errorf("the fleet page:\n%s\nwant both agents", fleet)
	}
	noErr(t, browser.Screenshot(ctx, filepath.Join(shots, "fleet.png")))

	const id = "rollout-certificates-www"
	must[int](t)(browser.Navigate(ctx, n.URL()+"/ui/rollouts"))
	noErr(t, browser.WaitVisible(ctx, "#"+id))
	if healthy := must[string](t)(browser.Text(ctx, "#"+id+"-wave-1-healthy")); strings.TrimSpace(healthy) != "0" {
		t.Fatalf("wave 1 healthy before the agent is back: %q, want 0", healthy)
	}
	// A mark on this page: still there after the update means the page
	// was updated in place, not reloaded.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`)); err != nil {
		t.Fatal(err)
	}
	noErr(t, browser.Screenshot(ctx, filepath.Join(shots, "rollouts.png")))

	startAgent(t, agentBin, cfgs[first])
	waitUntil(t, 90*time.Second, "the page shows both waves healthy and the rollout done", func() (bool, string) {
		status, err1 := browser.Text(ctx, "#"+id+"-status")
		w1, err2 := browser.Text(ctx, "#"+id+"-wave-1-healthy")
		w2, err3 := browser.Text(ctx, "#"+id+"-wave-2-healthy")
		if err := errors.Join(err1, err2, err3); err != nil {
			return false, err.Error()
		}
		return strings.TrimSpace(status) == "done" && strings.TrimSpace(w1) == "1" && strings.TrimSpace(w2) == "1",
			fmt.Sprintf("status %q, healthy %q and %q", status, w1, w2)
	})
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.sameDocument === true`))
	if err != nil {
		t.Fatal(err)
	}
	if !same {
		t.Error("the rollouts page was reloaded to show the progress; want it updated in place by its events")
	}
	noErr(t, browser.SyncConsole(ctx))
	if v := b.CSPViolations(); len(v) != 0 {
		t.Errorf("the live pages violate their CSP: %v", v)
	}
}
