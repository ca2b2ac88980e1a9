package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/internal/client"
	"github.com/certvault/certvault/internal/report"
	"github.com/certvault/certvault/test/testcluster"
	"github.com/certvault/certvault/vault/audit"
)

// retentionPEM returns a key and a self-signed certificate for
// www.example.com valid from nbf to exp, as one PEM document to import.
func retentionPEM(t *testing.T, nbf, exp time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: "www.example.com"}, DNSNames: []string{"www.example.com"},
		NotBefore: nbf, NotAfter: exp, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})) + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// versionOfID is the version at the end of a Key Vault id.
func versionOfID(id string) string { return path.Base(id) }

// listedVersions lists an object's versions through the Key Vault API,
// sorted.
func listedVersions(t *testing.T, cl *client.Client, kind, name string) []string {
	t.Helper()
	var page struct {
		Value []struct {
			ID string `json:"id"`
		} `json:"value"`
	}
	if err := cl.Do(context.Background(), "GET", "/"+kind+"/"+name+"/versions?api-version=7.6&maxresults=25", nil, &page); err != nil {
		t.Fatalf("versions of %s/%s: %v", kind, name, err)
	}
	var out []string
	for _, it := range page.Value {
		out = append(out, versionOfID(it.ID))
	}
	slices.Sort(out)
	return out
}

func sortedOf(vs ...string) []string {
	out := slices.Clone(vs)
	slices.Sort(out)
	return out
}

