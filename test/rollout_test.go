package test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
	vaultfleet "github.com/certvault/certvault/vault/fleet"
)

// fleetAgent is one agent of the rollout test with the service it checks.
type fleetAgent struct {
	id, dir string
	// frozen, when set, is what its service serves whatever the files
	// say: a service that does not pick up new certificates.
	frozen atomic.Pointer[tls.Certificate]
	// gate, when set, holds every handshake until it is closed: a service
	// slow to come back after a reload.
	gate atomic.Pointer[chan struct{}]
}

// serve answers TLS with the agent's installed cert.pem and key.pem, read
// at each handshake as a reloaded server would, unless frozen.
func (f *fleetAgent) serve(t *testing.T) string {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		if g := f.gate.Load(); g != nil {
			<-*g
		}
		if c := f.frozen.Load(); c != nil {
			return c, nil
		}
		c, err := tls.LoadX509KeyPair(filepath.Join(f.dir, "cert.pem"), filepath.Join(f.dir, "key.pem"))
		return &c, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) { c.(*tls.Conn).Handshake(); c.Close() }(conn)
		}
	}()
	return ln.Addr().String()
}

func (f *fleetAgent) serial() string {
	data, err := os.ReadFile(filepath.Join(f.dir, "cert.pem"))
	if err != nil {
		return ""
	}
	b, _ := pem.Decode(data)
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return ""
	}
	return strings.ToUpper(leaf.SerialNumber.Text(16))
}

