package test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certvault/certvault/test/smtptest"
	"github.com/certvault/certvault/test/testcluster"
)

// TestAutoRenewShortLived: a certificate valid for 3 minutes with
// AutoRenew at 50 % gets a new version on its own 90 seconds after it was made,
// with a new key and its tags carried over, and the contacts get a mail
// before and after it through a real SMTP server; an identical one whose
// policy was edited to EmailContacts is not renewed, and its contacts are
// mailed instead.
func TestAutoRenewShortLived(t *testing.T) {
	t.Parallel()
	mail := smtptest.Start(t)
	c := testcluster.Start(t, 1, testcluster.Options{ExtraArgs: []string{"--smtp-addr", mail.Addr, "--smtp-from", "certvault@example.test"}})
	n := c.Nodes[0]
	cl := c.Client(n)
	dir := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := c.CLI(args...)
		if code != 0 {
			t.Fatalf("certvault %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	run("contacts", "set", "pki-team@example.test")
	hook := newWebhook(t, "a-webhook-secret-of-some-length")
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down for maintenance", 500) }))
	defer broken.Close()
	secretFile := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(secretFile, []byte(hook.secret), 0o600); err != nil {
		t.Fatalf("write %s: %v", secretFile, err)
	}
	run("events", "subscribe", hook.URL, "--types", "CertificateNewVersionCreated,CertificateRenewalFailed,CertificateNearExpiry", "--secret-file", secretFile)
	run("events", "subscribe", broken.URL, "--types", "CertificateNewVersionCreated", "--secret-file", secretFile)
	p := filepath.Join(dir, "short.json")
	run("cert", "policy", "new", "--subject", "CN=short.example.test", "--kty", "EC", "--curve", "P-256",
		"--validity", "3m", "--renew-percentage", "50", "--out", p)
	run("cert", "create", "short", "--policy", p, "--tag", "team=web", "--wait")
	run("cert", "create", "manual", "--policy", p, "--wait")
	// Disabling auto-renew is editing the lifetime actions.
	st, resp := dpDo(t, cl, http.MethodPatch, "/certificates/manual/policy", map[string]any{
		"lifetime_actions": []map[string]any{{"trigger": map[string]any{"lifetime_percentage": 50}, "action": map[string]any{"action_type": "EmailContacts"}}}})
	if st != http.StatusOK {
		t.Fatalf("policy update: %d %v", st, resp)
	}
	versions := func(name string) []any {
		st, resp := dpDo(t, cl, http.MethodGet, "/certificates/"+name+"/versions", nil)
		if st != http.StatusOK {
			t.Fatalf("versions of %s: %d %v", name, st, resp)
		}
		v, _ := resp["value"].([]any)
		return v
	}
	_, first := dpDo(t, cl, http.MethodGet, "/certificates/short/", nil)
	deadline := time.Now().Add(3 * time.Minute)
	for len(versions("short")) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal within 3 minutes; log:\n%s", n.Log())
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Half of the certificate's lifetime (its notBefore is backdated a
	// minute for clock skew), less a spread of at most 1 %.
	nbf, exp := int64(first["attributes"].(map[string]any)["nbf"].(float64)), int64(first["attributes"].(map[string]any)["exp"].(float64))
	half := time.Unix(nbf+(exp-nbf)/2, 0).Add(-time.Duration(exp-nbf) * time.Second / 100).Add(-time.Second)
	_, second := dpDo(t, cl, http.MethodGet, "/certificates/short/", nil)
	renewedAt := time.Unix(int64(second["attributes"].(map[string]any)["created"].(float64)), 0)
	if renewedAt.Before(half.Truncate(time.Second)) {
		t.Fatalf("renewed at %v, before half of the lifetime %v..%v", renewedAt, time.Unix(nbf, 0), time.Unix(exp, 0))
	}
	if second["x5t"] == first["x5t"] || second["kid"] == first["kid"] {
		t.Fatalf("the renewal did not make a new version: %v", second["id"])
	}
	if tags, _ := second["tags"].(map[string]any); tags["team"] != "web" {
		t.Fatalf("tags not carried over: %v", second["tags"])
	}
	st, op := dpDo(t, cl, http.MethodGet, "/certificates/short/pending", nil)
	if st != http.StatusOK || op["status"] != "completed" {
		t.Fatalf("the renewal's operation: %d %v", st, op)
	}
	// The new version has its own plan: the key of the renewed
	// certificate is not the first one's.
	_, k1 := dpDo(t, cl, http.MethodGet, strings.TrimPrefix(first["kid"].(string), n.URL()), nil)
	_, k2 := dpDo(t, cl, http.MethodGet, strings.TrimPrefix(second["kid"].(string), n.URL()), nil)
	if k1["key"].(map[string]any)["x"] == k2["key"].(map[string]any)["x"] {
		t.Fatal("the renewal reused the key although reuse_key is false")
	}
	if got := len(versions("manual")); got != 1 {
		t.Fatalf("a certificate without AutoRenew has %d versions", got)
	}

	// The contacts were told before and after, with both versions.
	v1 := first["id"].(string)[strings.LastIndex(first["id"].(string), "/")+1:]
	v2 := second["id"].(string)[strings.LastIndex(second["id"].(string), "/")+1:]
	before := mail.Wait(t, 30*time.Second, "Subject: [certvault] renewing certificate short", v1, "Issuer:          Self")
	after := mail.Wait(t, 30*time.Second, "Subject: [certvault] certificate short renewed", v1, v2)
	if len(before.To) != 1 || before.To[0] != "pki-team@example.test" || after.From != "certvault@example.test" {
		t.Fatalf("mail envelope: before %v, after from %s", before.To, after.From)
	}
	mail.Wait(t, 60*time.Second, "Subject: [certvault] certificate manual expires soon", "certvault cert create manual")

	// The webhook got a signed CloudEvent for the new version.
	ev := hook.wait(t, 30*time.Second, "Microsoft.KeyVault.CertificateNewVersionCreated", v2)
	if ev["subject"] != "short" || ev["specversion"] != "1.0" {
		t.Fatalf("event: %v", ev)
	}
	// 30 days (the default threshold) is more than the whole lifetime:
	// the first version was near expiry from the start.
	hook.wait(t, 30*time.Second, "Microsoft.KeyVault.CertificateNearExpiry", v1)
	// Metrics: each certificate's expiry, renewals done, the outbox.
	resp2, err := c.HTTPClient().Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := io.ReadAll(resp2.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	resp2.Body.Close()
	for _, want := range []string{`certvault_certificate_expiry_timestamp_seconds{name="short"}`, `certvault_renewals_total{result="done"} `, "certvault_outbox_messages ", "certvault_outbox_oldest_age_seconds "} {
		if !strings.Contains(string(metrics), want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}

	// The broken one's deliveries are retried, with the reason shown.
	deadline = time.Now().Add(30 * time.Second)
	for out := ""; !strings.Contains(out, "500 Internal Server Error"); out = run("events", "deliveries", "--failed") {
		if time.Now().After(deadline) {
			t.Fatalf("events deliveries --failed does not show the failing webhook:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// webhook is an event receiver that checks each delivery's signature.
type webhook struct {
	*httptest.Server
	secret string
	mu     sync.Mutex
	events []map[string]any
	bad    int
}

func newWebhook(t *testing.T, secret string) *webhook {
	h := &webhook{secret: secret}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			// A handler runs outside the test goroutine: report, don't Fatal.
			t.Errorf("webhook: read the event body: %v", err)
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if r.Header.Get("X-Certvault-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			h.bad++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("webhook: decode the event: %v\n%s", err, body)
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		h.events = append(h.events, ev)
	}))
	t.Cleanup(h.Close)
	return h
}

// wait polls until an event of type typ whose data names version arrives.
func (h *webhook) wait(t *testing.T, d time.Duration, typ, version string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		for _, ev := range h.events {
			data, _ := ev["data"].(map[string]any)
			if ev["type"] == typ && data["Version"] == version {
				h.mu.Unlock()
				return ev
			}
		}
		bad := h.bad
		h.mu.Unlock()
		if bad > 0 {
			t.Fatalf("%d deliveries with a bad signature", bad)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s event for version %s within %v", typ, version, d)
	return nil
}

// TestSecretExpiryEvents: a secret that expires in a few seconds, with a
// near-expiry threshold of one minute, gives a SecretNearExpiry event at
// once and a SecretExpired event when it expires.
func TestSecretExpiryEvents(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	hook := newWebhook(t, "another-webhook-secret")
	secretFile := filepath.Join(t.TempDir(), "hook.secret")
	if err := os.WriteFile(secretFile, []byte(hook.secret), 0o600); err != nil {
		t.Fatalf("write %s: %v", secretFile, err)
	}
	for _, args := range [][]string{
		{"settings", "set", "--near-expiry", "1m"},
		{"events", "subscribe", hook.URL, "--types", "SecretNearExpiry,SecretExpired", "--secret-file", secretFile},
	} {
		if _, errOut, code := c.CLI(args...); code != 0 {
			t.Fatalf("certvault %s: %s", strings.Join(args, " "), errOut)
		}
	}
	cl := c.Client(c.Nodes[0])
	exp := time.Now().Add(3 * time.Second).Unix()
	st, resp := dpDo(t, cl, http.MethodPut, "/secrets/db-password", map[string]any{"value": "s3cret", "attributes": map[string]any{"exp": exp}})
	if st != http.StatusOK {
		t.Fatalf("set: %d %v", st, resp)
	}
	id := resp["id"].(string)
	version := id[strings.LastIndex(id, "/")+1:]
	hook.wait(t, 20*time.Second, "Microsoft.KeyVault.SecretNearExpiry", version)
	ev := hook.wait(t, 20*time.Second, "Microsoft.KeyVault.SecretExpired", version)
	if got := int64(ev["data"].(map[string]any)["EXP"].(float64)); got != exp {
		t.Fatalf("SecretExpired EXP %d, want %d", got, exp)
	}
}

// TestRenewalLeaderKilled: the leader is SIGKILLed the moment a renewal
// has made its new version; the new leader makes no second one, and the
// CertificateNewVersionCreated event, written to Raft with the version, is
// delivered (at least once) by whichever node leads.
func TestRenewalLeaderKilled(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	hook := newWebhook(t, "webhook-secret-for-ha-test")
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(secretFile, []byte(hook.secret), 0o600); err != nil {
		t.Fatalf("write %s: %v", secretFile, err)
	}
	leader := c.Leader()
	var follower *testcluster.Node
	for _, nd := range c.Nodes {
		if nd != leader {
			follower = nd
			break
		}
	}
	run := func(args ...string) {
		t.Helper()
		if _, errOut, code := c.CLIAt(follower, args...); code != 0 {
			t.Fatalf("certvault %s: %s", strings.Join(args, " "), errOut)
		}
	}
	run("events", "subscribe", hook.URL, "--types", "CertificateNewVersionCreated", "--secret-file", secretFile)
	p := filepath.Join(dir, "ha.json")
	run("cert", "policy", "new", "--subject", "CN=ha.example.test", "--kty", "EC", "--curve", "P-256", "--validity", "2m", "--renew-percentage", "30", "--out", p)
	run("cert", "create", "ha", "--policy", p, "--wait")
	cl := c.Client(follower)
	versions := func() []any {
		_, resp := dpDo(t, cl, http.MethodGet, "/certificates/ha/versions", nil)
		v, _ := resp["value"].([]any)
		return v
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(versions()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no renewal within 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Leader().Kill()
	var id string
	for deadline := time.Now().Add(30 * time.Second); id == ""; {
		if st, cur := dpDo(t, cl, http.MethodGet, "/certificates/ha/", nil); st == http.StatusOK {
			id = cur["id"].(string)
		} else if time.Now().After(deadline) {
			t.Fatalf("no answer after the leader kill: %d %v", st, cur)
		}
		time.Sleep(50 * time.Millisecond)
	}
	v2 := id[strings.LastIndex(id, "/")+1:]
	hook.wait(t, 60*time.Second, "Microsoft.KeyVault.CertificateNewVersionCreated", v2)
	// The next renewal is due at 30 % of the new version's two minutes,
	// 36 s after it was made: until then there must be exactly two.
	c.Leader()
	if got := len(versions()); got != 2 {
		t.Fatalf("%d versions after the leader kill, want 2", got)
	}
}