// TestVersionRetentionEndToEnd (issue 20, item 2) against a real
// certvaultd with --retention-interval 1s, a real agent and a rollout:
// a certificate of six imported versions (two that expire seconds after
// their import, two valid, two newest; its own retain_expired_days 0) and
// a secret of six
// versions (the first held by an agent that was then stopped, the second
// a stuck rollout's previous version). Once retain_versions 2 and
// retain_expired_days 30 are set, the leader purges exactly the versions
// nothing needs: they answer 404 and leave the listings; the current,
// held, rollout, valid and newest versions stay; an object
// with its own retain_versions 0 keeps everything; the audit trail
// records the purges; the evidence report still lists the purged
// certificate versions. Bad settings are refused with what to give.
func TestVersionRetentionEndToEnd(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{ExtraArgs: []string{"--retention-interval", "1s"}})
	n := c.Nodes[0]
	cl := c.Client(n)
	ctx := context.Background()
	dir := t.TempDir()

	// Bad settings: the member, its range, what to give.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"settings", "set", "--retain-versions", "-1"}, "retain_versions -1: use 0 to keep every version (the default), or 1 to 10000"},
		{[]string{"settings", "set", "--retain-expired-days", "4000"}, "retain_expired_days 4000: use 0 to 3650"},
	} {
		out, errOut, code := c.CLI(tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("certvault %s: exit %d, %s%s; want a failure saying %q", strings.Join(tc.args, " "), code, out, errOut, tc.want)
		}
	}

	// Certificate www: six imported versions, oldest first. The vault
	// refuses to import an expired certificate, so the first two expire
	// a few seconds after their import (well before the agent below has
	// done its work); www's own retain_expired_days 0 lets them go as
	// soon as they expired. The grace itself is TestVersionRetention's.
	now := time.Now()
	d := func(days int) time.Time { return now.Add(time.Duration(days) * 24 * time.Hour) }
	soon := now.Add(8 * time.Second)
	validity := [][2]time.Time{
		{d(-1), soon},    // w1: expired: purged
		{d(-1), soon},    // w2: expired: purged
		{d(-10), d(300)}, // w3: valid: kept
		{d(-10), d(300)}, // w4: valid: kept
		{d(-2), d(365)},  // w5: among the last 2: kept
		{d(-1), d(365)},  // w6: current: kept
	}
	var www []string
	for i, v := range validity {
		body := map[string]any{"value": retentionPEM(t, v[0], v[1]), "policy": map[string]any{"secret_props": map[string]string{"contentType": "application/x-pem-file"}}}
		var res struct {
			ID string `json:"id"`
		}
		// The version before expires within the near-expiry threshold, so
		// its event fires at once and changes the certificate's record: an
		// import that races it is refused (409, "retry") and made again.
		waitUntil(t, 30*time.Second, fmt.Sprintf("import of www version %d", i+1), func() (bool, string) {
			resp, err := cl.DoResponse(ctx, "POST", "/certificates/www/import?api-version=7.6", body, &res)
			if resp == nil {
				t.Fatalf("import www version %d: %v", i+1, err)
			}
			if err != nil && resp.StatusCode != http.StatusConflict {
				t.Fatalf("import www version %d: %v", i+1, err)
			}
			return err == nil, fmt.Sprint(err)
		})
		www = append(www, versionOfID(res.ID))
	}
	out, errOut, code := c.CLI("cert", "retention", "www", "--retain-versions", "-5")
	if code == 0 || !strings.Contains(errOut, "retain_versions -5") {
		t.Errorf("cert retention www --retain-versions -5: exit %d, %s%s; want a refusal naming retain_versions", code, out, errOut)
	}
	if out := mustCLI(t, c, "cert", "retention", "www", "--retain-expired-days", "0"); !strings.Contains(out, "0 (every version is kept)") || !strings.Contains(out, "(the vault's)") {
		t.Errorf("cert retention www --retain-expired-days 0: %q, want N still the vault's (0 so far)", out)
	}

	// Secret db: an agent installs version 1 and stops.
	setSecret := func(name, value string) string {
		t.Helper()
		var res struct {
			ID string `json:"id"`
		}
		if err := cl.Do(ctx, "PUT", "/secrets/"+name+"?api-version=7.6", map[string]string{"value": value}, &res); err != nil {
			t.Fatalf("set %s: %v", name, err)
		}
		return versionOfID(res.ID)
	}
	db := []string{setSecret("db", "db-value-1")}
	mustCLI(t, c, "role", "assign", "Secrets User", "--to", "group:fleet", "--scope", "/secrets/db")
	tok, fp, _ := agentJoinToken(t, c, "--group", "fleet", "--uses", "1")
	agentBin := testcluster.AgentBinary(t)
	state := filepath.Join(dir, "agent", "state")
	agentID := joinAgent(t, agentBin, n.URL(), tok, fp, state, "--name", "vm-1")
	secretFile := filepath.Join(dir, "agent", "db-password")
	cfg := filepath.Join(dir, "agent", "agent.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`vault: %s
ca_file: %s
state_dir: %s
secrets:
  - name: db
    file: %s
    mode: "0400"
`, n.URL(), c.CACert, state, secretFile)), 0o644); err != nil {
		t.Fatalf("write %s: %v", cfg, err)
	}
	agent := startAgent(t, agentBin, cfg)
	waitUntil(t, 60*time.Second, "the agent reports version 1 of db installed", func() (bool, string) {
		out := mustCLI(t, c, "agent", "list", "-o", "json")
		return strings.Contains(out, db[0]) && strings.Contains(out, "installed"), out
	})
	agent.kill()

	// Version 2 is current when a rollout plan is set: the rollout's
	// known good version. Version 3 starts a rollout that waits for the
	// stopped agent forever; versions 4 to 6 keep version 2 as its
	// previous one.
	db = append(db, setSecret("db", "db-value-2"))
	mustCLI(t, c, "rollout", "set", "db", "--secret", "--waves", "1,100%")
	rolloutAt := func(version, status string) func() (bool, string) {
		return func() (bool, string) {
			var st struct {
				Rollout *struct{ Version, Previous, Status string } `json:"rollout"`
			}
			out := mustCLI(t, c, "rollout", "status", "db", "--secret", "-o", "json")
			if err := json.Unmarshal([]byte(out), &st); err != nil {
				return false, fmt.Sprintf("%v: %s", err, out)
			}
			return st.Rollout != nil && st.Rollout.Version == version && st.Rollout.Status == status, out
		}
	}
	waitUntil(t, 30*time.Second, "the rollout of db knows version 2", rolloutAt(db[1], "done"))
	for i := 3; i <= 6; i++ {
		db = append(db, setSecret("db", fmt.Sprintf("db-value-%d", i)))
	}
	waitUntil(t, 30*time.Second, "the rollout of db runs version 6", rolloutAt(db[5], "running"))

	// Secret keep: its own retain_versions 0 keeps its three versions.
	for i := range 3 {
		setSecret("keep", fmt.Sprintf("keep-%d", i))
	}
	mustCLI(t, c, "secret", "retention", "keep", "--retain-versions", "0")
	if out := mustCLI(t, c, "secret", "retention", "keep"); !strings.Contains(out, "0 (every version is kept)") {
		t.Errorf("secret retention keep: %q, want retain versions 0", out)
	}

	waitFor(t, 30*time.Second, "versions 1 and 2 of www expired", func() bool { return time.Now().After(soon) })
	mustCLI(t, c, "settings", "set", "--retain-versions", "2", "--retain-expired-days", "30")
	if out := mustCLI(t, c, "settings", "show"); !strings.Contains(out, "retain versions:") || !strings.Contains(out, "retain expired days:  30") {
		t.Errorf("settings show: %q, want the retention settings", out)
	}

	wantWWW := sortedOf(www[2], www[3], www[4], www[5])
	wantDB := sortedOf(db[0], db[1], db[4], db[5])
	waitUntil(t, 60*time.Second, "retention purged versions 1 and 2 of www and 3 and 4 of db", func() (bool, string) {
		gw, gd := listedVersions(t, cl, "certificates", "www"), listedVersions(t, cl, "secrets", "db")
		return slices.Equal(gw, wantWWW) && slices.Equal(gd, wantDB), fmt.Sprintf("www %v, db %v", gw, gd)
	})
	// A round purges all an object's victims in one batch (fewer than
	// 100), so had a held or needed version been chosen it would have
	// gone with the others: the listings above would not match.
	if got := listedVersions(t, cl, "certificates", "www"); !slices.Equal(got, wantWWW) {
		t.Errorf("versions of www: got %v, want %v", got, wantWWW)
	}
	if got := listedVersions(t, cl, "secrets", "db"); !slices.Equal(got, wantDB) {
		t.Errorf("versions of db: got %v, want %v (1 held by agent %s, 2 the rollout's previous)", got, wantDB, agentID)
	}
	if got := listedVersions(t, cl, "secrets", "www"); !slices.Equal(got, wantWWW) {
		t.Errorf("versions of the secret www: got %v, want the certificate's %v", got, wantWWW)
	}
	if got := listedVersions(t, cl, "secrets", "keep"); len(got) != 3 {
		t.Errorf("versions of keep: %v, want its 3", got)
	}
	for _, p := range []string{"/certificates/www/" + www[0], "/certificates/www/" + www[1], "/secrets/www/" + www[0], "/secrets/db/" + db[2], "/secrets/db/" + db[3]} {
		if code := status(t, cl, "GET", p+"?api-version=7.6", nil); code != 404 {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	if code := status(t, cl, "GET", "/secrets/db/"+db[0]+"?api-version=7.6", nil); code != 200 {
		t.Errorf("GET the held version of db: %d, want 200", code)
	}

	// The audit trail names each purge.
	var recs struct {
		Value []audit.Record `json:"value"`
	}
	if err := json.Unmarshal([]byte(mustCLI(t, c, "audit", "list", "--principal", "retention", "-o", "json")), &recs); err != nil {
		t.Fatal(err)
	}
	purged := map[string][]string{}
	for _, r := range recs.Value {
		rule := map[string]string{"/certificates/www": "retain_versions=2 retain_expired_days=0", "/secrets/db": "retain_versions=2 retain_expired_days=30"}[r.Object]
		if r.Method != "PURGE" || r.Outcome != "allowed" || rule == "" || !strings.Contains(r.Detail, rule) {
			t.Errorf("audit record %+v: want a PURGE of www or db naming the rule %q", r, rule)
		}
		purged[r.Object] = append(purged[r.Object], strings.Split(r.Version, ",")...)
	}
	for obj, want := range map[string][]string{"/certificates/www": sortedOf(www[0], www[1]), "/secrets/db": sortedOf(db[2], db[3])} {
		if got := sortedOf(purged[obj]...); !slices.Equal(got, want) {
			t.Errorf("audit records of %s name versions %v, want %v", obj, got, want)
		}
	}

	// The evidence report over the last hour keeps the purged versions'
	// history.
	var rep report.Report
	if err := json.Unmarshal([]byte(mustCLI(t, c, "report", "--format", "json", "--since", "1h")), &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]report.Version{}
	for _, cert := range rep.Certificates {
		if cert.Name != "www" {
			continue
		}
		for _, v := range cert.Versions {
			got[v.Version] = v
		}
	}
	if len(got) != 6 {
		t.Fatalf("report versions of www: %d (%+v), want all 6", len(got), got)
	}
	for i, v := range www {
		r := got[v]
		wantPurged := i < 2
		if (r.Purged != nil) != wantPurged || r.Serial == "" || r.Thumbprint == "" || r.How != "import" || !r.Expires.Equal(validity[i][1].Truncate(time.Second).UTC()) {
			t.Errorf("report version %d of www: %+v; want purged %v, its serial, thumbprint, import and expiry %s", i+1, r, wantPurged, validity[i][1].UTC())
		}
	}
}
