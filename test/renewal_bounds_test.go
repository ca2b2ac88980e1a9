package test

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/test/smtptest"
	"github.com/certvault/certvault/test/testcluster"
)

// certPolicy is a Self EC certificate policy for these tests: x509 is
// x509_props, trigger the AutoRenew trigger.
func certPolicy(x509 map[string]any, trigger map[string]any) map[string]any {
	return map[string]any{
		"key_props":        map[string]any{"kty": "EC", "crv": "P-256"},
		"x509_props":       x509,
		"lifetime_actions": []map[string]any{{"trigger": trigger, "action": map[string]any{"action_type": "AutoRenew"}}},
	}
}

// createCertificate creates a certificate with a Self or internal issuer,
// which completes at once, and returns the new version's attributes.
func createCertificate(t *testing.T, cl *client.Client, name string, policy map[string]any) map[string]any {
	t.Helper()
	st, op := dpDo(t, cl, http.MethodPost, "/certificates/"+name+"/create", map[string]any{"policy": policy})
	if st != http.StatusAccepted || op["status"] != "completed" {
		t.Fatalf("create %s: %d %v", name, st, op)
	}
	st, cert := dpDo(t, cl, http.MethodGet, "/certificates/"+name+"/", nil)
	if st != http.StatusOK {
		t.Fatalf("get %s: %d %v", name, st, cert)
	}
	return cert["attributes"].(map[string]any)
}

// versionCount returns how many versions a certificate has (at least
// that many when there are more than a page of them).
func versionCount(t *testing.T, cl *client.Client, name string) int {
	t.Helper()
	st, resp := dpDo(t, cl, http.MethodGet, "/certificates/"+name+"/versions", nil)
	if st != http.StatusOK {
		t.Fatalf("versions of %s: %d %v", name, st, resp)
	}
	v, _ := resp["value"].([]any)
	return len(v)
}