// TestRolloutHaltsAndAborts: 20 real agents, waves 2,50%,100% and a
// budget of one failure. The agents of wave 2 serve the old certificate
// whatever is installed, so their health checks fail: the rollout halts
// after wave 2, wave 3 never gets the version, and abort brings waves 1
// and 2 back to the old one.
func TestRolloutHaltsAndAborts(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, testcluster.Options{})
	agentBin := testcluster.AgentBinary(t)
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	mustCLI(t, c, "cert", "policy", "new", "--subject", "CN=www.example.com", "--san", "www.example.com", "--out", policy)
	rotate := func() string {
		t.Helper()
		mustCLI(t, c, "cert", "create", "www", "--policy", policy)
		mustCLI(t, c, "cert", "operation", "www", "--wait")
		return currentSerial(t, c, "www")
	}
	v1 := rotate()
	mustCLI(t, c, "role", "assign", "Certificate User", "--to", "group:fleet", "--scope", "/certificates/www")
	tok, fp, _ := agentJoinToken(t, c, "--group", "fleet", "--uses", "20")

	const n = 20
	agents := make([]*fleetAgent, n)
	for i := range agents {
		f := &fleetAgent{dir: filepath.Join(dir, fmt.Sprintf("a%02d", i), "tls")}
		agents[i] = f
		state := filepath.Join(dir, fmt.Sprintf("a%02d", i), "state")
		f.id = joinAgent(t, agentBin, c.Nodes[0].URL(), tok, fp, state, "--name", fmt.Sprintf("vm-%02d", i))
		cfg := filepath.Join(dir, fmt.Sprintf("a%02d", i), "agent.yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`vault: %s
ca_file: %s
state_dir: %s
certificates:
  - name: www
    dir: %s
    files: {cert: cert.pem, key: key.pem}
    reload: ["true"]
    check: {tls: "%s", server_name: www.example.com}
    timeout: 3s
`, c.Nodes[0].URL(), c.CACert, state, f.dir, f.serve(t))), 0o644); err != nil {
			t.Fatalf("write %s: %v", cfg, err)
		}
		startAgent(t, agentBin, cfg)
	}
	for i, f := range agents {
		waitFor(t, 30*time.Second, fmt.Sprintf("agent %d has version 1", i), func() bool { return f.serial() == v1 })
	}
	// Every agent reported v1; the plan applies from the next version.
	waitFor(t, 30*time.Second, "all agents reported", func() bool {
		return strings.Count(mustCLI(t, c, "agent", "list", "--certificate", "www"), "installed") == n
	})
	mustCLI(t, c, "rollout", "set", "www", "--waves", "2,50%,100%", "--max-failures", "1")
	hookSecret := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(hookSecret, []byte("rollout-hook-secret-0123456789"), 0o600); err != nil {
		t.Fatalf("write %s: %v", hookSecret, err)
	}
	hook := newWebhook(t, "rollout-hook-secret-0123456789")
	mustCLI(t, c, "events", "subscribe", hook.URL, "--types", "RolloutHalted", "--secret-file", hookSecret)

	// Predict the waves and freeze the services of wave 2 on version 1.
	ids := make([]string, n)
	for i, f := range agents {
		ids[i] = f.id
	}
	waveOf, sizes := vaultfleet.AssignWaves("certificates/www", ids, []string{"2", "50%", "100%"})
	if sizes[0] != 2 || sizes[1] != 8 || sizes[2] != 10 {
		t.Fatalf("wave sizes %v, want [2 8 10]", sizes)
	}
	for _, f := range agents {
		if waveOf[f.id] == 1 {
			cert, err := tls.LoadX509KeyPair(filepath.Join(f.dir, "cert.pem"), filepath.Join(f.dir, "key.pem"))
			if err != nil {
				t.Fatal(err)
			}
			f.frozen.Store(&cert)
		}
	}

	v2 := rotate()
	waitFor(t, 60*time.Second, "the rollout halts", func() bool {
		return strings.Contains(mustCLI(t, c, "rollout", "status", "www"), "halted")
	})
	out := mustCLI(t, c, "rollout", "status", "www")
	if !strings.Contains(out, "over the budget of 1, in wave 2 of 3") {
		t.Fatalf("rollout status:\n%s", out)
	}
	var halted struct{ Rollout struct{ Version string } }
	if err := json.Unmarshal([]byte(mustCLI(t, c, "rollout", "status", "www", "-o", "json")), &halted); err != nil {
		t.Fatalf("decode JSON: %v", err)
	}
	hook.wait(t, 30*time.Second, "Microsoft.KeyVault.RolloutHalted", halted.Rollout.Version)
	for _, f := range agents {
		got := f.serial()
		switch waveOf[f.id] {
		case 0:
			if got != v2 {
				t.Errorf("wave 1 agent %s holds %s, want the new %s", f.id, got, v2)
			}
		case 1, 2:
			// Wave 2 rolled back; wave 3 never got it.
			if got != v1 {
				t.Errorf("wave %d agent %s holds %s, want the old %s", waveOf[f.id]+1, f.id, got, v1)
			}
		}
	}
	var st struct {
		Waves []struct {
			Failed, Healthy int
			RolledBack      int `json:"rolled_back"`
		}
	}
	if err := json.Unmarshal([]byte(mustCLI(t, c, "rollout", "status", "www", "-o", "json")), &st); err != nil {
		t.Fatalf("decode JSON: %v", err)
	}
	if len(st.Waves) != 3 || st.Waves[0].Healthy != 2 || st.Waves[1].RolledBack < 2 || st.Waves[2].Failed+st.Waves[2].Healthy+st.Waves[2].RolledBack != 0 {
		t.Fatalf("wave counts: %+v\n%s", st.Waves, out)
	}

	// Abort: everyone back on version 1.
	mustCLI(t, c, "rollout", "abort", "www")
	for _, f := range agents {
		if waveOf[f.id] == 0 {
			f := f
			waitFor(t, 30*time.Second, "wave 1 back on version 1", func() bool { return f.serial() == v1 })
		}
	}
	if out := mustCLI(t, c, "rollout", "status", "www"); !strings.Contains(out, "aborted") {
		t.Fatalf("status after abort:\n%s", out)
	}
}

// TestRolloutSurvivesLeaderKill: a rollout paused after its first wave,
// its leader SIGKILLed; the new leader resumes it from where it was, and
// every agent installs the version exactly once.
func TestRolloutSurvivesLeaderKill(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, testcluster.Options{})
	leader := c.Leader()
	var follower *testcluster.Node
	for _, n := range c.Nodes {
		if n != leader {
			follower = n
			break
		}
	}
	agentBin := testcluster.AgentBinary(t)
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, code := c.CLIAt(follower, args...)
		if code != 0 {
			t.Fatalf("certvault %s: %s%s", strings.Join(args, " "), out, errOut)
		}
		return out
	}
	cli("cert", "policy", "new", "--subject", "CN=www.example.com", "--san", "www.example.com", "--out", policy)
	rotate := func() {
		cli("cert", "create", "www", "--policy", policy)
		cli("cert", "operation", "www", "--wait")
	}
	rotate()
	cli("role", "assign", "Certificate User", "--to", "group:fleet", "--scope", "/certificates/www")
	out := cli("agent", "join-token", "create", "--group", "fleet", "--uses", "6", "-o", "json")
	var jt struct {
		Token         string
		CAFingerprint string `json:"ca_fingerprint"`
	}
	if err := json.Unmarshal([]byte(out), &jt); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, out)
	}
	testcluster.KnownSecret(jt.Token)
	const n = 6
	agents := make([]*fleetAgent, n)
	for i := range agents {
		f := &fleetAgent{dir: filepath.Join(dir, fmt.Sprintf("a%d", i), "tls")}
		agents[i] = f
		state := filepath.Join(dir, fmt.Sprintf("a%d", i), "state")
		f.id = joinAgent(t, agentBin, follower.URL(), jt.Token, jt.CAFingerprint, state)
		cfg := filepath.Join(dir, fmt.Sprintf("a%d", i), "agent.yaml")
		if err := os.WriteFile(cfg, []byte(fmt.Sprintf("vault: %s\nca_file: %s\nstate_dir: %s\ncertificates:\n  - name: www\n    dir: %s\n    files: {cert: cert.pem, key: key.pem}\n    reload: [\"true\"]\n    check: {tls: \"%s\", server_name: www.example.com}\n    timeout: 30s\n",
			follower.URL(), c.CACert, state, f.dir, f.serve(t))), 0o644); err != nil {
			t.Fatalf("write %s: %v", cfg, err)
		}
		startAgent(t, agentBin, cfg)
	}
	waitFor(t, 30*time.Second, "all agents installed", func() bool {
		out, _, _ := c.CLIAt(follower, "agent", "list", "--certificate", "www")
		return strings.Count(out, "installed") == n
	})
	cli("rollout", "set", "www", "--waves", "2,50%,100%", "--max-failures", "0")
	// The services of wave 1 hold their health checks until the test lets
	// them go, so the rollout is mid-way, deterministically, when the
	// leader dies.
	ids := make([]string, n)
	for i, f := range agents {
		ids[i] = f.id
	}
	waveOf, _ := vaultfleet.AssignWaves("certificates/www", ids, []string{"2", "50%", "100%"})
	gate := make(chan struct{})
	for _, f := range agents {
		if waveOf[f.id] == 0 {
			f.gate.Store(&gate)
		}
	}
	rotate()
	v2 := currentSerial(t, c, "www")
	waitFor(t, 30*time.Second, "the rollout running in wave 1", func() bool {
		return strings.Contains(cli("rollout", "status", "www"), ": running, wave 1,")
	})
	cli("rollout", "pause", "www")
	leader.Kill()
	c.Leader() // a new one, among the two left
	waitFor(t, 30*time.Second, "resume through the new leader", func() bool {
		_, _, code := c.CLIAt(follower, "rollout", "resume", "www")
		return code == 0
	})
	close(gate)
	waitFor(t, 60*time.Second, "the rollout done under the new leader", func() bool {
		return strings.Contains(cli("rollout", "status", "www"), ": done,")
	})
	for _, f := range agents {
		f := f
		waitFor(t, 30*time.Second, "every agent on the new version", func() bool { return f.serial() == v2 })
	}
	// Each agent installed the new version exactly once.
	var rep struct {
		Deliveries []struct{ Agent, Version, Result string }
	}
	if err := json.Unmarshal([]byte(cli("report", "--format", "json")), &rep); err != nil {
		t.Fatalf("decode JSON: %v", err)
	}
	perAgent := map[string]int{}
	for _, d := range rep.Deliveries {
		if d.Result == "installed" {
			perAgent[d.Agent]++
		}
	}
	if len(perAgent) != n {
		t.Fatalf("agents with installs: %d, want %d: %+v", len(perAgent), n, rep.Deliveries)
	}
	for a, k := range perAgent {
		if k != 2 { // version 1, then version 2: once each
			t.Errorf("agent %s installed %d times, want 2 (v1 and v2 once each)", a, k)
		}
	}
}
