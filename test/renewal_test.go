package test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certvault/certvault/test/smtptest"
	"github.com/certvault/certvault/test/testcluster"
)

// TestAutoRenewShortLived: a certificate valid for 1 minute with
// AutoRenew at 50 % gets a new version on its own 30 seconds after it was made,
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
		"--validity", "1m", "--renew-percentage", "50", "--out", p)
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
	waitUntil(t, 3*time.Minute, "the automatic renewal of short", func() (bool, string) {
		v := versions("short")
		return len(v) >= 2, fmt.Sprintf("%d versions", len(v))
	})
	// Half of the certificate's lifetime, which counts from when the vault
	// made it (its notBefore is backdated a minute for clock skew), less a
	// spread of at most 1 % and the second the times are rounded to.
	attrs := first["attributes"].(map[string]any)
	created, exp := int64(attrs["created"].(float64)), int64(attrs["exp"].(float64))
	half := time.Unix(created+(exp-created)/2, 0).Add(-time.Duration(exp-created) * time.Second / 100).Add(-time.Second)
	_, second := dpDo(t, cl, http.MethodGet, "/certificates/short/", nil)
	renewedAt := time.Unix(int64(second["attributes"].(map[string]any)["created"].(float64)), 0)
	if renewedAt.Before(half.Truncate(time.Second)) {
		t.Fatalf("renewed at %v, before half of the lifetime %v..%v", renewedAt, time.Unix(created, 0), time.Unix(exp, 0))
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
	waitUntil(t, 60*time.Second, "events deliveries --failed to show the failing webhook's 500", func() (bool, string) {
		out := run("events", "deliveries", "--failed")
		return strings.Contains(out, "500 Internal Server Error"), out
	})
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
	hook.wait(t, 60*time.Second, "Microsoft.KeyVault.SecretNearExpiry", version)
	ev := hook.wait(t, 60*time.Second, "Microsoft.KeyVault.SecretExpired", version)
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
	// Valid for a minute, renewed at 30 %: each version is due 18 s after
	// the vault made it (less a spread of at most 1 %).
	const validity, percent = 60, 30
	run("cert", "policy", "new", "--subject", "CN=ha.example.test", "--kty", "EC", "--curve", "P-256",
		"--validity", "1m", "--renew-percentage", fmt.Sprint(percent), "--out", p)
	run("cert", "create", "ha", "--policy", p, "--wait")
	cl := c.Client(follower)
	type version struct {
		id      string
		created int64
	}
	// versions lists the certificate's versions, oldest first; ok is false
	// while the cluster cannot answer (during the election).
	versions := func() (vs []version, ok bool, seen string) {
		st, resp := dpDo(t, cl, http.MethodGet, "/certificates/ha/versions", nil)
		if st != http.StatusOK {
			return nil, false, fmt.Sprintf("status %d: %v", st, resp)
		}
		items, _ := resp["value"].([]any)
		for _, it := range items {
			m, _ := it.(map[string]any)
			id, _ := m["id"].(string)
			attrs, _ := m["attributes"].(map[string]any)
			created, _ := attrs["created"].(float64)
			vs = append(vs, version{id[strings.LastIndex(id, "/")+1:], int64(created)})
		}
		sort.Slice(vs, func(i, j int) bool { return vs[i].created < vs[j].created })
		return vs, true, fmt.Sprintf("%d versions", len(vs))
	}
	var before []version
	waitUntil(t, 2*time.Minute, "the first automatic renewal of ha", func() (bool, string) {
		vs, ok, seen := versions()
		before = vs
		return ok && len(vs) >= 2, seen
	})
	c.Leader().Kill()
	v1, v2 := before[0], before[1]
	hook.wait(t, 60*time.Second, "Microsoft.KeyVault.CertificateNewVersionCreated", v2.id)

	// The next renewal is v2's, due 18 s after it was made, however long
	// the election took: every version but v1 and v2 must be younger than
	// that. A new leader that renewed v1 again would make one sooner.
	var after []version
	waitUntil(t, 60*time.Second, "the versions of ha after the leader kill", func() (bool, string) {
		vs, ok, seen := versions()
		after = vs
		return ok, seen
	})
	due := v2.created + validity*percent/100 - (validity+99)/100 - 1 // the spread, and the second times are rounded to
	for _, v := range after {
		if v.id != v1.id && v.id != v2.id && v.created < due {
			t.Fatalf("version %s made at %d, before v2's renewal is due (%d): the new leader renewed again; versions %v",
				v.id, v.created, due, after)
		}
	}
	if len(after) < 2 {
		t.Fatalf("versions after the leader kill: %v, want v1 %s and v2 %s", after, v1.id, v2.id)
	}
}