// waitVersionCount polls until a certificate has at least want versions.
func waitVersionCount(t *testing.T, cl *client.Client, name string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for got := versionCount(t, cl, name); got < want; got = versionCount(t, cl, name) {
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d versions after %v, want %d", name, got, d, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// certMetrics returns the node's certvault_certificate_* gauges for one
// certificate, by metric name.
func certMetrics(t *testing.T, c *testcluster.Cluster, n *testcluster.Node, name string) map[string]float64 {
	t.Helper()
	resp, err := c.HTTPClient().Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	label := `{name="` + name + `"} `
	for sc.Scan() {
		metric, value, ok := strings.Cut(sc.Text(), label)
		if !ok || !strings.HasPrefix(metric, "certvault_certificate_") {
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric %s: %v", sc.Text(), err)
		}
		out[metric] = f
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return out
}

// waitSchedulerPast makes a certificate that renews 12 seconds after it
// is made (10 % of two minutes) and waits for that renewal: the leader's
// scheduler renews in due order, so once it has, it has looked at every
// plan due before.
func waitSchedulerPast(t *testing.T, cl *client.Client, marker string) {
	t.Helper()
	createCertificate(t, cl, marker, certPolicy(map[string]any{"subject": "CN=" + marker, "validity_duration": "2m"}, map[string]any{"lifetime_percentage": 10}))
	waitVersionCount(t, cl, marker, 2, 90*time.Second)
}

// TestRenewalLongLifetimes: Self certificates valid 44 and 1200 months
// with AutoRenew at 80 % (whose lifetime × 80 overflowed int64
// nanoseconds, making them due at once, forever) are not renewed by the
// scheduler, and their renewal is planned at 80 % of their lifetime; the
// bounds of a policy's validity and triggers answer 400 BadParameter
// naming the maximum: validity_months over 1200, days_before_expiry over
// 27 a month (106752 overflowed into "never renews"), and a validity that
// outlives an internal issuer's CA.
func TestRenewalLongLifetimes(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	n := c.Nodes[0]
	cl := c.Client(n)
	attrs := map[string]map[string]any{}
	for _, months := range []int{44, 1200} {
		name := fmt.Sprintf("long%d", months)
		attrs[name] = createCertificate(t, cl, name, certPolicy(map[string]any{"subject": "CN=" + name, "validity_months": months}, map[string]any{"lifetime_percentage": 80}))
	}
	waitSchedulerPast(t, cl, "tick")
	for name, a := range attrs {
		if got := versionCount(t, cl, name); got != 1 {
			t.Fatalf("%s has %d versions after the scheduler went past its creation, want 1 (renewed before it was due)", name, got)
		}
		created, exp := int64(a["created"].(float64)), int64(a["exp"].(float64))
		want := created + (exp-created)/100*80 + (exp-created)%100*80/100
		due, ok := certMetrics(t, c, n, name)["certvault_certificate_renewal_due_timestamp_seconds"]
		if !ok || int64(due) > want || int64(due) < want-3600 {
			t.Fatalf("%s: renewal planned at %v (found %v), want within the hour before %v (80 %% of %v..%v)",
				name, time.Unix(int64(due), 0).UTC(), ok, time.Unix(want, 0).UTC(), time.Unix(created, 0).UTC(), time.Unix(exp, 0).UTC())
		}
	}

	refused := func(name string, policy map[string]any, want string) {
		t.Helper()
		st, resp := dpDo(t, cl, http.MethodPost, "/certificates/"+name+"/create", map[string]any{"policy": policy})
		if code, msg := errorOf(resp); st != http.StatusBadRequest || code != "BadParameter" || !strings.Contains(msg, want) {
			t.Fatalf("create %s: %d %s %q, want 400 BadParameter naming %q", name, st, code, msg, want)
		}
		if st, _ := dpDo(t, cl, http.MethodGet, "/certificates/"+name+"/", nil); st != http.StatusNotFound {
			t.Fatalf("a refused create of %s left a certificate (%d)", name, st)
		}
	}
	refused("toolong", certPolicy(map[string]any{"subject": "CN=toolong", "validity_months": 1201}, map[string]any{"lifetime_percentage": 80}), "use 1 to 1200")
	refused("neverrenews", certPolicy(map[string]any{"subject": "CN=neverrenews", "validity_months": 1200}, map[string]any{"days_before_expiry": 106752}), "use 1 to 32400")
	refused("beforestart", certPolicy(map[string]any{"subject": "CN=beforestart", "validity_months": 12}, map[string]any{"days_before_expiry": 325}), "use 1 to 324")

	// An internal CA valid 12 months signs nothing that outlives it.
	st, resp := dpDo(t, cl, http.MethodPut, "/certificates/issuers/shortca", map[string]any{"provider": "internal", "ca": map[string]any{"subject": "CN=Short CA", "validity_months": 12}})
	if st != http.StatusOK {
		t.Fatalf("create issuer shortca: %d %v", st, resp)
	}
	onCA := func(months int) map[string]any {
		p := certPolicy(map[string]any{"subject": "CN=internal", "validity_months": months}, map[string]any{"lifetime_percentage": 80})
		p["issuer"] = map[string]any{"name": "shortca"}
		return p
	}
	refused("pastca", onCA(24), "use at most 11 months")
	refused("pastca", onCA(12), "use at most 11 months")
	createCertificate(t, cl, "inca", onCA(11))
	st, resp = dpDo(t, cl, http.MethodPatch, "/certificates/inca/policy", map[string]any{"x509_props": map[string]any{"subject": "CN=internal", "validity_months": 13}})
	if code, msg := errorOf(resp); st != http.StatusBadRequest || code != "BadParameter" || !strings.Contains(msg, "use at most 11 months") {
		t.Fatalf("policy update past the CA: %d %s %q, want 400 naming 11 months", st, code, msg)
	}
}

// TestRenewalBrake: a certificate whose policy makes every version due
// the moment it is made (1 % of one minute) is renewed automatically
// three times, then halted by the renewal brake: a CertificateRenewalFailed
// event, a mail to the contacts, a failed pending operation and a metric
// say so, and it is not renewed again while the scheduler runs on; a
// policy update (a person acting) clears the halt, and the renewal the new
// policy plans happens.
func TestRenewalBrake(t *testing.T) {
	t.Parallel()
	mail := smtptest.Start(t)
	c := testcluster.Start(t, 1, testcluster.Options{ExtraArgs: []string{"--smtp-addr", mail.Addr, "--smtp-from", "certvault@example.test"}})
	n := c.Nodes[0]
	cl := c.Client(n)
	mustCLI(t, c, "contacts", "set", "pki-team@example.test")
	hook := newWebhook(t, "brake-webhook-secret")
	secretFile := t.TempDir() + "/hook.secret"
	if err := os.WriteFile(secretFile, []byte(hook.secret), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, c, "events", "subscribe", hook.URL, "--types", "CertificateRenewalFailed", "--secret-file", secretFile)

	createCertificate(t, cl, "spin", certPolicy(map[string]any{"subject": "CN=spin", "validity_duration": "1m"}, map[string]any{"lifetime_percentage": 1}))
	msg := mail.Wait(t, 60*time.Second, "Subject: [certvault] automatic renewal of certificate spin halted", "renewed automatically 3 times", "certvault cert policy set spin")
	if len(msg.To) != 1 || msg.To[0] != "pki-team@example.test" {
		t.Fatalf("the halt mail went to %v, want the contacts", msg.To)
	}
	if got := versionCount(t, cl, "spin"); got != 4 {
		t.Fatalf("spin has %d versions when halted, want 4 (3 automatic renewals)", got)
	}
	st, cur := dpDo(t, cl, http.MethodGet, "/certificates/spin/", nil)
	if st != http.StatusOK {
		t.Fatalf("get spin: %d %v", st, cur)
	}
	id := cur["id"].(string)
	current := id[strings.LastIndex(id, "/")+1:]
	ev := hook.wait(t, 30*time.Second, "Microsoft.KeyVault.CertificateRenewalFailed", current)
	if e, _ := ev["data"].(map[string]any)["Error"].(string); !strings.Contains(e, "automatic renewal halted") {
		t.Fatalf("CertificateRenewalFailed event: %v", ev)
	}
	st, op := dpDo(t, cl, http.MethodGet, "/certificates/spin/pending", nil)
	if code, _ := errorOf(op); st != http.StatusOK || op["status"] != "failed" || code != "RenewalHalted" {
		t.Fatalf("pending operation of the halted certificate: %d %v", st, op)
	}
	m := certMetrics(t, c, n, "spin")
	if m["certvault_certificate_renewal_halted"] != 1 {
		t.Fatalf("metrics of spin: %v, want certvault_certificate_renewal_halted 1", m)
	}
	if _, planned := m["certvault_certificate_renewal_due_timestamp_seconds"]; planned {
		t.Fatalf("the halted certificate still has a renewal plan: %v", m)
	}
	// The scheduler runs on (and spin's version has expired by then):
	// no renewal.
	waitSchedulerPast(t, cl, "tick")
	if got := versionCount(t, cl, "spin"); got != 4 {
		t.Fatalf("spin has %d versions after the scheduler ran on, want 4: the halt did not hold", got)
	}

	// A person updates the policy: the halt is cleared and the new plan
	// (half of the current, expired version's lifetime) renews at once.
	policyFile := t.TempDir() + "/spin.json"
	if err := os.WriteFile(policyFile, []byte(`{"x509_props": {"subject": "CN=spin", "validity_duration": "1h"}, "lifetime_actions": [{"trigger": {"lifetime_percentage": 50}, "action": {"action_type": "AutoRenew"}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, c, "cert", "policy", "set", "spin", "--policy", policyFile)
	waitVersionCount(t, cl, "spin", 5, 60*time.Second)
	m = certMetrics(t, c, n, "spin")
	if _, halted := m["certvault_certificate_renewal_halted"]; halted {
		t.Fatalf("still halted after the policy update: %v", m)
	}
	if due, ok := m["certvault_certificate_renewal_due_timestamp_seconds"]; !ok || time.Until(time.Unix(int64(due), 0)) < 25*time.Minute {
		t.Fatalf("the new 1-hour version is planned at %v (found %v), want about 30 minutes from now", time.Unix(int64(due), 0), ok)
	}
}
