package test

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/bindtest"
	"github.com/certvault/certvault/test/pebbletest"
	"github.com/certvault/certvault/test/testcluster"
	"github.com/go-acme/lego/v5/acme/api"
)

// acmeEnv is a vault (1 or 3 nodes) and a Pebble that requires External
// Account Binding with one known key.
type acmeEnv struct {
	c        *testcluster.Cluster
	peb      *pebbletest.Server
	kid, mac string
	macFile  string
	dir      string
}

func newACMEEnv(t *testing.T, nodes int) *acmeEnv {
	t.Helper()
	return newACMEEnvDNS(t, nodes, "")
}

// newACMEEnvDNS is newACMEEnv with Pebble validating against dnsServer.
func newACMEEnvDNS(t *testing.T, nodes int, dnsServer string) *acmeEnv {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw)
	e := &acmeEnv{kid: "kid-certvault", mac: base64.RawURLEncoding.EncodeToString(raw), dir: t.TempDir()}
	testcluster.KnownSecret(e.mac)
	e.peb = pebbletest.Start(t, pebbletest.Options{EAB: map[string]string{e.kid: e.mac}, DNSServer: dnsServer})
	e.c = testcluster.Start(t, nodes, testcluster.Options{})
	e.macFile = filepath.Join(e.dir, "eab.key")
	if err := os.WriteFile(e.macFile, []byte(e.mac+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// cli runs the CLI at node n and fails the test on a non-zero exit.
func (e *acmeEnv) cli(t *testing.T, n *testcluster.Node, args ...string) string {
	t.Helper()
	out, errOut, code := e.c.CLIAt(n, args...)
	if code != 0 {
		t.Fatalf("certvault %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// issuer sets an ACME issuer pointed at Pebble with the extra flags.
func (e *acmeEnv) issuer(t *testing.T, name string, extra ...string) string {
	t.Helper()
	args := append([]string{"issuer", "set", name, "--provider", "acme",
		"--directory-url", e.peb.DirectoryURL, "--directory-ca-file", e.peb.ServerCAFile}, extra...)
	return e.cli(t, e.c.Nodes[0], args...)
}

// policy writes a policy for the DNS name with the issuer and returns its path.
func (e *acmeEnv) policy(t *testing.T, dns, issuer string, extra ...string) string {
	t.Helper()
	p := filepath.Join(e.dir, dns+"-"+issuer+".json")
	args := append([]string{"cert", "policy", "new", "--subject", "CN=" + dns, "--san", dns, "--issuer", issuer,
		"--kty", "EC", "--curve", "P-256", "--validity-months", "12", "--renew-days-before-expiry", "60", "--out", p}, extra...)
	e.cli(t, e.c.Nodes[0], args...)
	return p
}

// operation reads a pending operation.
func (e *acmeEnv) operation(t *testing.T, n *testcluster.Node, name string) map[string]any {
	t.Helper()
	st, op := dpDo(t, e.c.Client(n), http.MethodGet, "/certificates/"+name+"/pending", nil)
	if st != http.StatusOK {
		t.Fatalf("pending %s: status %d %v", name, st, op)
	}
	return op
}

// waitDetails polls the operation until its status_details contain want.
func (e *acmeEnv) waitDetails(t *testing.T, n *testcluster.Node, name, want string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var op map[string]any
	for time.Now().Before(deadline) {
		op = e.operation(t, n, name)
		if d, _ := op["status_details"].(string); strings.Contains(d, want) {
			return op
		}
		if op["status"] != "inProgress" {
			t.Fatalf("operation of %s ended %v before reaching %q: %v", name, op["status"], want, op)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("operation of %s never reached %q: last %v", name, want, op)
	return nil
}

// waitFile polls until the file contains want.
func waitFileContains(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var (
		b   []byte
		err error
	)
	for time.Now().Before(deadline) {
		b, err = os.ReadFile(path)
		if err == nil && strings.Contains(string(b), want) {
			return string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("waited 60s for %s to contain %q; last read (%v) held:\n%s", path, want, err, b)
	return ""
}

// certificate reads a certificate's current version with its chain.
func (e *acmeEnv) certificate(t *testing.T, name string) (map[string]any, []*x509.Certificate) {
	t.Helper()
	n := e.c.Nodes[0]
	for _, nd := range e.c.Nodes {
		if nd.Running() {
			n = nd
			break
		}
	}
	st, c := dpDo(t, e.c.Client(n), http.MethodGet, "/certificates/"+name+"/", nil)
	if st != http.StatusOK {
		t.Fatalf("get %s: status %d %v", name, st, c)
	}
	var chain []*x509.Certificate
	x5c, _ := c["x5c"].([]any)
	for _, v := range x5c {
		der, err := base64.StdEncoding.DecodeString(v.(string))
		if err != nil {
			t.Fatalf("decode base64: %v", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("x5c of %s: %v", name, err)
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		t.Fatalf("%s has no chain: %v", name, c)
	}
	return c, chain
}

// verifyToPebble checks that the chain verifies to Pebble's root for dns.
func (e *acmeEnv) verifyToPebble(t *testing.T, chain []*x509.Certificate, dns string) {
	t.Helper()
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range e.peb.Roots(t) {
		roots.AddCert(r)
	}
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: dns}); err != nil {
		t.Fatalf("chain of %s does not verify to Pebble's root: %v", dns, err)
	}
}

// TestACMEPebbleEAB is the seed's DigiCert flow against a real Pebble that
// requires External Account Binding: issuer with org details and
// credentials (write-only), check, policy with renewal 60 days before
// expiry, create, watch the operation, get a chain that verifies to
// Pebble's root, the CA's ARI window recorded, the challenge record
// removed; then a renewal (an order that replaces the first) and a
// short-lived and a default profile, and one the CA does not offer.
func TestACMEPebbleEAB(t *testing.T) {
	t.Parallel()
	e := newACMEEnv(t, 1)
	n := e.c.Nodes[0]
	program, calls, _ := e.peb.ExecSolver(t)
	out := e.issuer(t, "pebble", "--account-id", e.kid, "--api-key-file", e.macFile,
		"--org-id", "111111", "--admin-email", "pki-team@example.test",
		"--dns-solver", "exec", "--dns-exec", program, "--dns-resolver", e.peb.DNSAddr)
	for _, o := range []string{out, e.cli(t, n, "issuer", "get", "pebble"), e.cli(t, n, "issuer", "get", "pebble", "-o", "json")} {
		if strings.Contains(o, e.mac) {
			t.Fatalf("the EAB HMAC key is shown:\n%s", o)
		}
	}
	if !strings.Contains(out, "not registered yet") || !strings.Contains(out, "111111") {
		t.Fatalf("issuer set: want the org id and an unregistered account, got:\n%s", out)
	}
	out = e.cli(t, n, "issuer", "check", "pebble")
	if !strings.Contains(out, "required") || !strings.Contains(out, "result:") || !strings.Contains(out, "ok") || !strings.Contains(out, "shortlived") {
		t.Fatalf("issuer check: got\n%s", out)
	}
	if out := e.cli(t, n, "issuer", "get", "pebble"); strings.Contains(out, "not registered yet") {
		t.Fatalf("issuer check did not record the account:\n%s", out)
	}

	policy := e.policy(t, "www.example.test", "pebble")
	e.cli(t, n, "cert", "create", "www", "--policy", policy)
	_, progress, code := e.c.CLI("cert", "operation", "www", "--wait")
	op := e.operation(t, n, "www")
	if code != 0 || op["status"] != "completed" {
		t.Fatalf("operation: exit %d, %v\nprogress: %s", code, op, progress)
	}
	firstOrder, _ := op["acme_order"].(string)
	if !strings.HasPrefix(firstOrder, "https://") {
		t.Fatalf("operation has no ACME order URL: %v", op)
	}
	cert, chain := e.certificate(t, "www")
	e.verifyToPebble(t, chain, "www.example.test")
	waitFileContains(t, calls, "cleanup _acme-challenge.www.example.test.")

	// The CA's renewal window (RFC 9773) is recorded as the CA gives it.
	ri, _ := cert["renewal_info"].(map[string]any)
	if ri == nil {
		t.Fatalf("no renewal_info on the certificate: %v", cert)
	}
	start, end := int64(ri["start"].(float64)), int64(ri["end"].(float64))
	want := pebbleARI(t, e.peb, chain[0])
	if start != want.Start.Unix() || end != want.End.Unix() {
		t.Fatalf("renewal_info %d..%d, Pebble suggests %v..%v", start, end, want.Start, want.End)
	}
	if start <= chain[0].NotBefore.Unix() || end >= chain[0].NotAfter.Unix() {
		t.Fatalf("renewal window %d..%d is not inside the validity %v..%v", start, end, chain[0].NotBefore, chain[0].NotAfter)
	}

	// A second create renews: a new order that replaces the first
	// certificate, a new key, and a second version.
	e.cli(t, n, "cert", "create", "www", "--policy", policy, "--wait")
	op = e.operation(t, n, "www")
	if op["status"] != "completed" || op["acme_order"] == firstOrder {
		t.Fatalf("renewal: %v", op)
	}
	_, chain2 := e.certificate(t, "www")
	if chain2[0].SerialNumber.Cmp(chain[0].SerialNumber) == 0 {
		t.Fatal("renewal returned the same certificate")
	}
	if out := e.cli(t, n, "cert", "versions", "www", "-o", "json"); strings.Count(out, `"id"`) != 2 {
		t.Fatalf("versions after renewal: %s", out)
	}
	if !strings.Contains(e.peb.Logs(), "is a replacement of") {
		t.Fatal("the renewal order did not tell Pebble which certificate it replaces (RFC 9773 replaces)")
	}

	// ACME profiles: Pebble's shortlived gives 6 days, its default 90.
	// (Pebble picks a random profile for an order that names none.)
	for _, tc := range []struct {
		profile  string
		min, max time.Duration
	}{{"shortlived", 5 * 24 * time.Hour, 7 * 24 * time.Hour}, {"default", 89 * 24 * time.Hour, 91 * 24 * time.Hour}} {
		p := e.policy(t, tc.profile+".example.test", "pebble", "--acme-profile", tc.profile)
		e.cli(t, n, "cert", "create", tc.profile, "--policy", p, "--wait")
		_, pc := e.certificate(t, tc.profile)
		if life := pc[0].NotAfter.Sub(pc[0].NotBefore); life < tc.min || life > tc.max {
			t.Fatalf("profile %s: validity %v, want %v to %v", tc.profile, life, tc.min, tc.max)
		}
	}
	// A profile the CA does not offer is a clear failure.
	p := e.policy(t, "nosuch.example.test", "pebble", "--acme-profile", "no-such-profile")
	e.cli(t, n, "cert", "create", "nosuch", "--policy", p)
	if _, errOut, code := e.c.CLI("cert", "operation", "nosuch", "--wait"); code != 1 {
		t.Fatalf("unknown profile: exit %d %s", code, errOut)
	}
	if _, msg := errorOf(e.operation(t, n, "nosuch")); !strings.Contains(msg, `no profile "no-such-profile"`) {
		t.Fatalf("unknown profile: %s", msg)
	}

	if strings.Contains(n.Log(), e.mac) {
		t.Fatal("the EAB HMAC key appears in the node's log")
	}
}

// pebbleARI asks Pebble directly for a certificate's renewal window.
func pebbleARI(t *testing.T, peb *pebbletest.Server, leaf *x509.Certificate) struct{ Start, End time.Time } {
	t.Helper()
	hc := peb.HTTPClient()
	resp, err := hc.Get(peb.DirectoryURL)
	if err != nil {
		t.Fatal(err)
	}
	var dir struct {
		RenewalInfo string `json:"renewalInfo"`
	}
	err = json.NewDecoder(resp.Body).Decode(&dir)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("decode Pebble's directory: %v", err)
	}
	if dir.RenewalInfo == "" {
		t.Fatal("Pebble's directory has no renewalInfo")
	}
	id, err := api.MakeARICertID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = hc.Get(dir.RenewalInfo + "/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ri struct {
		SuggestedWindow struct{ Start, End time.Time } `json:"suggestedWindow"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&ri); err != nil {
		t.Fatalf("Pebble renewalInfo: %v", err)
	}
	return ri.SuggestedWindow
}

// TestACMEFailures: a wrong EAB key, a TXT record never published, a
// solver that exits non-zero each end as a failed operation with an error
// that says what happened; an unreachable or non-ACME directory is
// reported by 'issuer check'; cancelling mid-order leaves no certificate
// and the challenge record is removed.
func TestACMEFailures(t *testing.T) {
	t.Parallel()
	e := newACMEEnv(t, 1)
	n := e.c.Nodes[0]
	program, calls, hold := e.peb.ExecSolver(t)

	failed := func(t *testing.T, name, issuer string) map[string]any {
		t.Helper()
		p := e.policy(t, name+".example.test", issuer)
		e.cli(t, n, "cert", "create", name, "--policy", p)
		out, errOut, code := e.c.CLI("cert", "operation", name, "--wait")
		op := e.operation(t, n, name)
		if code != 1 || op["status"] != "failed" || !strings.Contains(errOut, "failed") {
			t.Fatalf("%s: want a failed operation and exit 1, got exit %d, %v\n%s%s", name, code, op, out, errOut)
		}
		if _, _, code := e.c.CLI("cert", "get", name); code == 0 {
			t.Fatalf("%s: a failed order left a certificate", name)
		}
		return op
	}

	t.Run("wrong EAB key", func(t *testing.T) {
		bad := filepath.Join(e.dir, "bad.key")
		wrong := make([]byte, 32)
		rand.Read(wrong)
		if err := os.WriteFile(bad, []byte(base64.RawURLEncoding.EncodeToString(wrong)), 0o600); err != nil {
			t.Fatalf("write %s: %v", bad, err)
		}
		e.issuer(t, "badeab", "--account-id", e.kid, "--api-key-file", bad, "--dns-solver", "exec", "--dns-exec", program)
		op := failed(t, "badeab", "badeab")
		code, msg := errorOf(op)
		if code != "unauthorized" || !strings.Contains(msg, "External Account Binding") {
			t.Fatalf("wrong EAB: error %s: %s", code, msg)
		}
		// A key too short to sign with is a configuration error at once.
		short := filepath.Join(e.dir, "short.key")
		if err := os.WriteFile(short, []byte(base64.RawURLEncoding.EncodeToString([]byte("short"))), 0o600); err != nil {
			t.Fatalf("write %s: %v", short, err)
		}
		e.issuer(t, "shorteab", "--account-id", e.kid, "--api-key-file", short)
		if out, _, c := e.c.CLI("issuer", "check", "shorteab"); c != 1 || !strings.Contains(out, "at least 32 bytes") {
			t.Fatalf("issuer check with a short EAB key: exit %d\n%s", c, out)
		}
		if out, _, c := e.c.CLI("issuer", "check", "badeab"); c != 1 || !strings.Contains(out, "unauthorized") {
			t.Fatalf("issuer check with a wrong EAB key: exit %d\n%s", c, out)
		}
	})

	e.issuer(t, "nodns", "--account-id", e.kid, "--api-key-file", e.macFile, "--dns-solver", "none")
	t.Run("TXT never published", func(t *testing.T) {
		op := failed(t, "nodns", "nodns")
		code, msg := errorOf(op)
		if code == "" || !strings.Contains(msg, "validation of nodns.example.test failed") {
			t.Fatalf("unpublished TXT: error %s: %s", code, msg)
		}
	})

	t.Run("solver exits non-zero", func(t *testing.T) {
		e.issuer(t, "falsy", "--account-id", e.kid, "--api-key-file", e.macFile, "--dns-solver", "exec", "--dns-exec", "/bin/false")
		op := failed(t, "falsy", "falsy")
		code, msg := errorOf(op)
		if code != "DNSSolverFailed" || !strings.Contains(msg, "/bin/false") {
			t.Fatalf("failing solver: error %s: %s", code, msg)
		}
	})

	t.Run("unreachable and non-ACME directories", func(t *testing.T) {
		e.cli(t, n, "issuer", "set", "down", "--provider", "acme", "--directory-url", "https://127.0.0.1:1/dir")
		if out, _, c := e.c.CLI("issuer", "check", "down"); c != 1 || !strings.Contains(out, "cannot reach") {
			t.Fatalf("unreachable directory: exit %d\n%s", c, out)
		}
		e.cli(t, n, "issuer", "set", "notacme", "--provider", "acme", "--directory-url", n.URL()+"/healthz", "--directory-ca-file", e.c.CACert)
		if out, _, c := e.c.CLI("issuer", "check", "notacme"); c != 1 || !strings.Contains(out, "ACME directory") {
			t.Fatalf("non-ACME directory: exit %d\n%s", c, out)
		}
	})

	t.Run("cleanup that keeps failing does not spin", func(t *testing.T) {
		// present works, cleanup always fails: the order completes and the
		// record is retried at the scan interval, not in a tight loop.
		hook := filepath.Join(e.dir, "nocleanup.sh")
		if err := os.WriteFile(hook, []byte("#!/bin/sh\n[ \"$1\" = cleanup ] && { echo cannot remove >&2; exit 1; }\nexec "+program+" \"$@\"\n"), 0o755); err != nil {
			t.Fatalf("write %s: %v", hook, err)
		}
		e.issuer(t, "nocleanup", "--account-id", e.kid, "--api-key-file", e.macFile, "--dns-solver", "exec", "--dns-exec", hook)
		p := e.policy(t, "sticky.example.test", "nocleanup")
		e.cli(t, n, "cert", "create", "sticky", "--policy", p, "--wait")
		applied := func() uint64 {
			st, err := e.c.Status(n)
			if err != nil {
				t.Fatal(err)
			}
			return st.AppliedIndex
		}
		before := applied()
		time.Sleep(3 * time.Second) // a rate over a fixed window, not a wait for a condition
		if grew := applied() - before; grew > 20 {
			t.Fatalf("the raft log grew by %d entries in 3 s while a cleanup kept failing", grew)
		}
		if !strings.Contains(n.Log(), "could not remove ACME challenge records") {
			t.Fatal("the failing cleanup was not logged")
		}
	})

	t.Run("cancel mid-order", func(t *testing.T) {
		e.issuer(t, "slow", "--account-id", e.kid, "--api-key-file", e.macFile, "--dns-solver", "exec", "--dns-exec", program)
		if err := os.WriteFile(hold, nil, 0o644); err != nil {
			t.Fatalf("write %s: %v", hold, err)
		}
		p := e.policy(t, "cancel.example.test", "slow")
		e.cli(t, n, "cert", "create", "cancelme", "--policy", p)
		e.waitDetails(t, n, "cancelme", "waiting for DNS")
		waitFileContains(t, calls, "present _acme-challenge.cancel.example.test.")
		out := e.cli(t, n, "cert", "operation", "cancelme", "--cancel")
		if !strings.Contains(out, "cancelled") {
			t.Fatalf("cancel: %s", out)
		}
		if err := os.Remove(hold); err != nil {
			t.Fatalf("remove %s: %v", hold, err)
		}
		waitFileContains(t, calls, "cleanup _acme-challenge.cancel.example.test.")
		if op := e.operation(t, n, "cancelme"); op["status"] != "cancelled" {
			t.Fatalf("after cancel: %v", op)
		}
		if _, _, c := e.c.CLI("cert", "get", "cancelme"); c == 0 {
			t.Fatal("a cancelled order left a certificate")
		}
	})
}

// TestACMEDeletedMidOrder: deleting the certificate while its order
// waits for DNS ends the order, and its challenge record is still
// removed (the order's records are kept apart from the operation).
func TestACMEDeletedMidOrder(t *testing.T) {
	t.Parallel()
	e := newACMEEnv(t, 1)
	n := e.c.Nodes[0]
	program, calls, hold := e.peb.ExecSolver(t)
	e.issuer(t, "pebble", "--account-id", e.kid, "--api-key-file", e.macFile, "--dns-solver", "exec", "--dns-exec", program)
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatalf("write %s: %v", hold, err)
	}
	p := e.policy(t, "gone.example.test", "pebble")
	e.cli(t, n, "cert", "create", "gone", "--policy", p)
	e.waitDetails(t, n, "gone", "waiting for DNS")
	waitFileContains(t, calls, "present _acme-challenge.gone.example.test.")
	e.cli(t, n, "cert", "delete", "gone")
	if err := os.Remove(hold); err != nil {
		t.Fatalf("remove %s: %v", hold, err)
	}
	waitFileContains(t, calls, "cleanup _acme-challenge.gone.example.test.")
	if st, _ := dpDo(t, e.c.Client(n), http.MethodGet, "/certificates/gone/pending", nil); st != http.StatusNotFound {
		t.Fatalf("the deleted certificate's operation answers %d", st)
	}
}

// TestACMELeaderKilledMidOrder: the leader is SIGKILLed while its order
// waits for DNS; the new leader resumes the same order (no second one is
// placed), the operation completes with exactly one certificate version.
func TestACMELeaderKilledMidOrder(t *testing.T) {
	t.Parallel()
	e := newACMEEnv(t, 3)
	program, calls, hold := e.peb.ExecSolver(t)
	e.issuer(t, "pebble", "--account-id", e.kid, "--api-key-file", e.macFile, "--dns-solver", "exec", "--dns-exec", program)
	leader := e.c.Leader()
	var follower *testcluster.Node
	for _, nd := range e.c.Nodes {
		if nd != leader {
			follower = nd
			break
		}
	}
	if err := os.WriteFile(hold, nil, 0o644); err != nil {
		t.Fatalf("write %s: %v", hold, err)
	}
	p := e.policy(t, "ha.example.test", "pebble")
	e.cli(t, follower, "cert", "create", "ha", "--policy", p)
	op := e.waitDetails(t, follower, "ha", "waiting for DNS")
	order, _ := op["acme_order"].(string)
	waitFileContains(t, calls, "present _acme-challenge.ha.example.test.")
	leader.Kill()
	newLeader := e.c.Leader()
	if newLeader == leader {
		t.Fatal("the killed node is still the leader")
	}
	if err := os.Remove(hold); err != nil {
		t.Fatalf("remove %s: %v", hold, err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		op = e.operation(t, newLeader, "ha")
		if op["status"] != "inProgress" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if op["status"] != "completed" {
		t.Fatalf("after the leader kill: %v", op)
	}
	if op["acme_order"] != order {
		t.Fatalf("a second order was placed: %v, first %s", op["acme_order"], order)
	}
	out := e.cli(t, newLeader, "cert", "versions", "ha", "-o", "json")
	if strings.Count(out, `"id"`) != 1 {
		t.Fatalf("want exactly one certificate version, got %s", out)
	}
	_, chain := e.certificate(t, "ha")
	e.verifyToPebble(t, chain, "ha.example.test")
	waitFileContains(t, calls, "cleanup _acme-challenge.ha.example.test.")
}

// TestACMERFC2136 answers the dns-01 challenge with RFC 2136 dynamic
// updates signed with TSIG to a real BIND, which Pebble validates
// against: the record is published, the certificate issued, the record
// removed, and the TSIG secret never shown.
func TestACMERFC2136(t *testing.T) {
	t.Parallel()
	ns := bindtest.Start(t)
	e := newACMEEnvDNS(t, 1, ns.Addr)
	n := e.c.Nodes[0]
	keyFile := filepath.Join(e.dir, "acme-update.key")
	if err := os.WriteFile(keyFile, ns.KeyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := ""
	for _, line := range strings.Split(string(ns.KeyFile), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "secret" {
			secret = strings.Trim(f[1], `";`)
		}
	}
	if secret == "" {
		t.Fatalf("no secret in the key file:\n%s", ns.KeyFile)
	}
	out := e.issuer(t, "bind", "--account-id", e.kid, "--api-key-file", e.macFile,
		"--dns-solver", "rfc2136", "--rfc2136-nameserver", ns.Addr, "--tsig-key-file", keyFile, "--dns-resolver", ns.Addr)
	if !strings.Contains(out, ns.KeyName) || !strings.Contains(out, "hmac-sha256") {
		t.Fatalf("issuer set does not show the TSIG key's name and algorithm:\n%s", out)
	}
	for _, o := range []string{out, e.cli(t, n, "issuer", "get", "bind", "-o", "json")} {
		if strings.Contains(o, secret) {
			t.Fatalf("the TSIG secret is shown:\n%s", o)
		}
	}
	p := e.policy(t, "www.example.test", "bind")
	e.cli(t, n, "cert", "create", "www", "--policy", p, "--wait")
	_, chain := e.certificate(t, "www")
	e.verifyToPebble(t, chain, "www.example.test")
	deadline := time.Now().Add(30 * time.Second)
	for len(ns.TXT(t, "_acme-challenge.www.example.test")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the challenge record is still in the zone: %v", ns.TXT(t, "_acme-challenge.www.example.test"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(n.Log(), secret) {
		t.Fatal("the TSIG secret appears in the node's log")
	}
}

// TestACMEIssuerBadInput: each bad ACME issuer setting is a 400 that says
// what to fix, and nothing is stored; a policy naming a missing issuer is
// refused at create.
func TestACMEIssuerBadInput(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	cl := c.Client(c.Nodes[0])
	good := func() map[string]any {
		return map[string]any{"provider": "acme", "acme": map[string]any{"directory_url": "https://ca.example/dir"}}
	}
	with := func(f func(m map[string]any)) map[string]any { m := good(); f(m); return m }
	dns := func(d map[string]any) map[string]any {
		return with(func(m map[string]any) { m["acme"].(map[string]any)["dns"] = d })
	}
	for _, tc := range []struct {
		name string
		body map[string]any
		want string
	}{
		{"no directory", map[string]any{"provider": "acme"}, "directory URL"},
		{"directory not http", with(func(m map[string]any) { m["acme"] = map[string]any{"directory_url": "ftp://ca.example/dir"} }), "https:// URL"},
		{"directory CA not PEM", with(func(m map[string]any) { m["acme"].(map[string]any)["directory_ca_pem"] = "not a certificate" }), "no PEM certificate"},
		{"HMAC not base64url", with(func(m map[string]any) {
			m["credentials"] = map[string]any{"account_id": "kid", "pwd": "not base64url!"}
		}), "base64url"},
		{"HMAC without key id", with(func(m map[string]any) { m["credentials"] = map[string]any{"pwd": "c2VjcmV0"} }), "--account-id"},
		{"unknown solver", dns(map[string]any{"solver": "route53"}), "rfc2136, exec or none"},
		{"exec without program", dns(map[string]any{"solver": "exec"}), "--dns-exec"},
		{"exec relative", dns(map[string]any{"solver": "exec", "exec": "hook.sh"}), "absolute path"},
		{"exec missing", dns(map[string]any{"solver": "exec", "exec": "/nonexistent/hook"}), "not an executable file"},
		{"rfc2136 without server", dns(map[string]any{"solver": "rfc2136"}), "--rfc2136-nameserver"},
		{"rfc2136 bad server", dns(map[string]any{"solver": "rfc2136", "nameserver": "ns.example"}), "HOST:PORT"},
		{"rfc2136 bad key", dns(map[string]any{"solver": "rfc2136", "nameserver": "192.0.2.1:53", "tsig_key": "key { secret \"c2VjcmV0\"; };"}), "--tsig-key-file"},
		{"bad resolver", dns(map[string]any{"resolvers": []string{"8.8.8.8"}}), "--dns-resolver"},
		{"acme on internal", map[string]any{"provider": "internal", "ca": map[string]any{"subject": "CN=x"}, "acme": map[string]any{"directory_url": "https://ca.example/dir"}}, "applies only to providers acme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, resp := dpDo(t, cl, http.MethodPut, "/certificates/issuers/bad", tc.body)
			code, msg := errorOf(resp)
			if st != http.StatusBadRequest || code != "BadParameter" || !strings.Contains(msg, tc.want) {
				t.Fatalf("status %d, error %s: %q; want 400 mentioning %q", st, code, msg, tc.want)
			}
			if st, _ := dpDo(t, cl, http.MethodGet, "/certificates/issuers/bad", nil); st != http.StatusNotFound {
				t.Fatalf("a refused issuer was stored (GET answers %d)", st)
			}
		})
	}
	// DigiCert and GlobalSign preset their public directories.
	for provider, dir := range map[string]string{"DigiCert": "https://acme.digicert.com/v2/acme/directory/", "GlobalSign": "https://emea.acme.atlas.globalsign.com/directory"} {
		st, resp := dpDo(t, cl, http.MethodPut, "/certificates/issuers/"+strings.ToLower(provider), map[string]any{
			"provider": provider, "credentials": map[string]any{"account_id": "1111111", "pwd": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
			"org_details": map[string]any{"id": "111111"}})
		if st != http.StatusOK {
			t.Fatalf("%s issuer: %d %v", provider, st, resp)
		}
		a, _ := resp["acme"].(map[string]any)
		if a["directory_url"] != dir {
			t.Fatalf("%s issuer: directory %v, want %s", provider, a["directory_url"], dir)
		}
		data, err := json.Marshal(resp)
		if err != nil {
			t.Fatalf("%s issuer: marshal the answer: %v", provider, err)
		}
		if strings.Contains(string(data), "c2VjcmV0c2VjcmV0") || strings.Contains(string(data), "account_key") {
			t.Fatalf("%s issuer shows a secret: %s", provider, data)
		}
	}
	// A policy naming an issuer that does not exist is refused at create.
	st, resp := dpDo(t, cl, http.MethodPost, "/certificates/nope/create", map[string]any{"policy": map[string]any{
		"x509_props": map[string]any{"subject": "CN=www.example.test"}, "issuer": map[string]any{"name": "missing"}}})
	if _, msg := errorOf(resp); st != http.StatusBadRequest || !strings.Contains(msg, "does not exist") {
		t.Fatalf("missing issuer: %d %s", st, msg)
	}
	// An ACME order needs DNS names.
	st, resp = dpDo(t, cl, http.MethodPost, "/certificates/mail/create", map[string]any{"policy": map[string]any{
		"x509_props": map[string]any{"subject": "CN=Mail Signing", "sans": map[string]any{"emails": []string{"a@example.test"}}}, "issuer": map[string]any{"name": "digicert"}}})
	if _, msg := errorOf(resp); st != http.StatusBadRequest || !strings.Contains(msg, "DNS names only") {
		t.Fatalf("ACME with emails: %d %s", st, msg)
	}
	if st, _ := dpDo(t, cl, http.MethodGet, "/certificates/mail/pending", nil); st != http.StatusNotFound {
		t.Fatalf("a refused create left a pending operation (%d)", st)
	}
}
